import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { AzuriteServer } from './azurite.js';

/**
 * A loopback proxy in front of Azurite that forwards every request, and for the one it is armed
 * for, first does another machine's part (`before`: rewrite or delete the blob) or, once Azurite
 * has done the request, loses its answer (`dropAnswer`: the connection is cut, as a flaky network
 * does, so the client tries again a request that already took effect) or changes it
 * (`alterAnswer`). It can also stop answering (`hang`).
 */
export interface BlobProxy {
  port: number;
  /** The location of `container` (and prefix) through the proxy, as an operator gives it. */
  url(container: string, prefix?: string): string;
  arm(step: ArmedStep): void;
  /** True until the armed step has been taken. */
  armed(): boolean;
  /** From now on the requests `when` matches are never answered (a server that hangs); undefined ends it. */
  hang(when: ((req: http.IncomingMessage) => boolean) | undefined): void;
  close(): Promise<void>;
}

export interface ArmedStep {
  when: (req: http.IncomingMessage) => boolean;
  /** Given the blob's name in its container. */
  before?: (blobName: string) => Promise<void>;
  dropAnswer?: boolean;
  /** Changes the answer's headers before they are forwarded (what another service would have said). */
  alterAnswer?: (headers: http.IncomingHttpHeaders) => void;
}

export async function startBlobProxy(azurite: AzuriteServer): Promise<BlobProxy> {
  let step: ArmedStep | undefined;
  let hanging: ((req: http.IncomingMessage) => boolean) | undefined;
  const server = http.createServer(async (req, res) => {
    if (hanging?.(req)) {
      req.resume(); // never answered; cut when the proxy closes
      return;
    }
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
        const headers = { ...answer.headers };
        taken?.alterAnswer?.(headers);
        res.writeHead(answer.statusCode ?? 502, headers);
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
    hang(when) {
      hanging = when;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
