import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startSmbClient } from '../../src/targets/smb-client.js';
import { describeWithAndWithoutAddons } from '../support/native-switch.js';

// A stand-in named smbclient, found through the PATH the run is given, so each outcome can be had at will.
let bin: string;
beforeAll(async () => {
  bin = await fs.mkdtemp(path.join(os.tmpdir(), 'azs-smbclient-'));
});
afterAll(async () => {
  await fs.rm(bin, { recursive: true, force: true });
});

async function fake(script: string): Promise<Record<string, string>> {
  await fs.writeFile(path.join(bin, 'smbclient'), `#!/bin/sh\n${script}\n`, { mode: 0o755 });
  return { PATH: `${bin}:/usr/bin:/bin` };
}

describeWithAndWithoutAddons('one smbclient run', () => {
  it('collects what it prints and how it exited', async () => {
    const env = await fake('echo "listing $1"; echo "NT_STATUS_ACCESS_DENIED oops" >&2; exit 1');
    const r = await startSmbClient(['//server/share'], { env, stdin: false, streamStdout: false }).result;
    expect(r).toMatchObject({
      stdout: 'listing //server/share\n',
      stderr: 'NT_STATUS_ACCESS_DENIED oops\n',
      failed: true,
      isTerminated: false,
      timedOut: false,
      missing: false,
    });
    expect(r.shortMessage).toBe('exited with code 1');
  });

  it('feeds its stdin to the end and streams its stdout', async () => {
    const env = await fake('cat');
    const client = startSmbClient([], { env, stdin: true, streamStdout: true });
    client.stdin!.end(Buffer.alloc(3 << 20, 7));
    let bytes = 0;
    for await (const c of client.stdout!) bytes += (c as Buffer).length;
    const r = await client.result;
    expect(bytes).toBe(3 << 20);
    expect(r).toMatchObject({ stdout: '', failed: false });
  });

  it('is stopped at its time limit: SIGTERM, and SIGKILL when it ignores that', async () => {
    let env = await fake('exec sleep 30');
    let r = await startSmbClient([], { env, stdin: false, streamStdout: false, timeoutMs: 100 }).result;
    expect(r).toMatchObject({ timedOut: true, isTerminated: true, failed: true, shortMessage: 'was killed by SIGTERM' });
    env = await fake("trap '' TERM; i=0; while [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done");
    const started = Date.now();
    r = await startSmbClient([], { env, stdin: false, streamStdout: false, timeoutMs: 100 }).result;
    expect(r).toMatchObject({ timedOut: true, isTerminated: true, shortMessage: 'was killed by SIGKILL' });
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('reports a missing smbclient as missing, without throwing', async () => {
    const r = await startSmbClient([], { env: { PATH: path.join(bin, 'nowhere') }, stdin: false, streamStdout: false }).result;
    expect(r).toMatchObject({ missing: true, failed: true });
  });
});
