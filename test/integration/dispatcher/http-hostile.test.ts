// The function client (src/dispatcher/http.ts) against hostile functions on loopback: endless and huge bodies
// are read up to a bound and their connection destroyed, trickled or missing headers end at the deadline of the
// whole exchange. No Pulsar (hostile.test.ts runs them through the dispatcher process).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  createFunctionClient,
  ERROR_BODY_READ_LIMIT,
  type FunctionClient,
  SUCCESS_BODY_READ_LIMIT,
} from '../../../src/dispatcher/http.ts';
import { endless, Site, trickle } from './sites.ts';
import { until } from './support.ts';

const TIMEOUT_MS = 800;
/** What the kernel's socket buffers on loopback may hold beyond what the client read. */
const KERNEL_BUFFERS = 16 * 1024 * 1024;

describe('function client: hostile functions', () => {
  let site: Site;
  let fn: FunctionClient;

  before(async () => {
    site = await Site.start();
    fn = createFunctionClient({ url: site.url('/'), connections: 2, timeoutMs: TIMEOUT_MS });
  });
  after(async () => {
    await fn.close();
    await site.close();
  });

  /** Posts once and waits until the site saw the connection of that request close. */
  async function postAndClose(): Promise<{ outcome: unknown; socket: number }> {
    const closed = site.closed;
    const r = await fn.post(new Uint8Array([1]), {});
    await until(() => site.closed > closed, 'the connection closed');
    return { outcome: r.outcome, socket: site.hits.at(-1)!.socket };
  }

  test('an endless error body: the status stands, the body is read up to the bound, the connection destroyed', async () => {
    site.handler = (_hit, res) => {
      res.writeHead(500, { 'content-type': 'text/plain' });
      endless(res, Buffer.alloc(16 * 1024, 0x78));
    };
    const offered = site.offered;
    const { outcome } = await postAndClose();
    assert.deepEqual(outcome, {
      kind: 'status',
      status: 500,
      retryAfterMs: undefined,
      body: 'x'.repeat(512),
    });
    const sent = site.offered - offered;
    assert.ok(sent > ERROR_BODY_READ_LIMIT, `the function wrote ${sent} bytes`);
    assert.ok(sent < ERROR_BODY_READ_LIMIT + KERNEL_BUFFERS, `then the connection was gone: ${sent} bytes`);
  });

  test('1 GiB announced on a 2xx: a success after the bound, the connection destroyed, not reused', async () => {
    site.handler = (_hit, res) => {
      res.writeHead(200, { 'content-length': String(2 ** 30) });
      endless(res);
    };
    const offered = site.offered;
    const { outcome, socket } = await postAndClose();
    assert.deepEqual(outcome, { kind: 'status', status: 200 });
    const sent = site.offered - offered;
    assert.ok(
      sent > SUCCESS_BODY_READ_LIMIT && sent < SUCCESS_BODY_READ_LIMIT + KERNEL_BUFFERS,
      `${sent} bytes`,
    );
    site.handler = (_hit, res) => res.writeHead(200).end('fine');
    const next = await fn.post(new Uint8Array([2]), {});
    assert.deepEqual(next.outcome, { kind: 'status', status: 200 });
    assert.notEqual(site.hits.at(-1)!.socket, socket, 'a new connection');
  });

  test('a bounded body keeps the connection alive', async () => {
    const one = createFunctionClient({ url: site.url('/'), connections: 1, timeoutMs: TIMEOUT_MS });
    try {
      site.handler = (_hit, res) => res.writeHead(500).end('z'.repeat(ERROR_BODY_READ_LIMIT - 1));
      await one.post(new Uint8Array([1]), {});
      const first = site.hits.at(-1)!.socket;
      site.handler = (_hit, res) => res.writeHead(200).end('y'.repeat(SUCCESS_BODY_READ_LIMIT - 1));
      await one.post(new Uint8Array([1]), {});
      assert.equal(site.hits.at(-1)!.socket, first, 'the same connection');
    } finally {
      await one.close();
    }
  });

  test('headers trickled one byte at a time: a timeout at the deadline, the connection destroyed', async () => {
    site.handler = (_hit, _res, req) =>
      trickle(req.socket, 'HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n', 100);
    const { outcome } = await postAndClose();
    assert.deepEqual(outcome, {
      kind: 'network',
      error: 'timeout',
      message: `no complete response within ${TIMEOUT_MS} ms (before the response headers)`,
    });
  });

  test('no answer at all: a timeout, the connection destroyed', async () => {
    site.handler = () => {};
    const { outcome } = await postAndClose();
    assert.equal((outcome as { error?: string }).error, 'timeout');
  });

  test('a 2xx whose body never ends (trickled below the bound): the status stands at the deadline', async () => {
    site.handler = (_hit, res, req) => {
      res.writeHead(200, { 'content-length': '1000000' });
      res.flushHeaders();
      trickle(req.socket, 'a'.repeat(1000), 50);
    };
    const { outcome } = await postAndClose();
    assert.deepEqual(outcome, { kind: 'status', status: 200 });
  });

  test('after all this the client still delivers on its pool', async () => {
    site.handler = (_hit, res) => res.writeHead(204).end();
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => fn.post(new Uint8Array([i]), {})));
    for (const r of results) assert.deepEqual(r.outcome, { kind: 'status', status: 204 });
  });
});
