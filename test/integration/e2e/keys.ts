// Keyed streams for the ordering tests (ordering.test.ts, autoscaling.test.ts): messages "<key>/<n>" published
// interleaved through a producer that batches by key, what the function saw of them, and a per-key order report.

import type { FunctionServer } from '../../../examples/function.ts';
import { PulsarClient } from '../../../src/pulsar/index.ts';
import { sleep } from '../../../testenv/lib/proc.ts';
import { pulsarPlain } from '../../support/env.ts';

export { orderReport } from '../../support/order.ts';

export interface SubscriptionStats {
  type?: string;
  consumers?: { msgOutCounter: number }[];
}

/** The broker's view of a subscription (admin REST API). */
export async function subscriptionStats(
  topic: string,
  subscription: string,
): Promise<SubscriptionStats | undefined> {
  const r = await fetch(`${pulsarPlain().adminUrl}/admin/v2/${topic.replace('://', '/')}/stats`);
  const stats = (await r.json()) as { subscriptions?: Record<string, SubscriptionStats> };
  return stats.subscriptions?.[subscription];
}

/**
 * The function's deliveries of a topic (of its partitions, for a partitioned topic: event-topic names the
 * partition): message id, key and number ("<key>/<n>").
 */
export function arrivals(fn: FunctionServer, topic: string): { id: string; key: string; n: number }[] {
  const ofTopic = (t: unknown) =>
    t === topic || (typeof t === 'string' && t.startsWith(`${topic}-partition-`));
  return fn.events
    .filter((e) => ofTopic(e.headers['event-topic']))
    .map((e) => {
      const [key, n] = e.body.toString().split('/') as [string, string];
      return { id: String(e.headers['event-id']), key, n: Number(n) };
    });
}

/**
 * Publishes rounds of `perRound` messages for each key, the keys interleaved, each round sent at once through a
 * producer that batches by key (the way Key_Shared needs), a short pause between rounds, until stop() (then the
 * round under way is finished). Counts per key continue across rounds.
 */
export function keyStream(topic: string, keys: string[], perRound: number) {
  let stopping = false;
  let sent = 0;
  let unbatched = 0;
  const next = new Map<string, number>();
  const done = (async () => {
    const client = new PulsarClient({ serviceUrl: pulsarPlain().serviceUrl });
    try {
      const producer = await client.createProducer({ topic, batchingByKey: true, batchingMaxMessages: 20 });
      while (!stopping) {
        const sends = [];
        for (let i = 0; i < perRound; i++) {
          for (const key of keys) {
            const n = next.get(key) ?? 0;
            next.set(key, n + 1);
            sends.push(producer.send({ payload: Buffer.from(`${key}/${n}`), key }));
          }
        }
        const ids = await Promise.all(sends);
        unbatched += ids.filter((id) => id.batchIndex < 0).length;
        sent += ids.length;
        // Pacing, so that the stream lasts through the scaling steps.
        await sleep(25);
      }
      await producer.close();
    } finally {
      await client.close();
    }
  })();
  return {
    sent: () => sent,
    unbatched: () => unbatched,
    async stop(): Promise<number> {
      stopping = true;
      await done;
      return sent;
    },
  };
}

/**
 * Publishes `perKey` messages for each key, the keys interleaved, at once through a producer that batches by key.
 * Returns the payloads ("<key>/<n>").
 */
export async function publishKeyed(topic: string, keys: string[], perKey: number): Promise<string[]> {
  const client = new PulsarClient({ serviceUrl: pulsarPlain().serviceUrl });
  try {
    const producer = await client.createProducer({ topic, batchingByKey: true, batchingMaxMessages: 20 });
    const payloads: string[] = [];
    const sends = [];
    for (let n = 0; n < perKey; n++) {
      for (const key of keys) {
        const payload = `${key}/${n}`;
        payloads.push(payload);
        sends.push(producer.send({ payload: Buffer.from(payload), key }));
      }
    }
    await Promise.all(sends);
    await producer.close();
    return payloads;
  } finally {
    await client.close();
  }
}
