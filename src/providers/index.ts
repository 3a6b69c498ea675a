import type { Provider, RoleDefinition } from './provider.js';
import { validateRole } from './validate.js';

export type { Provider, ProviderContext, ProviderDescription, ProviderName, RoleDefinition } from './provider.js';
export { validateRole, PROVIDER_NAMES, DEFAULT_COMMAND_TIMEOUT_SECONDS } from './validate.js';

/**
 * The provider for a role. The definition is checked first (a usage error, exit 2, names what is
 * wrong); then only that provider's module is loaded, so a command role never loads the SQLite
 * native module.
 */
export async function createProvider(role: RoleDefinition): Promise<Provider> {
  validateRole(role);
  switch (role.provider) {
    case 'directory': {
      const { DirectoryProvider } = await import('./directory.js');
      return new DirectoryProvider({ ...role, path: role.path! });
    }
    case 'sqlite': {
      const { SqliteProvider } = await import('./sqlite.js');
      return new SqliteProvider({ ...role, path: role.path! });
    }
    case 'command': {
      const { CommandProvider } = await import('./command.js');
      return new CommandProvider({ ...role, exportCommand: [...role.exportCommand!], importCommand: [...role.importCommand!] });
    }
    case 'postgres': {
      const { PostgresProvider } = await import('./postgres.js');
      return new PostgresProvider({ ...role, connectionString: role.connectionString! });
    }
  }
}
