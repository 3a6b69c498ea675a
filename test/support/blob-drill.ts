import { promises as fs } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startAzurite, type AzuriteServer } from './azurite.js';
import { expectOk, runCli, type CliOptions, type CliResult } from './cli.js';
import { list, writeRandom } from './smb-drill.js';

/**
 * The operator's set-up against a real Azurite container, through the public command line: a home
 * with a symmetric key, the container configured with the account key on stdin, and one directory
 * role; and what another writer of the container does beside it, with a SAS of its own.
 */
export interface BlobDrill {
  azurite: AzuriteServer;
  root: string;
  home: string;
  /** The directory role's data. */
  files: string;
  key: string;
  container: string;
  /** The prefix the location uses in the container. */
  prefix: string;
  /** The location as the operator gives it: the container URL and the prefix. */
  url: string;
  cli(args: string[], opts?: CliOptions): Promise<CliResult>;
  backup(): Promise<{ Name: string }>;
  /** The names of the backups Get-InfrastructureBackup lists. */
  listed(): Promise<string[]>;
  /** Every blob name below the prefix, relative to it. */
  blobs(): Promise<string[]>;
  /**
   * Another writer's blob, created under exactly this (URL-encoded) name below the prefix with a SAS
   * allowing only `permissions`: a raw request, whose path no URL parser normalises. Resolves to the
   * HTTP status.
   */
  plant(encodedName: string, permissions: string, body?: string): Promise<number>;
  cleanup(): Promise<void>;
}

export async function makeBlobDrill(opts: { retentionDays?: number; randomBytes?: number } = {}): Promise<BlobDrill> {
  const azurite = await startAzurite();
  const container = 'backups';
  const prefix = 'site-a';
  await azurite.createContainer(container);
  const root = await fs.mkdtemp(path.join(tmpdir(), 'azs-blob-drill-'));
  const home = path.join(root, 'home');
  const files = path.join(root, 'files');
  await fs.mkdir(files);
  await fs.writeFile(path.join(files, 'cloud.json'), JSON.stringify({ region: 'blob' }));
  if (opts.randomBytes) await writeRandom(path.join(files, 'big.bin'), opts.randomBytes);
  const cli = (args: string[], o?: CliOptions) => runCli(home, args, o);
  const drill: BlobDrill = {
    azurite,
    root,
    home,
    files,
    key: '',
    container,
    prefix,
    url: azurite.url(container, prefix),
    cli,
    async backup() {
      return expectOk(await cli(['Start-InfrastructureBackup'], { timeoutMs: 300_000 }), 'Start-InfrastructureBackup').json;
    },
    async listed() {
      return list(expectOk(await cli(['Get-InfrastructureBackup']), 'Get-InfrastructureBackup').json).map((b) => b.Name);
    },
    async blobs() {
      const out: string[] = [];
      for await (const b of azurite.container(container).listBlobsFlat({ prefix: `${prefix}/` })) out.push(b.name.slice(prefix.length + 1));
      return out.sort();
    },
    plant: (encodedName, permissions, body = 'x') =>
      new Promise<number>((resolve, reject) => {
        const req = http.request(
          {
            host: '127.0.0.1',
            port: azurite.port,
            method: 'PUT',
            path: `/${azurite.accountName}/${container}/${prefix}/${encodedName}?${azurite.sas(container, permissions)}`,
            headers: { 'x-ms-blob-type': 'BlockBlob', 'content-length': Buffer.byteLength(body) },
          },
          (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          },
        );
        req.on('error', reject);
        req.end(body);
      }),
    async cleanup() {
      await azurite.stop();
      await fs.rm(root, { recursive: true, force: true });
    },
  };
  try {
    drill.key = expectOk(await cli(['New-EncryptionKey']), 'New-EncryptionKey').json.Key;
    expectOk(
      await cli(
        [
          'Set-BackupShare',
          '-Path',
          drill.url,
          '-StorageAccountKey',
          '-',
          '-EncryptionKey',
          '-',
          '-BackupRetentionPeriodInDays',
          String(opts.retentionDays ?? 7),
        ],
        { stdin: `${azurite.accountKey}\n${drill.key}\n` },
      ),
      'Set-BackupShare',
    );
    expectOk(
      await cli(['Register-InfrastructureRole', '-Name', 'Files', '-Provider', 'directory', '-Path', files]),
      'Register-InfrastructureRole',
    );
  } catch (e) {
    await drill.cleanup();
    throw e;
  }
  return drill;
}
