// Real HTTP(S) servers on loopback for the redirect and hostile-function tests: each request is recorded with
// the socket it came on, and the handler may answer, redirect, or misbehave on the raw socket.

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import {
  createServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeCa, makeLeaf } from '../../../testenv/lib/certs.ts';

export interface Hit {
  method: string;
  path: string;
  body: Buffer;
  headers: IncomingHttpHeaders;
  /** Which connection of this site it came on (1, 2, ... in order of acceptance). */
  socket: number;
}

export type Handler = (hit: Hit, res: ServerResponse, req: IncomingMessage) => void;

export interface TlsFiles {
  /** PEM of the CA that signed the server certificate (for the client's trust). */
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
}

let tls: TlsFiles | undefined;

/** A CA and a server certificate for localhost and 127.0.0.1, made once per test process with openssl. */
export function tlsFiles(): TlsFiles {
  if (!tls) {
    const dir = mkdtempSync(join(tmpdir(), 'kpt-fn-tls-'));
    const ca = makeCa(dir, 'fn-ca');
    const leaf = makeLeaf(dir, ca, 'fn', { cn: 'localhost', altNames: ['DNS:localhost', 'IP:127.0.0.1'] });
    tls = {
      ca: readFileSync(ca.certFile),
      cert: readFileSync(leaf.certFile),
      key: readFileSync(leaf.keyFile),
    };
    // Kept in memory from here: nothing of it stays behind.
    rmSync(dir, { recursive: true, force: true });
  }
  return tls;
}

export class Site {
  readonly hits: Hit[] = [];
  handler: Handler = (_hit, res) => res.end();
  /** Connections accepted, and closed (by either side). */
  accepted = 0;
  closed = 0;
  /** Bytes written on connections that have closed (what the site managed to send, whoever read it). */
  offered = 0;
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  readonly #scheme: 'http' | 'https';
  #port = 0;

  private constructor(server: Server, scheme: 'http' | 'https') {
    this.#server = server;
    this.#scheme = scheme;
  }

  static async start(opts: { tls?: boolean } = {}): Promise<Site> {
    const onRequest = (req: IncomingMessage, res: ServerResponse) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const hit: Hit = {
          method: req.method ?? '',
          path: req.url ?? '',
          body: Buffer.concat(chunks),
          headers: req.headers,
          socket: (req.socket as Socket & { kptId?: number }).kptId ?? 0,
        };
        site.hits.push(hit);
        site.handler(hit, res, req);
      });
    };
    let server: Server;
    if (opts.tls) {
      const t = tlsFiles();
      server = createTlsServer({ cert: t.cert, key: t.key }, onRequest) as unknown as Server;
    } else {
      server = createServer(onRequest);
    }
    const site: Site = new Site(server, opts.tls ? 'https' : 'http');
    server.keepAliveTimeout = 60_000;
    server.on(opts.tls ? 'secureConnection' : 'connection', (socket: Socket) => site.#track(socket));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    site.#port = (server.address() as { port: number }).port;
    return site;
  }

  #track(socket: Socket): void {
    const s = socket as Socket & { kptId?: number };
    s.kptId = ++this.accepted;
    this.#sockets.add(socket);
    socket.on('close', () => {
      this.#sockets.delete(socket);
      this.closed++;
      this.offered += socket.bytesWritten;
    });
  }

  get port(): number {
    return this.#port;
  }

  /** The site's base URL; `host` picks the name in it (localhost for the TLS certificate's name check). */
  url(path = '/', host = '127.0.0.1'): string {
    return `${this.#scheme}://${host}:${this.#port}${path}`;
  }

  /** The hits on one path. */
  on(path: string): Hit[] {
    return this.hits.filter((h) => h.path === path);
  }

  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

/** Writes `chunk` to the response forever, at the pace the peer reads it (backpressure), until it goes away. */
export function endless(res: ServerResponse, chunk: Buffer = Buffer.alloc(64 * 1024, 0x61)): void {
  const pump = () => {
    while (!res.destroyed && res.write(chunk));
    if (!res.destroyed) res.once('drain', pump);
  };
  pump();
}

/** Writes `text` to the raw socket one byte every `everyMs`, until it is written or the socket is gone. */
export function trickle(socket: Socket, text: string, everyMs: number): void {
  let i = 0;
  const timer = setInterval(() => {
    if (socket.destroyed || i >= text.length) {
      clearInterval(timer);
      return;
    }
    socket.write(text[i++]!);
  }, everyMs);
  socket.on('close', () => clearInterval(timer));
}
