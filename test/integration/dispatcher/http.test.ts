// The function client (src/dispatcher/http.ts) against a real HTTP server on loopback: what each kind of answer,
// failure and abort becomes as an Outcome. No Pulsar.

import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { createFunctionClient, type FunctionClient } from '../../../src/dispatcher/http.ts';

type Handler = (req: IncomingMessage, body: Buffer, res: ServerResponse) => void;

describe('function client', () => {
  let server: Server;
  let handler: Handler = (_req, _body, res) => res.end();
  let url = '';
  let fn: FunctionClient;

  before(async () => {
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => handler(req, Buffer.concat(chunks), res));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/fn?x=1`;
    fn = createFunctionClient({ url, connections: 4, timeoutMs: 300 });
  });
  after(async () => {
    await fn.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  test('posts the payload bytes and headers unchanged to the path; a 2xx is a status outcome', async () => {
    let seen: { method?: string; url?: string; body?: Buffer; headers?: IncomingMessage['headers'] } = {};
    handler = (req, body, res) => {
      seen = { method: req.method, url: req.url, body, headers: req.headers };
      res.writeHead(202).end('ignored');
    };
    const payload = new Uint8Array([0, 1, 2, 0xff, 0xfe, 10, 13]);
    // A view into a larger buffer: only the view's bytes go.
    const whole = Buffer.concat([Buffer.from('xx'), payload, Buffer.from('yy')]);
    const view = new Uint8Array(whole.buffer, whole.byteOffset + 2, 7);
    const a = await fn.post(view, { 'content-type': 'application/octet-stream', 'event-id': '1:2:-1:-1' });
    assert.deepEqual(a.outcome, { kind: 'status', status: 202 });
    assert.equal(seen.method, 'POST');
    assert.equal(seen.url, '/fn?x=1');
    assert.deepEqual(seen.body, Buffer.from(payload));
    assert.equal(seen.headers?.['content-type'], 'application/octet-stream');
    assert.equal(seen.headers?.['event-id'], '1:2:-1:-1');
    assert.equal(seen.headers?.['content-length'], '7');
  });

  test('a non-2xx keeps its Retry-After and the first 512 bytes of its body, whitespace collapsed', async () => {
    handler = (_req, _body, res) => {
      res.writeHead(503, { 'Retry-After': '7' }).end(`  busy\n\n now ${'z'.repeat(2000)}`);
    };
    const a = await fn.post(new Uint8Array([1]), {});
    assert.equal(a.outcome.kind, 'status');
    if (a.outcome.kind !== 'status') return;
    assert.equal(a.outcome.status, 503);
    assert.equal(a.outcome.retryAfterMs, 7000);
    assert.equal(a.outcome.body, `busy now ${'z'.repeat(512 - '  busy\n\n now '.length)}`);
  });

  test('an error body that never ends is cut: the status stands', async () => {
    handler = (_req, _body, res) => {
      res.writeHead(500);
      const chunk = Buffer.alloc(16 * 1024, 0x62);
      const pump = () => {
        while (!res.destroyed && res.write(chunk));
        if (!res.destroyed) res.once('drain', pump);
      };
      pump();
    };
    const a = await fn.post(new Uint8Array([1]), {});
    assert.equal(a.outcome.kind, 'status');
    if (a.outcome.kind === 'status') {
      assert.equal(a.outcome.status, 500);
      assert.equal(a.outcome.body, 'b'.repeat(512));
    }
  });

  test('a 2xx with a large body is a success', async () => {
    handler = (_req, _body, res) => res.writeHead(200).end(Buffer.alloc(1024 * 1024, 0x63));
    const a = await fn.post(new Uint8Array([1]), {});
    assert.deepEqual(a.outcome, { kind: 'status', status: 200 });
  });

  test('no answer within the timeout is a timeout; a dropped connection is a reset', async () => {
    handler = () => {};
    const t = await fn.post(new Uint8Array([1]), {});
    assert.equal(t.outcome.kind === 'network' && t.outcome.error, 'timeout');
    handler = (req) => req.socket.destroy();
    const r = await fn.post(new Uint8Array([1]), {});
    assert.equal(r.outcome.kind === 'network' && r.outcome.error, 'reset');
  });

  test('nothing listening is refused', async () => {
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', () => resolve()));
    const port = (probe.address() as AddressInfo).port;
    await new Promise((resolve) => probe.close(resolve));
    const other = createFunctionClient({ url: `http://127.0.0.1:${port}/`, connections: 1, timeoutMs: 1000 });
    const a = await other.post(new Uint8Array([1]), {});
    await other.close();
    assert.equal(a.outcome.kind === 'network' && a.outcome.error, 'refused');
  });

  test('the signal aborts requests in flight and queued ones; an aborted signal sends nothing', async () => {
    const slow = createFunctionClient({ url, connections: 1, timeoutMs: 60_000 });
    let arrived = 0;
    handler = () => {
      arrived++;
    };
    const ac = new AbortController();
    const first = slow.post(new Uint8Array([1]), {}, ac.signal);
    // One connection: the second waits in the pool's queue.
    const second = slow.post(new Uint8Array([2]), {}, ac.signal);
    while (arrived === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    ac.abort();
    assert.deepEqual((await first).outcome, { kind: 'aborted' });
    assert.deepEqual((await second).outcome, { kind: 'aborted' });
    const third = await slow.post(new Uint8Array([3]), {}, ac.signal);
    assert.deepEqual(third.outcome, { kind: 'aborted' });
    assert.equal(arrived, 1);
    await slow.close();
  });
});
