import { randomUUID } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, cliEnv, makeDrill, sha256, type Drill } from '../support/cli.js';

/**
 * Whoever can write to the share chooses the text of a BackupInfo.xml (a role's name, the name it
 * gives itself) and can make its digest match. On an operator's terminal that text must not drive
 * the terminal: tables and lists always showed control characters as U+FFFD, but the warnings,
 * error records and progress line on standard error printed them raw, so a planted file could set
 * the window title, clear the screen or rewrite what the operator reads (and, where the terminal
 * allows it, fill the clipboard with OSC 52).
 */

const hasScript = (() => {
  try {
    execFileSync('script', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

/** What the command writes to a terminal: run under script(1), which gives it a pseudo-terminal. */
async function onTerminal(home: string, args: string[]): Promise<string> {
  const quote = (s: string) => `'${s.replaceAll("'", "'\\''")}'`;
  const command = [process.execPath, CLI, ...args].map(quote).join(' ');
  const r = await execa('script', ['-qec', command, '/dev/null'], {
    env: cliEnv(home),
    extendEnv: false,
    reject: false,
    timeout: 60_000,
    input: '',
  });
  return String(r.stdout);
}

/** Control characters a terminal acts on; line breaks (the terminal's own \r\n) and tabs aside. */
const DRIVES_TERMINAL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]/;
/**
 * C1 controls: CSI (clear the screen), OSC (set the title) and ST. XML allows them, so a file holding
 * them is well-formed; the C0 escape character makes a BackupInfo.xml damaged before it is shown.
 */
const HOSTILE = '\u009b2J\u009d0;pwned\u009c\u007f';

describe('share-written text on the operator terminal', () => {
  let d: Drill;
  /** A copy of a backup whose role's file is named with control sequences, its digest made to match. */
  let hostileFile: string;
  /** A copy whose BackupInfo.xml names another backup, with escape sequences. */
  let hostileName: string;

  beforeAll(async () => {
    d = await makeDrill();
    const good = (await d.backup()).Name;
    const goodFolder = await d.backupFolder(good);
    const original = await fs.readFile(path.join(goodFolder, 'BackupInfo.xml'), 'utf8');
    const plant = async (edit: (xml: string) => string): Promise<string> => {
      const name = randomUUID();
      const folder = path.join(path.dirname(goodFolder), name);
      await fs.cp(goodFolder, folder, { recursive: true });
      const xml = edit(original.replaceAll(good, name));
      const seal = /<Seal Digest="([0-9a-f]{64})"/.exec(xml)!;
      await fs.writeFile(path.join(folder, 'BackupInfo.xml'), xml.replace(seal[1]!, sha256(xml.slice(0, seal.index))));
      return name;
    };
    hostileFile = await plant((x) => x.replace('<File Name="Files.azscat"', `<File Name="Files${HOSTILE}.azscat"`));
    hostileName = await plant((x) => x.replace(/<Name>[^<]*/, `<Name>x${HOSTILE}`));
  });
  afterAll(() => d?.cleanup());

  it.skipIf(!hasScript)('the progress of Test-InfrastructureBackup shows a file name without its control characters', async () => {
    const out = await onTerminal(d.home, ['Test-InfrastructureBackup', '-Name', hostileFile]);
    expect(out).toContain(`Test ${hostileFile}: Files: Files`);
    expect(out).toMatch(/IsValid +: False/);
    expect(out).not.toMatch(DRIVES_TERMINAL);
  });

  it.skipIf(!hasScript)('a warning and an error record quoting a BackupInfo.xml show it without its control characters', async () => {
    const listed = await onTerminal(d.home, ['Get-InfrastructureBackup']);
    expect(listed).toContain(`WARNING: Backup ${hostileName} is listed as unreadable`);
    expect(listed).not.toMatch(DRIVES_TERMINAL);
    const tested = await onTerminal(d.home, ['Test-InfrastructureBackup', '-Name', hostileName]);
    expect(tested).toMatch(/BackupInfo\.xml of backup \S+ is damaged or was changed: it names backup x/);
    expect(tested).not.toMatch(DRIVES_TERMINAL);
  });
});
