// Hostile functions, end to end: the dispatcher as a child process (the Deployment's command and heap flags), the
// real broker, and a real HTTP server on loopback that misbehaves for the messages of one key ("bad") and answers
// the others normally. With ordering by key and a few requests in flight, the other keys' messages are delivered
// while "bad" is stuck; the dispatcher's resident memory stays within a bound while the function streams
// hundreds of MiB at it; nothing is acked that was not delivered; once the function behaves, "bad" is delivered.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { describe, test } from 'node:test';
import { dispatcherNodeOptions } from '../../../src/trigger/node-options.ts';
import { pulsarPlain } from '../../support/env.ts';
import { endless, type Hit, Site, trickle } from './sites.ts';
import {
  type Child,
  ensureSubscription,
  freePort,
  produce,
  spawnDispatcher,
  uniqueName,
  until,
} from './support.ts';

const MiB = 2 ** 20;
/** Growth of the dispatcher's resident memory allowed while the function misbehaves. */
const RSS_BOUND = 64 * MiB;

const enc = (s: string) => new TextEncoder().encode(s);

async function scrape(port: number, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`)))
      total += Number(line.split(' ').at(-1));
  }
  return total;
}

async function ready(port: number): Promise<boolean> {
  try {
    return (await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200;
  } catch {
    return false;
  }
}

/** Resident memory of a process (VmRSS of /proc/<pid>/status), bytes. */
function rss(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for process ${pid}`);
  return Number(m[1]) * 1024;
}

/** Samples a process's RSS until stopped; returns the highest value seen. */
function sampleRss(pid: number): { stop: () => number } {
  let max = rss(pid);
  const timer = setInterval(() => {
    try {
      max = Math.max(max, rss(pid));
    } catch {
      // The process is gone; its last samples stand.
    }
  }, 20);
  return {
    stop: () => {
      clearInterval(timer);
      return max;
    },
  };
}

interface Scenario {
  /** What the function does with a "bad" request while hostile. */
  misbehave: (hit: Hit, res: ServerResponse, req: import('node:http').IncomingMessage) => void;
  /** Messages of key "bad" produced. */
  bad: number;
  /** Whether "bad" gets through anyway (a 2xx status stands, however its body ends). */
  delivered: boolean;
  /** A positive signal that the hostile behaviour has run its course (on top of the other keys' deliveries). */
  enough: (s: { site: Site; port: number; badHits: number }) => Promise<boolean> | boolean;
}

describe('hostile functions: the dispatcher keeps delivering, within its memory', () => {
  const pulsar = pulsarPlain();

  async function scenario(t: import('node:test').TestContext, s: Scenario): Promise<void> {
    const site = await Site.start();
    let hostile = true;
    site.handler = (hit, res, req) => {
      if (hit.headers['pulsar-key'] === 'bad' && hostile) s.misbehave(hit, res, req);
      else res.writeHead(200).end('ok');
    };
    const badHits = () => site.hits.filter((h) => h.headers['pulsar-key'] === 'bad').length;
    const topic = `persistent://public/default/${uniqueName('hostile')}`;
    const name = uniqueName('trig');
    await ensureSubscription(pulsar.serviceUrl, topic, `${name}-default`);
    const port = await freePort();
    const child: Child = spawnDispatcher({
      TRIGGER_NAME: name,
      TRIGGER_NAMESPACE: 'default',
      PULSAR_BROKER: pulsar.serviceUrl,
      PULSAR_TOPIC: topic,
      KUBELESS_FUNCTION: site.url('/'),
      DISPATCHER_PORT: String(port),
      LOG_LEVEL: 'warn',
      DISPATCH_ORDERING: 'key',
      DISPATCH_CONCURRENCY: '4',
      DISPATCH_TIMEOUT_SECONDS: '1',
      ERROR_BACKOFF_DELAY_INITIAL: '0.02',
      ERROR_BACKOFF_DELAY_MAX: '0.1',
      // As the rendered Deployment runs it (default memory limit).
      NODE_OPTIONS: dispatcherNodeOptions(undefined),
    });
    const delivered = () => scrape(port, 'kpt_dispatcher_messages_delivered_total');
    const good = (from: number, n: number) =>
      Array.from({ length: n }, (_, i) => ({
        payload: enc(`good-${from + i}`),
        key: `k-${(from + i) % 10}`,
      }));
    try {
      await until(() => ready(port), 'dispatcher ready');
      // Warm-up: the process at work, then its resident memory is the baseline.
      await produce(pulsar.serviceUrl, topic, good(0, 40));
      await until(async () => (await delivered()) === 40, 'warm-up delivered');
      const baseline = rss(child.proc.pid!);
      const sampler = sampleRss(child.proc.pid!);

      await produce(
        pulsar.serviceUrl,
        topic,
        Array.from({ length: s.bad }, (_, i) => ({ payload: enc(`bad-${i}`), key: 'bad' })),
      );
      await until(() => badHits() >= 1, 'the function got a bad request');
      // Other keys while "bad" is being attempted.
      await produce(pulsar.serviceUrl, topic, good(40, 100));
      const expected = 140 + (s.delivered ? s.bad : 0);
      await until(async () => (await delivered()) === expected, 'the other keys delivered');
      await until(() => s.enough({ site, port, badHits: badHits() }), 'the hostile behaviour ran its course');
      const peak = sampler.stop();
      t.diagnostic(
        `RSS baseline ${(baseline / MiB).toFixed(1)} MiB, peak ${(peak / MiB).toFixed(1)} MiB; ` +
          `bad requests ${badHits()}; the function wrote ${(site.offered / MiB).toFixed(1)} MiB on closed connections`,
      );
      assert.ok(
        peak - baseline < RSS_BOUND,
        `RSS grew by ${((peak - baseline) / MiB).toFixed(1)} MiB (bound ${RSS_BOUND / MiB} MiB)`,
      );
      assert.equal(await delivered(), expected, 'nothing acked beyond what was delivered');
      for (let i = 0; i < 140; i++) assert.ok(site.hits.some((h) => h.body.toString() === `good-${i}`));

      if (!s.delivered) {
        assert.ok(badHits() >= 2, `"bad" was attempted again (${badHits()} requests)`);
        assert.ok((await scrape(port, 'kpt_dispatcher_retries_total')) >= 2);
        hostile = false;
        await until(
          async () => (await delivered()) === 140 + s.bad,
          '"bad" delivered once the function behaves',
        );
      }
      child.proc.kill('SIGTERM');
      const exit = await child.exited;
      assert.equal(exit.code, 0, child.stderr());
    } finally {
      child.proc.kill('SIGKILL');
      await site.close();
    }
  }

  test('an endless error body: cut at the bound each time, retried, 200 MiB streamed at it', async (t) => {
    await scenario(t, {
      misbehave: (_hit, res) => {
        res.writeHead(500, { 'content-type': 'text/plain' });
        endless(res);
      },
      bad: 1,
      delivered: false,
      enough: ({ site }) => site.offered >= 200 * MiB,
    });
  });

  test('a huge body (1 GiB announced) on a 2xx: delivered, the body cut, memory flat', async (t) => {
    await scenario(t, {
      misbehave: (_hit, res) => {
        res.writeHead(200, { 'content-length': String(2 ** 30) });
        endless(res);
      },
      bad: 20,
      delivered: true,
      enough: ({ badHits }) => badHits >= 20,
    });
  });

  test('response headers trickled one byte a second: a timeout at the deadline, retried', async (t) => {
    await scenario(t, {
      misbehave: (_hit, _res, req) =>
        trickle(req.socket, 'HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n', 1000),
      bad: 1,
      delivered: false,
      enough: async ({ port }) =>
        (await scrape(port, 'kpt_dispatcher_delivery_attempts_total', { outcome: 'timeout' })) >= 3,
    });
  });

  test('no answer at all: a timeout at the deadline, retried', async (t) => {
    await scenario(t, {
      misbehave: () => {},
      bad: 1,
      delivered: false,
      enough: async ({ port }) =>
        (await scrape(port, 'kpt_dispatcher_delivery_attempts_total', { outcome: 'timeout' })) >= 3,
    });
  });
});
