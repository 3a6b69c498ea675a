import type { Cmdlet } from '../src/host/cmdlet.js';
import type { UnregisterInfrastructureRoleParameters } from './generated/parameters.js';
import { AzsError } from '../src/errors.js';
import { ConfigStore } from '../src/config/store.js';
import { roleView } from '../src/session/role-view.js';

/** Removes a role from the catalog; its data and the backups that hold it are not touched. */
const unregisterInfrastructureRole: Cmdlet<UnregisterInfrastructureRoleParameters> = async ({ params, home, shouldProcess }) => {
  const store = new ConfigStore(home);
  const name = params.Name.toLowerCase();
  const role = store.read().roles.find((r) => r.name.toLowerCase() === name);
  if (!role) {
    throw new AzsError(`No role named ${params.Name} is registered.`, {
      errorId: 'RoleNotFound',
      category: 'ObjectNotFound',
      targetObject: params.Name,
      recommendedAction: 'List the registered roles with Get-InfrastructureRole.',
    });
  }
  if (!(await shouldProcess(role.name, 'Unregister the role'))) return;
  await store.update((c) => ({ ...c, roles: c.roles.filter((r) => r.name.toLowerCase() !== name) }));
  return params.PassThru ? roleView(role) : undefined;
};
export default unregisterInfrastructureRole;
