// Benchmark (not a test): consume rate per compression codec (LZ4, ZLIB, ZSTD, SNAPPY, and NONE as the
// baseline) and for a 4-partition topic, our client next to the Java client reading the same pre-produced
// backlog in the same run, with the ratio. Two Java figures: pulsar-perf consume (its aggregated rate, which
// includes its start-up and subscribe), and the Java client timed exactly like ours (test/support/java
// KptJava bench-consume: from subscribed to the last message acked); the ratio uses the latter.
//
//   PULSAR_SERVICE_URL=pulsar://... PULSAR_ADMIN_URL=http://... PULSAR_HOME=/path/to/apache-pulsar \
//   BENCH_MESSAGES=100000 node bench/client-codecs.ts
//
// Starts no server. Prints a table and one `BENCH {...}` line per figure (see testenv/bench.ts).
// bench-servers: pulsar (make bench starts only these for it: testenv/bench.ts)

import { join } from 'node:path';
import { type CompressionName, PulsarClient } from '../src/pulsar/index.ts';
import { kptJavaClasses } from '../test/support/java.ts';
import { javaBenchConsume, need, run } from './support.lib.ts';

const serviceUrl = need('PULSAR_SERVICE_URL');
const adminUrl = need('PULSAR_ADMIN_URL');
const home = need('PULSAR_HOME');
const N = Number(process.env.BENCH_MESSAGES ?? 200_000);
const SIZE = 1024;

/** A payload that compresses like typical JSON events (not all zeros, not random). */
function payload(i: number): Uint8Array {
  const base = JSON.stringify({
    id: i,
    type: 'order.created',
    customer: `customer-${i % 977}`,
    items: [
      { sku: `sku-${i % 131}`, qty: (i % 7) + 1 },
      { sku: `sku-${i % 17}`, qty: 1 },
    ],
    note: 'kubeless pulsar trigger benchmark payload',
  });
  const out = new Uint8Array(SIZE);
  const b = new TextEncoder().encode(base);
  for (let o = 0; o < SIZE; o += b.length) out.set(b.subarray(0, Math.min(b.length, SIZE - o)), o);
  return out;
}

async function createPartitioned(topic: string, partitions: number): Promise<void> {
  const name = topic.split('/').pop();
  const res = await fetch(`${adminUrl}/admin/v2/persistent/public/default/${name}/partitions`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(partitions),
  });
  if (res.status >= 300) throw new Error(`creating ${topic}: HTTP ${res.status} ${await res.text()}`);
}

interface Scenario {
  name: string;
  codec: CompressionName;
  partitions: number;
  /** Not reported: warms our JIT and the broker before the first measured scenario (the first one ran cold). */
  warmup?: boolean;
}

const scenarios: Scenario[] = [
  { name: 'warm-up', codec: 'NONE', partitions: 0, warmup: true },
  { name: 'NONE', codec: 'NONE', partitions: 0 },
  { name: 'LZ4', codec: 'LZ4', partitions: 0 },
  { name: 'ZLIB', codec: 'ZLIB', partitions: 0 },
  { name: 'ZSTD', codec: 'ZSTD', partitions: 0 },
  { name: 'SNAPPY', codec: 'SNAPPY', partitions: 0 },
  { name: '4 partitions (LZ4)', codec: 'LZ4', partitions: 4 },
];

const client = new PulsarClient({ serviceUrl, operationTimeoutMs: 60_000 });
const results: { s: Scenario; ours: number; java: number; perf: number }[] = [];
const classes = kptJavaClasses(home);
const payloads = Array.from({ length: 256 }, (_, i) => payload(i));

for (const s of scenarios) {
  const topic = `persistent://public/default/bench-codec-${s.name.replace(/\W+/g, '-').toLowerCase()}-${Date.now().toString(36)}`;
  if (s.partitions > 0) await createPartitioned(topic, s.partitions);
  for (const sub of ['ts', 'java', 'java-timed']) {
    const c = await client.subscribe({ topic, subscription: sub, initialPosition: 'Earliest' });
    await c.close();
  }
  const producer = await client.createProducer({
    topic,
    compressionType: s.codec,
    batchingMaxMessages: 1000,
    batchingMaxBytes: 128 * 1024,
    batchingMaxDelayMs: 10,
    maxPendingMessages: 10_000,
  });
  const inflight: Promise<unknown>[] = [];
  for (let i = 0; i < N; i++) {
    inflight.push(producer.send({ payload: payloads[i % payloads.length] as Uint8Array, key: `k${i % 64}` }));
    if (inflight.length >= 5000) await Promise.all(inflight.splice(0));
  }
  await Promise.all(inflight);
  await producer.close();

  const consumer = await client.subscribe({ topic, subscription: 'ts', receiverQueueSize: 1000 });
  const t0 = performance.now();
  for (let i = 0; i < N; i++) {
    const m = await consumer.receive();
    await consumer.ack(m);
  }
  const ours = N / ((performance.now() - t0) / 1000);
  await consumer.close();
  if (s.warmup) {
    console.error(`warm-up: ours ${Math.round(ours)} msg/s (not reported)`);
    continue;
  }

  const out = await run(
    join(home, 'bin/pulsar-perf'),
    ['consume', '-u', serviceUrl, '-ss', 'java', '-sp', 'Earliest', '-m', String(N), '-q', '1000', topic],
    { PULSAR_MEM: '-Xmx512m' },
  );
  const m = /Aggregated throughput stats --- (\d+) records received --- ([\d.]+) msg\/s/.exec(out);
  if (!m) throw new Error(`pulsar-perf consume ${s.name}: no summary\n${out.slice(-3000)}`);
  const perf = Number(m[2]);
  const timed = await javaBenchConsume({ classes, home, serviceUrl, topic, sub: 'java-timed', count: N });
  const e = /ELAPSED ([\d.]+) (\d+)/.exec(timed);
  if (!e) throw new Error(`KptJava bench-consume ${s.name}: no result\n${timed.slice(-3000)}`);
  const java = Number(e[2]) / Number(e[1]);
  results.push({ s, ours, java, perf });
  console.error(
    `${s.name}: ours ${Math.round(ours)} msg/s, Java ${Math.round(java)} msg/s (pulsar-perf ${Math.round(perf)})`,
  );
}
await client.close();

console.log(`\nconsume, ${N} messages of ${SIZE} bytes, batched, keyed (${serviceUrl})\n`);
const head = [
  'scenario'.padEnd(22),
  'ours msg/s'.padStart(11),
  'java msg/s'.padStart(11),
  'ratio'.padStart(6),
];
console.log(`${head.join(' ')} ${'pulsar-perf'.padStart(12)}`);
for (const r of results) {
  const cols = [
    r.s.name.padEnd(22),
    String(Math.round(r.ours)).padStart(11),
    String(Math.round(r.java)).padStart(11),
    (r.ours / r.java).toFixed(2).padStart(6),
    String(Math.round(r.perf)).padStart(12),
  ];
  console.log(cols.join(' '));
}
for (const r of results) {
  const ratio = r.ours / r.java;
  console.log(
    `BENCH ${JSON.stringify({
      name: `consume 1 KiB, ${r.s.name}`,
      value: Math.round(r.ours),
      unit: 'msg/s',
      limit: Math.round(r.java),
      limitName: `Java client timed like ours, same broker and backlog (pulsar-perf consume: ${Math.round(r.perf)} msg/s)`,
      ratio: Number(ratio.toFixed(3)),
      goal: 'ratio >= 0.8',
      ok: ratio >= 0.8,
    })}`,
  );
}
