import { resolve } from 'node:path';
import type { Cmdlet } from '../src/host/cmdlet.js';
import type { RegisterInfrastructureRoleParameters } from './generated/parameters.js';
import { assertRecordable } from '../src/catalog/backup-info.js';
import { usageError } from '../src/errors.js';
import { ConfigStore, type StoredRole } from '../src/config/store.js';
import { assertNoPassword } from '../src/providers/pgconn.js';
import { validateRole } from '../src/providers/validate.js';
import type { ProviderName } from '../src/providers/provider.js';
import { roleView } from '../src/session/role-view.js';

const setOfProvider: Record<ProviderName, string> = { directory: 'Directory', sqlite: 'Sqlite', command: 'Command', postgres: 'Postgres' };

/** Adds a role to the catalog, or replaces the one of that name, with the provider that backs it up. */
const registerInfrastructureRole: Cmdlet<RegisterInfrastructureRoleParameters> = async ({
  params,
  parameterSetName,
  home,
  shouldProcess,
}) => {
  const provider = params.Provider;
  if (setOfProvider[provider] !== parameterSetName) {
    throw usageError(
      `The ${provider} provider does not take the parameters given (they belong to the ${parameterSetName.toLowerCase()} provider).`,
      'ProviderParameterMismatch',
      provider,
      'directory takes -Path; sqlite -DatabasePath; command -ExportCommand and -ImportCommand; postgres -ConnectionString.',
    );
  }
  const path = params.Path ?? params.DatabasePath;
  const role: StoredRole = {
    name: params.Name,
    provider,
    restoreOrder: params.RestoreOrder ?? 100,
    ...(path !== undefined ? { path: resolve(path) } : {}),
    ...(params.ExportCommand ? { exportCommand: params.ExportCommand } : {}),
    ...(params.ImportCommand ? { importCommand: params.ImportCommand } : {}),
    ...(params.TimeoutSeconds !== undefined ? { timeoutSeconds: params.TimeoutSeconds } : {}),
    ...(params.ConnectionString !== undefined ? { connectionString: params.ConnectionString } : {}),
  };
  validateRole(role);
  if (role.connectionString !== undefined) assertNoPassword(role.connectionString);
  assertRecordable(role);
  if (!(await shouldProcess(role.name, `Register the ${provider} role`))) return;
  const store = new ConfigStore(home);
  if (params.DatabasePassword !== undefined) role.databasePassword = store.seal(params.DatabasePassword, `role:${role.name}`);
  await store.update((c) => ({ ...c, roles: [...c.roles.filter((r) => r.name.toLowerCase() !== role.name.toLowerCase()), role] }));
  return roleView(role);
};
export default registerInfrastructureRole;
