import { describe, expect, it } from 'vitest';
import { AzsError } from '../../src/errors.js';
import type { TypeDef, TypeRegistry } from '../../src/manifest/model.js';
import { formatObjects } from '../../src/output/index.js';

function registry(...defs: TypeDef[]): TypeRegistry {
  return new Map(defs.map((d) => [d.name, d]));
}

const types = registry(
  {
    name: 'AzsBackup.Backup',
    tableColumns: ['Name', 'Status'],
    properties: [
      { name: 'Name', type: 'Guid' },
      { name: 'Status', type: 'String' },
      { name: 'CreatedDateTime', type: 'DateTime' },
      { name: 'TimeTakenToCreate', type: 'TimeSpan' },
      { name: 'Size', type: 'Int64' },
      { name: 'RoleStatus', type: 'Object[]', typeName: 'AzsBackup.RoleStatus' },
      { name: 'Tags', type: 'String[]' },
    ],
  },
  {
    name: 'AzsBackup.RoleStatus',
    tableColumns: [],
    properties: [
      { name: 'RoleName', type: 'String' },
      { name: 'Status', type: 'String' },
      { name: 'Duration', type: 'TimeSpan' },
      { name: 'Ratio', type: 'Double' },
    ],
  },
);

const backup = {
  Name: '0F8FAD5B-D9CB-469F-A165-70867728950E',
  Status: 'Succeeded',
  CreatedDateTime: new Date(Date.UTC(2026, 10, 27, 4, 48, 11, 123)),
  TimeTakenToCreate: 1_248_500,
  Size: 9_007_199_254_740_993n,
  RoleStatus: [{ RoleName: 'CA', Status: 'Succeeded', Duration: 'P1DT2H', Ratio: 0.25 }],
  Tags: ['a'],
};

describe('JSON output', () => {
  it('prints nothing for no objects', () => {
    expect(formatObjects([], 'AzsBackup.Backup', 'json', types)).toBe('');
  });

  it('prints one object as the object itself, pretty-printed with two spaces, in declared order', () => {
    const out = formatObjects([backup], 'AzsBackup.Backup', 'json', types);
    expect(out).toBe(
      [
        '{',
        '  "Name": "0f8fad5b-d9cb-469f-a165-70867728950e",',
        '  "Status": "Succeeded",',
        '  "CreatedDateTime": "2026-11-27T04:48:11.123Z",',
        '  "TimeTakenToCreate": "PT20M48.5S",',
        '  "Size": 9007199254740993,',
        '  "RoleStatus": [',
        '    {',
        '      "RoleName": "CA",',
        '      "Status": "Succeeded",',
        '      "Duration": "P1DT2H",',
        '      "Ratio": 0.25',
        '    }',
        '  ],',
        '  "Tags": [',
        '    "a"',
        '  ]',
        '}',
        '',
      ].join('\n'),
    );
  });

  it('prints several objects as an array that JSON.parse reads back', () => {
    const second = { ...backup, Size: 5, Status: 'Failed' };
    const out = formatObjects([backup, second], 'AzsBackup.Backup', 'json', types);
    expect(out.endsWith(']\n')).toBe(true);
    const parsed = JSON.parse(out) as Array<Record<string, unknown>>;
    expect(parsed).toHaveLength(2);
    expect(parsed[1]!.Status).toBe('Failed');
    expect(parsed[1]!.Size).toBe(5);
    // Same layout JSON.stringify would choose, wherever no bigint is involved.
    expect(out).toBe(JSON.stringify(parsed, null, 2).replace('9007199254740992', '9007199254740993') + '\n');
  });

  it('writes durations in ISO 8601 from milliseconds or an ISO string', () => {
    const d = (v: unknown): unknown =>
      (JSON.parse(formatObjects([{ TimeTakenToCreate: v }], 'AzsBackup.Backup', 'json', types)) as Record<string, unknown>)
        .TimeTakenToCreate;
    expect(d(1_248_500)).toBe('PT20M48.5S');
    expect(d(0)).toBe('PT0S');
    expect(d(26 * 3_600_000)).toBe('P1DT2H');
    expect(d(93_784_005n)).toBe('P1DT2H3M4.005S');
    expect(d('PT0.5S')).toBe('PT0.5S');
  });

  it('writes DateTime from an ISO string in UTC', () => {
    const out = JSON.parse(
      formatObjects([{ CreatedDateTime: '2026-11-27T06:48:11.5+02:00' }], 'AzsBackup.Backup', 'json', types),
    ) as Record<string, unknown>;
    expect(out.CreatedDateTime).toBe('2026-11-27T04:48:11.500Z');
    const spaced = JSON.parse(formatObjects([{ CreatedDateTime: '2026-11-27 04:48:11' }], 'AzsBackup.Backup', 'json', types)) as Record<
      string,
      unknown
    >;
    expect(spaced.CreatedDateTime).toBe('2026-11-27T04:48:11.000Z');
  });

  it('writes null values and missing declared properties as null', () => {
    const out = JSON.parse(formatObjects([{ Name: null, Status: undefined }], 'AzsBackup.Backup', 'json', types)) as Record<
      string,
      unknown
    >;
    expect(out).toEqual({
      Name: null,
      Status: null,
      CreatedDateTime: null,
      TimeTakenToCreate: null,
      Size: null,
      RoleStatus: null,
      Tags: null,
    });
  });

  it('writes a null object as null', () => {
    expect(formatObjects([null], 'AzsBackup.Backup', 'json', types)).toBe('null\n');
  });

  it('keeps undeclared properties after the declared ones, typed by their JS values', () => {
    const out = formatObjects(
      [{ Extra: { Deep: [1, 'x', null, new Date(0)] }, Status: 'Queued', Empty: [], None: {} }],
      'AzsBackup.Backup',
      'json',
      types,
    );
    const parsed = JSON.parse(out) as Record<string, unknown>;
    expect(Object.keys(parsed)).toEqual([
      'Name',
      'Status',
      'CreatedDateTime',
      'TimeTakenToCreate',
      'Size',
      'RoleStatus',
      'Tags',
      'Extra',
      'Empty',
      'None',
    ]);
    expect(parsed.Extra).toEqual({ Deep: [1, 'x', null, '1970-01-01T00:00:00.000Z'] });
    expect(out).toContain('"Empty": [],');
    expect(out).toContain('"None": {}');
  });

  it('writes objects of an undeclared type by their own shape', () => {
    const out = formatObjects([{ B: true, N: 2.5, Big: 12n, S: 'x' }], 'AzsBackup.Nope', 'json', types);
    expect(out).toBe('{\n  "B": true,\n  "N": 2.5,\n  "Big": 12,\n  "S": "x"\n}\n');
  });

  it('escapes strings as JSON, keeps emoji and escapes control characters and lone surrogates', () => {
    const out = formatObjects([{ S: 'a"\\\n\t😀\uD800_x0041_' }], undefined, 'json', types);
    expect(out).toBe('{\n  "S": "a\\"\\\\\\n\\t😀\\ud800_x0041_"\n}\n');
    expect((JSON.parse(out) as { S: string }).S).toBe('a"\\\n\t😀\uD800_x0041_');
  });

  it('writes NaN and infinities as strings, as ConvertTo-Json does', () => {
    const out = JSON.parse(formatObjects([{ A: NaN, B: Infinity, C: -Infinity }], undefined, 'json', types)) as Record<string, unknown>;
    expect(out).toEqual({ A: 'NaN', B: 'Infinity', C: '-Infinity' });
  });

  it('writes a value shared by two properties twice', () => {
    const role = { RoleName: 'CA' };
    const out = JSON.parse(formatObjects([{ A: role, B: role }], undefined, 'json', types)) as Record<string, unknown>;
    expect(out).toEqual({ A: { RoleName: 'CA' }, B: { RoleName: 'CA' } });
  });

  it('refuses an object that contains itself, naming a format that can hold it', () => {
    const a: Record<string, unknown> = { Name: 'a' };
    a.Self = [a];
    let caught: unknown;
    try {
      formatObjects([a], undefined, 'json', types);
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(AzsError);
    expect((caught as AzsError).errorId).toBe('OutputCycle');
    expect((caught as AzsError).recommendedAction).toMatch(/clixml/);
  });

  it('refuses a value of the wrong declared type before writing anything', () => {
    expect(() => formatObjects([backup, { ...backup, Size: 'big' }], 'AzsBackup.Backup', 'json', types)).toThrow(
      /AzsBackup\.Backup\.Size.*Int64/,
    );
  });
});
