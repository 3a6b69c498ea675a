import { describe, expect, it } from 'vitest';
import type { TypeDef, TypeRegistry } from '../../src/manifest/model.js';
import { formatObjects } from '../../src/output/index.js';

function registry(...defs: TypeDef[]): TypeRegistry {
  return new Map(defs.map((d) => [d.name, d]));
}

const types = registry(
  {
    name: 'AzsBackup.Backup',
    tableColumns: ['Name', 'Status', 'Size', 'CreatedDateTime'],
    properties: [
      { name: 'Name', type: 'String' },
      { name: 'Status', type: 'String' },
      { name: 'Size', type: 'Int64' },
      { name: 'CreatedDateTime', type: 'DateTime' },
      { name: 'TimeTakenToCreate', type: 'TimeSpan' },
      { name: 'RoleStatus', type: 'Object[]', typeName: 'AzsBackup.RoleStatus' },
      { name: 'Tags', type: 'String[]' },
      { name: 'Ready', type: 'Boolean' },
    ],
  },
  {
    name: 'AzsBackup.RoleStatus',
    tableColumns: [],
    properties: [
      { name: 'RoleName', type: 'String' },
      { name: 'Status', type: 'String' },
    ],
  },
);

const when = new Date(Date.UTC(2026, 10, 27, 4, 48, 11, 123));
const a = {
  Name: 'nightly',
  Status: 'Succeeded',
  Size: 123_456n,
  CreatedDateTime: when,
  TimeTakenToCreate: 1_248_500,
  RoleStatus: [
    { RoleName: 'CA', Status: 'Succeeded' },
    { RoleName: 'Identity', Status: 'Failed' },
  ],
  Tags: ['a', 'b'],
  Ready: true,
};
const b = {
  Name: 'x',
  Status: 'Failed',
  Size: 5,
  CreatedDateTime: null,
  TimeTakenToCreate: 26 * 3_600_000,
  RoleStatus: [],
  Tags: ['1', '2', '3', '4', '5'],
  Ready: false,
};

describe('table output', () => {
  it('prints nothing for no objects', () => {
    expect(formatObjects([], 'AzsBackup.Backup', 'table', types)).toBe('');
  });

  it("shows the type's table columns with a dashed header, widths fitted, numbers aligned right", () => {
    expect(formatObjects([a, b], 'AzsBackup.Backup', 'table', types)).toBe(
      [
        '',
        'Name    Status      Size CreatedDateTime',
        '----    ------      ---- ---------------',
        'nightly Succeeded 123456 2026-11-27T04:48:11.123Z',
        'x       Failed         5',
        '',
        '',
      ].join('\n'),
    );
  });

  it('shows every property when the type declares no columns, in PowerShell display forms', () => {
    const t = registry({ ...types.get('AzsBackup.Backup')!, tableColumns: [] }, types.get('AzsBackup.RoleStatus')!);
    const out = formatObjects([a, b], 'AzsBackup.Backup', 'table', t);
    const lines = out.split('\n');
    expect(lines[1]).toBe(
      'Name    Status      Size CreatedDateTime          TimeTakenToCreate RoleStatus                                                  ' +
        '            Tags          Ready',
    );
    expect(lines[3]).toBe(
      'nightly Succeeded 123456 2026-11-27T04:48:11.123Z 00:20:48.5        {@{RoleName=CA; Status=Succeeded}, @{RoleName=Identity; ' +
        'Status=Failed}} {a, b}         True',
    );
    expect(lines[4]).toBe(
      'x       Failed         5                          1.02:00:00        {}                                                          ' +
        '            {1, 2, 3, 4…} False',
    );
  });

  it('takes the columns of objects of an undeclared type from all of them, in first-seen order', () => {
    const out = formatObjects(
      [
        { A: 1, B: null },
        { C: 'c', A: 22 },
      ],
      undefined,
      'table',
      types,
    );
    expect(out).toBe(['', ' A B C', ' - - -', ' 1', '22   c', '', ''].join('\n'));
  });

  it('keeps one row per object: line breaks and tabs become spaces, control characters cannot reach the terminal', () => {
    const out = formatObjects([{ Name: 'line1\r\nline2\tend', Status: 'a\u001b[2Jb' }], 'AzsBackup.Backup', 'table', types);
    expect(out.split('\n')[3]).toBe('line1 line2 end a\uFFFD[2Jb');
    expect(out).not.toContain('\u001b');
  });

  it('counts wide characters and emoji as two columns', () => {
    const out = formatObjects(
      [
        { K: '😀中', V: 1 },
        { K: 'ab', V: 2 },
      ],
      undefined,
      'table',
      types,
    );
    expect(out.split('\n').slice(1, 5)).toEqual(['K    V', '-    -', '😀中 1', 'ab   2']);
  });

  it('fits a given width by cutting the widest column with an ellipsis', () => {
    const out = formatObjects([{ Name: 'a'.repeat(30), Status: 'Succeeded' }], undefined, 'table', types, { width: 25 });
    const lines = out.split('\n');
    expect(lines[3]).toBe(`${'a'.repeat(14)}… Succeeded`);
    for (const l of lines) expect(l.length).toBeLessThanOrEqual(25);
  });

  it('prints values that are not objects one per line', () => {
    expect(formatObjects(['one', 2, null, ['x', 'y']], undefined, 'table', types)).toBe('\none\n\n2\n\n\n\n{x, y}\n\n');
  });
});

describe('list output', () => {
  it('prints nothing for no objects', () => {
    expect(formatObjects([], 'AzsBackup.Backup', 'list', types)).toBe('');
  });

  it('prints Name : value lines, names padded, a blank line between objects', () => {
    expect(formatObjects([a, b], 'AzsBackup.Backup', 'list', types)).toBe(
      [
        '',
        'Name              : nightly',
        'Status            : Succeeded',
        'Size              : 123456',
        'CreatedDateTime   : 2026-11-27T04:48:11.123Z',
        'TimeTakenToCreate : 00:20:48.5',
        'RoleStatus        : {@{RoleName=CA; Status=Succeeded}, @{RoleName=Identity; Status=Failed}}',
        'Tags              : {a, b}',
        'Ready             : True',
        '',
        'Name              : x',
        'Status            : Failed',
        'Size              : 5',
        'CreatedDateTime   :',
        'TimeTakenToCreate : 1.02:00:00',
        'RoleStatus        : {}',
        'Tags              : {1, 2, 3, 4…}',
        'Ready             : False',
        '',
        '',
      ].join('\n'),
    );
  });

  it('continues a multi-line value under its first line', () => {
    const out = formatObjects([{ Id: 1, Message: 'first\nsecond\r\nthird' }], undefined, 'list', types);
    expect(out).toBe('\nId      : 1\nMessage : first\n          second\n          third\n\n');
  });

  it('shows nested objects in short form and cuts deep nesting', () => {
    const out = formatObjects([{ O: { A: 1, B: { C: { D: { E: 1 } } } }, N: null }], undefined, 'list', types);
    expect(out).toBe('\nO : @{A=1; B=@{C=@{D=@{…}}}}\nN :\n\n');
  });
});
