import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  actionForStatus,
  type DispatcherSettings,
  decodeSettingsEnv,
  encodeSettingsEnv,
  envRecord,
} from '../../../src/trigger/settings.ts';

const full: DispatcherSettings = {
  triggerName: 'mytrigger',
  triggerNamespace: 'default',
  timezone: 'America/Sao_Paulo',
  topic: 'persistent://public/default/mytopic',
  broker: 'pulsar+ssl://pulsar.addr:6651',
  authToken: 'tok',
  authTokenFile: '/var/run/token',
  tls: { caFile: '/tls/ca.crt', verifyHostname: false, certFile: '/tls/tls.crt', keyFile: '/tls/tls.key' },
  functionUrl: 'http://myfunction.default:8080',
  subscription: 'sub-1',
  subscriptionType: 'Key_Shared',
  initialPosition: 'Earliest',
  concurrency: 7,
  ordering: 'strict',
  requestTimeoutMs: 2500,
  backoff: { initialMs: 500, maxMs: 30_000, factor: 1.5 },
  maxAttempts: 9,
  deadLetterTopic: 'persistent://public/default/dead',
  statusRules: [
    { status: '404', action: 'drop' },
    { status: '4xx', action: 'deadLetter' },
  ],
  contentType: { kind: 'fixed', value: 'application/json' },
  eventFormat: 'cloudevents',
  shutdownGraceMs: 10_000,
  port: 9999,
  logLevel: 'debug',
};

test('encode then decode gives back the same settings', () => {
  const decoded = decodeSettingsEnv(envRecord(encodeSettingsEnv(full)));
  assert.ok(decoded.ok, decoded.ok ? '' : decoded.error.message);
  assert.deepEqual(decoded.value, full);
});

test('defaults: a seed-like environment decodes to the documented defaults', () => {
  const r = decodeSettingsEnv({
    TRIGGER_NAME: 't',
    TRIGGER_NAMESPACE: 'ns',
    PULSAR_TOPIC: 'mytopic',
    PULSAR_BROKER: 'pulsar://b:6650',
    KUBELESS_FUNCTION: 'http://f.ns:8080',
  });
  assert.ok(r.ok);
  const s = r.value;
  assert.equal(s.topic, 'persistent://public/default/mytopic');
  assert.equal(s.subscription, 't-ns');
  assert.equal(s.subscriptionType, 'Key_Shared');
  assert.equal(s.initialPosition, 'Latest');
  assert.equal(s.concurrency, 32);
  assert.equal(s.ordering, 'key');
  assert.equal(s.requestTimeoutMs, 180_000);
  assert.deepEqual(s.backoff, { initialMs: 1000, maxMs: 90_000, factor: 2 });
  assert.equal(s.maxAttempts, undefined);
  assert.equal(s.deadLetterTopic, 'persistent://public/default/mytopic-t-ns-DLQ');
  assert.equal(s.timezone, 'UTC');
  assert.equal(s.tls.verifyHostname, true);
  assert.deepEqual(s.contentType, { kind: 'auto' });
  assert.equal(s.eventFormat, 'kubeless');
  assert.equal(s.shutdownGraceMs, 25_000);
});

test("the seed's variables keep working: topic and function from their parts, backoff in seconds", () => {
  const r = decodeSettingsEnv({
    TRIGGER_NAME: 't',
    TRIGGER_NAMESPACE: 'ns',
    TIMEZONE: 'Europe/Lisbon',
    PULSAR_TOPIC_NAMESPACE: 'tenant/ns1',
    PULSAR_TOPIC_NAME: 'events',
    PULSAR_BROKER: 'pulsar://b:6650',
    KUBELESS_FUNCTION: 'hello',
    KUBELESS_FUNCTION_NAMESPACE: 'fns',
    KUBELESS_FUNCTION_PORT: '8080',
    ERROR_BACKOFF_DELAY_MAX: '30',
    ERROR_BACKOFF_FACTOR: '5',
  });
  assert.ok(r.ok);
  assert.equal(r.value.topic, 'persistent://tenant/ns1/events');
  assert.equal(r.value.functionUrl, 'http://hello.fns:8080');
  assert.equal(r.value.backoff.maxMs, 30_000);
  assert.equal(r.value.backoff.factor, 5);
  assert.equal(r.value.timezone, 'Europe/Lisbon');
});

test('every bad variable is named in one error', () => {
  const r = decodeSettingsEnv({
    PULSAR_TOPIC: 'a/b/c/d/e',
    KUBELESS_FUNCTION: 'ftp://x',
    DISPATCH_CONCURRENCY: 'many',
    PULSAR_SUBSCRIPTION_TYPE: 'Sharded',
    DISPATCH_STATUS_ACTIONS: '200=drop',
    ERROR_BACKOFF_DELAY_INITIAL: '100',
    ERROR_BACKOFF_DELAY_MAX: '10',
    PULSAR_TLS_CERT_FILE: '/c',
  });
  assert.equal(r.ok, false);
  if (r.ok) return;
  assert.equal(r.error.code, 'E_SETTINGS_INVALID');
  const names = new Set(r.error.issues.map((i) => i.path));
  for (const name of [
    'PULSAR_BROKER',
    'PULSAR_TOPIC',
    'KUBELESS_FUNCTION',
    'DISPATCH_CONCURRENCY',
    'PULSAR_SUBSCRIPTION_TYPE',
    'DISPATCH_STATUS_ACTIONS',
    'ERROR_BACKOFF_DELAY_MAX',
    'PULSAR_TLS_KEY_FILE',
    'PULSAR_SUBSCRIPTION',
  ]) {
    assert.ok(names.has(name), `${name} missing from ${[...names].join(', ')}`);
  }
  assert.match(r.error.message, /DISPATCH_CONCURRENCY: must be an integer/);
});

test('status actions: exact codes win over classes, unmatched non-2xx retries, 2xx acks', () => {
  const rules = full.statusRules;
  assert.equal(actionForStatus(rules, 204), 'ack');
  assert.equal(actionForStatus(rules, 404), 'drop');
  assert.equal(actionForStatus(rules, 400), 'deadLetter');
  assert.equal(actionForStatus(rules, 503), 'retry');
  assert.equal(actionForStatus([], 302), 'retry');
});
