import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PulsarError } from '../../../src/pulsar/errors.ts';
import { MessageId } from '../../../src/pulsar/message-id.ts';
import { parseTopicName } from '../../../src/pulsar/topic.ts';

test('topic names: short, tenant/ns/topic, persistent and non-persistent, partitions', () => {
  assert.equal(parseTopicName('my-topic').full, 'persistent://public/default/my-topic');
  assert.equal(parseTopicName('t/ns/x').full, 'persistent://t/ns/x');
  assert.equal(parseTopicName('persistent://t/ns/x').full, 'persistent://t/ns/x');
  const np = parseTopicName('non-persistent://t/ns/x-partition-3');
  assert.equal(np.domain, 'non-persistent');
  assert.equal(np.partitionIndex, 3);
  assert.equal(parseTopicName('persistent://t/cluster/ns/x').namespace, 'cluster/ns');
  for (const bad of ['', 'a/b', 'http://t/ns/x', 'persistent://t//x', 'persistent://t/ns']) {
    assert.throws(
      () => parseTopicName(bad),
      (e: unknown) => e instanceof PulsarError && e.code === 'INVALID_TOPIC_NAME',
      bad,
    );
  }
});

test('message ids: stable string form, serialize round trip, ordering, earliest', () => {
  const id = new MessageId(12n, 34n, -1, 5, 10);
  assert.equal(id.toString(), '12:34:-1:5');
  const back = MessageId.deserialize(id.serialize());
  assert.equal(back.toString(), '12:34:-1:5');
  assert.equal(back.batchSize, 10);
  assert.ok(MessageId.fromString('12:34:-1:5').equals(id));
  assert.equal(MessageId.earliest.toString(), '-1:-1:-1:-1');
  assert.ok(new MessageId(1n, 2n).compare(new MessageId(1n, 3n)) < 0);
  assert.ok(new MessageId(2n, 0n).compare(new MessageId(1n, 99n)) > 0);
  assert.ok(new MessageId(1n, 2n, -1, 3).compare(new MessageId(1n, 2n, -1, 1)) > 0);
  assert.throws(
    () => MessageId.fromString('1:2'),
    (e: unknown) => e instanceof PulsarError,
  );
});
