// Benchmark (not a test): consume rate of 1 KiB messages, batched, from one topic, for our client, the Java
// client (pulsar-perf consume) and the Python client from PyPI (pulsar-client, C++ core), each reading the same
// pre-produced backlog; and produce rate for ours and Java's (pulsar-perf produce).
//
//   PULSAR_SERVICE_URL=pulsar://... PULSAR_ADMIN_URL=http://... PULSAR_HOME=/path/to/apache-pulsar \
//   KPT_PY_VENV=~/.cache/kpt/venv BENCH_MESSAGES=200000 node bench/client.ts
//
// Starts no server: it takes the broker from the environment. The Python client must be installed in the venv
// (python3 -m venv ~/.cache/kpt/venv && ~/.cache/kpt/venv/bin/pip install pulsar-client).

import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { PulsarClient } from '../src/pulsar/index.ts';

const serviceUrl = need('PULSAR_SERVICE_URL');
const adminUrl = need('PULSAR_ADMIN_URL');
const home = need('PULSAR_HOME');
const venv = process.env.KPT_PY_VENV ?? join(homedir(), '.cache/kpt/venv');
const N = Number(process.env.BENCH_MESSAGES ?? 200_000);
const SIZE = 1024;

function need(name: string): string {
  const v = process.env[name];
  if (!v) {
    console.error(`bench/client.ts: ${name} is not set (see the header of this file)`);
    process.exit(2);
  }
  return v;
}

function run(cmd: string, args: string[], env: Record<string, string> = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      cmd,
      args,
      { maxBuffer: 64 * 1024 * 1024, timeout: 600_000, env: { ...process.env, ...env } },
      (err, stdout, stderr) =>
        err
          ? reject(new Error(`${cmd} failed: ${err.message}\n${stderr.slice(-3000)}`))
          : resolve(stdout + stderr),
    );
  });
}

interface Row {
  what: string;
  msgs: number;
  seconds: number;
}

const rows: Row[] = [];
const topic = `persistent://public/default/bench-${Date.now().toString(36)}`;
const client = new PulsarClient({ serviceUrl, operationTimeoutMs: 60_000 });

// Subscriptions first, so the backlog is kept for each reader.
for (const sub of ['ts', 'java', 'py']) {
  const c = await client.subscribe({ topic, subscription: sub, initialPosition: 'Earliest' });
  await c.close();
}

// Produce: ours (this also writes the backlog every consumer reads).
{
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
  rows.push({ what: 'produce  ts (ours)', msgs: N, seconds: (performance.now() - t0) / 1000 });
  await producer.close();
}

// Produce: Java (pulsar-perf, its own measurement, to another topic).
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
      `${topic}-java-produce`,
    ],
    { PULSAR_MEM: '-Xmx512m' },
  );
  const m = /Aggregated throughput stats --- (\d+) records sent --- ([\d.]+) msg\/s/.exec(out);
  if (!m) throw new Error(`pulsar-perf produce: no summary\n${out.slice(-3000)}`);
  rows.push({
    what: 'produce  java (pulsar-perf)',
    msgs: Number(m[1]),
    seconds: Number(m[1]) / Number(m[2]),
  });
}

// Consume: ours.
{
  const consumer = await client.subscribe({ topic, subscription: 'ts', receiverQueueSize: 1000 });
  const t0 = performance.now();
  for (let i = 0; i < N; i++) {
    const m = await consumer.receive();
    await consumer.ack(m);
  }
  rows.push({ what: 'consume  ts (ours)', msgs: N, seconds: (performance.now() - t0) / 1000 });
  await consumer.close();
}
await client.close();

// Consume: Java.
{
  const out = await run(
    join(home, 'bin/pulsar-perf'),
    ['consume', '-u', serviceUrl, '-ss', 'java', '-sp', 'Earliest', '-m', String(N), '-q', '1000', topic],
    { PULSAR_MEM: '-Xmx512m' },
  );
  const m = /Aggregated throughput stats --- (\d+) records received --- ([\d.]+) msg\/s/.exec(out);
  if (!m) throw new Error(`pulsar-perf consume: no summary\n${out.slice(-3000)}`);
  rows.push({
    what: 'consume  java (pulsar-perf)',
    msgs: Number(m[1]),
    seconds: Number(m[1]) / Number(m[2]),
  });
}

// Consume: Python (C++ core).
{
  const python = join(venv, 'bin/python');
  if (!existsSync(python)) {
    console.error(`no Python venv at ${venv}: the Python row is skipped (see the header of this file)`);
  } else {
    const script = `
import pulsar, time, sys
c = pulsar.Client(sys.argv[1])
consumer = c.subscribe(sys.argv[2], 'py', initial_position=pulsar.InitialPosition.Earliest, receiver_queue_size=1000)
n = int(sys.argv[3])
t0 = time.perf_counter()
for i in range(n):
    m = consumer.receive()
    consumer.acknowledge(m)
print('elapsed', time.perf_counter() - t0)
consumer.close(); c.close()
`;
    const out = await run(python, ['-c', script, serviceUrl, topic, String(N)]);
    const m = /elapsed ([\d.]+)/.exec(out);
    if (!m) throw new Error(`python consumer: no result\n${out.slice(-3000)}`);
    rows.push({ what: 'consume  python (pulsar-client, C++)', msgs: N, seconds: Number(m[1]) });
  }
}

const rate = (r: Row) => r.msgs / r.seconds;
const javaOf = (r: Row) => rows.find((x) => x.what.startsWith(r.what.slice(0, 8)) && x.what.includes('java'));
console.log(`\n${N} messages of ${SIZE} bytes, batched, one topic (${serviceUrl})\n`);
console.log(`${'what'.padEnd(38)} ${'msg/s'.padStart(10)} ${'MB/s'.padStart(8)} ${'vs Java'.padStart(8)}`);
for (const r of rows) {
  const j = javaOf(r);
  const ratio = j ? (rate(r) / rate(j)).toFixed(2) : '-';
  console.log(
    `${r.what.padEnd(38)} ${Math.round(rate(r)).toString().padStart(10)} ${((rate(r) * SIZE) / 1e6).toFixed(1).padStart(8)} ${ratio.padStart(8)}`,
  );
}
