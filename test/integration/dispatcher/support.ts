// Helpers of the dispatcher's integration tests: a real HTTP function on loopback, producing with our Pulsar
// client, and the dispatcher as a child process (the way Kubernetes runs it).

import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import { createServer as netServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { PulsarClient } from '../../../src/pulsar/index.ts';

export interface Received {
  body: Buffer;
  headers: IncomingHttpHeaders;
  at: number;
  /** The request's path and query: tells apart dispatchers given different function URLs. */
  url: string;
}

/** What the function does with a request: answer, hang, or drop the connection. */
export type Reply =
  | { status: number; headers?: Record<string, string>; body?: string; delayMs?: number }
  | { hang: true }
  | { destroy: true };

export class FunctionServer {
  readonly received: Received[] = [];
  reply: (r: Received) => Reply = () => ({ status: 200 });
  readonly #server: Server;
  readonly #open = new Set<ServerResponse>();
  port = 0;

  private constructor(server: Server) {
    this.#server = server;
  }

  static async start(port = 0): Promise<FunctionServer> {
    const fs: FunctionServer = new FunctionServer(
      createServer((req, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          const r: Received = {
            body: Buffer.concat(chunks),
            headers: req.headers,
            at: Date.now(),
            url: req.url ?? '',
          };
          fs.received.push(r);
          const reply = fs.reply(r);
          if ('hang' in reply) {
            fs.#open.add(res);
            res.on('close', () => fs.#open.delete(res));
            return;
          }
          if ('destroy' in reply) {
            req.socket.destroy();
            return;
          }
          const send = () => res.writeHead(reply.status, reply.headers ?? {}).end(reply.body ?? '');
          if (reply.delayMs) setTimeout(send, reply.delayMs);
          else send();
        });
      }),
    );
    fs.#server.keepAliveTimeout = 60_000;
    await fs.listen(port);
    return fs;
  }

  async listen(port: number): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(port, '127.0.0.1', () => {
        this.#server.off('error', reject);
        resolve();
      });
    });
    this.port = (this.#server.address() as { port: number }).port;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}/`;
  }

  /** Stops listening and drops every connection: the function is down (connections refused). */
  async close(): Promise<void> {
    for (const res of this.#open) res.destroy();
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  /** The bodies received, as strings, each once, in order of first arrival. */
  distinctBodies(): string[] {
    const seen = new Set<string>();
    for (const r of this.received) seen.add(r.body.toString());
    return [...seen];
  }
}

export function uniqueName(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
}

export async function freePort(): Promise<number> {
  const s = netServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', () => resolve()));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

export async function produce(
  serviceUrl: string,
  topic: string,
  messages: Iterable<{
    payload: Uint8Array;
    key?: string;
    properties?: Record<string, string>;
    eventTime?: number;
  }>,
  options: { batching?: boolean } = {},
): Promise<string[]> {
  const client = new PulsarClient({ serviceUrl });
  try {
    const producer = await client.createProducer({
      topic,
      // Batching only when asked: most tests want one entry per message.
      ...(options.batching === true ? {} : { batchingMaxMessages: 1 }),
    });
    const ids = await Promise.all([...messages].map((m) => producer.send(m).then((id) => id.toString())));
    await producer.close();
    return ids;
  } finally {
    await client.close();
  }
}

/** Creates the subscription at the start of the topic, so messages produced before the dispatcher starts count. */
export async function ensureSubscription(
  serviceUrl: string,
  topic: string,
  subscription: string,
): Promise<void> {
  const client = new PulsarClient({ serviceUrl });
  try {
    const c = await client.subscribe({
      topic,
      subscription,
      subscriptionType: 'Shared',
      initialPosition: 'Earliest',
    });
    await c.close();
  } finally {
    await client.close();
  }
}

const BIN = fileURLToPath(new URL('../../../bin/kubeless-pulsar-trigger.js', import.meta.url));

export interface Child {
  proc: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** The dispatcher as Kubernetes runs it: `kubeless-pulsar-trigger dispatcher` with an environment. */
export function spawnDispatcher(env: Record<string, string>): Child {
  const proc = spawn(process.execPath, [BIN, 'dispatcher'], {
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  proc.stdout?.on('data', (c: Buffer) => {
    out += c.toString();
    if (out.length > 2_000_000) out = out.slice(-1_000_000);
  });
  proc.stderr?.on('data', (c: Buffer) => {
    err += c.toString();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.on('close', (code, signal) => resolve({ code, signal })),
  );
  return { proc, stdout: () => out, stderr: () => err, exited };
}

export function until(
  check: () => boolean | Promise<boolean>,
  what: string,
  limitMs = 60_000,
): Promise<void> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const tick = async () => {
      if (await check()) resolve();
      else if (Date.now() - started > limitMs) reject(new Error(`timed out waiting for: ${what}`));
      else setTimeout(tick, 20);
    };
    void tick();
  });
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
