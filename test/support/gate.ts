import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Drill } from './cli.js';

/**
 * A program (a role's export command, an alert command) that holds one of its runs until the
 * test lets it go, so that another command can be run at an exact point of the first. The run
 * that starts while the gate is armed takes it and waits; every other run goes straight through.
 * `through` is JavaScript the program runs once it may go on (e.g. `process.exit(0)`).
 */
export interface Gate {
  /** The program to run: node and this script. */
  command: string[];
  /** The next run holds (a gate may be armed again once released: what the last hold left is cleared). */
  arm(): Promise<void>;
  /** Whether a run holds now (for whileRunning). */
  held(): Promise<boolean>;
  /** The run that holds goes on (and any later one that takes the gate). */
  release(): Promise<void>;
}

export async function makeGate(dir: string, name: string, through: string, options: { readsStdin?: boolean } = {}): Promise<Gate> {
  const armed = path.join(dir, `${name}.armed`);
  const taken = path.join(dir, `${name}.taken`);
  const go = path.join(dir, `${name}.go`);
  const script = path.join(dir, `${name}.mjs`);
  const done = `() => { ${through}; }`;
  await fs.writeFile(
    script,
    `import { existsSync, renameSync } from 'node:fs';
${options.readsStdin ? 'process.stdin.resume();' : ''}
let mine = false;
try { renameSync(${JSON.stringify(armed)}, ${JSON.stringify(taken)}); mine = true; } catch {}
const done = ${done};
if (mine) { const t = setInterval(() => { if (existsSync(${JSON.stringify(go)})) { clearInterval(t); done(); } }, 20); }
else ${options.readsStdin ? "process.stdin.on('end', done)" : 'done()'};`,
  );
  return {
    command: [process.execPath, script],
    arm: async () => {
      await fs.rm(taken, { force: true });
      await fs.rm(go, { force: true });
      await fs.writeFile(armed, '');
    },
    held: () =>
      fs.access(taken).then(
        () => true,
        () => false,
      ),
    release: () => fs.writeFile(go, ''),
  };
}

/**
 * Registers the role Slow in `d`, whose export a gate holds (its import reads and drops its input):
 * a backup armed with the gate waits in that role until the test releases it.
 */
export async function heldExportRole(d: Drill): Promise<Gate> {
  const gate = await makeGate(d.root, 'export', "process.stdout.write('exported\\n')");
  await d.registerCommand('Slow', gate.command, ['sh', '-c', 'cat >/dev/null']);
  return gate;
}
