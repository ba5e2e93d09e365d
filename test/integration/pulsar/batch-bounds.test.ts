// A batch entry whose metadata claims more messages than its payload can hold (written with a raw SEND frame, as a
// broken or hostile producer would): the consumer discards it without allocating per-message state for the
// claimed count (2,000,000,000 would be ~2 GiB), never acks it, and goes on delivering the next entry.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import * as cmds from '../../../src/pulsar/commands.ts';
import { encodePayloadCommand } from '../../../src/pulsar/frame.ts';
import { PulsarClient } from '../../../src/pulsar/index.ts';
import { pulsarPlain } from '../../support/env.ts';
import { nextWithin, recordingLogger, uniqueName } from './prod-helpers.ts';

const env = pulsarPlain();
const logger = recordingLogger();
const client = new PulsarClient({ serviceUrl: env.serviceUrl, operationTimeoutMs: 60_000, logger });
after(() => client.close());

test('a batch claiming 2,000,000,000 messages in a few bytes is discarded, bounded, and the next entry arrives', async () => {
  const topic = uniqueName('persistent://public/default/batch-bounds');
  const consumer = await client.subscribe({ topic, subscription: 'ts', initialPosition: 'Earliest' });
  const address = await client.lookup(topic);
  const cnx = await client.getConnection(address);
  const producerId = 998_000n + BigInt(Math.floor(Math.random() * 1000));
  const requestId = cnx.newRequestId();
  await cnx.request(cmds.producer({ topic, producerId, requestId }), requestId, { topic });
  const claimed = 2_000_000_000;
  const before = process.memoryUsage().arrayBuffers;
  cnx.sendParts(
    encodePayloadCommand(
      cmds.send(producerId, 0n, claimed),
      {
        producerName: `raw-${producerId}`,
        sequenceId: 0n,
        publishTime: BigInt(Date.now()),
        properties: [],
        replicateTo: [],
        encryptionKeys: [],
        numMessagesInBatch: claimed,
      },
      new Uint8Array([0, 0, 0, 2, 1, 2]),
    ),
  );
  const producer = await client.createProducer({ topic, batchingMaxMessages: 1 });
  await producer.send({ payload: Buffer.from('after') });
  const m = await nextWithin(consumer, 30_000);
  assert.equal(Buffer.from(m?.payload ?? []).toString(), 'after', 'the next entry is delivered');
  const grown = process.memoryUsage().arrayBuffers - before;
  assert.ok(grown < 64 * 1024 * 1024, `no state allocated for the claimed count (+${grown} bytes)`);
  assert.ok(
    logger.records.some(
      (r) => r.msg === 'message discarded' && JSON.stringify(r.obj).includes(String(claimed)),
    ),
    'the discarded entry is logged with the claimed count',
  );
  await consumer.ack(m!);
  await producer.close();
  await consumer.close();
});
