import type { Cmdlet } from '../src/host/cmdlet.js';
import type { GetInfrastructureRoleParameters } from './generated/parameters.js';
import { ConfigStore } from '../src/config/store.js';
import { AzsError, quoted } from '../src/errors.js';
import { roleView, sortedRoles } from '../src/session/role-view.js';

/**
 * Lists the role catalog in restore order, or one role by name: a name that is not registered is
 * RoleNotFound (ObjectNotFound, exit 10), as Get-InfrastructureBackup -Name and
 * Unregister-InfrastructureRole say of theirs; PowerShell writes it as a non-terminating error.
 */
const getInfrastructureRole: Cmdlet<GetInfrastructureRoleParameters> = async ({ params, home }) => {
  const wanted = params.Name?.toLowerCase();
  const roles = sortedRoles(new ConfigStore(home).read().roles).filter((r) => wanted === undefined || r.name.toLowerCase() === wanted);
  if (params.Name !== undefined && roles.length === 0) {
    throw new AzsError(`No role named ${quoted(params.Name)} is registered.`, {
      errorId: 'RoleNotFound',
      category: 'ObjectNotFound',
      targetObject: params.Name,
      recommendedAction: 'List the registered roles with Get-InfrastructureRole.',
    });
  }
  return roles.map(roleView);
};
export default getInfrastructureRole;
