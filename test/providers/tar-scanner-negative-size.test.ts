import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { buildSync } from 'esbuild';
import { describe, expect, it } from 'vitest';
import { craftTar } from '../support/provider-fixtures.js';

/**
 * The tar scanner read a GNU base-256 size field as a signed number and accepted a negative one;
 * its skip state then moved its position backwards onto the header it had just read, which it read
 * again, forever: a directory restore of such an archive spun one core and never ended (GNU tar
 * refuses a negative size, and so does the scanner now). The scanner runs in a worker here so that
 * a hang shows as a failure instead of hanging the test run.
 */

const SCANNER = fileURLToPath(new URL('../../src/providers/tar-scanner.ts', import.meta.url));

/** What scanning `archive` came to within `ms`: 'ended', the error's message, or 'hung'. */
function scanInWorker(archive: Buffer, ms: number): Promise<string> {
  const bundled = buildSync({ entryPoints: [SCANNER], bundle: true, format: 'cjs', platform: 'node', write: false }).outputFiles[0]!.text;
  const code = `
    const { parentPort, workerData } = require('node:worker_threads');
    const module = { exports: {} };
    (function (exports, module) { ${bundled} })(module.exports, module);
    const scanner = new module.exports.TarScanner(() => {});
    try {
      scanner.write(Buffer.from(workerData));
      scanner.end();
      parentPort.postMessage('ended');
    } catch (e) {
      parentPort.postMessage(String(e && e.message));
    }`;
  const worker = new Worker(code, { eval: true, workerData: archive });
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      void worker.terminate();
      resolve('hung');
    }, ms);
    worker.once('message', (m: string) => {
      clearTimeout(timer);
      void worker.terminate();
      resolve(m);
    });
  });
}

describe('a tar header whose base-256 size is negative', () => {
  it('is refused, not read again and again', async () => {
    const archive = craftTar([{ name: 'f', type: 'file', body: 'data' }]);
    expect(await scanInWorker(archive, 5000)).toBe('ended');
    // size field (124..135): base-256, -512 in two's complement.
    archive.fill(0xff, 124, 136);
    archive[134] = 0xfe;
    archive[135] = 0x00;
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 0x20 : archive[i]!;
    archive.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
    const outcome = await scanInWorker(archive, 5000);
    expect(outcome).not.toBe('hung');
    expect(outcome).toMatch(/size/);
  });
});
