// Interop with the Java client of the Pulsar distribution, both directions, against the real broker.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { PulsarClient } from '../../../src/pulsar/index.ts';
import { pulsarHome, pulsarPlain } from '../../support/env.ts';
import { runKptJava, sha256 } from '../../support/java.ts';
import { pulsarClientCli, receiveN, unique } from './helpers.ts';

const env = pulsarPlain();
const home = pulsarHome();
const client = new PulsarClient({ serviceUrl: env.serviceUrl, operationTimeoutMs: 30_000 });
const dir = mkdtempSync(join(tmpdir(), 'kpt-interop-'));
after(async () => {
  await client.close();
  rmSync(dir, { recursive: true, force: true });
});

/** The CLI exits 0 even when it fails to produce: check its own count. */
async function javaProduce(args: string[], expected: number): Promise<void> {
  const out = await pulsarClientCli(home, env.serviceUrl, args);
  assert.match(out, new RegExp(`\\b${expected} messages successfully produced`), out.slice(-3000));
}

test('Java produces text (batched and not) with keys and properties; ours receives each byte-exact', async () => {
  const topic = unique('persistent://public/default/java-to-ts-text');
  const consumer = await client.subscribe({ topic, subscription: 'ts', initialPosition: 'Earliest' });
  const messages = Array.from({ length: 5 }, (_, i) => `hello-${i}-été-✓`);
  const args = messages.flatMap((m) => ['-m', m]);
  // 5 messages × 20 times, batched (the CLI default), then the same without batching.
  await javaProduce(
    ['produce', topic, ...args, '-n', '20', '-k', 'key-a', '-p', 'p1=v1', '-p', 'p2=v2'],
    100,
  );
  await javaProduce(['produce', topic, ...args, '-n', '20', '-db', '-k', 'key-b', '-p', 'p3=v3'], 100);
  const got = await receiveN(consumer, 200);
  const expected = [...Array(20).fill(messages).flat(), ...Array(20).fill(messages).flat()] as string[];
  assert.deepEqual(
    got.map((m) => new TextDecoder().decode(m.payload)),
    expected,
  );
  for (const m of got.slice(0, 100)) {
    assert.equal(m.key, 'key-a');
    assert.deepEqual({ ...m.properties }, { p1: 'v1', p2: 'v2' });
    assert.ok(m.publishTime > 0);
    assert.equal(m.redeliveryCount, 0);
    assert.equal(m.topic, topic);
  }
  for (const m of got.slice(100)) {
    assert.equal(m.key, 'key-b');
    assert.deepEqual({ ...m.properties }, { p3: 'v3' });
    assert.equal(m.messageId.batchIndex, -1, 'the non-batched run arrived as single messages');
  }
  await consumer.close();
});

test('Java produces real batches (pulsar-perf, async sends); ours unpacks every message byte-exact', async () => {
  const topic = unique('persistent://public/default/java-batches');
  const consumer = await client.subscribe({ topic, subscription: 'ts', initialPosition: 'Earliest' });
  const payloadFile = join(dir, 'perf-payload.txt');
  writeFileSync(payloadFile, 'perf-payload-é-\u0001\n');
  const out = await new Promise<string>((resolve, reject) => {
    execFile(
      join(home, 'bin/pulsar-perf'),
      [
        'produce',
        '-u',
        env.serviceUrl,
        '-au',
        env.adminUrl,
        '-m',
        '300',
        '-r',
        '100000',
        '-bm',
        '50',
        '-f',
        payloadFile,
        '-set',
        topic,
      ],
      { timeout: 180_000, maxBuffer: 64 * 1024 * 1024, env: { ...process.env, PULSAR_MEM: '-Xmx256m' } },
      (err, stdout, stderr) => (err ? reject(err) : resolve(stdout + stderr)),
    );
  });
  const sent = Number(/Aggregated throughput stats --- (\d+) records sent/.exec(out)?.[1] ?? 0);
  assert.ok(sent >= 300, out.slice(-3000));
  const got = await receiveN(consumer, sent);
  for (const m of got) {
    assert.equal(new TextDecoder().decode(m.payload), 'perf-payload-é-\u0001');
    assert.ok(m.eventTime !== undefined && m.eventTime > 0, 'pulsar-perf -set sets the event time');
  }
  assert.ok(
    got.filter((m) => m.messageId.batchIndex > 0).length > 0,
    'messages came in multi-message batches',
  );
  await consumer.close();
});

test('Java produces binary files, an empty one and a 4 MiB one; ours receives them byte-exact', async () => {
  const topic = unique('persistent://public/default/java-to-ts-binary');
  const consumer = await client.subscribe({ topic, subscription: 'ts', initialPosition: 'Earliest' });
  const payloads = [
    randomBytes(1),
    Buffer.alloc(0),
    randomBytes(1000),
    Buffer.from([0, 0x0e, 0x01, 0xff, 0xfe, 0, 10, 13]),
    randomBytes(4 * 1024 * 1024),
    randomBytes(65_537),
  ];
  const files = payloads.map((p, i) => {
    const f = join(dir, `payload-${i}.bin`);
    writeFileSync(f, p);
    return f;
  });
  const fileArgs = files.flatMap((f) => ['-f', f]);
  await javaProduce(['produce', topic, ...fileArgs, '-db'], payloads.length);
  await javaProduce(['produce', topic, ...fileArgs, '-k', 'bin'], payloads.length);
  const got = await receiveN(consumer, payloads.length * 2);
  for (let i = 0; i < got.length; i++) {
    const m = got[i];
    const want = payloads[i % payloads.length] as Buffer;
    assert.ok(m);
    assert.equal(m.payload.length, want.length, `message ${i}: length`);
    assert.ok(Buffer.from(m.payload).equals(want), `message ${i}: bytes`);
  }
  assert.equal(got[payloads.length]?.key, 'bin');
  await consumer.close();
});

test('ours produces (batched and not, keys, properties, empty payload); the Java client receives every one', async () => {
  const topic = unique('persistent://public/default/ts-to-java');
  const n = 60;
  const java = pulsarClientCli(home, env.serviceUrl, [
    'consume',
    topic,
    '-s',
    'java',
    '-p',
    'Earliest',
    '-n',
    String(n),
    '-mp',
  ]);
  const batched = await client.createProducer({ topic, batchingMaxMessages: 10, batchingMaxDelayMs: 5 });
  const single = await client.createProducer({ topic, batchingMaxMessages: 1 });
  const sends: Promise<unknown>[] = [];
  for (let i = 0; i < n / 2; i++) {
    sends.push(
      batched.send({
        payload: new TextEncoder().encode(`b-${i}-ü`),
        key: `k${i % 3}`,
        properties: { idx: String(i), kind: 'batched' },
      }),
    );
  }
  await Promise.all(sends);
  for (let i = 0; i < n / 2 - 1; i++) {
    await single.send({
      payload: new TextEncoder().encode(`s-${i}`),
      key: `s${i}`,
      properties: { idx: String(i), kind: 'single' },
    });
  }
  await single.send({ payload: new Uint8Array(0), key: 'empty' });
  const out = await java;
  const lines = out.split('\n').filter((l) => l.startsWith('publishTime:'));
  assert.equal(lines.length, n, out.slice(-2000));
  const parsed = lines.map((l) => {
    const m = /key:\[(.*?)\], properties:\[(.*?)\], content:(.*?), event-time:.*message-id:(\S+?),/.exec(l);
    assert.ok(m, l);
    return { key: m[1], properties: m[2], content: m[3], id: m[4] };
  });
  for (let i = 0; i < n / 2; i++) {
    assert.equal(parsed[i]?.content, `b-${i}-ü`);
    assert.equal(parsed[i]?.key, `k${i % 3}`);
    assert.match(parsed[i]?.properties ?? '', new RegExp(`idx=${i}\\b`));
    assert.match(parsed[i]?.properties ?? '', /kind=batched/);
  }
  for (let i = 0; i < n / 2 - 1; i++) {
    assert.equal(parsed[n / 2 + i]?.content, `s-${i}`);
    assert.equal(parsed[n / 2 + i]?.key, `s${i}`);
  }
  assert.equal(parsed[n - 1]?.content, '');
  assert.equal(parsed[n - 1]?.key, 'empty');
  await batched.close();
  await single.close();
});

test('ours produces binary, empty and 4 MiB payloads (batched and not); the Java client receives each byte-exact', async () => {
  const topic = unique('persistent://public/default/ts-to-java-binary');
  const payloads = [
    randomBytes(1),
    Buffer.alloc(0),
    randomBytes(1000),
    Buffer.from([0, 0x0e, 0x01, 0xff, 0xfe, 0, 10, 13]),
    randomBytes(4 * 1024 * 1024),
    randomBytes(65_537),
  ];
  const batched = await client.createProducer({ topic, batchingMaxMessages: 10, batchingMaxDelayMs: 5 });
  const single = await client.createProducer({ topic, batchingMaxMessages: 1 });
  // Batched: sent together so the small ones share an entry (the 4 MiB one exceeds batchingMaxBytes).
  const ids = await Promise.all(
    payloads.map((payload, i) => batched.send({ payload, key: 'batched', properties: { i: String(i) } })),
  );
  assert.ok(
    ids.some((id) => id.batchIndex > 0),
    'some of the batched payloads shared an entry',
  );
  for (let i = 0; i < payloads.length; i++) {
    await single.send({
      payload: payloads[i] as Buffer,
      key: 'single',
      properties: { i: String(i + payloads.length) },
    });
  }
  await Promise.all([batched.close(), single.close()]);
  const got = await runKptJava(home, [
    'consume',
    '--url',
    env.serviceUrl,
    '--topic',
    topic,
    '--sub',
    'java',
    '--count',
    String(payloads.length * 2),
  ]);
  assert.equal(got.length, payloads.length * 2);
  for (const r of got) {
    const i = Number(r.index);
    const want = payloads[i % payloads.length] as Buffer;
    assert.equal(r.key, i < payloads.length ? 'batched' : 'single', `message ${i}: key`);
    assert.equal(r.length, want.length, `message ${i}: length`);
    assert.equal(r.sha256, sha256(want), `message ${i}: sha256`);
  }
  assert.deepEqual(
    got.map((r) => Number(r.index)).sort((a, b) => a - b),
    Array.from({ length: payloads.length * 2 }, (_, i) => i),
    'every message arrived once',
  );
});
