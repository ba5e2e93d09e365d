// Chunked messages against the real broker: a 20 MiB message chunked by the Java producer arrives whole and
// byte-exact; broken chunk sets (written with raw SEND frames) expire, are acked, and hold bounded memory.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, test } from 'node:test';
import * as cmds from '../../../src/pulsar/commands.ts';
import { encodePayloadCommand } from '../../../src/pulsar/frame.ts';
import { PulsarClient } from '../../../src/pulsar/index.ts';
import { pulsarHome, pulsarPlain } from '../../support/env.ts';
import { runKptJava, sha256 } from '../../support/java.ts';
import { admin, nextWithin, recordingLogger, takeN, uniqueName } from './prod-helpers.ts';

const env = pulsarPlain();
const home = pulsarHome();
const logger = recordingLogger();
const client = new PulsarClient({ serviceUrl: env.serviceUrl, operationTimeoutMs: 60_000, logger });
after(() => client.close());

test('a 20 MiB message chunked by the Java producer arrives whole and byte-exact', async () => {
  const topic = uniqueName('persistent://public/default/chunked-java');
  const consumer = await client.subscribe({ topic, subscription: 'ts', initialPosition: 'Earliest' });
  const size = 20 * 1024 * 1024;
  const sent = await runKptJava(home, [
    'produce',
    '--url',
    env.serviceUrl,
    '--topic',
    topic,
    '--count',
    '2',
    '--size',
    String(size),
    '--chunking',
    // 1 MiB chunks (20 per message). Chunks of the broker's full 8 MiB maxMessageSize are refused by the
    // standalone's storage frame limit (5 MiB + 10 KiB) in this test environment.
    '--chunk-size',
    String(1024 * 1024),
    '--keys',
    'big',
  ]);
  assert.equal(sent.length, 2);
  const got = await takeN(consumer, 2, 120_000);
  for (const [i, m] of got.entries()) {
    assert.equal(m.payload.length, size);
    assert.equal(sha256(m.payload), sent[i]?.sha256, `message ${i} byte-exact`);
    assert.equal(m.key, 'big');
    assert.equal(m.properties.i, String(i));
  }
  assert.deepEqual(consumer.pendingChunks, { messages: 0, bytes: 0 });
  await consumer.close();
  // Every chunk entry was acked: nothing left in the subscription's backlog.
  const stats = JSON.parse(
    await admin(env.adminUrl, 'GET', `/admin/v2/persistent/public/default/${topic.split('/').pop()}/stats`),
  );
  assert.equal(stats.subscriptions.ts.msgBacklog, 0);
});

test('a ZSTD-compressed message chunked by the Java producer is reassembled, then decompressed', async () => {
  const topic = uniqueName('persistent://public/default/chunked-zstd');
  const consumer = await client.subscribe({ topic, subscription: 'ts', initialPosition: 'Earliest' });
  const sent = await runKptJava(home, [
    'produce',
    '--url',
    env.serviceUrl,
    '--topic',
    topic,
    '--count',
    '1',
    '--size',
    String(3 * 1024 * 1024),
    '--random',
    '--compression',
    'ZSTD',
    '--chunking',
    '--chunk-size',
    String(256 * 1024),
  ]);
  const [m] = await takeN(consumer, 1, 120_000);
  assert.equal(m?.payload.length, 3 * 1024 * 1024);
  assert.equal(sha256(m?.payload ?? new Uint8Array()), sent[0]?.sha256);
  assert.deepEqual(consumer.pendingChunks, { messages: 0, bytes: 0 });
  await consumer.close();
  const stats = JSON.parse(
    await admin(env.adminUrl, 'GET', `/admin/v2/persistent/public/default/${topic.split('/').pop()}/stats`),
  );
  assert.ok(stats.msgInCounter > 1, `the compressed payload was chunked (${stats.msgInCounter} entries)`);
});

/** Writes chunk entries directly (PRODUCER + SEND with chunk metadata), as a broken producer would. */
async function rawChunkProducer(topic: string) {
  const address = await client.lookup(topic);
  const cnx = await client.getConnection(address);
  const producerId = 999_000n + BigInt(Math.floor(Math.random() * 1000));
  const requestId = cnx.newRequestId();
  await cnx.request(cmds.producer({ topic, producerId, requestId }), requestId, { topic });
  let seq = 0n;
  return (uuid: string, chunkId: number, numChunks: number, total: number, payload: Uint8Array) => {
    const s = seq++;
    cnx.sendParts(
      encodePayloadCommand(
        cmds.send(producerId, s, 1),
        {
          producerName: `raw-${producerId}`,
          sequenceId: s,
          publishTime: BigInt(Date.now()),
          properties: [],
          replicateTo: [],
          encryptionKeys: [],
          uuid,
          chunkId,
          numChunksFromMsg: numChunks,
          totalChunkMsgSize: total,
        },
        payload,
      ),
    );
  };
}

test('broken chunk sets stay within the memory bounds, expire, are acked; complete ones still arrive', async () => {
  const topic = uniqueName('persistent://public/default/chunked-broken');
  const consumer = await client.subscribe({
    topic,
    subscription: 'ts',
    initialPosition: 'Earliest',
    chunking: { expireMs: 1500, maxPendingMessages: 4, maxPendingBytes: 4 * 1024 * 1024 },
  });
  const send = await rawChunkProducer(topic);
  // 12 sets that never complete (first 2 of 3 chunks, 1 MiB each announced), then one complete set.
  for (let i = 0; i < 12; i++) {
    send(`broken-${i}`, 0, 3, 1024 * 1024, randomBytes(300_000));
    send(`broken-${i}`, 1, 3, 1024 * 1024, randomBytes(300_000));
  }
  const whole = randomBytes(90_000);
  send('whole', 0, 3, whole.length, whole.subarray(0, 30_000));
  send('whole', 1, 3, whole.length, whole.subarray(30_000, 60_000));
  send('whole', 2, 3, whole.length, whole.subarray(60_000));
  let peak = 0;
  const m = await nextWithin(consumer, 30_000);
  assert.ok(m, 'the complete chunked message arrives');
  assert.equal(sha256(m.payload), sha256(whole));
  await consumer.ack(m);
  peak = Math.max(peak, consumer.pendingChunks.bytes);
  assert.ok(consumer.pendingChunks.messages <= 4);
  assert.ok(peak <= 4 * 1024 * 1024, `held ${peak} bytes`);
  // The evicted sets were put up for redelivery, the last ones expire and are acked: eventually nothing is held.
  const deadline = Date.now() + 60_000;
  while (consumer.pendingChunks.messages > 0 && Date.now() < deadline) {
    const late = await nextWithin(consumer, 500);
    assert.equal(late, undefined, 'only the complete message is delivered');
    assert.ok(consumer.pendingChunks.messages <= 4);
  }
  assert.deepEqual(consumer.pendingChunks, { messages: 0, bytes: 0 });
  assert.ok(
    logger.records.some(
      (r) => r.msg === 'chunked message dropped' && /incomplete after 1500 ms/.test(JSON.stringify(r.obj)),
    ),
    'expiry was logged',
  );
  assert.ok(
    logger.records.some(
      (r) => r.msg === 'chunked message dropped' && /evicted to make room/.test(JSON.stringify(r.obj)),
    ),
    'eviction was logged',
  );
  await consumer.close();
});
