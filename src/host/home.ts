import { homedir } from 'node:os';
import { join } from 'node:path';

/**
 * Where configuration and state live: AZSBACKUP_HOME, else the user's config folder
 * ($XDG_CONFIG_HOME/azsbackup, ~/.config/azsbackup, or %APPDATA%\azsbackup on Windows).
 * Not created here: the first cmdlet that writes state creates it.
 */
export function resolveHome(
  env: Record<string, string | undefined>,
  platform: NodeJS.Platform = process.platform,
  home: () => string = homedir,
): string {
  if (env.AZSBACKUP_HOME) return env.AZSBACKUP_HOME;
  if (platform === 'win32' && env.APPDATA) return join(env.APPDATA, 'azsbackup');
  if (env.XDG_CONFIG_HOME) return join(env.XDG_CONFIG_HOME, 'azsbackup');
  return join(home(), '.config', 'azsbackup');
}
