import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { pulsarPlain } from '../../support/env.ts';
import { startInProcess } from './inproc.ts';
import { ensureSubscription, FunctionServer, produce, uniqueName, until } from './support.ts';

describe('delivery', () => {
  const pulsar = pulsarPlain();
  let fn: FunctionServer;
  before(async () => {
    fn = await FunctionServer.start();
  });
  after(async () => {
    await fn.close();
  });

  async function byteExact(batching: boolean): Promise<void> {
    const topic = `persistent://public/default/${uniqueName('deliv')}`;
    const name = uniqueName('trig');
    await ensureSubscription(pulsar.serviceUrl, topic, `${name}-default`);
    const binary = new Uint8Array(randomBytes(4096));
    binary[0] = 0x7b; // starts like JSON, is not
    const big = new Uint8Array(randomBytes(5 * 1024 * 1024));
    const enc = (s: string) => new TextEncoder().encode(s);
    const eventTime = Date.parse('2024-03-04T05:06:07.089Z');
    const ids = await produce(
      pulsar.serviceUrl,
      topic,
      [
        { payload: enc('hello=world&a=b'), key: 'k1', properties: { tenant: 'acme' } },
        { payload: enc('{"n":1,"s":"é"}'), eventTime },
        { payload: binary },
        { payload: enc('<xml/>'), properties: { 'content-type': 'application/xml' } },
        { payload: big },
      ],
      { batching },
    );
    const { trigger } = startInProcess({
      TRIGGER_NAME: name,
      TRIGGER_NAMESPACE: 'default',
      PULSAR_BROKER: pulsar.serviceUrl,
      PULSAR_TOPIC: topic,
      KUBELESS_FUNCTION: fn.url,
    });
    try {
      await until(
        () => fn.received.filter((r) => r.headers['event-topic'] === topic).length >= 5,
        '5 deliveries',
      );
      const got = fn.received.filter((r) => r.headers['event-topic'] === topic);
      assert.equal(got.length, 5, 'each message once');
      const find = (size: number) => got.find((r) => r.body.length === size)!;
      const [text, json, bin, xml, large] = [15, '{"n":1,"s":"é"}'.length + 1, 4096, 6, big.length].map(find);
      assert.ok(text && json && bin && xml && large, 'every message delivered');
      for (const r of got) {
        assert.equal(r.headers['event-id'], r.headers['pulsar-message-id']);
        // The id as the consumer sees it; the producer may report a lone message's batch index differently.
        const id = r.headers['event-id'] as string;
        assert.ok(
          ids.some((p) => p.split(':').slice(0, 2).join(':') === id.split(':').slice(0, 2).join(':')),
          id,
        );
      }
      assert.equal(text.headers['event-id'], ids[0]);

      assert.equal(text.body.toString(), 'hello=world&a=b');
      assert.equal(text.headers['content-type'], 'application/x-www-form-urlencoded');
      assert.equal(text.headers['pulsar-key'], 'k1');
      assert.equal(text.headers['pulsar-property-tenant'], 'acme');
      assert.equal(text.headers['event-name'], name);
      assert.equal(text.headers['event-namespace'], 'default');
      assert.equal(text.headers['pulsar-redelivery-count'], '0');
      assert.equal(text.headers['event-time'], text.headers['pulsar-publish-time']);

      assert.equal(json.body.toString('utf8'), '{"n":1,"s":"é"}');
      assert.equal(json.headers['content-type'], 'application/json');
      assert.equal(json.headers['event-type'], 'application/json');
      assert.equal(json.headers['event-time'], '2024-03-04T05:06:07.089Z');

      assert.ok(Buffer.from(binary).equals(bin.body), 'binary payload byte-exact');
      assert.equal(bin.headers['content-type'], 'application/x-www-form-urlencoded');

      assert.equal(xml.headers['content-type'], 'application/xml');

      assert.equal(large.body.length, big.length);
      assert.ok(Buffer.from(big).equals(large.body), '5 MiB payload byte-exact');
    } finally {
      await trigger.stop();
    }
  }

  test('text, JSON, binary and 5 MiB payloads arrive byte-exact with the right headers (unbatched)', () =>
    byteExact(false));

  // Batching on: the 5 MiB message goes alone in a batch of one (a regression test for num_messages_in_batch=1,
  // which the generated encoder used to drop, turning the batch framing into payload bytes).
  test('the same payloads produced with batching arrive byte-exact', () => byteExact(true));
});
