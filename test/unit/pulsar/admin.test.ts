// The admin client's pure parts: admin URL defaults, paths (encoding, partitions), redirects, the broker's reason,
// status → error, stats parsing. No network: the constructor and the argument checks never reach one.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  adminTopicPath,
  brokerReason,
  defaultAdminUrl,
  PulsarAdmin,
  redirectTarget,
  subscriptionSegment,
} from '../../../src/pulsar/admin.ts';
import {
  AdminBadResponseError,
  AdminForbiddenError,
  AdminNotFoundError,
  AdminRejectedError,
  AdminUnavailableError,
  adminStatusError,
  PulsarAdminError,
} from '../../../src/pulsar/admin-errors.ts';
import {
  missingTopic,
  parseEntryCount,
  parseTopicStats,
  pickSubscription,
} from '../../../src/pulsar/admin-stats.ts';
import type { AuthProvider } from '../../../src/pulsar/auth.ts';
import { PulsarError, PulsarErrorCode } from '../../../src/pulsar/errors.ts';

const isInvalid = (e: unknown) => e instanceof PulsarError && e.code === PulsarErrorCode.InvalidArgument;

test('defaultAdminUrl: the broker host, http on 8080 or https on 8443', () => {
  assert.equal(defaultAdminUrl('pulsar://pulsar.example:6650'), 'http://pulsar.example:8080');
  assert.equal(defaultAdminUrl('pulsar://pulsar.example'), 'http://pulsar.example:8080');
  assert.equal(defaultAdminUrl('pulsar+ssl://pulsar.example:6651'), 'https://pulsar.example:8443');
  assert.equal(defaultAdminUrl('pulsar+ssl://pulsar.example:16651/'), 'https://pulsar.example:8443');
  assert.equal(defaultAdminUrl('pulsar://10.0.0.7:6650'), 'http://10.0.0.7:8080');
  assert.equal(defaultAdminUrl('pulsar+ssl://[::1]:6651'), 'https://[::1]:8443');
  assert.equal(defaultAdminUrl(' pulsar://broker.ns.svc:6650 '), 'http://broker.ns.svc:8080');
  // tls overrides the scheme
  assert.equal(defaultAdminUrl('pulsar://pulsar.example:6650', true), 'https://pulsar.example:8443');
  assert.equal(defaultAdminUrl('pulsar+ssl://pulsar.example:6651', false), 'http://pulsar.example:8080');
  // an http(s) service URL already is the web service
  assert.equal(defaultAdminUrl('http://pulsar.example:8080'), 'http://pulsar.example:8080');
  assert.equal(defaultAdminUrl('https://pulsar.example'), 'https://pulsar.example');
  for (const bad of [
    '',
    'pulsar.example:6650',
    'kafka://x:9092',
    'pulsar://a:6650,b:6650',
    'pulsar://user@x:6650',
    'pulsar://x:6650/path',
  ]) {
    assert.throws(() => defaultAdminUrl(bad), isInvalid, bad);
  }
});

test('adminTopicPath: domain, tenant, namespace, the local name encoded twice; partitions are topics of their own', () => {
  assert.equal(adminTopicPath('my-topic'), '/admin/v2/persistent/public/default/my-topic');
  assert.equal(adminTopicPath('t/ns/x', 'stats'), '/admin/v2/persistent/t/ns/x/stats');
  assert.equal(
    adminTopicPath('non-persistent://t/ns/x', 'partitioned-stats'),
    '/admin/v2/non-persistent/t/ns/x/partitioned-stats',
  );
  assert.equal(
    adminTopicPath('persistent://t/ns/orders-partition-3', 'stats'),
    '/admin/v2/persistent/t/ns/orders-partition-3/stats',
  );
  // The broker decodes the topic segment twice: ' ' → %2520, '+' → %252B, '%' → %2525, 'é' → %25C3%25A9.
  assert.equal(
    adminTopicPath('persistent://t/ns/a b+c%d=é'),
    '/admin/v2/persistent/t/ns/a%2520b%252Bc%2525d%253D%25C3%25A9',
  );
  // tenant and namespace once (their names allow only [-=:.\w])
  assert.equal(adminTopicPath('persistent://te:n/n=s/x'), '/admin/v2/persistent/te%3An/n%3Ds/x');
  assert.equal(subscriptionSegment('sub'), 'subscription/sub');
  assert.equal(
    subscriptionSegment('a+b%c/d?e#f é'),
    'subscription/a%252Bb%2525c%252Fd%253Fe%2523f%2520%25C3%25A9',
  );
  assert.throws(() => subscriptionSegment(''), isInvalid);
  // legacy names with a cluster are the v1 API's
  assert.throws(() => adminTopicPath('persistent://t/cluster/ns/x'), isInvalid);
  assert.throws(
    () => adminTopicPath('kafka://t/ns/x'),
    (e: unknown) => e instanceof PulsarError && e.code === PulsarErrorCode.InvalidTopicName,
  );
});

test('redirectTarget: 307/308 Location resolved; no Location, other schemes and https → http with a token refused', () => {
  const from = new URL('https://broker-1:8443/admin/v2/persistent/t/ns/x/stats');
  assert.equal(
    redirectTarget(from, 'https://broker-2:8443/admin/v2/persistent/t/ns/x/stats?authoritative=true', true)
      .href,
    'https://broker-2:8443/admin/v2/persistent/t/ns/x/stats?authoritative=true',
  );
  assert.equal(redirectTarget(from, '/other', true).href, 'https://broker-1:8443/other');
  assert.equal(redirectTarget(new URL('http://b:8080/a'), 'https://c:8443/a', true).href, 'https://c:8443/a');
  assert.equal(redirectTarget(from, 'http://broker-2:8080/a', false).href, 'http://broker-2:8080/a');
  for (const [location, token] of [
    [undefined, true],
    ['', true],
    ['ftp://broker-2/a', true],
    ['http://broker-2:8080/a', true],
  ] as const) {
    assert.throws(
      () => redirectTarget(from, location, token),
      (e: unknown) => e instanceof AdminBadResponseError && e.code === PulsarErrorCode.AdminBadResponse,
      String(location),
    );
  }
});

test('brokerReason: the JSON reason, else the status text; one line, bounded', () => {
  assert.equal(brokerReason('{"reason":"Subscription not found"}', 'Not Found'), 'Subscription not found');
  assert.equal(brokerReason('<html>Error 401</html>', 'Authentication required'), 'Authentication required');
  assert.equal(
    brokerReason('{"reason":"\\n --- An unexpected error occurred in the server ---\\n\\nMessage: x"}', 'x'),
    '--- An unexpected error occurred in the server ---',
  );
  assert.equal(brokerReason('', undefined), undefined);
  assert.equal(brokerReason('{"reason":42}', 'Bad'), 'Bad');
  const long = brokerReason(JSON.stringify({ reason: 'x'.repeat(1000) }), '');
  assert.equal(long?.length, 300);
});

test('adminStatusError: 401/403 forbidden, 404 not found, 408/429/5xx unavailable, other 4xx rejected', () => {
  const ctx = { method: 'GET', url: 'http://b:8080/admin/v2/persistent/t/ns/x/stats', reason: 'why' };
  const cases: [number, new (...a: never[]) => PulsarAdminError, string][] = [
    [401, AdminForbiddenError, 'ADMIN_FORBIDDEN'],
    [403, AdminForbiddenError, 'ADMIN_FORBIDDEN'],
    [404, AdminNotFoundError, 'ADMIN_NOT_FOUND'],
    [408, AdminUnavailableError, 'ADMIN_UNAVAILABLE'],
    [429, AdminUnavailableError, 'ADMIN_UNAVAILABLE'],
    [500, AdminUnavailableError, 'ADMIN_UNAVAILABLE'],
    [503, AdminUnavailableError, 'ADMIN_UNAVAILABLE'],
    [400, AdminRejectedError, 'ADMIN_REJECTED'],
    [405, AdminRejectedError, 'ADMIN_REJECTED'],
    [409, AdminRejectedError, 'ADMIN_REJECTED'],
    [412, AdminRejectedError, 'ADMIN_REJECTED'],
    [302, AdminBadResponseError, 'ADMIN_BAD_RESPONSE'],
    [200, AdminBadResponseError, 'ADMIN_BAD_RESPONSE'],
  ];
  for (const [status, cls, code] of cases) {
    const e = adminStatusError(status, ctx);
    assert.ok(e instanceof cls, `${status}: ${e.name}`);
    assert.ok(e instanceof PulsarAdminError && e instanceof PulsarError);
    assert.equal(e.code, code);
    assert.equal(e.status, status);
    assert.equal(e.reason, 'why');
    assert.match(
      e.message,
      new RegExp(`GET http://b:8080/admin/v2/persistent/t/ns/x/stats: HTTP ${status} why`),
    );
  }
});

const SUB = (over: Record<string, unknown> = {}) => ({
  msgRateOut: 12.5,
  msgRateRedeliver: 0.5,
  msgBacklog: 3,
  backlogSize: 120,
  earliestMsgPublishTimeInBacklog: 1_700_000_000_000,
  unackedMessages: 2,
  type: 'Shared',
  consumers: [{ consumerName: 'a' }, { consumerName: 'b' }],
  ...over,
});

test('parseTopicStats: a non-partitioned topic, every subscription, the topic backlog summed', () => {
  const t = parseTopicStats(
    {
      msgInCounter: 9,
      publishers: [],
      subscriptions: {
        s: SUB(),
        idle: SUB({ msgBacklog: 0, earliestMsgPublishTimeInBacklog: 0, consumers: [], type: 'None' }),
      },
    },
    false,
    'persistent://t/ns/x',
  );
  assert.equal(t.exists, true);
  assert.equal(t.partitions, 0);
  assert.equal(t.backlog, 3);
  assert.deepEqual(t.subscriptions.get('s'), {
    backlog: 3,
    backlogBytes: 120,
    msgRateOut: 12.5,
    msgRateRedeliver: 0.5,
    consumers: 2,
    unackedMessages: 2,
    type: 'Shared',
    oldestBacklogPublishTime: 1_700_000_000_000,
  });
  const idle = t.subscriptions.get('idle');
  assert.equal(idle?.type, undefined);
  assert.equal(idle?.consumers, 0);
  assert.equal(idle?.oldestBacklogPublishTime, undefined);
  // Not asked for (or an older broker): no field, no time.
  const plain = parseTopicStats(
    { subscriptions: { s: SUB({ earliestMsgPublishTimeInBacklog: undefined }) } },
    false,
    'x',
  );
  assert.equal(plain.subscriptions.get('s')?.oldestBacklogPublishTime, undefined);
  // A topic without subscriptions
  assert.equal(parseTopicStats({ subscriptions: {} }, false, 'x').subscriptions.size, 0);
});

test('parseTopicStats: a partitioned topic, the oldest time the least over partitions, not the aggregate', () => {
  const body = {
    metadata: { partitions: 4, deleted: false },
    subscriptions: { s: SUB({ msgBacklog: 3, earliestMsgPublishTimeInBacklog: -1 }) },
    partitions: {
      'persistent://t/ns/x-partition-0': {
        subscriptions: { s: SUB({ msgBacklog: 0, earliestMsgPublishTimeInBacklog: 0 }) },
      },
      'persistent://t/ns/x-partition-1': {
        subscriptions: { s: SUB({ msgBacklog: 1, earliestMsgPublishTimeInBacklog: 300 }) },
      },
      'persistent://t/ns/x-partition-2': {
        subscriptions: { s: SUB({ msgBacklog: 2, earliestMsgPublishTimeInBacklog: 200 }) },
      },
      'persistent://t/ns/x-partition-3': { subscriptions: {} },
    },
  };
  const t = parseTopicStats(body, true, 'persistent://t/ns/x');
  assert.equal(t.partitions, 4);
  assert.equal(t.subscriptions.get('s')?.backlog, 3);
  assert.equal(t.subscriptions.get('s')?.oldestBacklogPublishTime, 200);
  // Without the per-partition stats the aggregate's time is not used.
  const { partitions: _, ...aggregateOnly } = body;
  const a = parseTopicStats(
    { ...aggregateOnly, subscriptions: { s: SUB({ earliestMsgPublishTimeInBacklog: 100 }) } },
    true,
    'x',
  );
  assert.equal(a.subscriptions.get('s')?.oldestBacklogPublishTime, undefined);
});

test('parseTopicStats: shapes the API does not send are ADMIN_BAD_RESPONSE', () => {
  for (const [body, partitioned] of [
    [null, false],
    [[], false],
    ['stats', false],
    [{ subscriptions: [] }, false],
    [{ subscriptions: { s: 'x' } }, false],
    [{ subscriptions: { s: SUB({ msgBacklog: 'many' }) } }, false],
    [{ subscriptions: { s: SUB({ consumers: 3 }) } }, false],
    [{ subscriptions: {} }, true],
    [{ metadata: { partitions: 4 }, subscriptions: { s: SUB() }, partitions: { p: 'x' } }, true],
  ] as const) {
    assert.throws(
      () => parseTopicStats(body, partitioned, 'persistent://t/ns/x'),
      (e: unknown) => e instanceof AdminBadResponseError && /persistent:\/\/t\/ns\/x|p/.test(e.message),
      JSON.stringify(body),
    );
  }
});

test('pickSubscription: one subscription, or zeros and exists: false', () => {
  const t = parseTopicStats({ subscriptions: { s: SUB() } }, false, 'persistent://t/ns/x');
  const s = pickSubscription(t, 's');
  assert.equal(s.exists, true);
  assert.equal(s.topicExists, true);
  assert.equal(s.subscription, 's');
  assert.equal(s.backlog, 3);
  assert.equal(s.topicBacklog, 3);
  const none = pickSubscription(t, 'other');
  assert.equal(none.exists, false);
  assert.equal(none.topicExists, true);
  assert.equal(none.backlog, 0);
  assert.equal(none.consumers, 0);
  const gone = pickSubscription(missingTopic('persistent://t/ns/y'), 's');
  assert.equal(gone.exists, false);
  assert.equal(gone.topicExists, false);
  assert.equal(gone.topic, 'persistent://t/ns/y');
});

test('parseEntryCount: numberOfEntries, summed over partitions', () => {
  assert.equal(parseEntryCount({ numberOfEntries: 4, entriesAddedCounter: 7 }, false, 'x'), 4);
  assert.equal(
    parseEntryCount(
      { metadata: { partitions: 2 }, partitions: { a: { numberOfEntries: 2 }, b: { numberOfEntries: 3 } } },
      true,
      'x',
    ),
    5,
  );
  assert.throws(() => parseEntryCount({}, false, 'x'), AdminBadResponseError);
  assert.throws(() => parseEntryCount({ partitions: { a: 1 } }, true, 'x'), AdminBadResponseError);
});

test('PulsarAdmin options and arguments are checked before any call', async () => {
  const token: AuthProvider = { method: 'token', data: async () => new TextEncoder().encode('t') };
  for (const adminUrl of [
    '',
    'pulsar://b:6650',
    'http://user:pw@b:8080',
    'http://b:8080/?x=1',
    'not a url',
  ]) {
    assert.throws(() => new PulsarAdmin({ adminUrl }), isInvalid, adminUrl);
  }
  assert.throws(
    () => new PulsarAdmin({ adminUrl: 'http://b:8080', auth: { method: 'tls', data: token.data } }),
    isInvalid,
  );
  assert.throws(() => new PulsarAdmin({ adminUrl: 'https://b:8443', tls: { cert: 'x' } }), isInvalid);
  // Port 9 on an address from TEST-NET-1 (RFC 5737): nothing is ever sent, the checks refuse first.
  const admin = new PulsarAdmin({ adminUrl: 'http://192.0.2.1:9/prefix/', auth: token });
  assert.equal(admin.adminUrl, 'http://192.0.2.1:9/prefix');
  await assert.rejects(admin.createSubscription('non-persistent://t/ns/x', 's', 'Latest'), isInvalid);
  await assert.rejects(
    admin.createSubscription('persistent://t/ns/x', 's', 'Middle' as unknown as 'Latest'),
    isInvalid,
  );
  await assert.rejects(admin.createSubscription('persistent://t/ns/x', '', 'Latest'), isInvalid);
  await assert.rejects(admin.subscriptionStats('persistent://t/c/ns/x', 's'), isInvalid);
  assert.equal(await admin.topicMessageCount('non-persistent://t/ns/x'), 0);
  admin.close();
  await assert.rejects(
    admin.topicStats('persistent://t/ns/x'),
    (e: unknown) => e instanceof PulsarError && e.code === PulsarErrorCode.AlreadyClosed,
  );
});
