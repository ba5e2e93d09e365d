// A sample function: a small HTTP server that prints every event it receives, with its headers, and answers 200.
// It stands in for a Kubeless function (which is an HTTP server too) in `make demo` and in the end-to-end tests.
//
//   node examples/function.ts [port]          # or PORT=8080 node examples/function.ts; default 8080
//   FUNCTION_NAME=hello node examples/function.ts 0   # 0: any free port; the chosen port is printed
//
// Each event is printed as one block: the method and path, the event headers (event-id, event-time,
// event-namespace, event-name, event-type, event-topic and the pulsar-* ones), then the body.

import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';

export interface ReceivedEvent {
  /** Which function server got it (its name). */
  function: string;
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
  receivedAt: number;
}

export interface FunctionServer {
  readonly name: string;
  readonly port: number;
  readonly url: string;
  readonly server: Server;
  /** Every event received so far, in arrival order. */
  readonly events: ReceivedEvent[];
  close(): Promise<void>;
}

export interface FunctionOptions {
  port?: number;
  host?: string;
  name?: string;
  /** Called for each event; by default the event is printed on stdout. */
  onEvent?: (e: ReceivedEvent) => void;
  /** The status to answer with (default 200). */
  status?: (e: ReceivedEvent) => number;
}

/** Header names the printout leads with, in this order; any other header follows. */
const EVENT_HEADERS = [
  'event-id',
  'event-time',
  'event-namespace',
  'event-name',
  'event-type',
  'event-topic',
];

export function formatEvent(e: ReceivedEvent): string {
  const lines = [`[${e.function}] ${e.method} ${e.path}`];
  const names = Object.keys(e.headers);
  const ordered = [
    ...EVENT_HEADERS.filter((h) => names.includes(h)),
    ...names.filter((h) => !EVENT_HEADERS.includes(h)).sort(),
  ];
  for (const h of ordered) lines.push(`  ${h}: ${String(e.headers[h])}`);
  const text = e.body.toString('utf8');
  const printable = /^[\t\n\r\x20-\x7e\u00a0-\uffff]*$/.test(text);
  lines.push(`  body (${e.body.length} bytes): ${printable ? text : `base64:${e.body.toString('base64')}`}`);
  return `${lines.join('\n')}\n`;
}

export async function startFunction(opts: FunctionOptions = {}): Promise<FunctionServer> {
  const name = opts.name ?? 'function';
  const events: ReceivedEvent[] = [];
  const onEvent = opts.onEvent ?? ((e: ReceivedEvent) => process.stdout.write(formatEvent(e)));
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.url === '/healthz') {
        res.writeHead(200).end('ok\n');
        return;
      }
      const e: ReceivedEvent = {
        function: name,
        method: req.method ?? '',
        path: req.url ?? '/',
        headers: req.headers,
        body: Buffer.concat(chunks),
        receivedAt: Date.now(),
      };
      events.push(e);
      onEvent(e);
      const status = opts.status?.(e) ?? 200;
      res.writeHead(status, { 'content-type': 'text/plain' }).end(status < 300 ? 'ok\n' : 'no\n');
    });
  });
  const host = opts.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 8080, host, () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : (opts.port ?? 0);
  return {
    name,
    port,
    url: `http://${host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host}:${port}`,
    server,
    events,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const port = Number(process.argv[2] ?? process.env.PORT ?? 8080);
  const fn = await startFunction({ port, name: process.env.FUNCTION_NAME ?? 'function' });
  process.stdout.write(`function "${fn.name}" listening on ${fn.url}\n`);
  const stop = () => void fn.close().finally(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}
