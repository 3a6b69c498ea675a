import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadManifestSet } from '../../src/manifest/load.js';
import { renderParameterTypes } from '../../src/manifest/parameter-types.js';

const manifests = loadManifestSet(fileURLToPath(new URL('../../manifests', import.meta.url)));
const rendered = renderParameterTypes(manifests.cmdlets);
const body = (name: string): string =>
  new RegExp(`export (?:interface ${name} \\{[^]*?\\n\\}|type ${name} = [^;]*;)`).exec(rendered)?.[0] ?? '';

describe('typed parameters from the manifests', () => {
  it('a parameter mandatory in every set is always there; any other may be absent', () => {
    expect(body('RestoreAzsBackupParameters')).toContain('  Name: string;');
    expect(body('RestoreAzsBackupParameters')).toContain('  DecryptionCertPath?: string;');
    expect(body('SetBackupShareParameters')).toContain('  Credential?: Credential;');
  });

  it('each manifest type is bound as the host binds it', () => {
    expect(body('SetBackupShareParameters')).toContain('  BackupFrequencyInHours?: number;');
    expect(body('SetBackupShareParameters')).toContain('  SkipValidation?: boolean;');
    expect(body('SetBackupShareParameters')).toContain('  AlertCommand?: string[];');
    expect(body('SetBackupShareParameters')).toContain('  Password?: string;');
  });

  it('a ValidateSet narrows the type to its members, as the host binds them', () => {
    expect(body('RegisterInfrastructureRoleParameters')).toContain("  Provider: 'directory' | 'sqlite' | 'command' | 'postgres';");
    expect(body('NewEncryptionKeyParameters')).toContain('  KeySize?: 3072 | 4096;');
    expect(body('GetBackupAlertParameters')).toContain("  Status?: 'Active' | 'Closed';");
  });

  it('a cmdlet without parameters takes none, and every cmdlet is indexed by name', () => {
    expect(body('InvokeBackupSchedulerParameters')).toContain('Record<string, never>');
    for (const c of manifests.cmdlets) expect(rendered).toContain(`'${c.name}': ${c.name.replace('-', '')}Parameters;`);
  });
});
