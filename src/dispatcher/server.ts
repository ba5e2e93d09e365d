// /healthz (the process answers), /readyz (every trigger subscribed and connected), /metrics (Prometheus).

import type { Server } from 'node:http';
import { createRequire } from 'node:module';
import type { Registry } from 'prom-client';

// node:http through require(), not an ES import: importing a builtin as an ES module reads every export, and
// node:http's WebSocket, CloseEvent and MessageEvent getters then load Node's internal copy of undici with
// http2, crypto and worker_threads (+13 MiB RSS, measured). require() leaves those getters untouched.
const { createServer } = createRequire(import.meta.url)('node:http') as typeof import('node:http');

export interface Probe {
  name: string;
  isReady(): boolean;
}

export interface OpsServer {
  server: Server;
  port: number;
  close(): Promise<void>;
}

export async function startOpsServer(opts: {
  port: number;
  host?: string;
  registry: Registry;
  probes: () => readonly Probe[];
}): Promise<OpsServer> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      return;
    }
    if (path === '/readyz') {
      const probes = opts.probes();
      const notReady = probes.filter((p) => !p.isReady()).map((p) => p.name);
      const ready = probes.length > 0 && notReady.length === 0;
      res
        .writeHead(ready ? 200 : 503, { 'content-type': 'application/json' })
        .end(`${JSON.stringify({ ready, notReady })}\n`);
      return;
    }
    if (path === '/metrics') {
      opts.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': opts.registry.contentType }).end(text),
        () => res.writeHead(500).end(),
      );
      return;
    }
    res.writeHead(404).end();
  });
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host ?? '0.0.0.0', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : opts.port;
  return {
    server,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
