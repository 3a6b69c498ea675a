import { describe, expect, it } from 'vitest';
import { AzsError } from '../../src/errors.js';
import { createProvider } from '../../src/providers/index.js';
import type { RoleDefinition } from '../../src/providers/provider.js';

const base = { name: 'R', restoreOrder: 1 };

async function refused(role: unknown, errorId: string, message?: RegExp): Promise<AzsError> {
  const e = await createProvider(role as RoleDefinition).then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(AzsError);
  expect(e).toMatchObject({ errorId, category: 'InvalidArgument', exitCode: 2 });
  if (message) expect((e as AzsError).message).toMatch(message);
  expect((e as AzsError).recommendedAction).toBeTruthy();
  return e as AzsError;
}

describe('createProvider', () => {
  it('builds each provider from a valid definition', async () => {
    for (const role of [
      { ...base, provider: 'directory', path: '/etc/pki' },
      { ...base, provider: 'sqlite', path: '/var/lib/app/app.db' },
      { ...base, provider: 'command', exportCommand: ['etcdctl', 'snapshot'], importCommand: ['restore'] },
      { ...base, provider: 'postgres', connectionString: 'postgresql://u:p@db:5432/identity' },
    ] as RoleDefinition[]) {
      const p = await createProvider(role);
      expect(p.describe().provider).toBe(role.provider);
    }
  });

  it('refuses an unknown provider', async () => {
    await refused({ ...base, provider: 'ftp' }, 'ProviderUnknown', /unknown provider 'ftp'/);
  });

  it('refuses a directory or sqlite role without an absolute path', async () => {
    await refused({ ...base, provider: 'directory' }, 'ProviderPathMissing', /no folder/);
    await refused({ ...base, provider: 'directory', path: 'etc/pki' }, 'ProviderPathNotAbsolute', /'etc\/pki' is not an absolute path/);
    await refused({ ...base, provider: 'directory', path: '/' }, 'ProviderPathIsRoot');
    await refused({ ...base, provider: 'sqlite', path: './app.db' }, 'ProviderPathNotAbsolute', /database file/);
  });

  it('refuses a command role without argv arrays or with a bad time limit', async () => {
    await refused({ ...base, provider: 'command', importCommand: ['x'] }, 'CommandProviderArgvMissing', /exportCommand/);
    await refused({ ...base, provider: 'command', exportCommand: 'tar -c .', importCommand: ['x'] }, 'CommandProviderArgvMissing');
    await refused({ ...base, provider: 'command', exportCommand: ['x'], importCommand: [] }, 'CommandProviderArgvMissing', /importCommand/);
    await refused(
      { ...base, provider: 'command', exportCommand: [''], importCommand: ['x'] },
      'CommandProviderArgvMissing',
      /empty program/,
    );
    for (const t of [0, -5, Number.NaN, 1e9]) {
      await refused(
        { ...base, provider: 'command', exportCommand: ['x'], importCommand: ['y'], timeoutSeconds: t },
        'ProviderTimeoutInvalid',
      );
    }
  });

  it('refuses a bad postgres connection string without echoing its password', async () => {
    await refused({ ...base, provider: 'postgres' }, 'PostgresConnectionStringMissing');
    const e = await refused(
      { ...base, provider: 'postgres', connectionString: 'mysql://u:hunter2@h/db' },
      'PostgresConnectionStringInvalid',
    );
    expect(JSON.stringify(e.toRecord())).not.toContain('hunter2');
    await refused(
      { ...base, provider: 'postgres', connectionString: 'postgresql://u:hunter2@h1,h2/db' },
      'PostgresConnectionStringInvalid',
      /several hosts/,
    );
    await refused(
      { ...base, provider: 'postgres', connectionString: 'postgresql://u:hunter2@h/db?evil=1' },
      'PostgresConnectionStringInvalid',
      /'evil'/,
    );
  });
});
