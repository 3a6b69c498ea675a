/**
 * AzsBackup.format.ps1xml: one table view per declared type, with the manifest's default columns.
 * Each view selects both the type name and its Deserialized. form, which is how objects arrive
 * from the host's CLIXML stream.
 */
import { AzsError } from '../errors.js';
import type { TypeDef, TypeRegistry } from '../manifest/model.js';
import { el, renderXmlDocument, type XmlElement } from './xml.js';

function column(type: TypeDef, name: string): { header: XmlElement; item: XmlElement } {
  const prop = type.properties.find((p) => p.name === name);
  if (!prop) {
    throw new AzsError(`Type ${type.name} lists table column '${name}', which is not one of its properties.`, {
      errorId: 'PsModuleUnknownColumn',
      category: 'InvalidData',
      targetObject: type.name,
      recommendedAction: `Fix TableColumns of ${type.name} in manifests/Types.xml.`,
    });
  }
  if (!/^[A-Za-z][A-Za-z0-9]*$/.test(name)) {
    throw new AzsError(`Column '${name}' of ${type.name} is not a plain identifier.`, {
      errorId: 'PsModuleInvalidName',
      category: 'InvalidData',
      targetObject: name,
    });
  }
  // Lists would print as {a, b...}; a comma-separated cell reads better in a table.
  const item =
    prop.type === 'String[]'
      ? el('TableColumnItem', [el('ScriptBlock', `$_.${name} -join ', '`)])
      : prop.type === 'Object[]'
        ? el('TableColumnItem', [el('ScriptBlock', `@($_.${name}).Count`)])
        : el('TableColumnItem', [el('PropertyName', name)]);
  const alignment = ['Int32', 'Int64', 'Double'].includes(prop.type) || prop.type === 'Object[]' ? 'Right' : undefined;
  return {
    header: el('TableColumnHeader', [el('Label', name), alignment ? el('Alignment', alignment) : undefined]),
    item,
  };
}

function tableView(type: TypeDef): XmlElement {
  const columns = type.tableColumns.map((c) => column(type, c));
  return el('View', [
    el('Name', type.name),
    el('ViewSelectedBy', [el('TypeName', type.name), el('TypeName', `Deserialized.${type.name}`)]),
    el('TableControl', [
      el(
        'TableHeaders',
        columns.map((c) => c.header),
      ),
      el('TableRowEntries', [
        el('TableRowEntry', [
          el(
            'TableColumnItems',
            columns.map((c) => c.item),
          ),
        ]),
      ]),
    ]),
  ]);
}

export function generateFormat(types: TypeRegistry): string {
  const sorted = [...types.values()].filter((t) => t.tableColumns.length > 0).sort((a, b) => a.name.localeCompare(b.name, 'en'));
  return renderXmlDocument(el('Configuration', [el('ViewDefinitions', sorted.map(tableView))]));
}
