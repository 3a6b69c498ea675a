/**
 * CLIXML as PowerShell's own serializer writes it, so that PowerShell turns a native command's output
 * into objects by itself: the line `#< CLIXML`, then one `<Objs>` document per object, one per line
 * (PowerShell deserializes each stdout line on its own, so references never cross lines).
 */
import type { ListValue, ObjectValue, Value } from './normalize.js';
import { formatDateTimeRoundtrip, formatDoubleDotNet, formatXsdDuration } from './scalars.js';

export const CLIXML_HEADER = '#< CLIXML';
const OBJS_OPEN = '<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">';
const OBJS_CLOSE = '</Objs>';

const PSCUSTOMOBJECT = ['System.Management.Automation.PSCustomObject', 'System.Object'];

function hex4(code: number): string {
  return `_x${code.toString(16).toUpperCase().padStart(4, '0')}_`;
}

/**
 * PowerShell's string encoding (reversed by XmlConvert.DecodeName on the reading side): every UTF-16
 * unit that is a C0/C1 control or a surrogate becomes `_xHHHH_`, and a `_` before `x`/`X` becomes
 * `_x005F_` so literal `_x0041_` text survives. PowerShell also encodes both halves of a valid pair,
 * which keeps emoji intact through consoles that do not decode UTF-8. U+FFFE and U+FFFF, which XML
 * forbids and PowerShell's writer rejects, are encoded the same way instead of failing.
 */
export function encodeClixmlString(s: string): string {
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c <= 0x1f || (c >= 0x7f && c <= 0x9f) || (c >= 0xd800 && c <= 0xdfff) || c === 0xfffe || c === 0xffff) {
      out += hex4(c);
    } else if (c === 0x5f && (s[i + 1] === 'x' || s[i + 1] === 'X')) {
      out += '_x005F_';
    } else {
      out += s[i];
    }
  }
  return out;
}

function escapeText(s: string): string {
  return s.replace(/[&<>]/g, (ch) => (ch === '&' ? '&amp;' : ch === '<' ? '&lt;' : '&gt;'));
}

function escapeAttribute(s: string): string {
  return s.replace(/[&<>"]/g, (ch) => (ch === '&' ? '&amp;' : ch === '<' ? '&lt;' : ch === '>' ? '&gt;' : '&quot;'));
}

/** One `<Objs>` document: RefIds for objects and for type-name lists are numbered separately from 0. */
class DocumentWriter {
  private out = '';
  private readonly objectIds = new Map<ListValue | ObjectValue, number>();
  private readonly typeNameIds = new Map<string, number>();

  write(value: Value): string {
    this.out = OBJS_OPEN;
    this.value(value, undefined);
    return this.out + OBJS_CLOSE;
  }

  private nameAttr(name: string | undefined): string {
    return name === undefined ? '' : ` N="${escapeAttribute(encodeClixmlString(name))}"`;
  }

  private element(tag: string, name: string | undefined, text: string): void {
    this.out += `<${tag}${this.nameAttr(name)}>${escapeText(text)}</${tag}>`;
  }

  private value(value: Value, name: string | undefined): void {
    switch (value.kind) {
      case 'Null':
        this.out += `<Nil${this.nameAttr(name)} />`;
        return;
      case 'String':
        return this.element('S', name, encodeClixmlString(value.value));
      case 'Boolean':
        return this.element('B', name, value.value ? 'true' : 'false');
      case 'Int32':
        return this.element('I32', name, String(value.value));
      case 'Int64':
        return this.element('I64', name, value.value.toString());
      case 'Double':
        return this.element('Db', name, formatDoubleDotNet(value.value));
      case 'DateTime':
        return this.element('DT', name, formatDateTimeRoundtrip(value.value));
      case 'TimeSpan':
        return this.element('TS', name, formatXsdDuration(value.ticks));
      case 'Guid':
        return this.element('G', name, value.value);
      case 'List':
      case 'Object':
        return this.complex(value, name);
    }
  }

  private complex(value: ListValue | ObjectValue, name: string | undefined): void {
    const seen = this.objectIds.get(value);
    if (seen !== undefined) {
      this.out += `<Ref${this.nameAttr(name)} RefId="${seen}" />`;
      return;
    }
    const id = this.objectIds.size;
    this.objectIds.set(value, id);
    this.out += `<Obj${this.nameAttr(name)} RefId="${id}">`;
    if (value.kind === 'List') {
      this.typeNames([value.arrayType, 'System.Array', 'System.Object']);
      if (value.items.length === 0) {
        this.out += '<LST />';
      } else {
        this.out += '<LST>';
        for (const item of value.items) this.value(item, undefined);
        this.out += '</LST>';
      }
    } else {
      this.typeNames(value.typeName === undefined ? PSCUSTOMOBJECT : [value.typeName, ...PSCUSTOMOBJECT]);
      // PowerShell leaves out <MS> for an object without properties.
      if (value.properties.length > 0) {
        this.out += '<MS>';
        for (const p of value.properties) this.value(p.value, p.name);
        this.out += '</MS>';
      }
    }
    this.out += '</Obj>';
  }

  private typeNames(names: readonly string[]): void {
    const key = names.join('\n');
    const seen = this.typeNameIds.get(key);
    if (seen !== undefined) {
      this.out += `<TNRef RefId="${seen}" />`;
      return;
    }
    const id = this.typeNameIds.size;
    this.typeNameIds.set(key, id);
    this.out += `<TN RefId="${id}">${names.map((n) => `<T>${escapeText(encodeClixmlString(n))}</T>`).join('')}</TN>`;
  }
}

export function formatClixml(values: readonly Value[]): string {
  if (values.length === 0) return '';
  const lines = [CLIXML_HEADER, ...values.map((v) => new DocumentWriter().write(v))];
  return lines.join('\n') + '\n';
}
