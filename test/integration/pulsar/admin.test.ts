// The admin REST client (src/pulsar/admin.ts) against the real brokers: the plain one, and the secure one (https,
// token auth, authorization on) with the admin (superuser) token and the client token (produce + consume on
// public/default only). Topic, subscription and namespace names are unique per test.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import {
  AdminBadResponseError,
  AdminForbiddenError,
  AdminNotFoundError,
  AdminRejectedError,
  AdminUnavailableError,
  type Consumer,
  type Message,
  PulsarAdmin,
  type PulsarAdminOptions,
  PulsarClient,
  PulsarErrorCode,
  tlsOptions,
  tokenAuth,
} from '../../../src/pulsar/index.ts';
import { makeCa } from '../../../testenv/lib/certs.ts';
import { newSecretKey, signToken } from '../../../testenv/lib/jwt.ts';
import { freePort } from '../../../testenv/lib/proc.ts';
import { pulsarPlain, pulsarSecure } from '../../support/env.ts';
import { createPartitionedTopic, admin as curlAdmin, takeN, uniqueName } from './prod-helpers.ts';

const plain = pulsarPlain();
const secure = pulsarSecure();
const ca = readFileSync(secure.caFile);
const dir = mkdtempSync(join(tmpdir(), 'kpt-admin-'));
const cleanups: (() => Promise<unknown>)[] = [];
const clients: PulsarClient[] = [];
const admins: PulsarAdmin[] = [];

after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
  await Promise.allSettled(clients.map((c) => c.close()));
  for (const a of admins) a.close();
  rmSync(dir, { recursive: true, force: true });
});

function plainAdmin(opts: Partial<PulsarAdminOptions> = {}): PulsarAdmin {
  const a = new PulsarAdmin({ adminUrl: plain.adminUrl, timeoutMs: 20_000, ...opts });
  admins.push(a);
  return a;
}

function secureAdmin(token: string | undefined, opts: Partial<PulsarAdminOptions> = {}): PulsarAdmin {
  const a = new PulsarAdmin({
    adminUrl: secure.adminUrl,
    timeoutMs: 20_000,
    tls: { ca },
    ...(token ? { auth: tokenAuth({ token }) } : {}),
    ...opts,
  });
  admins.push(a);
  return a;
}

const plainClient = new PulsarClient({ serviceUrl: plain.serviceUrl, operationTimeoutMs: 30_000 });
clients.push(plainClient);

const topicName = (prefix: string) => `persistent://public/default/${uniqueName(`admin-${prefix}`)}`;
const encoder = new TextEncoder();

/** Publishes n messages one entry each (no batching: stats count messages, internalStats entries). */
async function publish(topic: string, n: number, client = plainClient): Promise<void> {
  const producer = await client.createProducer({ topic, batchingMaxMessages: 1 });
  for (let i = 0; i < n; i++) await producer.send({ payload: encoder.encode(`m-${i}`) });
  await producer.close();
}

/** Every message on the topic, read from the beginning by a subscription of its own. */
async function readAll(topic: string, n: number, client = plainClient): Promise<Message[]> {
  const reader = await client.subscribe({
    topic,
    subscription: uniqueName('reader'),
    initialPosition: 'Earliest',
  });
  const all = await takeN(reader, n);
  await reader.unsubscribe();
  return all;
}

test('create at Latest, then publish: the backlog counts only the new messages', async () => {
  const admin = plainAdmin();
  const topic = topicName('latest');
  await publish(topic, 2);
  assert.equal(await admin.createSubscription(topic, 'sub', 'Latest'), 'created');
  const before = await admin.subscriptionStats(topic, 'sub');
  assert.equal(before.exists, true);
  assert.equal(before.topicExists, true);
  assert.equal(before.backlog, 0);
  await publish(topic, 3);
  const s = await admin.subscriptionStats(topic, 'sub');
  assert.equal(s.backlog, 3);
  assert.equal(s.partitions, 0);
  assert.equal(s.consumers, 0);
  assert.equal(s.type, undefined);
  assert.equal(s.topic, topic);
  assert.equal(s.topicBacklog, 3);
});

test('create at Earliest on a topic with old messages: they are all in its backlog', async () => {
  const admin = plainAdmin();
  const topic = topicName('earliest');
  await publish(topic, 4);
  assert.equal(await admin.createSubscription(topic, 'sub', 'Earliest'), 'created');
  assert.equal((await admin.subscriptionStats(topic, 'sub')).backlog, 4);
});

test('creating again answers exists and leaves the cursor where it is', async () => {
  const admin = plainAdmin();
  const topic = topicName('again');
  await publish(topic, 5);
  assert.equal(await admin.createSubscription(topic, 'late', 'Latest'), 'created');
  await publish(topic, 2);
  // Earliest on the existing subscription would make its backlog 7 if it moved the cursor.
  assert.equal(await admin.createSubscription(topic, 'late', 'Earliest'), 'exists');
  assert.equal((await admin.subscriptionStats(topic, 'late')).backlog, 2);
  assert.equal(await admin.createSubscription(topic, 'early', 'Earliest'), 'created');
  assert.equal(await admin.createSubscription(topic, 'early', 'Latest'), 'exists');
  assert.equal((await admin.subscriptionStats(topic, 'early')).backlog, 7);
  // One call gives every subscription of the topic.
  const all = await admin.topicStats(topic);
  assert.deepEqual([...all.subscriptions.keys()].sort(), ['early', 'late']);
  assert.equal(all.backlog, 9);
});

test('stats with two consumers attached; unacknowledged messages; a subscription that is not there', async () => {
  const admin = plainAdmin();
  const topic = topicName('consumers');
  assert.equal(await admin.createSubscription(topic, 'sub', 'Latest'), 'created');
  const c1 = await plainClient.subscribe({ topic, subscription: 'sub', subscriptionType: 'Shared' });
  const c2 = await plainClient.subscribe({ topic, subscription: 'sub', subscriptionType: 'Shared' });
  const s = await admin.subscriptionStats(topic, 'sub');
  assert.equal(s.consumers, 2);
  assert.equal(s.type, 'Shared');
  await c2.close();
  await publish(topic, 2);
  // Delivered to c1 and not acknowledged: still behind, and counted as unacknowledged.
  const got: Message[] = [];
  while (got.length < 2) got.push(await c1.receive());
  const after2 = await admin.subscriptionStats(topic, 'sub');
  assert.equal(after2.consumers, 1);
  assert.equal(after2.backlog, 2);
  assert.equal(after2.unackedMessages, 2);
  for (const m of got) await c1.ack(m);
  await c1.close();
  const missing = await admin.subscriptionStats(topic, 'nobody');
  assert.equal(missing.exists, false);
  assert.equal(missing.topicExists, true);
  assert.equal(missing.backlog, 0);
});

test('oldest publish time: the first message behind, then the next once it is acknowledged, none when caught up', async () => {
  const admin = plainAdmin();
  const topic = topicName('oldest');
  assert.equal(await admin.createSubscription(topic, 'sub', 'Latest'), 'created');
  assert.equal(await admin.oldestBacklogPublishTime(topic, 'sub'), undefined);
  await publish(topic, 3);
  const published = await readAll(topic, 3);
  assert.equal(await admin.oldestBacklogPublishTime(topic, 'sub'), published[0]!.publishTime);
  const consumer = await plainClient.subscribe({ topic, subscription: 'sub' });
  const [first] = await takeN(consumer, 1);
  assert.equal(first!.publishTime, published[0]!.publishTime);
  await consumer.close(); // sends the pending ack first
  assert.equal(await admin.oldestBacklogPublishTime(topic, 'sub'), published[1]!.publishTime);
  const rest = await plainClient.subscribe({ topic, subscription: 'sub' });
  await takeN(rest, 2);
  await rest.close();
  assert.equal(await admin.oldestBacklogPublishTime(topic, 'sub'), undefined);
  const s = await admin.subscriptionStats(topic, 'sub', { oldestPublishTime: true });
  assert.equal(s.backlog, 0);
  assert.equal(s.oldestBacklogPublishTime, undefined);
  assert.equal(await admin.oldestBacklogPublishTime(topic, 'nobody'), undefined);
  // Asking for the oldest publish time does not create the subscription (a peek would).
  assert.equal((await admin.subscriptionStats(topic, 'nobody')).exists, false);
});

test('a partitioned topic (4 partitions): created on every partition, backlogs summed, oldest over partitions', async () => {
  const admin = plainAdmin();
  const topic = await createPartitionedTopic(plain.adminUrl, uniqueName('admin-part'), 4);
  assert.equal(await admin.partitions(topic), 4);
  assert.equal(await admin.partitions(`${topic}-partition-2`), 0, 'a partition is a topic of its own');
  const missing = `persistent://public/default/${uniqueName('admin-nothing')}`;
  assert.equal(await admin.partitions(missing), 0);
  assert.equal((await admin.subscriptionStats(missing, 'sub')).topicExists, false, 'asking created nothing');
  await publish(topic, 8);
  const published = await readAll(topic, 8);
  const onPartition1 = published.filter((m) => m.topic.endsWith('-partition-1')).length;
  // partition 1 gets the subscription first, at its end: the partitioned create must leave it there.
  assert.equal(await admin.createSubscription(`${topic}-partition-1`, 'sub', 'Latest'), 'created');
  assert.equal(await admin.createSubscription(topic, 'sub', 'Earliest'), 'created');
  for (let p = 0; p < 4; p++) {
    const s = await admin.subscriptionStats(`${topic}-partition-${p}`, 'sub');
    assert.equal(s.exists, true, `partition ${p}`);
    assert.equal(s.partitions, 0);
  }
  assert.equal(await admin.createSubscription(topic, 'sub', 'Earliest'), 'exists');
  const s = await admin.subscriptionStats(topic, 'sub', { oldestPublishTime: true });
  assert.equal(s.partitions, 4);
  assert.equal(s.exists, true);
  assert.equal(s.backlog, 8 - onPartition1);
  const behind = published.filter((m) => !m.topic.endsWith('-partition-1'));
  assert.equal(s.oldestBacklogPublishTime, Math.min(...behind.map((m) => m.publishTime)));
  assert.equal(await admin.oldestBacklogPublishTime(topic, 'sub'), s.oldestBacklogPublishTime);
  // Two consumers of a partitioned topic are two consumers, not one per partition each.
  const c1 = await plainClient.subscribe({ topic, subscription: 'sub', subscriptionType: 'Shared' });
  const c2 = await plainClient.subscribe({ topic, subscription: 'sub', subscriptionType: 'Shared' });
  assert.equal((await admin.subscriptionStats(topic, 'sub')).consumers, 2);
  await c1.close();
  await c2.close();
  assert.equal(await admin.deleteSubscription(topic, 'sub'), 'deleted');
  assert.equal((await admin.subscriptionStats(topic, 'sub')).exists, false);
  for (let p = 0; p < 4; p++) {
    assert.equal((await admin.subscriptionStats(`${topic}-partition-${p}`, 'sub')).exists, false);
  }
  assert.equal(await admin.deleteSubscription(topic, 'sub'), 'absent');
});

test('delete: with consumers attached (force by default), refused without force, gone is success', async () => {
  const admin = plainAdmin();
  const topic = topicName('delete');
  assert.equal(await admin.createSubscription(topic, 'sub', 'Latest'), 'created');
  const consumer: Consumer = await plainClient.subscribe({ topic, subscription: 'sub' });
  await assert.rejects(admin.deleteSubscription(topic, 'sub', { force: false }), (e: unknown) => {
    assert.ok(e instanceof AdminRejectedError, String(e));
    assert.equal(e.code, PulsarErrorCode.AdminRejected);
    assert.equal(e.status, 412);
    assert.match(e.message, /active connected consumers/);
    return true;
  });
  assert.equal(await admin.deleteSubscription(topic, 'sub'), 'deleted');
  assert.equal((await admin.subscriptionStats(topic, 'sub')).exists, false);
  assert.equal(await admin.deleteSubscription(topic, 'sub'), 'absent');
  assert.equal(await admin.deleteSubscription(topicName('never'), 'sub'), 'absent');
  await consumer.close().catch(() => {});
});

test('names with reserved characters reach the broker unchanged', async () => {
  const admin = plainAdmin();
  const topic = `persistent://public/default/${uniqueName('admin a+b%c=d:é')}`;
  const sub = 'sub a+b%c/d?e#f é';
  assert.equal(await admin.createSubscription(topic, sub, 'Earliest'), 'created');
  const stats = await admin.topicStats(topic);
  assert.deepEqual([...stats.subscriptions.keys()], [sub]);
  assert.equal(await admin.createSubscription(topic, sub, 'Earliest'), 'exists');
  assert.equal(await admin.deleteSubscription(topic, sub), 'deleted');
});

test('topicMessageCount: entries on a (dead-letter) topic, summed over partitions, 0 when it does not exist', async () => {
  const admin = plainAdmin();
  const dlq = topicName('dlq');
  assert.equal(await admin.topicMessageCount(dlq), 0);
  await publish(dlq, 3);
  assert.equal(await admin.topicMessageCount(dlq), 3);
  // Acknowledged or not, messages stay on the topic until retention removes them.
  const consumer = await plainClient.subscribe({
    topic: dlq,
    subscription: 's',
    initialPosition: 'Earliest',
  });
  await takeN(consumer, 3);
  await consumer.close();
  assert.equal(await admin.topicMessageCount(dlq), 3);
  const partitioned = await createPartitionedTopic(plain.adminUrl, uniqueName('admin-dlq-part'), 2);
  assert.equal(await admin.topicMessageCount(partitioned), 0);
  await publish(partitioned, 5);
  assert.equal(await admin.topicMessageCount(partitioned), 5);
  assert.equal(await admin.topicMessageCount('non-persistent://public/default/nothing-kept'), 0);
});

test('a missing namespace or topic: stats say so, creating is ADMIN_NOT_FOUND where the broker may not create it', async () => {
  const admin = plainAdmin();
  const ghostNs = `persistent://public/${uniqueName('no-ns')}/t`;
  const s = await admin.subscriptionStats(ghostNs, 'sub');
  assert.equal(s.topicExists, false);
  assert.equal(s.exists, false);
  assert.equal(await admin.deleteSubscription(ghostNs, 'sub'), 'absent');
  assert.equal(await admin.topicMessageCount(ghostNs), 0);
  await assert.rejects(admin.createSubscription(ghostNs, 'sub', 'Latest'), (e: unknown) => {
    assert.ok(e instanceof AdminNotFoundError, String(e));
    assert.equal(e.code, PulsarErrorCode.AdminNotFound);
    assert.equal(e.status, 404);
    return true;
  });
  // A namespace where topics are not created on demand: 412 "Topic does not exist and cannot be auto-created".
  const ns = `public/${uniqueName('admin-noauto')}`;
  await curlAdmin(plain.adminUrl, 'PUT', `/admin/v2/namespaces/${ns}`);
  cleanups.push(() => curlAdmin(plain.adminUrl, 'DELETE', `/admin/v2/namespaces/${ns}`));
  await curlAdmin(plain.adminUrl, 'POST', `/admin/v2/namespaces/${ns}/autoTopicCreation`, {
    body: { allowAutoTopicCreation: false },
  });
  await assert.rejects(
    admin.createSubscription(`persistent://${ns}/missing`, 'sub', 'Latest'),
    (e: unknown) => {
      assert.ok(e instanceof AdminNotFoundError, String(e));
      assert.equal(e.status, 412);
      assert.match(e.message, /does not exist/);
      return true;
    },
  );
});

test('a broker that does not listen, one that never answers, an answer over the bound', async () => {
  const port = await freePort();
  const refused = plainAdmin({ adminUrl: `http://127.0.0.1:${port}` });
  await assert.rejects(refused.subscriptionStats(topicName('x'), 'sub'), (e: unknown) => {
    assert.ok(e instanceof AdminUnavailableError, String(e));
    assert.equal(e.code, PulsarErrorCode.AdminUnavailable);
    assert.equal(e.context.errno, 'ECONNREFUSED');
    return true;
  });
  await assert.rejects(refused.createSubscription(topicName('x'), 'sub', 'Latest'), AdminUnavailableError);

  // A port that accepts connections and never answers: the deadline ends the call.
  const sockets = new Set<Socket>();
  const silent = createServer((s) => sockets.add(s));
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  cleanups.push(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((r) => silent.close(r));
  });
  const address = silent.address();
  assert.ok(address && typeof address === 'object');
  const mute = plainAdmin({ adminUrl: `http://127.0.0.1:${address.port}`, timeoutMs: 300 });
  await assert.rejects(mute.topicStats(topicName('x')), (e: unknown) => {
    assert.ok(e instanceof AdminUnavailableError, String(e));
    assert.match(e.message, /no complete answer within 300 ms/);
    return true;
  });

  const small = plainAdmin({ maxResponseBytes: 200 });
  const topic = topicName('big');
  await small.createSubscription(topic, 'sub', 'Latest');
  await assert.rejects(small.topicStats(topic), (e: unknown) => {
    assert.ok(e instanceof AdminBadResponseError, String(e));
    assert.equal(e.code, PulsarErrorCode.AdminBadResponse);
    assert.match(e.message, /larger than 200 bytes/);
    return true;
  });
  // The client goes on working after a call it cut short.
  assert.equal(await small.deleteSubscription(topic, 'sub'), 'deleted');
});

test('secure broker, admin token: create, stats, oldest, count and delete over https', async () => {
  const admin = secureAdmin(secure.adminToken);
  const client = new PulsarClient({
    serviceUrl: secure.serviceUrl,
    operationTimeoutMs: 30_000,
    tls: tlsOptions({ trustCertsFile: secure.caFile }),
    auth: tokenAuth({ token: secure.clientToken }),
  });
  clients.push(client);
  const topic = topicName('secure');
  assert.equal(await admin.createSubscription(topic, 'sub', 'Latest'), 'created');
  await publish(topic, 2, client);
  const published = await readAll(topic, 2, client);
  const s = await admin.subscriptionStats(topic, 'sub', { oldestPublishTime: true });
  assert.equal(s.backlog, 2);
  assert.equal(s.oldestBacklogPublishTime, published[0]!.publishTime);
  assert.equal(await admin.topicMessageCount(topic), 2);
  assert.equal(await admin.deleteSubscription(topic, 'sub'), 'deleted');
});

test('secure broker, client token: allowed where it may consume, ADMIN_FORBIDDEN elsewhere, token never shown', async () => {
  const superuser = secureAdmin(secure.adminToken);
  const client = secureAdmin(secure.clientToken);
  // public/default grants the client role produce + consume, which covers a subscription's admin calls.
  const topic = topicName('client-role');
  assert.equal(await client.createSubscription(topic, 'sub', 'Earliest'), 'created');
  assert.equal((await client.subscriptionStats(topic, 'sub')).exists, true);
  assert.equal(await client.topicMessageCount(topic), 0);
  assert.equal(await client.deleteSubscription(topic, 'sub'), 'deleted');

  // A namespace without grants for the client role: every call refused (Pulsar answers 401).
  const ns = `public/${uniqueName('admin-nogrant')}`;
  const auth = { token: secure.adminToken, caFile: secure.caFile };
  await curlAdmin(secure.adminUrl, 'PUT', `/admin/v2/namespaces/${ns}`, auth);
  cleanups.push(() => curlAdmin(secure.adminUrl, 'DELETE', `/admin/v2/namespaces/${ns}`, auth));
  const guarded = `persistent://${ns}/t`;
  assert.equal(await superuser.createSubscription(guarded, 'sub', 'Latest'), 'created');
  cleanups.push(() => curlAdmin(secure.adminUrl, 'DELETE', `/admin/v2/persistent/${ns}/t?force=true`, auth));
  const calls: [string, () => Promise<unknown>][] = [
    ['create', () => client.createSubscription(guarded, 'other', 'Latest')],
    ['stats', () => client.subscriptionStats(guarded, 'sub')],
    ['delete', () => client.deleteSubscription(guarded, 'sub')],
    ['count', () => client.topicMessageCount(guarded)],
  ];
  for (const [what, call] of calls) {
    await assert.rejects(call(), (e: unknown) => {
      assert.ok(e instanceof AdminForbiddenError, `${what}: ${String(e)}`);
      assert.equal(e.code, PulsarErrorCode.AdminForbidden);
      assert.equal(e.status, 401);
      assert.match(e.message, /Unauthorized/);
      const shown = `${e.message} ${JSON.stringify(e.context)} ${String(e.cause)}`;
      assert.ok(!shown.includes(secure.clientToken), 'the token must not appear');
      return true;
    });
  }
  assert.equal((await superuser.subscriptionStats(guarded, 'sub')).exists, true);

  // No token, a token signed with another key, a token file that is not there.
  const bad = signToken(newSecretKey(), 'client');
  for (const [what, a] of [
    ['no token', secureAdmin(undefined)],
    ['foreign token', secureAdmin(bad)],
    ['missing file', secureAdmin(undefined, { auth: tokenAuth({ file: join(dir, 'no-such-token') }) })],
  ] as const) {
    await assert.rejects(a.subscriptionStats(topic, 'sub'), (e: unknown) => {
      assert.ok(e instanceof AdminForbiddenError, `${what}: ${String(e)}`);
      const shown = `${e.message} ${JSON.stringify(e.context)} ${String(e.cause)}`;
      assert.ok(!shown.includes(bad) && !shown.includes(bad.split('.')[2]!), 'the token must not appear');
      if (what === 'missing file') assert.match(e.message, /no-such-token/);
      else assert.equal(e.status, 401);
      return true;
    });
  }
});

test('secure broker, TLS: an untrusted CA and a host name the certificate does not name are unavailable', async () => {
  const other = makeCa(dir, 'other-ca');
  const untrusted = secureAdmin(secure.adminToken, { tls: { ca: readFileSync(other.certFile) } });
  await assert.rejects(untrusted.subscriptionStats(topicName('tls'), 'sub'), (e: unknown) => {
    assert.ok(e instanceof AdminUnavailableError, String(e));
    assert.match(e.message, /trusted CA|not trusted/);
    assert.ok(e.context.tlsCode, 'the TLS error code is in the context');
    return true;
  });
  const byIp = secure.adminUrl.replace('localhost', '127.0.0.1');
  const wrongName = secureAdmin(secure.adminToken, { adminUrl: byIp });
  await assert.rejects(wrongName.subscriptionStats(topicName('tls'), 'sub'), (e: unknown) => {
    assert.ok(e instanceof AdminUnavailableError, String(e));
    assert.equal(e.context.tlsCode, 'ERR_TLS_CERT_ALTNAME_INVALID');
    return true;
  });
  const relaxed = secureAdmin(secure.adminToken, {
    adminUrl: byIp,
    tls: { ca, hostnameVerification: false },
  });
  assert.equal((await relaxed.subscriptionStats(topicName('tls'), 'sub')).topicExists, false);
});
