// The function client (src/dispatcher/http.ts) following redirects of real HTTP and HTTPS servers on loopback:
// which are followed and how (POST, same bytes, same headers), the pools of other origins, and each refusal. No
// Pulsar (redirects.test.ts runs them through the dispatcher).

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import {
  createFunctionClient,
  type FunctionClient,
  MAX_REDIRECT_ORIGINS,
  MAX_REDIRECTS,
} from '../../../src/dispatcher/http.ts';
import type { Outcome } from '../../../src/dispatcher/policy.ts';
import { endless, Site, tlsFiles } from './sites.ts';
import { until } from './support.ts';

const HEADERS = {
  'content-type': 'application/octet-stream',
  'event-id': '7:8:-1:-1',
  'pulsar-key': 'k%C3%A9',
};

/** Every byte value, then random bytes: what arrives must be these bytes exactly. */
const PAYLOAD = Buffer.concat([Buffer.from(Array.from({ length: 256 }, (_, i) => i)), randomBytes(70_000)]);

function redirect(status: number, location: string) {
  return (res: import('node:http').ServerResponse) =>
    res.writeHead(status, { location, 'content-type': 'text/plain' }).end(`moved to ${location}`);
}

function assertSameRequest(hit: import('./sites.ts').Hit): void {
  assert.equal(hit.method, 'POST');
  assert.ok(hit.body.equals(PAYLOAD), `body byte for byte (${hit.body.length} of ${PAYLOAD.length} bytes)`);
  for (const [name, value] of Object.entries(HEADERS)) assert.equal(hit.headers[name], value, name);
  assert.equal(hit.headers['content-length'], String(PAYLOAD.length));
}

function errorOf(o: Outcome): string {
  return o.kind === 'network' ? o.error : o.kind === 'status' ? `HTTP ${o.status}` : o.kind;
}

describe('function client: redirects', () => {
  let a: Site;
  let b: Site;
  let secure: Site;
  let fn: FunctionClient;

  before(async () => {
    [a, b, secure] = await Promise.all([Site.start(), Site.start(), Site.start({ tls: true })]);
    fn = createFunctionClient({ url: a.url('/fn?x=1'), connections: 2, timeoutMs: 5000, ca: tlsFiles().ca });
  });
  after(async () => {
    await fn.close();
    await Promise.all([a.close(), b.close(), secure.close()]);
  });

  test('307 to another path (relative Location): the same POST, body and headers arrive there', async () => {
    a.handler = (hit, res) =>
      hit.path === '/fn?x=1' ? redirect(307, 'other?y=2')(res) : res.writeHead(204).end();
    const r = await fn.post(PAYLOAD, HEADERS);
    assert.deepEqual(r.outcome, { kind: 'status', status: 204 });
    const [first, second] = a.hits.slice(-2);
    assert.equal(first?.path, '/fn?x=1');
    assert.equal(second?.path, '/other?y=2');
    assertSameRequest(first!);
    assertSameRequest(second!);
  });

  for (const status of [301, 302]) {
    test(`${status}: still a POST with the body (not turned into a GET as browsers and requests do)`, async () => {
      a.handler = (hit, res) =>
        hit.path === '/fn?x=1' ? redirect(status, `/after-${status}`)(res) : res.writeHead(200).end();
      const r = await fn.post(PAYLOAD, HEADERS);
      assert.deepEqual(r.outcome, { kind: 'status', status: 200 });
      const hits = a.on(`/after-${status}`);
      assert.equal(hits.length, 1);
      assertSameRequest(hits[0]!);
    });
  }

  test('308 to another port: its own keep-alive pool, connections reused across messages', async () => {
    a.handler = (_hit, res) => redirect(308, b.url('/moved'))(res);
    b.handler = (_hit, res) => res.writeHead(200).end('ok');
    const acceptedBefore = b.accepted;
    for (let i = 0; i < 10; i++) {
      const r = await fn.post(PAYLOAD, HEADERS);
      assert.deepEqual(r.outcome, { kind: 'status', status: 200 });
    }
    const hits = b.on('/moved');
    assert.equal(hits.length, 10);
    for (const h of hits) assertSameRequest(h);
    // One request at a time: one connection to the target, kept alive from the first message to the last.
    assert.equal(b.accepted - acceptedBefore, 1, 'one connection to the redirect target');
    assert.equal(new Set(hits.map((h) => h.socket)).size, 1);
  });

  test(`a chain of ${MAX_REDIRECTS} redirects is followed to the end`, async () => {
    a.handler = (hit, res) => {
      const m = /^\/chain\/(\d+)$/.exec(hit.path);
      if (hit.path === '/fn?x=1') redirect(307, '/chain/1')(res);
      else if (m && Number(m[1]) < MAX_REDIRECTS) redirect(308, `/chain/${Number(m[1]) + 1}`)(res);
      else if (m) res.writeHead(202).end();
      else res.writeHead(404).end();
    };
    const r = await fn.post(PAYLOAD, HEADERS);
    assert.deepEqual(r.outcome, { kind: 'status', status: 202 });
    const last = a.on(`/chain/${MAX_REDIRECTS}`);
    assert.equal(last.length, 1);
    assertSameRequest(last[0]!);
  });

  test(`a chain of ${MAX_REDIRECTS + 1} redirects is redirect_limit; the next hop is not requested`, async () => {
    const marker = `/long-${Date.now()}`;
    a.handler = (hit, res) => {
      const m = new RegExp(`^${marker}/(\\d+)$`).exec(hit.path);
      if (hit.path === '/fn?x=1') redirect(307, `${marker}/1`)(res);
      else if (m) redirect(307, `${marker}/${Number(m[1]) + 1}`)(res);
      else res.writeHead(200).end();
    };
    const r = await fn.post(PAYLOAD, HEADERS);
    assert.equal(errorOf(r.outcome), 'redirect_limit');
    assert.ok(r.outcome.kind === 'network');
    assert.match(r.outcome.message, new RegExp(`more than ${MAX_REDIRECTS} redirects`));
    assert.equal(a.on(`${marker}/${MAX_REDIRECTS}`).length, 1, 'the fifth redirect was followed');
    assert.equal(a.on(`${marker}/${MAX_REDIRECTS + 1}`).length, 0, 'the sixth was not');
  });

  test('http → https is followed (the same bytes arrive over TLS)', async () => {
    a.handler = (_hit, res) => redirect(307, secure.url('/tls', 'localhost'))(res);
    secure.handler = (_hit, res) => res.writeHead(200).end();
    const r = await fn.post(PAYLOAD, HEADERS);
    assert.deepEqual(r.outcome, { kind: 'status', status: 200 });
    const hits = secure.on('/tls');
    assert.equal(hits.length, 1);
    assertSameRequest(hits[0]!);
  });

  test('https → http is redirect_refused: the event never leaves TLS', async () => {
    const tlsFn = createFunctionClient({
      url: secure.url('/start', 'localhost'),
      connections: 1,
      timeoutMs: 5000,
      ca: tlsFiles().ca,
    });
    try {
      secure.handler = (_hit, res) => redirect(307, b.url('/plain'))(res);
      const r = await tlsFn.post(PAYLOAD, HEADERS);
      assert.equal(errorOf(r.outcome), 'redirect_refused');
      assert.ok(r.outcome.kind === 'network');
      assert.match(
        r.outcome.message,
        /HTTP 307 from https:\/\/localhost:\d+\/start: redirect from https to http/,
      );
      assert.equal(b.on('/plain').length, 0);
    } finally {
      await tlsFn.close();
    }
  });

  test('303, and a redirect status without Location, are plain non-2xx statuses', async () => {
    a.handler = (_hit, res) => redirect(303, '/see-other')(res);
    const r303 = await fn.post(PAYLOAD, HEADERS);
    assert.equal(errorOf(r303.outcome), 'HTTP 303');
    a.handler = (_hit, res) => res.writeHead(307).end('no location');
    const r307 = await fn.post(PAYLOAD, HEADERS);
    assert.equal(r307.outcome.kind === 'status' && r307.outcome.body, 'no location');
    assert.equal(a.on('/see-other').length, 0);
  });

  test('a Location to another scheme is redirect_refused', async () => {
    a.handler = (_hit, res) => redirect(302, 'ftp://127.0.0.1/x')(res);
    const r = await fn.post(PAYLOAD, HEADERS);
    assert.equal(errorOf(r.outcome), 'redirect_refused');
  });

  test('a redirect with an endless body is followed: the body is cut, its connection dropped', async () => {
    a.handler = (hit, res) => {
      if (hit.path !== '/fn?x=1') {
        res.writeHead(200).end();
        return;
      }
      res.writeHead(307, { location: '/after-endless' });
      endless(res);
    };
    const closedBefore = a.closed;
    const r = await fn.post(PAYLOAD, HEADERS);
    assert.deepEqual(r.outcome, { kind: 'status', status: 200 });
    assert.equal(a.on('/after-endless').length, 1);
    await until(() => a.closed > closedBefore, 'the connection of the endless redirect closed');
  });

  test('the deadline covers every hop: two hops of 60 % each are a timeout', async () => {
    const quick = createFunctionClient({ url: a.url('/slow/1'), connections: 1, timeoutMs: 500 });
    try {
      a.handler = (hit, res) => {
        const next = hit.path === '/slow/1' ? '/slow/2' : undefined;
        setTimeout(() => {
          if (res.destroyed) return;
          if (next) redirect(307, next)(res);
          else res.writeHead(200).end();
        }, 300);
      };
      const r = await quick.post(PAYLOAD, HEADERS);
      assert.equal(errorOf(r.outcome), 'timeout');
      assert.ok(r.outcome.kind === 'network');
      assert.match(
        r.outcome.message,
        /no complete response within 500 ms \(before the response headers, after 1 redirect\)/,
      );
      assert.equal(a.on('/slow/2').length, 1, 'the second hop was requested');
    } finally {
      await quick.close();
    }
  });

  test(`redirect targets on more than ${MAX_REDIRECT_ORIGINS} origins: the least recently used pool is closed`, async () => {
    const targets = await Promise.all(Array.from({ length: MAX_REDIRECT_ORIGINS + 1 }, () => Site.start()));
    const many = createFunctionClient({ url: a.url('/spread'), connections: 1, timeoutMs: 5000 });
    try {
      let next = 0;
      a.handler = (_hit, res) => redirect(307, targets[next]!.url('/t'))(res);
      for (const t of targets) t.handler = (_hit, res) => res.writeHead(200).end();
      for (next = 0; next < MAX_REDIRECT_ORIGINS; next++) {
        assert.deepEqual((await many.post(PAYLOAD, HEADERS)).outcome, { kind: 'status', status: 200 });
      }
      assert.equal(targets[0]!.closed, 0, 'the first target keeps its idle connection');
      // Using the first target again makes the second the least recently used.
      next = 0;
      assert.deepEqual((await many.post(PAYLOAD, HEADERS)).outcome, { kind: 'status', status: 200 });
      next = MAX_REDIRECT_ORIGINS;
      assert.deepEqual((await many.post(PAYLOAD, HEADERS)).outcome, { kind: 'status', status: 200 });
      await until(() => targets[1]!.closed === 1, "the least recently used target's connection closed");
      assert.equal(targets[0]!.closed, 0, 'the recently used one stays');
      assert.equal(targets[0]!.accepted, 1, 'and was reused');
    } finally {
      await many.close();
      await Promise.all(targets.map((t) => t.close()));
    }
  });
});
