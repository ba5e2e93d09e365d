// The dispatcher as a child process, the way a Deployment runs it: environment in, signals, exit codes.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { PulsarClient } from '../../../src/pulsar/index.ts';
import { pulsarPlain } from '../../support/env.ts';
import {
  type Child,
  ensureSubscription,
  FunctionServer,
  freePort,
  sleep,
  spawnDispatcher,
  uniqueName,
  until,
} from './support.ts';

async function scrape(port: number, name: string): Promise<number> {
  try {
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    let total = 0;
    for (const line of text.split('\n'))
      if (line.startsWith(`${name}{`)) total += Number(line.split(' ').at(-1));
    return total;
  } catch {
    return Number.NaN;
  }
}

async function ready(port: number): Promise<boolean> {
  try {
    return (await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200;
  } catch {
    return false;
  }
}

/** Produces `n` messages with bodies "<prefix>-<i>" at a steady pace in the background. */
function stream(serviceUrl: string, topic: string, prefix: string, n: number, chunk = 500): Promise<void> {
  return (async () => {
    const client = new PulsarClient({ serviceUrl });
    const producer = await client.createProducer({ topic, batchingMaxMessages: 1, maxPendingMessages: 2000 });
    for (let i = 0; i < n; i += chunk) {
      const sends = [];
      for (let j = i; j < Math.min(n, i + chunk); j++)
        sends.push(producer.send({ payload: new TextEncoder().encode(`${prefix}-${j}`) }));
      await Promise.all(sends);
    }
    await producer.close();
    await client.close();
  })();
}

function baseEnv(
  pulsarUrl: string,
  topic: string,
  name: string,
  fnUrl: string,
  port: number,
): Record<string, string> {
  return {
    TRIGGER_NAME: name,
    TRIGGER_NAMESPACE: 'default',
    PULSAR_BROKER: pulsarUrl,
    PULSAR_TOPIC: topic,
    KUBELESS_FUNCTION: fnUrl,
    DISPATCHER_PORT: String(port),
    LOG_LEVEL: 'warn',
    ERROR_BACKOFF_DELAY_INITIAL: '0.05',
    ERROR_BACKOFF_DELAY_MAX: '0.5',
  };
}

describe('dispatcher process', () => {
  const pulsar = pulsarPlain();

  test('a bad environment: exit code 2 and one message naming each bad variable, token never printed', async () => {
    const child = spawnDispatcher({
      PULSAR_AUTH_TOKEN: 'super-secret-token-value',
      PULSAR_TOPIC: 'persistent://public/default/ok',
      KUBELESS_FUNCTION: 'ftp://nope',
      DISPATCH_CONCURRENCY: 'many',
      DISPATCH_ORDERING: 'sorted',
      ERROR_BACKOFF_DELAY_MAX: '-1',
      TRIGGER_NAME: 't',
    });
    const { code } = await child.exited;
    assert.equal(code, 2);
    const err = child.stderr();
    for (const v of [
      'PULSAR_BROKER',
      'KUBELESS_FUNCTION',
      'DISPATCH_CONCURRENCY',
      'DISPATCH_ORDERING',
      'ERROR_BACKOFF_DELAY_MAX',
    ]) {
      assert.match(err, new RegExp(`- ${v}: `), `names ${v}`);
    }
    assert.doesNotMatch(err, /super-secret-token-value/);
    assert.doesNotMatch(err, /\n\s+at /, 'no stack trace');
    assert.equal(child.stdout(), '');
  });

  test('kill -9 ten times while 20,000 messages stream: each reaches the function, duplicates bounded', async (t) => {
    const fn = await FunctionServer.start();
    const topic = `persistent://public/default/${uniqueName('kill')}`;
    const name = uniqueName('trig');
    await ensureSubscription(pulsar.serviceUrl, topic, `${name}-default`);
    const total = 20_000;
    const seen = new Set<string>();
    let received = 0;
    fn.reply = (r) => {
      received++;
      seen.add(r.body.toString());
      return { status: 200 };
    };
    const producing = stream(pulsar.serviceUrl, topic, 'k', total);
    const spawnOne = async (): Promise<Child> =>
      spawnDispatcher({
        ...baseEnv(pulsar.serviceUrl, topic, name, fn.url, await freePort()),
        DISPATCH_CONCURRENCY: '32',
      });
    let child = await spawnOne();
    let kills = 0;
    try {
      while (kills < 10) {
        const before = received;
        // Kill while messages are flowing through this process.
        await until(
          () => received >= before + 200 || seen.size >= total,
          'deliveries through this process',
          60_000,
        );
        if (seen.size >= total) break;
        await sleep(Math.floor(Math.random() * 50));
        child.proc.kill('SIGKILL');
        await child.exited;
        kills++;
        child = await spawnOne();
      }
      await producing;
      await until(() => seen.size >= total, `all ${total} delivered (seen ${seen.size})`, 120_000);
      for (let i = 0; i < total; i++) assert.ok(seen.has(`k-${i}`), `k-${i} delivered`);
      const duplicates = received - total;
      t.diagnostic(`kills: ${kills}, deliveries: ${received}, duplicates: ${duplicates}`);
      // Per kill, at most what the broker had handed to that process: its receiver queue and held messages.
      const perProcess = 256 + 128;
      assert.ok(duplicates <= kills * perProcess, `duplicates ${duplicates} within ${kills} × ${perProcess}`);
      assert.ok(kills >= 5, `killed ${kills} times mid-stream`);
      child.proc.kill('SIGTERM');
      assert.equal((await child.exited).code, 0);
    } finally {
      child.proc.kill('SIGKILL');
      await fn.close();
    }
  });

  test('two replicas on a Shared subscription split the work; SIGTERM during a stream loses nothing', async () => {
    const fn = await FunctionServer.start();
    fn.reply = () => ({ status: 200, delayMs: 1 });
    const topic = `persistent://public/default/${uniqueName('repl')}`;
    const name = uniqueName('trig');
    await ensureSubscription(pulsar.serviceUrl, topic, `${name}-default`);
    const [portA, portB] = [await freePort(), await freePort()];
    const a = spawnDispatcher({
      ...baseEnv(pulsar.serviceUrl, topic, name, fn.url, portA),
      DISPATCH_CONCURRENCY: '8',
      LOG_LEVEL: 'info',
    });
    const b = spawnDispatcher({
      ...baseEnv(pulsar.serviceUrl, topic, name, fn.url, portB),
      DISPATCH_CONCURRENCY: '8',
    });
    try {
      await until(async () => (await ready(portA)) && (await ready(portB)), 'both ready');
      const total = 6000;
      const producing = stream(pulsar.serviceUrl, topic, 'r', total, 250);
      await until(() => fn.distinctBodies().length >= 1500, 'stream under way');
      const deliveredA = await scrape(portA, 'kpt_dispatcher_messages_delivered_total');
      const deliveredB = await scrape(portB, 'kpt_dispatcher_messages_delivered_total');
      assert.ok(deliveredA > 0 && deliveredB > 0, `both replicas work: ${deliveredA} / ${deliveredB}`);
      a.proc.kill('SIGTERM');
      const exit = await a.exited;
      assert.equal(exit.code, 0, `exit 0 after SIGTERM: ${a.stderr()}`);
      assert.match(a.stdout(), /"msg":"stopped"/);
      await producing;
      await until(() => fn.distinctBodies().length >= total, 'every message delivered', 120_000);
      const bodies = new Set(fn.distinctBodies());
      for (let i = 0; i < total; i++) assert.ok(bodies.has(`r-${i}`), `r-${i}`);
    } finally {
      a.proc.kill('SIGKILL');
      b.proc.kill('SIGKILL');
      await fn.close();
    }
  });
});
