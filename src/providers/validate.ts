import path from 'node:path';
import { usageError } from '../errors.js';
import { kernelTreeOf } from '../io/bounded-read.js';
import type { ProviderName, RoleDefinition } from './provider.js';
import { parseConnectionString } from './pgconn.js';

/**
 * Checks a role definition before any provider module is loaded, so a bad registration is refused
 * with a usage error (exit 2) rather than failing half-way through a backup.
 */

export const PROVIDER_NAMES: readonly ProviderName[] = ['directory', 'sqlite', 'command', 'postgres'];
export const DEFAULT_COMMAND_TIMEOUT_SECONDS = 3600;

function requireAbsolutePath(role: RoleDefinition, what: string, parameter: string): void {
  if (typeof role.path !== 'string' || role.path.length === 0) {
    throw usageError(
      `Role '${role.name}' uses the ${role.provider} provider but has no ${what}.`,
      'ProviderPathMissing',
      role.name,
      `Register the role again with ${parameter} <absolute path>.`,
    );
  }
  if (!path.isAbsolute(role.path)) {
    throw usageError(
      `Role '${role.name}': the ${what} '${role.path}' is not an absolute path.`,
      'ProviderPathNotAbsolute',
      role.path,
      `Give ${parameter} as an absolute path, e.g. /var/lib/app; a relative path would depend on the current folder of whoever runs the job.`,
    );
  }
  const kernel = kernelTreeOf(role.path);
  if (kernel) {
    throw usageError(
      `Role '${role.name}': the ${what} '${role.path}' lies under ${kernel}, where the kernel shows its own state, not stored data.`,
      'ProviderPathIsKernelInterface',
      role.path,
      `Give the ${what} where the role keeps its data on disk.`,
    );
  }
  if (path.resolve(role.path) === path.parse(role.path).root) {
    throw usageError(
      `Role '${role.name}': the ${what} cannot be the root folder.`,
      'ProviderPathIsRoot',
      role.path,
      'Point the role at the folder that holds its data.',
    );
  }
}

function requireArgv(role: RoleDefinition, key: 'exportCommand' | 'importCommand', parameter: string): void {
  const argv = role[key];
  if (!Array.isArray(argv) || argv.length === 0 || argv.some((a) => typeof a !== 'string')) {
    throw usageError(
      `Role '${role.name}' uses the command provider but its ${key} is missing or not a list of strings.`,
      'CommandProviderArgvMissing',
      role.name,
      `Register the role with ${parameter} giving the program and its arguments; they are run without a shell.`,
    );
  }
  if (argv[0]!.length === 0) {
    throw usageError(
      `Role '${role.name}': the ${key} has an empty program name.`,
      'CommandProviderArgvMissing',
      role.name,
      `Give the program to run as the first element of ${parameter}.`,
    );
  }
  if (argv.some((a) => a.includes('\0'))) {
    throw usageError(
      `Role '${role.name}': an argument of the ${key} contains a NUL character.`,
      'CommandProviderArgvInvalid',
      role.name,
      'Remove the NUL character; programs cannot receive it.',
    );
  }
}

function requireTimeout(role: RoleDefinition): void {
  const t = role.timeoutSeconds;
  if (t === undefined) return;
  if (typeof t !== 'number' || !Number.isFinite(t) || t <= 0 || t > 7 * 24 * 3600) {
    throw usageError(
      `Role '${role.name}': TimeoutSeconds must be a number of seconds above 0 and at most 604800 (7 days); got ${String(t)}.`,
      'ProviderTimeoutInvalid',
      t,
      'Give a positive number of seconds.',
    );
  }
}

export function validateRole(role: RoleDefinition): void {
  if (!role || typeof role !== 'object') {
    throw usageError('A role definition is required.', 'RoleDefinitionMissing');
  }
  if (!PROVIDER_NAMES.includes(role.provider)) {
    throw usageError(
      `Role '${role.name}' names an unknown provider '${String(role.provider)}'.`,
      'ProviderUnknown',
      role.provider,
      `Use one of: ${PROVIDER_NAMES.join(', ')}.`,
    );
  }
  switch (role.provider) {
    case 'directory':
      requireAbsolutePath(role, 'folder', '-Path');
      break;
    case 'sqlite':
      requireAbsolutePath(role, 'database file', '-DatabasePath');
      break;
    case 'command':
      requireArgv(role, 'exportCommand', '-ExportCommand');
      requireArgv(role, 'importCommand', '-ImportCommand');
      requireTimeout(role);
      break;
    case 'postgres':
      if (typeof role.connectionString !== 'string' || role.connectionString.length === 0) {
        throw usageError(
          `Role '${role.name}' uses the postgres provider but has no connection string.`,
          'PostgresConnectionStringMissing',
          role.name,
          'Register the role with -ConnectionString postgresql://user@host:port/database and its password with -DatabasePassword.',
        );
      }
      parseConnectionString(role.connectionString);
      requireTimeout(role);
      break;
  }
}
