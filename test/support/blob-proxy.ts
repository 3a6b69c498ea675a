import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { AzuriteServer } from './azurite.js';

/**
 * A loopback proxy in front of Azurite that forwards every request, and for the one it is armed
 * for, first does another machine's part (`before`: rewrite or delete the blob) or, once Azurite
 * has done the request, loses its answer (`dropAnswer`: the connection is cut, as a flaky network
 * does, so the client tries again a request that already took effect).
 */
export interface BlobProxy {
  port: number;
  /** The location of `container` (and prefix) through the proxy, as an operator gives it. */
  url(container: string, prefix?: string): string;
  arm(step: ArmedStep): void;
  /** True until the armed step has been taken. */
  armed(): boolean;
  close(): Promise<void>;
}

export interface ArmedStep {
  when: (req: http.IncomingMessage) => boolean;
  /** Given the blob's name in its container. */
  before?: (blobName: string) => Promise<void>;
  dropAnswer?: boolean;
}

export async function startBlobProxy(azurite: AzuriteServer): Promise<BlobProxy> {
  let step: ArmedStep | undefined;
  const server = http.createServer(async (req, res) => {
    const taken = step?.when(req) ? step : undefined;
    if (taken) step = undefined;
    if (taken?.before) {
      const [, , , ...name] = decodeURIComponent(req.url!.split('?')[0]!).split('/');
      await taken.before(name.join('/'));
    }
    const upstream = http.request(
      { host: '127.0.0.1', port: azurite.port, method: req.method, path: req.url, headers: req.headers },
      (answer) => {
        if (taken?.dropAnswer) {
          answer.resume();
          answer.on('end', () => req.socket.destroy());
          return;
        }
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    url: (container, prefix) => `http://127.0.0.1:${port}/${azurite.accountName}/${container}${prefix ? `/${prefix}` : ''}`,
    arm(s) {
      step = s;
    },
    armed: () => step !== undefined,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
