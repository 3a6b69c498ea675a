import type { StoredRole } from '../config/store.js';

/** The AzsBackup.InfrastructureRole object. */
export function roleView(role: StoredRole) {
  const source =
    role.provider === 'command'
      ? (role.exportCommand ?? []).join(' ')
      : role.provider === 'postgres'
        ? (role.connectionString ?? '')
        : (role.path ?? '');
  return {
    Name: role.name,
    Provider: role.provider,
    RestoreOrder: role.restoreOrder,
    Source: source,
    Path: role.provider === 'directory' ? (role.path ?? null) : null,
    DatabasePath: role.provider === 'sqlite' ? (role.path ?? null) : null,
    ExportCommand: role.exportCommand ?? null,
    ImportCommand: role.importCommand ?? null,
    TimeoutSeconds: role.timeoutSeconds ?? null,
  };
}

export function sortedRoles(roles: readonly StoredRole[]): StoredRole[] {
  return [...roles].sort((a, b) => a.restoreOrder - b.restoreOrder || a.name.localeCompare(b.name));
}
