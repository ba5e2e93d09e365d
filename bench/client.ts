// Benchmark (not a test): consume rate of 1 KiB messages, batched, from one topic, for our client, the Java
// client and the Python client from PyPI (pulsar-client, C++ core), each reading the same pre-produced backlog
// from the same broker; and produce rate for ours and the Java client's (timed alike; pulsar-perf for reference).
//
//   PULSAR_SERVICE_URL=pulsar://... PULSAR_ADMIN_URL=http://... PULSAR_HOME=/path/to/apache-pulsar \
//   KPT_PY_VENV=~/.cache/kpt/venv BENCH_MESSAGES=200000 BENCH_ROUNDS=2 node bench/client.ts
//
// Starts no server: it takes the broker from the environment. The Python client must be installed in the venv
// (python3 -m venv ~/.cache/kpt/venv && ~/.cache/kpt/venv/bin/pip install pulsar-client); without it the
// Python figures are skipped (and said so).
//
// Fairness of the consume figures:
// - one topic, one backlog of BENCH_MESSAGES messages written once by our producer (batches of up to 1000
//   messages / 128 KiB); every reader has its own subscription, created before the backlog was written, and
//   reads exactly BENCH_MESSAGES messages from Earliest, acking each (Java acknowledgeAsync, Python acknowledge,
//   ours ack(): all three group acks and none waits for a receipt);
// - receiver queue 1000 for all of them (pulsar-perf too: -q 1000);
// - each is timed in its own process from just before its subscribe call to its last message: process start-up,
//   Python's import and the JVM's start are outside the clock; ours uses a fresh client (no warm connection);
// - readers run one after the other, never at once; BENCH_ROUNDS rounds (own subscriptions each) and the
//   order of the readers is reversed every other round, so neither broker caches nor a busy neighbour favour one
//   reader; the figure is the median of the rounds, the range is printed.
// - pulsar-perf consume is also run once for reference: its own aggregated figure, which includes its start-up
//   and subscribe; the ratios use the Java client timed like ours (test/support/java/KptJava bench-consume).
//
// Prints a table and one `BENCH {...}` line per figure (see testenv/bench.ts).
// bench-servers: pulsar (make bench starts only these for it: testenv/bench.ts)

import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { PulsarClient } from '../src/pulsar/index.ts';
import { kptJavaClasses } from '../test/support/java.ts';
import { javaBenchConsume, need, run } from './support.lib.ts';

const serviceUrl = need('PULSAR_SERVICE_URL');
const adminUrl = need('PULSAR_ADMIN_URL');
const home = need('PULSAR_HOME');
const venv = process.env.KPT_PY_VENV ?? join(homedir(), '.cache/kpt/venv');
const N = Number(process.env.BENCH_MESSAGES ?? 200_000);
const ROUNDS = Math.max(1, Number(process.env.BENCH_ROUNDS ?? 2));
const SIZE = 1024;
const QUEUE = 1000;

const topic = `persistent://public/default/bench-${Date.now().toString(36)}`;
const python = join(venv, 'bin/python');
const hasPython = existsSync(python);
type Reader = 'ts' | 'java' | 'py';
const readers: Reader[] = hasPython ? ['ts', 'java', 'py'] : ['ts', 'java'];
const subName = (r: Reader, round: number) => `${r}-${round}`;

// Subscriptions first, so the backlog is kept for each reader of each round (and one for pulsar-perf).
{
  const client = new PulsarClient({ serviceUrl, operationTimeoutMs: 60_000 });
  const subs = ['perf'];
  for (let round = 0; round < ROUNDS; round++) for (const r of readers) subs.push(subName(r, round));
  for (const sub of subs) {
    const c = await client.subscribe({ topic, subscription: sub, initialPosition: 'Earliest' });
    await c.close();
  }
  await client.close();
}

interface Produced {
  what: string;
  rate: number;
}
const produced: Produced[] = [];

// Produce: ours (this also writes the backlog every consumer reads).
{
  const client = new PulsarClient({ serviceUrl, operationTimeoutMs: 60_000 });
  const producer = await client.createProducer({
    topic,
    batchingMaxMessages: 1000,
    batchingMaxBytes: 128 * 1024,
    batchingMaxDelayMs: 10,
    maxPendingMessages: 10_000,
  });
  const payload = new Uint8Array(SIZE).fill(0x61);
  const t0 = performance.now();
  const inflight: Promise<unknown>[] = [];
  for (let i = 0; i < N; i++) {
    inflight.push(producer.send({ payload }));
    if (inflight.length >= 5000) await Promise.all(inflight.splice(0));
  }
  await Promise.all(inflight);
  produced.push({ what: 'ts (ours)', rate: N / ((performance.now() - t0) / 1000) });
  await producer.close();
  await client.close();
}

// Produce: Java, timed like ours (KptJava bench-produce: same batching and pending limits, from the first send
// to the last receipt), to another topic; and pulsar-perf produce for reference (its aggregated figure includes
// its start-up: about 3 s of 10 for 200k messages here, so it is not the limit).
const classes = kptJavaClasses(home);
{
  const out = await run('java', [
    '-Xmx512m',
    '-cp',
    `${classes}:${home}/lib/*`,
    'KptJava',
    'bench-produce',
    '--url',
    serviceUrl,
    '--topic',
    `${topic}-java-produce`,
    '--count',
    String(N),
    '--size',
    String(SIZE),
  ]);
  const e = /ELAPSED ([\d.]+) (\d+)/.exec(out);
  if (!e) throw new Error(`KptJava bench-produce: no result\n${out.slice(-3000)}`);
  produced.push({ what: 'java (client, timed like ours)', rate: Number(e[2]) / Number(e[1]) });
}
{
  const out = await run(
    join(home, 'bin/pulsar-perf'),
    [
      'produce',
      '-u',
      serviceUrl,
      '-au',
      adminUrl,
      '-m',
      String(N),
      '-s',
      String(SIZE),
      '-r',
      '10000000',
      '-bm',
      '1000',
      '-b',
      '10',
      '-o',
      '10000',
      `${topic}-perf-produce`,
    ],
    { PULSAR_MEM: '-Xmx512m' },
  );
  const m = /Aggregated throughput stats --- (\d+) records sent --- ([\d.]+) msg\/s/.exec(out);
  if (!m) throw new Error(`pulsar-perf produce: no summary\n${out.slice(-3000)}`);
  produced.push({ what: 'java (pulsar-perf produce, own)', rate: Number(m[2]) });
}

// Consume: each reader in its own process, timed from just before subscribe to its last message.
const oursScript = `
import { PulsarClient } from ${JSON.stringify(new URL('../src/pulsar/index.ts', import.meta.url).href)};
const [url, topic, sub, n, queue] = process.argv.slice(1);
const client = new PulsarClient({ serviceUrl: url, operationTimeoutMs: 60_000 });
const t0 = performance.now();
const consumer = await client.subscribe({ topic, subscription: sub, receiverQueueSize: Number(queue) });
const N = Number(n);
let i = 0;
for await (const m of consumer) {
  consumer.ack(m);
  if (++i === N) break;
}
const s = (performance.now() - t0) / 1000;
console.log('ELAPSED', s, i);
await consumer.close();
await client.close();
`;

const pyScript = `
import pulsar, time, sys
c = pulsar.Client(sys.argv[1])
n = int(sys.argv[4])
t0 = time.perf_counter()
consumer = c.subscribe(sys.argv[2], sys.argv[3], initial_position=pulsar.InitialPosition.Earliest,
                       receiver_queue_size=int(sys.argv[5]))
for i in range(n):
    m = consumer.receive()
    consumer.acknowledge(m)
print('ELAPSED', time.perf_counter() - t0, n)
consumer.close(); c.close()
`;

async function consumeOnce(r: Reader, sub: string): Promise<number> {
  let out: string;
  if (r === 'ts') {
    out = await run(process.execPath, [
      '--input-type=module',
      '-e',
      oursScript,
      serviceUrl,
      topic,
      sub,
      String(N),
      String(QUEUE),
    ]);
  } else if (r === 'java') {
    out = await javaBenchConsume({ classes, home, serviceUrl, topic, sub, count: N, queue: QUEUE });
    // KptJava reports the time after subscribe and the subscribe call apart: add them.
    const e = /ELAPSED ([\d.]+) (\d+) SUBSCRIBE ([\d.]+)/.exec(out);
    if (!e) throw new Error(`KptJava bench-consume: no result\n${out.slice(-3000)}`);
    return Number(e[2]) / (Number(e[1]) + Number(e[3]));
  } else {
    out = await run(python, ['-c', pyScript, serviceUrl, topic, sub, String(N), String(QUEUE)]);
  }
  const e = /ELAPSED ([\d.]+) (\d+)/.exec(out);
  if (!e) throw new Error(`${r} consumer: no result\n${out.slice(-3000)}`);
  return Number(e[2]) / Number(e[1]);
}

const rates: Record<Reader, number[]> = { ts: [], java: [], py: [] };
for (let round = 0; round < ROUNDS; round++) {
  const order = round % 2 === 0 ? [...readers] : [...readers].reverse();
  for (const r of order) {
    const rate = await consumeOnce(r, subName(r, round));
    rates[r].push(rate);
    console.error(`round ${round + 1}/${ROUNDS}: consume ${r} ${Math.round(rate)} msg/s`);
  }
}

// pulsar-perf consume, once, for reference (its own aggregated figure, start-up and subscribe included).
let perfRate = Number.NaN;
{
  const out = await run(
    join(home, 'bin/pulsar-perf'),
    [
      'consume',
      '-u',
      serviceUrl,
      '-ss',
      'perf',
      '-sp',
      'Earliest',
      '-m',
      String(N),
      '-q',
      String(QUEUE),
      topic,
    ],
    { PULSAR_MEM: '-Xmx512m' },
  );
  const m = /Aggregated throughput stats --- (\d+) records received --- ([\d.]+) msg\/s/.exec(out);
  if (m) perfRate = Number(m[2]);
  else console.error(`pulsar-perf consume: no summary\n${out.slice(-2000)}`);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}
const range = (xs: number[]) =>
  xs.length > 1 ? `${Math.round(Math.min(...xs))}..${Math.round(Math.max(...xs))}` : '-';

const names: Record<Reader, string> = {
  ts: 'ts (ours)',
  java: 'java (client, timed like ours)',
  py: 'python (pulsar-client, C++)',
};
console.log(`\n${N} messages of ${SIZE} bytes, batched, one topic (${serviceUrl}), ${ROUNDS} round(s)\n`);
console.log(
  [
    'how each figure is measured (same topic, same backlog of N messages, own subscription each, Earliest):',
    '  ts      own node process, fresh client; clock from just before subscribe() to the Nth message (ack() each)',
    '  java    KptJava bench-consume: client built first; clock from just before subscribe() to the Nth receive()',
    '          (acknowledgeAsync each); the JVM start-up is outside the clock',
    '  python  pulsar-client from PyPI: after import and Client(); clock from just before subscribe() to the Nth',
    '          receive() (acknowledge each)',
    '  receiver queue 1000 for all; readers run one at a time, order reversed every other round; median of rounds',
    '  pulsar-perf consume: its own aggregated figure (start-up and subscribe included), for reference',
  ].join('\n'),
);
console.log(
  `${'consume'.padEnd(34)} ${'median msg/s'.padStart(12)} ${'range'.padStart(15)} ${'MB/s'.padStart(7)}`,
);
for (const r of readers) {
  const v = median(rates[r]);
  console.log(
    `${names[r].padEnd(34)} ${String(Math.round(v)).padStart(12)} ${range(rates[r]).padStart(15)} ${((v * SIZE) / 1e6).toFixed(1).padStart(7)}`,
  );
}
console.log(`${'java (pulsar-perf consume, own)'.padEnd(34)} ${String(Math.round(perfRate)).padStart(12)}`);
console.log(`\nproduce${' '.repeat(27)} ${'msg/s'.padStart(12)}`);
for (const p of produced) console.log(`${p.what.padEnd(34)} ${String(Math.round(p.rate)).padStart(12)}`);

const ours = median(rates.ts);
const java = median(rates.java);
const figures: Record<string, unknown>[] = [
  {
    name: 'consume 1 KiB, batched, vs Java',
    value: Math.round(ours),
    unit: 'msg/s',
    limit: Math.round(java),
    limitName: `Java client timed like ours (median of ${ROUNDS}; ours ${range(rates.ts)}, Java ${range(rates.java)}; pulsar-perf consume own figure ${Math.round(perfRate)})`,
    ratio: Number((ours / java).toFixed(3)),
    goal: 'ratio >= 0.5',
    ok: ours / java >= 0.5,
  },
];
if (hasPython) {
  const py = median(rates.py);
  figures.push({
    name: 'consume 1 KiB, batched, vs Python/C++',
    value: Math.round(ours),
    unit: 'msg/s',
    limit: Math.round(py),
    limitName: `Python pulsar-client (C++ core) timed like ours (median of ${ROUNDS}; Python ${range(rates.py)})`,
    ratio: Number((ours / py).toFixed(3)),
    goal: 'ratio >= 1.0',
    ok: ours / py >= 1,
  });
} else {
  console.error(`no Python venv at ${venv}: the Python figures are skipped (see the header of this file)`);
}
const ourProduce = produced[0]?.rate ?? 0;
const javaProduce = produced[1]?.rate ?? 0;
figures.push({
  name: 'produce 1 KiB, batched',
  value: Math.round(ourProduce),
  unit: 'msg/s',
  limit: Math.round(javaProduce),
  limitName: `Java client timed like ours, same broker (one run; pulsar-perf produce own figure, start-up included: ${Math.round(produced[2]?.rate ?? 0)})`,
  ratio: Number((ourProduce / javaProduce).toFixed(3)),
});
for (const f of figures) console.log(`BENCH ${JSON.stringify(f)}`);
