import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { main, type HostIO } from '../../src/host/main.js';

const fixtures = fileURLToPath(new URL('../fixtures/host/', import.meta.url));

interface Run {
  code: number;
  out: string;
  err: string;
}

/** Runs the host in-process with fixture manifests and cmdlets; `tty` makes stdin a fake terminal. */
async function run(
  args: string[],
  opts: { stdin?: string | Buffer; env?: Record<string, string>; tty?: { keys: string[] } } = {},
): Promise<Run> {
  const stdin = new PassThrough() as PassThrough & { setRawMode?: (m: boolean) => void; raw?: boolean[] };
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (d: Buffer) => (out += d.toString()));
  stderr.on('data', (d: Buffer) => {
    err += d.toString();
    // The fake terminal types the next answer each time a prompt ends with ": ".
    if (opts.tty && err.endsWith(': ')) {
      const next = opts.tty.keys.shift();
      if (next !== undefined) setImmediate(() => stdin.write(next));
    }
  });
  if (opts.tty) {
    stdin.raw = [];
    stdin.setRawMode = (m: boolean) => void stdin.raw!.push(m);
  } else {
    stdin.end(opts.stdin ?? '');
  }
  const io: Partial<HostIO> = {
    stdin,
    stdout,
    stderr,
    env: { AZSBACKUP_HOME: '/nonexistent-home', ...opts.env },
    stdinIsTTY: !!opts.tty,
    stdoutIsTTY: false,
    stderrIsTTY: false,
    manifestsDir: `${fixtures}manifests`,
    cmdletsDir: `${fixtures}cmdlets`,
  };
  const code = await main(args, io);
  return { code, out, err };
}

function echoed(r: Run): Record<string, unknown> {
  expect(r.code, r.err).toBe(0);
  return JSON.parse((JSON.parse(r.out) as { Json: string }).Json) as Record<string, unknown>;
}

function records(err: string): Array<Record<string, unknown>> {
  return err
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => (JSON.parse(l) as { ErrorRecord: Record<string, unknown> }).ErrorRecord);
}

describe('secrets are never taken from argv', () => {
  test('a plain value is refused with exit 2 and the three ways, without the value', async () => {
    const r = await run(['Invoke-TestJob', 'ok', '-Password', 'Sup3rS3cret!']);
    expect(r.code).toBe(2);
    expect(r.out).toBe('');
    expect(r.err).not.toContain('Sup3rS3cret!');
    const [rec] = records(r.err);
    expect(rec!.ErrorId).toBe('SecretOnCommandLine');
    expect(String(rec!.RecommendedAction)).toMatch(/'-Password -' reads it from standard input.*AZSBACKUP_PASSWORD.*prompted without echo/);
  });
});

describe('`-` reads standard input', () => {
  test('two secrets are read in command-line order', async () => {
    const a = await run(['Invoke-TestJob', 'ok', '-Token', '-', '-Password', '-'], { stdin: 'first-line\nsecond-line\n' });
    expect(a.code, a.err).toBe(0);
    expect(JSON.parse(a.out)[1].Name).toBe('second-line|first-line');
    const b = await run(['Invoke-TestJob', 'ok', '-Password', '-', '-Token', '-'], { stdin: 'first-line\r\nsecond-line' });
    expect(JSON.parse(b.out)[1].Name).toBe('first-line|second-line');
  });

  test('a credential given as - reads the user name, then the password', async () => {
    const p = echoed(
      await run(['New-TestCredential', '-Credential', '-', '-PfxPassword', '-'], { stdin: 'CONTOSO\\backup\ncred-pass\npfx-pass\n' }),
    );
    expect(p).toEqual({ Credential: { UserName: 'CONTOSO\\backup', Password: 'cred-pass' }, PfxPassword: 'pfx-pass' });
  });

  test('a byte order mark at the start of standard input is not part of the first secret', async () => {
    // A file saved as "UTF-8 with BOM" (Notepad), or PowerShell piping with $OutputEncoding =
    // [Text.Encoding]::UTF8, starts with U+FEFF: taken as the first character of a .pfx password,
    // the .pfx opens with no password anyone can type.
    const bytes = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('pfx-pass\r\nCONTOSO\\backup\r\ncred-pass\r\n')]);
    const p = echoed(await run(['New-TestCredential', '-PfxPassword', '-', '-Credential', '-'], { stdin: bytes }));
    expect(p).toEqual({ Credential: { UserName: 'CONTOSO\\backup', Password: 'cred-pass' }, PfxPassword: 'pfx-pass' });
  });

  test('standard input that ends too early is a usage error naming the parameter', async () => {
    const r = await run(['New-TestCredential', '-Credential', '-', '-PfxPassword', '-'], { stdin: 'CONTOSO\\backup\nonly-password\n' });
    expect(r.code).toBe(2);
    const [rec] = records(r.err);
    expect(rec!.ErrorId).toBe('SecretNotOnStdin');
    expect(rec!.Message).toMatch(/-PfxPassword - expects one line/);
    expect(r.err).not.toContain('only-password');
  });

  test('a secret that fails validation is described as "the value given", never shown', async () => {
    const r = await run(['Set-TestShare', '/srv', '-EncryptionKey', '-'], { stdin: 'abc\n' });
    expect(r.code).toBe(2);
    const [rec] = records(r.err);
    expect(rec!.ErrorId).toBe('ParameterArgumentValidationError');
    expect(rec!.Message).toContain('the value given');
    expect(r.err).not.toMatch(/\babc\b/);
    const empty = await run(['Set-TestShare', '/srv', '-EncryptionKey', '-'], { stdin: '\n' });
    expect(records(empty.err)[0]!.Message).toMatch(/value given for -EncryptionKey is empty/);
  });
});

describe('AZSBACKUP_<NAME> supplies a secret', () => {
  test('for a secret not named, and for a credential named by its user', async () => {
    const a = await run(['Invoke-TestJob', 'ok'], { env: { AZSBACKUP_PASSWORD: 'from-env' } });
    expect(JSON.parse(a.out)[1].Name).toBe('from-env|');
    const p = echoed(
      await run(['New-TestCredential', '-Credential', 'CONTOSO\\svc'], {
        env: { AZSBACKUP_CREDENTIAL: 'envpass', AZSBACKUP_PFXPASSWORD: 'pfx' },
      }),
    );
    expect(p).toEqual({ Credential: { UserName: 'CONTOSO\\svc', Password: 'envpass' }, PfxPassword: 'pfx' });
  });

  test('`-` wins over the environment', async () => {
    const a = await run(['Invoke-TestJob', 'ok', '-Password', '-'], { stdin: 'from-stdin\n', env: { AZSBACKUP_PASSWORD: 'from-env' } });
    expect(JSON.parse(a.out)[1].Name).toBe('from-stdin|');
  });
});

describe('without a terminal, a mandatory secret not given says how to pass it', () => {
  test('exit 2, naming - and the variable', async () => {
    const r = await run(['New-TestCredential', '-Credential', 'CONTOSO\\svc']);
    expect(r.code).toBe(2);
    const [rec] = records(r.err);
    expect(rec!.ErrorId).toBe('MissingMandatoryParameter');
    expect(String(rec!.RecommendedAction)).toMatch(/'-Credential -'.*AZSBACKUP_CREDENTIAL/);
    const named = await run(['Invoke-TestJob', 'ok', '-Password']);
    expect(records(named.err)[0]!.ErrorId).toBe('SecretNotProvided');
  });
});

describe('on a terminal, secrets are prompted without echo', () => {
  test('user name visible, passwords in raw mode, and nothing typed is echoed', async () => {
    const keys = ['CONTOSO\\op\n', 'cr\u007fred-pw\r', 'pfx-pw\r'];
    const r = await run(['New-TestCredential'], { tty: { keys } });
    const p = echoed(r);
    expect(p).toEqual({ Credential: { UserName: 'CONTOSO\\op', Password: 'cred-pw' }, PfxPassword: 'pfx-pw' });
    expect(r.err).toContain('Supply values for the following parameters:');
    expect(r.err).toContain('User name for -Credential: ');
    expect(r.err).toContain('Password for user CONTOSO\\op: ');
    expect(r.err).not.toContain('cred-pw');
    expect(r.err).not.toContain('pfx-pw');
  });

  test('keys that type no character (arrows, Home, Delete, F1, Alt-x) add nothing to the secret, as at the PowerShell prompt', async () => {
    // A terminal sends these as escape sequences; taken as typed text they put '[D', '[3~' and the
    // like into a password the operator never sees, and New-EncryptionKey protects the .pfx with it.
    const keys = ['CONTOSO\\op\n', 'cred\u001b[D\u001b[H\u001b[F-pw\r', 'p\u001b[3~f\u001bOPx\u001bx-\u001b[1;5Cpw\u001b\r'];
    const p = echoed(await run(['New-TestCredential'], { tty: { keys } }));
    expect(p).toEqual({ Credential: { UserName: 'CONTOSO\\op', Password: 'cred-pw' }, PfxPassword: 'pfx-pw' });
  });

  test('Ctrl-C at the prompt stops with exit 130', async () => {
    const r = await run(['Invoke-TestJob', 'ok', '-Password'], { tty: { keys: ['ab\u0003'] } });
    expect(r.code).toBe(130);
  });
});
