import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk, fingerprint, makeDrill, type Drill } from '../support/cli.js';
import { readBackup, type ReaderMaterial } from '../support/repository-reader.js';

/**
 * docs/FORMAT.md is enough to restore a format 3 backup: an independent reader written from it
 * alone (test/support/repository-reader.ts) reads backups the real CLI made, and what it reads is,
 * byte for byte, what the real restore hands the providers: a command role's exact bytes (its
 * import writes its input to a file), and a directory role's tar stream, extracted and compared
 * file by file (type, mode, mtime, contents, links) with the folder as it was backed up and as the
 * real restore put it back. Two backups, the second after a few changes, so the second's catalogs
 * point into packs the first wrote.
 */

/** 4 MiB: JSON-like text (compressible) around 1.5 MiB of random bytes, several chunks. */
function fixedBytes(): Buffer {
  const text = Buffer.from(Array.from({ length: 40_000 }, (_, i) => `{"id":${i},"name":"record-${i}","ok":true}\n`).join(''));
  return Buffer.concat([text, randomBytes(1536 * 1024), text]).subarray(0, 4 * 1024 * 1024);
}

/** The folder a tar stream holds, as `fingerprint` pictures it. */
async function pictureOfTar(root: string, tar: Buffer): Promise<string> {
  const dir = await fs.mkdtemp(path.join(root, 'untar-'));
  try {
    execFileSync('tar', ['-C', dir, '-xpf', '-'], { input: tar });
    return fingerprint(dir);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

async function restore(d: Drill, name: string): Promise<void> {
  const { args, stdin } = d.decryptArgs();
  expectOk(await d.cli(['Restore-AzsBackup', '-Name', name, ...args, '-Confirm:$false'], { stdin }), `Restore-AzsBackup ${name}`);
}

const infoOf = async (d: Drill, name: string): Promise<string> =>
  fs.readFile(path.join(await d.backupFolder(name), 'BackupInfo.xml'), 'utf8');
const packsOf = (info: string): string[] => [...info.matchAll(/<Pack>([0-9a-f]{64})<\/Pack>/g)].map((m) => m[1]!);

describe('an independent reader restores format 3 from FORMAT.md alone (symmetric key)', () => {
  let d: Drill;
  let fixed: string;
  let restored: string;
  const backups: { name: string; fixed: Buffer; files: string }[] = [];

  beforeAll(async () => {
    d = await makeDrill({ roles: false, bigFileBytes: 3 * 1024 * 1024 });
    fixed = path.join(d.root, 'fixed.bin');
    restored = path.join(d.root, 'restored.bin');
    await fs.writeFile(fixed, fixedBytes());
    await d.register('Files', ['-Provider', 'directory', '-Path', d.files, '-RestoreOrder', '10']);
    await d.registerCommand('Fixed', ['cat', fixed], ['sh', '-c', `cat > '${restored}'`], ['-RestoreOrder', '20']);

    const first = await d.backup();
    backups.push({ name: first.Name, fixed: await fs.readFile(fixed), files: fingerprint(d.files) });

    // A few changes: bytes overwritten in the middle and appended; a file changed, one added.
    const bytes = await fs.readFile(fixed);
    randomBytes(1000).copy(bytes, 2 * 1024 * 1024);
    await fs.writeFile(fixed, Buffer.concat([bytes, randomBytes(100 * 1024)]));
    await fs.writeFile(path.join(d.files, 'cloud.json'), JSON.stringify({ region: 'local', scaleUnits: 8 }));
    await fs.writeFile(path.join(d.files, 'conf.d', 'added.ini'), '[added]\nx=1\n');
    const second = await d.backup();
    backups.push({ name: second.Name, fixed: await fs.readFile(fixed), files: fingerprint(d.files) });
  });
  afterAll(async () => d?.cleanup());

  it('makes format 3 backups, the second sharing packs with the first', async () => {
    const [a, b] = [await infoOf(d, backups[0]!.name), await infoOf(d, backups[1]!.name)];
    for (const info of [a, b]) expect(info).toContain('FormatVersion="3"');
    expect(packsOf(b).some((p) => packsOf(a).includes(p))).toBe(true);
    expect(backups[0]!.files).not.toBe(backups[1]!.files);
  });

  it('reads each backup to exactly what was backed up, and what the real restore puts back', async () => {
    const material: ReaderMaterial = { kind: 'Key', key: Buffer.from(d.key!, 'base64') };
    for (const backup of backups) {
      const read = await readBackup(d.share, backup.name, material);
      expect(read.formatVersion).toBe(3);
      expect([...read.roles.keys()].sort()).toEqual(['Files', 'Fixed']);
      expect(read.roles.get('Fixed')!.equals(backup.fixed)).toBe(true);
      expect(await pictureOfTar(d.root, read.roles.get('Files')!)).toBe(backup.files);

      await restore(d, backup.name);
      expect((await fs.readFile(restored)).equals(read.roles.get('Fixed')!)).toBe(true);
      expect(fingerprint(d.files)).toBe(backup.files);
    }
  });

  it('refuses a catalog whose chunk was changed in its pack', async () => {
    const info = await infoOf(d, backups[0]!.name);
    const pack = packsOf(info)[0]!;
    const file = path.join(d.share, 'AzsRepository', 'packs', pack.slice(0, 2), `${pack}.pack`);
    const original = await fs.readFile(file);
    const damaged = Buffer.from(original);
    damaged[100] = damaged[100]! ^ 1;
    await fs.writeFile(file, damaged);
    try {
      await expect(readBackup(d.share, backups[0]!.name, { kind: 'Key', key: Buffer.from(d.key!, 'base64') })).rejects.toThrow();
    } finally {
      await fs.writeFile(file, original);
    }
  });
});

describe('an independent reader restores format 3 from FORMAT.md alone (certificate)', () => {
  let d: Drill;
  let fixed: string;
  let restored: string;

  beforeAll(async () => {
    d = await makeDrill({ encryption: 'certificate', roles: false });
    fixed = path.join(d.root, 'fixed.bin');
    restored = path.join(d.root, 'restored.bin');
    await fs.writeFile(fixed, fixedBytes());
    await d.registerCommand('Fixed', ['cat', fixed], ['sh', '-c', `cat > '${restored}'`]);
  });
  afterAll(async () => d?.cleanup());

  it('reads with the .pfx private key what the real restore puts back', async () => {
    const backup = await d.backup();
    expect(await infoOf(d, backup.Name)).toContain('FormatVersion="3"');
    const privateKeyPem = execFileSync('openssl', ['pkcs12', '-in', d.pfx!, '-nocerts', '-nodes', '-passin', `pass:${d.pfxPassword}`], {
      encoding: 'utf8',
    });
    const read = await readBackup(d.share, backup.Name, { kind: 'Certificate', privateKeyPem, certificate: await fs.readFile(d.cer!) });
    expect(read.formatVersion).toBe(3);
    expect(read.roles.get('Fixed')!.equals(await fs.readFile(fixed))).toBe(true);

    await restore(d, backup.Name);
    expect((await fs.readFile(restored)).equals(read.roles.get('Fixed')!)).toBe(true);
  });
});
