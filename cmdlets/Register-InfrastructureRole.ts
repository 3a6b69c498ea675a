import { resolve } from 'node:path';
import type { Cmdlet } from '../src/host/cmdlet.js';
import type { RegisterInfrastructureRoleParameters } from './generated/parameters.js';
import { assertRecordable } from '../src/catalog/backup-info.js';
import { AzsError, ExitCode, usageError } from '../src/errors.js';
import { ConfigStore, type StoredRole } from '../src/config/store.js';
import { assertNoPassword } from '../src/providers/pgconn.js';
import { validateRole } from '../src/providers/validate.js';
import type { ProviderName } from '../src/providers/provider.js';
import { roleView } from '../src/session/role-view.js';

const setOfProvider: Record<ProviderName, string> = { directory: 'Directory', sqlite: 'Sqlite', command: 'Command', postgres: 'Postgres' };

/** How a role is told apart in messages: its name, provider, source and restore order. */
function described(role: StoredRole): string {
  const view = roleView(role);
  const password = role.databasePassword ? ', with a sealed database password' : '';
  return `${role.name} (${role.provider} ${view.Source}, restore order ${role.restoreOrder}${password})`;
}

/** The definition without its secret, to compare two registrations of a role. */
function definition(role: StoredRole): string {
  const { databasePassword: _secret, ...rest } = role;
  return JSON.stringify(rest, Object.keys(rest).sort());
}

/**
 * Adds a role to the catalog with the provider that backs it up. A registered name (in any case) is
 * refused unless -Force, so a registration typed again cannot lose a role's definition or sealed
 * password; the same definition again changes nothing (and may add a password the role lacks).
 */
const registerInfrastructureRole: Cmdlet<RegisterInfrastructureRoleParameters> = async ({
  params,
  parameterSetName,
  home,
  shouldProcess,
  writeWarning,
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
  const store = new ConfigStore(home);
  const existing = store.read().roles.find((r) => r.name.toLowerCase() === role.name.toLowerCase());
  const given = params.DatabasePassword;
  const same = existing !== undefined && definition(existing) === definition(role);
  const stored = existing?.databasePassword;
  if (existing && same) {
    // Typed again as it is: nothing to write, and a sealed password not given again is kept.
    if (given === undefined || (stored !== undefined && store.open(stored, `role:${existing.name}`) === given)) return roleView(existing);
  }
  // Only a password the role lacks may be added without -Force: nothing is lost by it.
  if (existing && !params.Force && !(same && stored === undefined)) {
    throw new AzsError(
      `A role named ${existing.name} is already registered: ${described(existing)}. Registering ${role.name} again would replace it.`,
      {
        errorId: 'RoleExists',
        category: 'ResourceExists',
        exitCode: ExitCode.Usage,
        targetObject: existing.name,
        recommendedAction: `Compare with Get-InfrastructureRole -Name ${existing.name}; to replace it, run the command again with -Force (a sealed database password not given again is dropped), or choose another name.`,
      },
    );
  }
  if (
    !(await shouldProcess(
      role.name,
      existing ? `Replace the role ${described(existing)} with the ${provider} role` : `Register the ${provider} role`,
    ))
  )
    return;
  if (given !== undefined) role.databasePassword = store.seal(given, `role:${role.name}`);
  await store.update((c) => ({ ...c, roles: [...c.roles.filter((r) => r.name.toLowerCase() !== role.name.toLowerCase()), role] }));
  if (existing && definition(existing) !== definition(role)) {
    const dropped =
      existing.databasePassword && given === undefined ? '; its sealed database password was dropped: give -DatabasePassword again' : '';
    writeWarning(`Replaced the role ${described(existing)} with ${described(role)}${dropped}.`, existing.name);
  } else if (existing && stored !== undefined && given !== undefined) {
    writeWarning(`Replaced the sealed database password of the role ${existing.name}.`, existing.name);
  }
  return roleView(role);
};
export default registerInfrastructureRole;
