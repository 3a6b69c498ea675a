/**
 * A private Azurite blob server for tests: the npm package's azurite-blob, listening only on
 * 127.0.0.1 on a free port, with its data in a temporary folder, telemetry off, and an account of
 * its own with a random key. Several can run at once.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import {
  BlobServiceClient,
  ContainerSASPermissions,
  StorageSharedKeyCredential,
  generateBlobSASQueryParameters,
  type ContainerClient,
} from '@azure/storage-blob';
import { freePort, manageServer, startServerProcess } from './samba.js';

export interface AzuriteServer {
  port: number;
  /** Where Azurite keeps its data (blob contents under __blobstorage__). */
  location: string;
  accountName: string;
  accountKey: string;
  /** http://127.0.0.1:<port>/<account>: the path-style account URL. */
  accountUrl: string;
  /** The backup path of a container (and prefix), as an operator gives it. */
  url(container: string, prefix?: string): string;
  /** An SDK client for the container, made with the account key, for setting up and checking. */
  container(name: string): ContainerClient;
  createContainer(name: string): Promise<ContainerClient>;
  /** A container SAS (without '?') allowing only `permissions` (e.g. 'rl', 'racwdl'), valid for an hour. */
  sas(container: string, permissions: string): string;
  /** Stops Azurite and removes its folder. */
  stop(): Promise<void>;
  /** Stops Azurite but keeps its data, for "server went away" cases. */
  kill(): Promise<void>;
  /** Starts it again on the same port and data after kill(). */
  restart(): Promise<void>;
}

const require = createRequire(import.meta.url);

export async function startAzurite(): Promise<AzuriteServer> {
  const main = path.join(path.dirname(require.resolve('azurite/package.json')), 'dist', 'src', 'blob', 'main.js');
  const base = await fs.mkdtemp(path.join(os.tmpdir(), 'azs-azurite-'));
  const port = await freePort();
  const accountName = `azs${randomBytes(4).toString('hex')}`;
  const accountKey = randomBytes(64).toString('base64');
  const location = path.join(base, 'data');
  const logPath = path.join(base, 'azurite.out');
  const life = await manageServer(base, () =>
    startServerProcess(
      process.execPath,
      // --disableTelemetry: Azurite would otherwise report usage over the network.
      [
        main,
        '--blobHost',
        '127.0.0.1',
        '--blobPort',
        String(port),
        '--location',
        location,
        '--silent',
        '--disableTelemetry',
        '--skipApiVersionCheck',
      ],
      {
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', AZURITE_ACCOUNTS: `${accountName}:${accountKey}` },
        logPath,
        port,
        server: 'azurite-blob',
      },
    ),
  );

  const accountUrl = `http://127.0.0.1:${port}/${accountName}`;
  const credential = new StorageSharedKeyCredential(accountName, accountKey);
  const service = new BlobServiceClient(accountUrl, credential);
  return {
    port,
    location,
    accountName,
    accountKey,
    accountUrl,
    url: (container, prefix) => `${accountUrl}/${container}${prefix ? `/${prefix}` : ''}`,
    container: (name) => service.getContainerClient(name),
    async createContainer(name) {
      const c = service.getContainerClient(name);
      await c.create();
      return c;
    },
    sas: (container, permissions) =>
      generateBlobSASQueryParameters(
        {
          containerName: container,
          permissions: ContainerSASPermissions.parse(permissions),
          startsOn: new Date(Date.now() - 60_000),
          expiresOn: new Date(Date.now() + 3_600_000),
        },
        credential,
      ).toString(),
    ...life,
  };
}
