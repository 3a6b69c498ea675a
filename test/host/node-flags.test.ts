import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { NODE_FLAGS } from '../../src/process/node-flags.js';

/**
 * Every way an azsbackup process starts gives node the same flags (src/process/node-flags.ts):
 * the installed command by its first line, the PowerShell module when it runs a .js host with
 * node, the background job runner by the code that spawns it (which imports NODE_FLAGS).
 */

const root = path.resolve(__dirname, '../..');
const cli = path.join(root, 'bin', 'azsbackup.js');
const temp = mkdtempSync(path.join(tmpdir(), 'azs-flags-'));
afterAll(() => rmSync(temp, { recursive: true, force: true }));

describe('node flags', () => {
  it('the installed command names them on its first line, and runs when executed itself', () => {
    expect(readFileSync(cli, 'utf8').split('\n')[0]).toBe(`#!/usr/bin/env -S node ${NODE_FLAGS.join(' ')}`);
    const out = execFileSync(cli, ['New-EncryptionKey', '--output', 'json'], {
      env: { PATH: process.env.PATH ?? '', AZSBACKUP_HOME: path.join(temp, 'home') },
      encoding: 'utf8',
    });
    expect(JSON.parse(out).Kind).toBe('Key');
  });

  it('the PowerShell module gives them to node before a .js host', () => {
    const runtime = readFileSync(path.join(root, 'src/psmodule/AzsBackup.Runtime.ps1'), 'utf8');
    const given = `Prefix = @(${[...NODE_FLAGS.map((f) => `'${f}'`), '$hostFile'].join(', ')})`;
    expect(runtime).toContain(given);
  });

  it('this node takes them', () => {
    expect(execFileSync(process.execPath, [...NODE_FLAGS, '-e', 'process.stdout.write("ok")'], { encoding: 'utf8' })).toBe('ok');
  });
});
