import type { Cmdlet } from '../src/host/cmdlet.js';
import type { GetInfrastructureRoleParameters } from './generated/parameters.js';
import { ConfigStore } from '../src/config/store.js';
import { roleView, sortedRoles } from '../src/session/role-view.js';

/** Lists the role catalog in restore order, or one role by name. */
const getInfrastructureRole: Cmdlet<GetInfrastructureRoleParameters> = async ({ params, home }) => {
  const wanted = params.Name?.toLowerCase();
  return sortedRoles(new ConfigStore(home).read().roles)
    .filter((r) => wanted === undefined || r.name.toLowerCase() === wanted)
    .map(roleView);
};
export default getInfrastructureRole;
