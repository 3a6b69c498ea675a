import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { build } from 'esbuild';
import { XMLValidator } from 'fast-xml-parser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AzsError } from '../../src/errors.js';
import type { TypeDef, TypeRegistry } from '../../src/manifest/model.js';
import { encodeClixmlString, formatObjects } from '../../src/output/index.js';
import { formatDoubleDotNet } from '../../src/output/scalars.js';

const run = promisify(execFile);
const here = path.dirname(fileURLToPath(import.meta.url));

const OBJS = '<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">';
const PSCO = '<T>System.Management.Automation.PSCustomObject</T><T>System.Object</T>';

function registry(...defs: TypeDef[]): TypeRegistry {
  return new Map(defs.map((d) => [d.name, d]));
}

const types = registry(
  {
    name: 'AzsBackup.Test',
    tableColumns: [],
    properties: [
      { name: 'Str', type: 'String' },
      { name: 'When', type: 'DateTime' },
      { name: 'Took', type: 'TimeSpan' },
      { name: 'Size', type: 'Int64' },
      { name: 'Count', type: 'Int32' },
      { name: 'Ratio', type: 'Double' },
      { name: 'Ok', type: 'Boolean' },
      { name: 'Id', type: 'Guid' },
      { name: 'Tags', type: 'String[]' },
      { name: 'Main', type: 'Object', typeName: 'AzsBackup.Role' },
      { name: 'Roles', type: 'Object[]', typeName: 'AzsBackup.Role' },
    ],
  },
  {
    name: 'AzsBackup.Role',
    tableColumns: [],
    properties: [
      { name: 'RoleName', type: 'String' },
      { name: 'Status', type: 'String' },
    ],
  },
  { name: 'AzsBackup.Small', tableColumns: [], properties: [{ name: 'Name', type: 'String' }] },
);

/** The reading side of PowerShell's encoding (XmlConvert.DecodeName), written from its rules. */
function decodeClixmlString(text: string): string {
  const unescaped = text.replace(/&(lt|gt|amp|quot|apos);/g, (_, e: string) => ({ lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" })[e]!);
  return unescaped.replace(/_x([0-9A-Fa-f]{4})_/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
}

function documents(out: string): string[] {
  const lines = out.split('\n');
  expect(lines[0]).toBe('#< CLIXML');
  expect(lines.at(-1)).toBe('');
  return lines.slice(1, -1);
}

describe('encodeClixmlString follows PowerShell serializer rules', () => {
  const cases: Array<[string, string, string]> = [
    ['plain text is unchanged', 'Succeeded', 'Succeeded'],
    ['CR, LF and TAB', 'a\r\nb\tc', 'a_x000D__x000A_b_x0009_c'],
    ['literal _x0041_ text keeps its underscore', '_x0041_', '_x005F_x0041_'],
    ['_ before x is escaped', 'a_xb', 'a_x005F_xb'],
    ['_ before upper-case X too', 'A_X1', 'A_x005F_X1'],
    ['other underscores stay', 'a_b_', 'a_b_'],
    ['an emoji pair: both halves, as PowerShell writes them', 'ok😀', 'ok_xD83D__xDE00_'],
    ['a lone high surrogate', 'x\uD800z', 'x_xD800_z'],
    ['a lone low surrogate', '\uDC00', '_xDC00_'],
    ['DEL and C1 controls, but not NBSP', '\u007F\u0085\u009F\u00A0', '_x007F__x0085__x009F_\u00A0'],
    ['NUL and ESC', '\u0000\u001b[2J', '_x0000__x001B_[2J'],
    ['U+FFFE/U+FFFF, which XML forbids', '\uFFFE\uFFFF', '_xFFFE__xFFFF_'],
    ['markup characters are left to XML escaping', '<&>"\'', '<&>"\''],
    ['accented letters stay', 'é中', 'é中'],
  ];
  for (const [title, input, expected] of cases) {
    it(title, () => {
      expect(encodeClixmlString(input)).toBe(expected);
      expect(decodeClixmlString(encodeClixmlString(input))).toBe(input);
    });
  }

  it('round-trips any mix of awkward characters', () => {
    const alphabet = ['_', 'x', 'X', '0', 'A', '\r', '\n', '\t', '\uD83D', '\uDE00', '\u0085', '<', '&', '>', '"', 'é', '\uFFFE', ' '];
    let seed = 7;
    const next = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31);
    for (let n = 0; n < 500; n++) {
      const s = Array.from({ length: next() % 16 }, () => alphabet[next() % alphabet.length]).join('');
      const out = formatObjects([{ Str: s }], 'AzsBackup.Small', 'clixml', types);
      const [doc] = documents(out);
      expect(XMLValidator.validate(doc!)).toBe(true);
      const m = /<S N="Str">(.*?)<\/S>/.exec(doc!);
      expect(m, doc).not.toBeNull();
      expect(decodeClixmlString(m![1]!)).toBe(s);
    }
  });
});

describe('CLIXML documents', () => {
  it('prints nothing at all for no objects', () => {
    expect(formatObjects([], 'AzsBackup.Test', 'clixml', types)).toBe('');
  });

  it('writes a typed object exactly as PowerShell would', () => {
    const out = formatObjects([{ Name: 'a<&>b' }], 'AzsBackup.Small', 'clixml', types);
    expect(out).toBe(
      `#< CLIXML\n${OBJS}<Obj RefId="0"><TN RefId="0"><T>AzsBackup.Small</T>${PSCO}</TN><MS><S N="Name">a&lt;&amp;&gt;b</S></MS></Obj></Objs>\n`,
    );
  });

  it('writes every member kind, nested objects, lists, TNRef and Ref with PowerShell numbering', () => {
    const role = { RoleName: 'CA', Status: 'Succeeded' };
    const obj = {
      Str: 'x',
      When: new Date(Date.UTC(2026, 10, 27, 4, 48, 11, 123)),
      Took: 1_248_500,
      Size: 9_007_199_254_740_993n,
      Count: 3,
      Ratio: 0.5,
      Ok: true,
      Id: '0F8FAD5B-D9CB-469F-A165-70867728950E',
      Tags: ['a', 'b'],
      Main: role,
      Roles: [role, { RoleName: 'Id', Status: 'Failed' }],
    };
    const [doc] = documents(formatObjects([obj], 'AzsBackup.Test', 'clixml', types));
    expect(doc).toBe(
      OBJS +
        `<Obj RefId="0"><TN RefId="0"><T>AzsBackup.Test</T>${PSCO}</TN><MS>` +
        '<S N="Str">x</S>' +
        '<DT N="When">2026-11-27T04:48:11.123+00:00</DT>' +
        '<TS N="Took">PT20M48.5S</TS>' +
        '<I64 N="Size">9007199254740993</I64>' +
        '<I32 N="Count">3</I32>' +
        '<Db N="Ratio">0.5</Db>' +
        '<B N="Ok">true</B>' +
        '<G N="Id">0f8fad5b-d9cb-469f-a165-70867728950e</G>' +
        '<Obj N="Tags" RefId="1"><TN ' +
        'RefId="1"><T>System.String[]</T><T>System.Array</T><T>System.Object</T></TN><LST><S>a</S><S>b</S></LST></Obj>' +
        `<Obj N="Main" RefId="2"><TN RefId="2"><T>AzsBackup.Role</T>${PSCO}</TN><MS><S N="RoleName">CA</S><S N="Status">Succeeded</S></MS></Obj>` +
        '<Obj N="Roles" RefId="3"><TN RefId="3"><T>System.Object[]</T><T>System.Array</T><T>System.Object</T></TN><LST>' +
        '<Ref RefId="2" />' +
        '<Obj RefId="4"><TNRef RefId="2" /><MS><S N="RoleName">Id</S><S N="Status">Failed</S></MS></Obj>' +
        '</LST></Obj>' +
        '</MS></Obj></Objs>',
    );
    expect(XMLValidator.validate(doc!)).toBe(true);
  });

  it('writes one document per object, each numbered from 0 and well-formed', () => {
    const out = formatObjects([{ Name: 'a' }, { Name: 'b' }, null], 'AzsBackup.Small', 'clixml', types);
    const docs = documents(out);
    expect(docs).toHaveLength(3);
    for (const d of docs) {
      expect(d.startsWith(OBJS)).toBe(true);
      expect(XMLValidator.validate(d)).toBe(true);
    }
    expect(docs[1]).toContain('<Obj RefId="0"><TN RefId="0"><T>AzsBackup.Small</T>');
    expect(docs[2]).toBe(`${OBJS}<Nil /></Objs>`);
  });

  it('writes null and missing declared properties as Nil, and an empty list as an empty LST', () => {
    const [doc] = documents(formatObjects([{ Str: null, Tags: [], Roles: [null] }], 'AzsBackup.Test', 'clixml', types));
    expect(doc).toContain('<Nil N="Str" />');
    expect(doc).toContain('<Nil N="When" />');
    expect(doc).toContain('<Nil N="Main" />');
    expect(doc).toContain(
      '<Obj N="Tags" RefId="1"><TN RefId="1"><T>System.String[]</T><T>System.Array</T><T>System.Object</T></TN><LST /></Obj>',
    );
    expect(doc).toContain('<LST><Nil /></LST>');
  });

  it('encodes property names in the N attribute', () => {
    const [doc] = documents(formatObjects([{ 'Na me_x<"\t': 1 }], undefined, 'clixml', types));
    expect(doc).toContain('<I32 N="Na me_x005F_x&lt;&quot;_x0009_">1</I32>');
    expect(XMLValidator.validate(doc!)).toBe(true);
  });

  it('infers member kinds from JS values for undeclared types and properties', () => {
    const [doc] = documents(
      formatObjects(
        [{ I: 1, Big: 2 ** 40, F: 1.5, B: false, D: new Date(Date.UTC(2026, 0, 1)), Bi: -5n, U: undefined, O: { K: 'v' }, L: ['s', 2] }],
        'AzsBackup.Unknown',
        'clixml',
        types,
      ),
    );
    expect(doc).toBe(
      OBJS +
        `<Obj RefId="0"><TN RefId="0"><T>AzsBackup.Unknown</T>${PSCO}</TN><MS>` +
        '<I32 N="I">1</I32><I64 N="Big">1099511627776</I64><Db N="F">1.5</Db><B N="B">false</B>' +
        '<DT N="D">2026-01-01T00:00:00+00:00</DT><I64 N="Bi">-5</I64><Nil N="U" />' +
        `<Obj N="O" RefId="1"><TN RefId="1">${PSCO}</TN><MS><S N="K">v</S></MS></Obj>` +
        '<Obj N="L" RefId="2"><TN ' +
        'RefId="2"><T>System.Object[]</T><T>System.Array</T><T>System.Object</T></TN><LST><S>s</S><I32>2</I32></LST></Obj>' +
        '</MS></Obj></Objs>',
    );
  });

  it('names an anonymous object only PSCustomObject, and leaves out MS when it has no properties', () => {
    const [doc] = documents(formatObjects([{}], undefined, 'clixml', types));
    expect(doc).toBe(`${OBJS}<Obj RefId="0"><TN RefId="0">${PSCO}</TN></Obj></Objs>`);
  });

  it('writes a cycle as a Ref instead of recursing forever', () => {
    const a: Record<string, unknown> = { Name: 'a' };
    a.Self = a;
    const [doc] = documents(formatObjects([a], undefined, 'clixml', types));
    expect(doc).toContain('<Ref N="Self" RefId="0" />');
  });

  it('writes DateTime in round-trip form: trailing fraction zeros dropped, with the offset, strings without offset read as UTC', () => {
    const dt = (v: unknown): string =>
      /<DT N="When">(.*?)<\/DT>/.exec(formatObjects([{ When: v }], 'AzsBackup.Test', 'clixml', types))![1]!;
    expect(dt(new Date(Date.UTC(2026, 10, 27, 4, 48, 11, 100)))).toBe('2026-11-27T04:48:11.1+00:00');
    expect(dt(new Date(Date.UTC(2026, 10, 27, 4, 48, 11, 0)))).toBe('2026-11-27T04:48:11+00:00');
    expect(dt('2026-11-27T04:48:11.123')).toBe('2026-11-27T04:48:11.123+00:00');
    expect(dt('2026-11-27T06:48:11+02:00')).toBe('2026-11-27T04:48:11+00:00');
  });

  it('writes TimeSpan as xs:duration the way XmlConvert does', () => {
    const ts = (v: unknown): string =>
      /<TS N="Took">(.*?)<\/TS>/.exec(formatObjects([{ Took: v }], 'AzsBackup.Test', 'clixml', types))![1]!;
    expect(ts(1_248_500)).toBe('PT20M48.5S');
    expect(ts(26 * 3_600_000)).toBe('P1DT2H');
    expect(ts(24 * 3_600_000)).toBe('P1D');
    expect(ts(400 * 86_400_000)).toBe('P400D');
    expect(ts(0)).toBe('PT0S');
    expect(ts(-1500)).toBe('-PT1.5S');
    expect(ts(1)).toBe('PT0.001S');
    expect(ts(0.0001)).toBe('PT0.0000001S');
    expect(ts('P1DT2H')).toBe('P1DT2H');
    expect(ts('PT90M')).toBe('PT1H30M');
  });

  it('writes doubles as .NET round-trip text (values checked against pwsh XmlConvert)', () => {
    const cases: Array<[number, string]> = [
      [1e16, '10000000000000000'],
      [1e17, '1E+17'],
      [Number('12345678901234567'), '12345678901234568'],
      [1.23456e-8, '1.23456E-08'],
      [0.001234, '0.001234'],
      [1.7976931348623157e308, '1.7976931348623157E+308'],
      [2.5e-5, '2.5E-05'],
      [-1e-4, '-0.0001'],
      [5e-324, '5E-324'],
      [1e21, '1E+21'],
      [-0, '-0'],
      [NaN, 'NaN'],
      [Infinity, 'INF'],
      [-Infinity, '-INF'],
    ];
    for (const [value, text] of cases) expect(formatDoubleDotNet(value), String(value)).toBe(text);
    expect(formatObjects([{ Ratio: 1e17 }], 'AzsBackup.Test', 'clixml', types)).toContain('<Db N="Ratio">1E+17</Db>');
  });
});

describe('values that do not fit their declared type', () => {
  const cases: Array<[string, Record<string, unknown>, RegExp]> = [
    ['a string for Int32', { Count: '3' }, /AzsBackup\.Test\.Count.*Int32/],
    ['an Int32 overflow', { Count: 2 ** 31 }, /Int32/],
    ['a fraction for Int64', { Size: 1.5 }, /Int64/],
    ['an Int64 overflow', { Size: 2n ** 63n }, /Int64/],
    ['a malformed GUID', { Id: 'not-a-guid' }, /Guid/],
    ['an unparseable date', { When: 'yesterday' }, /DateTime/],
    ['a date beyond year 9999', { When: new Date(Date.UTC(10000, 0, 1)) }, /DateTime/],
    ['a month-based duration', { Took: 'P1M' }, /TimeSpan/],
    ['a non-finite duration', { Took: Infinity }, /TimeSpan/],
    ['a number for Boolean', { Ok: 1 }, /Boolean/],
    ['a string for String[]', { Tags: 'a,b' }, /String\[\]/],
    ['a number inside String[]', { Tags: ['a', 2] }, /Tags\[1\].*String/],
    ['a string for Object', { Main: 'CA' }, /Object/],
  ];
  for (const [title, obj, message] of cases) {
    it(`refuses ${title} with a clear error and prints nothing`, () => {
      let caught: unknown;
      let out: string | undefined;
      try {
        out = formatObjects([{ Str: 'kept' }, obj], 'AzsBackup.Test', 'clixml', types);
      } catch (e) {
        caught = e;
      }
      expect(out).toBeUndefined();
      expect(caught).toBeInstanceOf(AzsError);
      const err = caught as AzsError;
      expect(err.errorId).toBe('OutputPropertyTypeMismatch');
      expect(err.exitCode).toBe(1);
      expect(err.message).toMatch(message);
      expect(err.recommendedAction).toMatch(/Types\.xml/);
    });
  }

  it('refuses values with no output form', () => {
    for (const bad of [new Map([[1, 2]]), Symbol('s'), new Uint8Array(2), 2n ** 64n]) {
      expect(() => formatObjects([{ X: bad }], undefined, 'clixml', types)).toThrow(
        expect.objectContaining({ errorId: 'OutputUnsupportedValue', exitCode: 1 }),
      );
    }
  });

  it('leaves out function-valued members, as methods are not data', () => {
    const [doc] = documents(formatObjects([{ A: 1, M: () => 1 }], undefined, 'clixml', types));
    expect(doc).toContain('<MS><I32 N="A">1</I32></MS>');
  });

  it('refuses an unknown format as a usage error', () => {
    expect(() => formatObjects([{}], undefined, 'yaml' as never, types)).toThrow(
      expect.objectContaining({ errorId: 'UnknownOutputFormat', exitCode: 2, category: 'InvalidArgument' }),
    );
  });
});

const pwshCandidates = [
  path.join(os.homedir(), '.dotnet', 'tools', 'pwsh'),
  ...(process.env.PATH ?? '').split(path.delimiter).map((d) => path.join(d, 'pwsh')),
];
const pwsh = pwshCandidates.find((p) => existsSync(p));

describe('PowerShell reads it', () => {
  let dir = '';
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'azs-clixml-'));
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it.skipIf(!pwsh)(
    `pwsh deserializes the native command's CLIXML into typed objects (skipped when pwsh is not installed: not found at ~/.dotnet/tools/pwsh nor on PATH)`,
    async () => {
      await build({
        entryPoints: [path.join(here, '..', '..', 'src', 'output', 'index.ts')],
        bundle: true,
        platform: 'node',
        format: 'esm',
        outfile: path.join(dir, 'output.mjs'),
        logLevel: 'silent',
      });
      const script = `
import { formatObjects } from './output.mjs';
const types = new Map(${JSON.stringify([...types])});
const role = { RoleName: 'CA', Status: 'Succeeded' };
const objects = [
  {
    Str: 'emoji 😀 line1\\r\\nline2\\ttab _x0041_ a_xb <&> lone \\uD800 end \\uFFFE',
    When: new Date(Date.UTC(2026, 10, 27, 4, 48, 11, 123)),
    Took: 1248500,
    Size: 9007199254740993n,
    Count: -7,
    Ratio: 1e17,
    Ok: false,
    Id: '0f8fad5b-d9cb-469f-a165-70867728950e',
    Tags: ['x', 'y_x'],
    Main: role,
    Roles: [role, { RoleName: 'Id', Status: null }],
    'Odd name_x': 1,
  },
  { Str: 'second' },
];
process.stdout.write(formatObjects(objects, 'AzsBackup.Test', 'clixml', types));
`;
      await writeFile(path.join(dir, 'emit.mjs'), script);
      const command = `
$r = @(& node ./emit.mjs)
$o = $r[0]
$codes = { param($s) ([int[]][char[]]$s) -join ',' }
[ordered]@{
  Count = $r.Count
  TypeName = $o.PSObject.TypeNames[0]
  StrCodes = & $codes $o.Str
  WhenIsDate = $o.When -is [datetime]
  WhenKind = "$($o.When.Kind)"
  WhenTicks = "$($o.When.ToUniversalTime().Ticks)"
  TookIsTimeSpan = $o.Took -is [timespan]
  TookTicks = "$($o.Took.Ticks)"
  SizeType = $o.Size.GetType().FullName
  Size = "$($o.Size)"
  Count32 = $o.Count
  CountType = $o.Count.GetType().FullName
  RatioIs1e17 = ($o.Ratio -is [double]) -and ($o.Ratio -eq 1e17)
  Ok = $o.Ok
  IdIsGuid = $o.Id -is [guid]
  Tags = @($o.Tags)
  MainType = $o.Main.PSObject.TypeNames[0]
  MainRole = $o.Main.RoleName
  RoleCount = @($o.Roles).Count
  RoleNames = @($o.Roles | ForEach-Object RoleName)
  SecondStatusIsNull = $null -eq $o.Roles[1].Status
  SameInstance = [object]::ReferenceEquals($o.Main, $o.Roles[0])
  OddName = $o.'Odd name_x'
  Second = $r[1].Str
  SecondType = $r[1].PSObject.TypeNames[0]
} | ConvertTo-Json -Compress
`;
      const { stdout } = await run(pwsh!, ['-NoProfile', '-NonInteractive', '-Command', command], { cwd: dir, timeout: 90_000 });
      const got = JSON.parse(stdout) as Record<string, unknown>;
      const expectedStr = 'emoji 😀 line1\r\nline2\ttab _x0041_ a_xb <&> lone \uD800 end \uFFFE';
      expect(got).toEqual({
        Count: 2,
        TypeName: 'Deserialized.AzsBackup.Test',
        StrCodes: Array.from({ length: expectedStr.length }, (_, i) => expectedStr.charCodeAt(i)).join(','),
        WhenIsDate: true,
        WhenKind: 'Local',
        // .NET ticks since 0001-01-01 for 2026-11-27T04:48:11.123Z.
        WhenTicks: String(BigInt(Date.UTC(2026, 10, 27, 4, 48, 11, 123)) * 10_000n + 621_355_968_000_000_000n),
        TookIsTimeSpan: true,
        TookTicks: '12485000000',
        SizeType: 'System.Int64',
        Size: '9007199254740993',
        Count32: -7,
        CountType: 'System.Int32',
        RatioIs1e17: true,
        Ok: false,
        IdIsGuid: true,
        Tags: ['x', 'y_x'],
        MainType: 'Deserialized.AzsBackup.Role',
        MainRole: 'CA',
        RoleCount: 2,
        RoleNames: ['CA', 'Id'],
        SecondStatusIsNull: true,
        SameInstance: true,
        OddName: 1,
        Second: 'second',
        SecondType: 'Deserialized.AzsBackup.Test',
      });
    },
  );
});
