// Redirecting functions, end to end: messages produced on the real broker, the dispatcher (in this process, built
// as the CLI builds it), and real HTTP/HTTPS servers on loopback that redirect. What arrives at the final target
// is the POST as the dispatcher first sent it, byte for byte; a refused or too long redirect is a failure that is
// retried like any other, then delivered or dead-lettered.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { MAX_REDIRECTS } from '../../../src/dispatcher/http.ts';
import { PulsarClient } from '../../../src/pulsar/index.ts';
import { pulsarPlain } from '../../support/env.ts';
import { metricValue, startInProcess } from './inproc.ts';
import { type Hit, Site, tlsFiles } from './sites.ts';
import { ensureSubscription, produce, uniqueName, until } from './support.ts';

/** A binary payload: every byte value, then random bytes, then a marker to find it by. */
function binary(marker: string): Uint8Array {
  return Buffer.concat([
    Buffer.from(Array.from({ length: 256 }, (_, i) => i)),
    randomBytes(20_000),
    Buffer.from(marker),
  ]);
}

function redirect(res: ServerResponse, status: number, location: string): void {
  res.writeHead(status, { location }).end();
}

/** The request as the dispatcher built it: method, body and every header but the per-hop ones. */
function request(hit: Hit): { method: string; body: string; headers: Record<string, unknown> } {
  const { host: _host, connection: _connection, ...headers } = hit.headers;
  return { method: hit.method, body: hit.body.toString('base64'), headers };
}

describe('redirects through the dispatcher', () => {
  const pulsar = pulsarPlain();
  let fn: Site;
  let other: Site;
  let secure: Site;

  before(async () => {
    [fn, other, secure] = await Promise.all([Site.start(), Site.start(), Site.start({ tls: true })]);
  });
  after(async () => {
    await Promise.all([fn.close(), other.close(), secure.close()]);
  });

  async function run(
    fnUrl: string,
    payloads: { payload: Uint8Array; key?: string }[],
    env: Record<string, string> = {},
    opts: { ca?: Buffer } = {},
  ) {
    const topic = `persistent://public/default/${uniqueName('redirect')}`;
    const name = uniqueName('trig');
    const subscription = `${name}-default`;
    await ensureSubscription(pulsar.serviceUrl, topic, subscription);
    await produce(pulsar.serviceUrl, topic, payloads);
    const { trigger, metrics } = startInProcess(
      {
        TRIGGER_NAME: name,
        TRIGGER_NAMESPACE: 'default',
        PULSAR_BROKER: pulsar.serviceUrl,
        PULSAR_TOPIC: topic,
        KUBELESS_FUNCTION: fnUrl,
        DISPATCH_CONCURRENCY: '2',
        ERROR_BACKOFF_DELAY_INITIAL: '0.02',
        ERROR_BACKOFF_DELAY_MAX: '0.1',
        ...env,
      },
      opts,
    );
    const metric = (m: string, labels: Record<string, string> = {}) => metricValue(metrics, m, labels);
    return { topic, subscription, trigger, metric };
  }

  /** Runs `payloads` through a dispatcher for `fnUrl` until all are delivered, each in one attempt. */
  async function deliverAll(fnUrl: string, payloads: Uint8Array[]) {
    const r = await run(
      fnUrl,
      payloads.map((payload) => ({ payload })),
    );
    try {
      await until(
        async () => (await r.metric('kpt_dispatcher_messages_delivered_total')) === payloads.length,
        'all delivered',
      );
      assert.equal(
        await r.metric('kpt_dispatcher_delivery_attempts_total', { outcome: 'success' }),
        payloads.length,
        'one attempt each',
      );
    } finally {
      await r.trigger.stop();
    }
  }

  test('307 to another path: the final target gets the same POST, byte for byte', async () => {
    const marker = uniqueName('p307');
    fn.handler = (hit, res) =>
      hit.path === `/${marker}` ? redirect(res, 307, `${marker}/final`) : res.writeHead(200).end();
    const payload = binary(marker);
    await deliverAll(fn.url(`/${marker}`), [payload]);
    const [first] = fn.on(`/${marker}`);
    const [final] = fn.on(`/${marker}/final`);
    assert.ok(first && final);
    assert.ok(final.body.equals(payload), 'binary payload unchanged at the final target');
    assert.deepEqual(request(final), request(first), 'method, body and headers as first sent');
    assert.equal(final.headers['event-id'] !== undefined, true);
  });

  test('308 to another port: delivered there on its own kept-alive connections', async () => {
    const marker = uniqueName('p308');
    fn.handler = (_hit, res) => redirect(res, 308, other.url(`/${marker}`));
    other.handler = (_hit, res) => res.writeHead(200).end();
    const acceptedBefore = other.accepted;
    const payloads = Array.from({ length: 20 }, (_, i) => binary(`${marker}-${i}`));
    await deliverAll(fn.url('/p308'), payloads);
    const hits = other.on(`/${marker}`);
    assert.equal(hits.length, 20);
    const bodies = new Set(hits.map((h) => h.body.toString('base64')));
    for (const p of payloads) assert.ok(bodies.has(Buffer.from(p).toString('base64')), 'each payload exact');
    // Concurrency 2: at most two connections to the target, however many messages.
    assert.ok(other.accepted - acceptedBefore <= 2, `${other.accepted - acceptedBefore} connections for 20`);
  });

  test('302: still a POST with its body (not a GET, unlike the seed)', async () => {
    const marker = uniqueName('p302');
    fn.handler = (hit, res) =>
      hit.path === `/${marker}` ? redirect(res, 302, `/${marker}/found`) : res.writeHead(200).end();
    const payload = binary(marker);
    await deliverAll(fn.url(`/${marker}`), [payload]);
    const [first] = fn.on(`/${marker}`);
    const [final] = fn.on(`/${marker}/found`);
    assert.ok(first && final);
    assert.equal(final.method, 'POST');
    assert.deepEqual(request(final), request(first));
  });

  test(`a chain of ${MAX_REDIRECTS} (across ports, http → https) is delivered`, async () => {
    const marker = uniqueName('chain');
    // fn → other → fn → secure → secure → secure: five redirects.
    const hops = [
      other.url(`/${marker}/1`),
      fn.url(`/${marker}/2`),
      secure.url(`/${marker}/3`, 'localhost'),
      `/${marker}/4`,
      // Relative to /<marker>/4.
      '5',
    ];
    const at = (hit: Hit) => /\/(\d)$/.exec(hit.path)?.[1];
    fn.handler = (hit, res) => redirect(res, 307, hops[hit.path === `/${marker}` ? 0 : 2]!);
    other.handler = (_hit, res) => redirect(res, 308, hops[1]!);
    secure.handler = (hit, res) => {
      const n = at(hit);
      if (n === '3') redirect(res, 301, hops[3]!);
      else if (n === '4') redirect(res, 302, hops[4]!);
      else res.writeHead(200).end();
    };
    const payload = binary(marker);
    const r = await run(fn.url(`/${marker}`), [{ payload }], {}, { ca: tlsFiles().ca });
    try {
      await until(async () => (await r.metric('kpt_dispatcher_messages_delivered_total')) === 1, 'delivered');
    } finally {
      await r.trigger.stop();
    }
    const [first] = fn.on(`/${marker}`);
    const [final] = secure.on(`/${marker}/5`);
    assert.ok(first && final, 'the final target was reached');
    assert.ok(final.body.equals(payload));
    assert.deepEqual(request(final), request(first));
  });

  test(`a chain of ${MAX_REDIRECTS + 1} fails (redirect_limit), is retried, and is delivered once the function stops redirecting`, async () => {
    const marker = uniqueName('long');
    let redirecting = true;
    fn.handler = (hit, res) => {
      if (hit.path === `/${marker}` && !redirecting) {
        res.writeHead(200).end();
        return;
      }
      const n = Number(/\/(\d+)$/.exec(hit.path)?.[1] ?? 0);
      redirect(res, 307, `/${marker}/hop/${n + 1}`);
    };
    const payload = binary(marker);
    const r = await run(fn.url(`/${marker}`), [{ payload }]);
    try {
      await until(
        async () =>
          (await r.metric('kpt_dispatcher_delivery_attempts_total', { outcome: 'redirect_limit' })) >= 3,
        'three attempts ended in redirect_limit',
      );
      assert.ok((await r.metric('kpt_dispatcher_retries_total')) >= 2, 'each one retried');
      assert.equal(await r.metric('kpt_dispatcher_messages_delivered_total'), 0, 'not acked meanwhile');
      assert.equal(
        fn.on(`/${marker}/hop/${MAX_REDIRECTS + 1}`).length,
        0,
        'the sixth hop is never requested',
      );
      redirecting = false;
      await until(async () => (await r.metric('kpt_dispatcher_messages_delivered_total')) === 1, 'delivered');
      assert.equal(await r.metric('kpt_dispatcher_delivery_attempts_total', { outcome: 'success' }), 1);
    } finally {
      await r.trigger.stop();
    }
  });

  test('https → http is refused (redirect_refused), retried per the policy, then dead-lettered', async () => {
    const marker = uniqueName('down');
    secure.handler = (_hit, res) => redirect(res, 307, other.url(`/${marker}`));
    const payload = binary(marker);
    const r = await run(
      secure.url(`/${marker}`, 'localhost'),
      [{ payload, key: 'k-down' }],
      { DISPATCH_MAX_ATTEMPTS: '2' },
      { ca: tlsFiles().ca },
    );
    const dlqTopic = `${r.topic}-${r.subscription}-DLQ`;
    await ensureSubscription(pulsar.serviceUrl, dlqTopic, 'inspect');
    const client = new PulsarClient({ serviceUrl: pulsar.serviceUrl });
    try {
      await until(
        async () => (await r.metric('kpt_dispatcher_messages_dead_lettered_total')) === 1,
        'dead-lettered',
      );
      assert.equal(
        await r.metric('kpt_dispatcher_delivery_attempts_total', { outcome: 'redirect_refused' }),
        2,
      );
      assert.equal(await r.metric('kpt_dispatcher_messages_delivered_total'), 0);
      assert.equal(secure.on(`/${marker}`).length, 2, 'two attempts at the https function');
      assert.equal(other.on(`/${marker}`).length, 0, 'nothing went over plain http');
      const inspect = await client.subscribe({
        topic: dlqTopic,
        subscription: 'inspect',
        subscriptionType: 'Shared',
      });
      const m = await inspect.receive();
      assert.ok(Buffer.from(m.payload).equals(payload));
      assert.equal(m.key, 'k-down');
      assert.equal(m.properties.DLQ_ATTEMPTS, '2');
      assert.match(
        m.properties.DLQ_LAST_ERROR ?? '',
        /^redirect_refused: HTTP 307 from https:\/\/localhost:\d+\/.*: redirect from https to http/,
      );
      await inspect.ack(m);
    } finally {
      await r.trigger.stop();
      await client.close();
    }
  });
});
