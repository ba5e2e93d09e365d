// One raw limit of bench/dispatcher.ts, measured in a child process started the way the dispatcher is (same
// NODE_OPTIONS, its own process and event loop), so the limits and the dispatcher run under the same conditions.
//   node bench/dispatcher/limit.ts http URL N CONCURRENCY SIZE
//       the dispatcher's HTTP client (src/dispatcher/http.ts) posts N bodies of SIZE bytes with the headers
//       buildHeaders() makes for such a message, CONCURRENCY in flight, to the function at URL; no Pulsar.
//   node bench/dispatcher/limit.ts consume SERVICE_URL TOPIC SUBSCRIPTION N RECEIVER_QUEUE
//       our Pulsar client reads N messages and acks each at once; no HTTP.
// Prints one JSON line: { rate } in msg/s.

import { createFunctionClient } from '../../src/dispatcher/http.ts';
import { buildHeaders } from '../../src/dispatcher/request.ts';
import { PulsarClient } from '../../src/pulsar/index.ts';

const [mode, ...a] = process.argv.slice(2);

async function http(url: string, n: number, c: number, size: number): Promise<number> {
  const fn = createFunctionClient({ url, connections: c, timeoutMs: 180_000 });
  const payload = new Uint8Array(size).fill(0x61);
  const headers = buildHeaders(
    {
      id: '123:4567:-1:-1',
      payload,
      key: undefined,
      properties: {},
      eventTime: undefined,
      publishTime: Date.now(),
      redeliveryCount: 0,
      topic: 'persistent://public/default/bench-dispatcher',
    },
    {
      triggerName: 'bench',
      triggerNamespace: 'default',
      timezone: 'UTC',
      contentType: { kind: 'auto' },
      eventFormat: 'kubeless',
    },
  );
  const drive = async (count: number) => {
    let next = 0;
    await Promise.all(
      Array.from({ length: c }, async () => {
        while (next < count) {
          next++;
          const r = await fn.post(payload, headers);
          if (r.outcome.kind !== 'status' || r.outcome.status !== 200)
            throw new Error('bench: the function failed');
        }
      }),
    );
  };
  // Connections opened and code warmed as the dispatcher's are by the time it is timed (after its first delivery).
  await drive(Math.min(n, 2000));
  const t0 = performance.now();
  await drive(n);
  const rate = n / ((performance.now() - t0) / 1000);
  await fn.close();
  return rate;
}

async function consume(serviceUrl: string, topic: string, subscription: string, n: number, queue: number) {
  const client = new PulsarClient({ serviceUrl });
  const consumer = await client.subscribe({
    topic,
    subscription,
    subscriptionType: 'Shared',
    receiverQueueSize: queue,
  });
  // Timed from the first message, as the dispatcher is.
  const first = await consumer.receive();
  void consumer.ack(first);
  const t0 = performance.now();
  for (let i = 1; i < n; i++) {
    const m = await consumer.receive();
    void consumer.ack(m);
  }
  const rate = (n - 1) / ((performance.now() - t0) / 1000);
  await consumer.close();
  await client.close();
  return rate;
}

const rate =
  mode === 'http'
    ? await http(a[0]!, Number(a[1]), Number(a[2]), Number(a[3]))
    : await consume(a[0]!, a[1]!, a[2]!, Number(a[3]), Number(a[4]));
process.stdout.write(`${JSON.stringify({ rate })}\n`);
process.exit(0);
