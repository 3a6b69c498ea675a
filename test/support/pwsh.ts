// The pwsh that scripts/setup-powershell.sh installs (or finds), for tests that run PowerShell.
import { execFile } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

export async function findPwsh(): Promise<string> {
  const setup = await run('bash', [join(repo, 'scripts', 'setup-powershell.sh')], { maxBuffer: 16 << 20 });
  return /^PWSH=(.*)$/m.exec(setup.stdout)![1]!;
}

/** Runs a script in a fresh pwsh (no profile); the environment carries its inputs. */
export async function runPwsh(pwsh: string, script: string, env: Record<string, string> = {}): Promise<{ stdout: string; stderr: string }> {
  return run(pwsh, ['-NoProfile', '-NonInteractive', '-Command', script], { env: { ...process.env, ...env }, maxBuffer: 16 << 20 });
}
