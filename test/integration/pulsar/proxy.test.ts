// Through a real Pulsar proxy (bin/pulsar proxy in front of the plain test broker): lookups answer with
// proxyThroughServiceUrl, CONNECT carries the broker (proxy_to_broker_url); subscribe, consume and ack.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { PulsarClient } from '../../../src/pulsar/index.ts';
import { type ProxyHandle, startPulsarProxy } from '../../../testenv/pulsar-proxy.ts';
import { pulsarHome, pulsarPlain } from '../../support/env.ts';
import { admin, nextWithin, takeN, uniqueName } from './prod-helpers.ts';

const env = pulsarPlain();
let proxy: ProxyHandle;
let client: PulsarClient;

before(async () => {
  proxy = await startPulsarProxy({
    home: pulsarHome(),
    brokerServiceUrl: env.serviceUrl,
    brokerWebServiceUrl: env.adminUrl,
  });
  client = new PulsarClient({ serviceUrl: proxy.serviceUrl, operationTimeoutMs: 30_000 });
});
after(async () => {
  await client?.close();
  await proxy?.stop();
});

test('through the proxy: the broker is reached via the proxy; produce, subscribe, consume, ack', async () => {
  const topic = uniqueName('persistent://public/default/via-proxy');
  const address = await client.lookup(topic);
  assert.equal(address.physical, proxy.serviceUrl, 'the TCP connection goes to the proxy');
  assert.notEqual(address.logical, proxy.serviceUrl, 'CONNECT names the broker behind it');
  const consumer = await client.subscribe({ topic, subscription: 'proxy-sub', initialPosition: 'Earliest' });
  const producer = await client.createProducer({ topic, compressionType: 'LZ4' });
  const sent = Array.from({ length: 50 }, (_, i) => `via proxy ${i}`);
  await Promise.all(sent.map((s, i) => producer.send({ payload: Buffer.from(s), key: `k${i % 3}` })));
  const got = await takeN(consumer, 50, 60_000);
  assert.deepEqual(
    got.map((m) => Buffer.from(m.payload).toString()),
    sent,
  );
  await consumer.close();
  // The acks went through the proxy too: a new consumer on the subscription gets nothing more.
  const again = await client.subscribe({ topic, subscription: 'proxy-sub' });
  assert.equal(await nextWithin(again, 1500), undefined);
  await again.close();
  await producer.close();
  const stats = JSON.parse(
    await admin(env.adminUrl, 'GET', `/admin/v2/persistent/public/default/${topic.split('/').pop()}/stats`),
  );
  assert.equal(stats.subscriptions['proxy-sub'].msgBacklog, 0);
});
