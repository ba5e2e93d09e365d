// The rules of spec.pulsar.adminUrl, spec.delivery.deleteSubscription and spec.autoscaling: the zod side
// (validateSpec), and the same rules as CEL in the generated CRD. The CEL runs in the real API server in
// test/integration/trigger/spec-rules.test.ts, on the same values.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { openApiSchema } from '../../../src/trigger/crd.ts';
import { WHOLE_SECONDS_PATTERN } from '../../../src/trigger/keda.ts';
import {
  ADMIN_PARTS_CEL,
  ADMIN_PARTS_MESSAGE,
  ADMIN_PORT_CEL,
  ADMIN_PORT_MESSAGE,
  ADMIN_URL_CEL,
  ADMIN_URL_MESSAGE,
  adminUrlFormOk,
  adminUrlPartsOk,
  adminUrlPortOk,
} from '../../../src/trigger/names.ts';
import { validateSpec } from '../../../src/trigger/spec.ts';

const base = () => ({
  pulsar: { topic: 'persistent://public/default/mytopic', broker: 'pulsar://pulsar.addr:6650' },
  kubeless: { function: 'http://myfunction.default:8080' },
});

/** The issues validateSpec reports for a spec, as "path: message". */
function issues(spec: unknown): string[] {
  const r = validateSpec(spec);
  return r.ok ? [] : r.error.issues.map((i) => `${i.path}: ${i.message}`);
}

// biome-ignore lint/suspicious/noExplicitAny: walking the generated schema
type Any = any;
const schema = (): Any => openApiSchema();
const rulesOf = (node: Any): { rule: string; message: string; fieldPath?: string }[] =>
  node['x-kubernetes-validations'] ?? [];

test('a seed manifest needs none of the new fields', () => {
  assert.deepEqual(issues({ ...base(), pulsar: { ...base().pulsar, 'auth-token': 'nnn' } }), []);
});

test('adminUrl: an http(s) URL with a host, a port from 1 to 65535, no user info, query or fragment', () => {
  const accepted = [
    'http://pulsar.addr:8080',
    'https://pulsar.addr:8443',
    'https://pulsar.addr',
    'http://pulsar.addr:8080/',
    'https://proxy.example/pulsar/admin',
    'http://[::1]:8080',
    'http://10.0.0.1:8080',
  ];
  for (const v of accepted) {
    assert.deepEqual(issues({ ...base(), pulsar: { ...base().pulsar, adminUrl: v } }), [], v);
  }
  const refused: [string, string][] = [
    ['pulsar://pulsar.addr:6650', ADMIN_URL_MESSAGE],
    ['ftp://pulsar.addr', ADMIN_URL_MESSAGE],
    ['pulsar.addr:8080', ADMIN_URL_MESSAGE],
    ['http://', ADMIN_URL_MESSAGE],
    ['http://pulsar.addr:0', ADMIN_PORT_MESSAGE],
    ['http://pulsar.addr:65536', ADMIN_PORT_MESSAGE],
    ['http://pulsar.addr:x', ADMIN_URL_MESSAGE],
    ['http://pulsar.addr:8080?x=1', ADMIN_PARTS_MESSAGE],
    ['http://pulsar.addr:8080/#frag', ADMIN_PARTS_MESSAGE],
    // A '#' before any path: the API server's isURL (Go) reads it into the host or port, so it is a form error.
    ['http://pulsar.addr:8080#frag', ADMIN_URL_MESSAGE],
    ['http://pulsar.addr#frag', ADMIN_URL_MESSAGE],
    ['http://pulsar.addr?x', ADMIN_PARTS_MESSAGE],
    ['https://user:secret@pulsar.addr:8443', ADMIN_PARTS_MESSAGE],
  ];
  for (const [v, message] of refused) {
    assert.deepEqual(
      issues({ ...base(), pulsar: { ...base().pulsar, adminUrl: v } }),
      [`spec.pulsar.adminUrl: ${message}`],
      v,
    );
  }
  assert.deepEqual(issues({ ...base(), pulsar: { ...base().pulsar, adminUrl: '' } }), [
    `spec.pulsar.adminUrl: ${ADMIN_URL_MESSAGE}`,
  ]);
  // Each rule leaves the others' mistakes to them, so one mistake gets one message.
  assert.ok(adminUrlPortOk('ftp://x:0') && adminUrlPartsOk('ftp://x?y'));
  assert.ok(!adminUrlFormOk('ftp://x'));
});

test('adminUrl: the CRD carries the same three rules', () => {
  const node = schema().properties.spec.properties.pulsar.properties.adminUrl;
  assert.equal(node.type, 'string');
  assert.equal(node.maxLength, 2048);
  assert.deepEqual(rulesOf(node), [
    { rule: ADMIN_URL_CEL, message: ADMIN_URL_MESSAGE },
    { rule: ADMIN_PORT_CEL, message: ADMIN_PORT_MESSAGE },
    { rule: ADMIN_PARTS_CEL, message: ADMIN_PARTS_MESSAGE },
  ]);
  assert.match(node.description, /pulsar:\/\/host:6650 gives http:\/\/host:8080/);
  assert.match(node.description, /pulsar\+ssl:\/\/host:6651 gives https:\/\/host:8443/);
});

test('delivery.deleteSubscription: a boolean, default false (described), no schema default', () => {
  assert.deepEqual(issues({ ...base(), delivery: { deleteSubscription: true } }), []);
  assert.deepEqual(issues({ ...base(), delivery: { deleteSubscription: false } }), []);
  assert.equal(
    issues({ ...base(), delivery: { deleteSubscription: 'yes' } })[0]?.split(':')[0],
    'spec.delivery.deleteSubscription',
  );
  const node = schema().properties.spec.properties.delivery.properties.deleteSubscription;
  assert.equal(node.type, 'boolean');
  assert.equal(node.default, undefined);
  assert.match(node.description, /false \(default\)/);
});

test('autoscaling: each number in its range', () => {
  const at = (autoscaling: unknown) => issues({ ...base(), autoscaling });
  assert.deepEqual(at({}), []);
  assert.deepEqual(
    at({
      minReplicas: 0,
      maxReplicas: 1,
      backlogPerReplica: 1,
      activationBacklog: 0,
      pollingInterval: '1s',
      cooldownPeriod: '0s',
    }),
    [],
  );
  assert.deepEqual(
    at({ minReplicas: 10_000, maxReplicas: 10_000, backlogPerReplica: 1e9, activationBacklog: 1e9 }),
    [],
  );
  const refused: [Record<string, unknown>, string][] = [
    [{ minReplicas: -1 }, 'spec.autoscaling.minReplicas'],
    [{ minReplicas: 1.5 }, 'spec.autoscaling.minReplicas'],
    [{ maxReplicas: 0 }, 'spec.autoscaling.maxReplicas'],
    [{ maxReplicas: 10_001 }, 'spec.autoscaling.maxReplicas'],
    [{ backlogPerReplica: 0 }, 'spec.autoscaling.backlogPerReplica'],
    [{ activationBacklog: -1 }, 'spec.autoscaling.activationBacklog'],
    [{ minReplicas: '1' }, 'spec.autoscaling.minReplicas'],
  ];
  for (const [value, path] of refused) {
    const got = at(value);
    assert.equal(got.length, 1, `${JSON.stringify(value)}: ${got.join('; ')}`);
    assert.ok(got[0]!.startsWith(`${path}: `), got[0]);
  }
});

test('autoscaling: maxReplicas not below minReplicas, maxReplicas defaulting to 100', () => {
  const at = (autoscaling: unknown) => issues({ ...base(), autoscaling });
  const message =
    'spec.autoscaling.maxReplicas: maxReplicas must not be less than minReplicas (maxReplicas defaults to 100)';
  assert.deepEqual(at({ minReplicas: 3, maxReplicas: 2 }), [message]);
  assert.deepEqual(at({ minReplicas: 101 }), [message]);
  assert.deepEqual(at({ minReplicas: 100 }), []);
  assert.deepEqual(at({ minReplicas: 2, maxReplicas: 2 }), []);
  assert.deepEqual(at({ maxReplicas: 1 }), []);
});

test('autoscaling: pollingInterval and cooldownPeriod are whole seconds; pollingInterval at least 1s', () => {
  const at = (autoscaling: unknown) => issues({ ...base(), autoscaling });
  for (const ok of ['1s', '30s', '5m', '1m30s', '1h']) {
    assert.deepEqual(at({ pollingInterval: ok, cooldownPeriod: ok }), [], ok);
  }
  assert.deepEqual(at({ cooldownPeriod: '0s' }), []);
  assert.deepEqual(at({ pollingInterval: '0s' }), ['spec.autoscaling.pollingInterval: must be at least 1s']);
  for (const bad of ['500ms', '1.5s', '30', 'PT30S', '1d']) {
    assert.deepEqual(
      at({ pollingInterval: bad }),
      ['spec.autoscaling.pollingInterval: must be whole seconds like 30s, 5m or 1h30m'],
      bad,
    );
    assert.deepEqual(
      at({ cooldownPeriod: bad }),
      ['spec.autoscaling.cooldownPeriod: must be whole seconds like 30s, 5m or 1h30m'],
      bad,
    );
  }
});

test('autoscaling: the CRD carries the fields, their bounds and rules, and no defaults', () => {
  const node = schema().properties.spec.properties.autoscaling;
  const p = node.properties;
  assert.deepEqual(Object.keys(p), [
    'minReplicas',
    'maxReplicas',
    'backlogPerReplica',
    'activationBacklog',
    'pollingInterval',
    'cooldownPeriod',
  ]);
  assert.deepEqual(
    [p.minReplicas.type, p.minReplicas.minimum, p.minReplicas.maximum],
    ['integer', 0, 10_000],
  );
  assert.deepEqual([p.maxReplicas.type, p.maxReplicas.minimum], ['integer', 1]);
  assert.deepEqual([p.backlogPerReplica.minimum, p.activationBacklog.minimum], [1, 0]);
  for (const d of [p.pollingInterval, p.cooldownPeriod]) {
    assert.equal(d.type, 'string');
    assert.equal(d.pattern, WHOLE_SECONDS_PATTERN);
  }
  assert.deepEqual(rulesOf(p.pollingInterval), [
    {
      rule: `!self.matches('${WHOLE_SECONDS_PATTERN}') || duration(self) >= duration('1s')`,
      message: 'must be at least 1s',
    },
  ]);
  assert.deepEqual(rulesOf(node), [
    {
      rule: '(has(self.maxReplicas) ? self.maxReplicas : 100) >= (has(self.minReplicas) ? self.minReplicas : 0)',
      message: 'maxReplicas must not be less than minReplicas (maxReplicas defaults to 100)',
      fieldPath: '.maxReplicas',
    },
  ]);
  // Every field is documented (the descriptions become docs/reference.md), with its default.
  for (const [name, field] of Object.entries(p) as [string, Any][]) {
    assert.match(field.description ?? '', /Default /, name);
    assert.equal(field.default, undefined, name);
  }
  assert.match(node.description, /KEDA/);
});

test('with autoscaling, spec.deployment.spec.replicas is refused (the autoscaler sets it)', () => {
  const message =
    'spec.deployment.spec.replicas: spec.deployment.spec.replicas is set by the autoscaler when spec.autoscaling is given: remove it (spec.autoscaling.minReplicas and maxReplicas bound the replicas)';
  assert.deepEqual(issues({ ...base(), autoscaling: {}, deployment: { spec: { replicas: 2 } } }), [message]);
  // Without autoscaling, as before.
  assert.deepEqual(issues({ ...base(), deployment: { spec: { replicas: 2 } } }), []);
  // Anything else in spec.deployment is fine beside autoscaling.
  assert.deepEqual(
    issues({
      ...base(),
      autoscaling: {},
      deployment: {
        metadata: { labels: { a: 'b' } },
        spec: { template: { spec: { priorityClassName: 'x' } } },
      },
    }),
    [],
  );
  const spec = schema().properties.spec;
  assert.ok(
    rulesOf(spec).some(
      (r) =>
        r.rule ===
          '!has(self.autoscaling) || !has(self.deployment) || !has(self.deployment.spec) || !has(self.deployment.spec.replicas)' &&
        r.fieldPath === '.deployment.spec.replicas' &&
        `spec.deployment.spec.replicas: ${r.message}` === message,
    ),
  );
  // CEL sees only declared fields: spec.deployment.spec.replicas is declared, as permissive as CEL allows.
  const declared = spec.properties.deployment.properties.spec;
  assert.equal(declared.type, 'object');
  assert.equal(declared.nullable, true);
  assert.equal(declared['x-kubernetes-preserve-unknown-fields'], true);
  assert.deepEqual(
    { ...declared.properties.replicas, description: undefined },
    { 'x-kubernetes-int-or-string': true, nullable: true, description: undefined },
  );
});

test('spec.deployment stays the controller’s to type-check: odd values are its InvalidSpec, not zod’s', () => {
  // A string spec and a string replicas are refused once each, by deployment-check.ts (as before this change).
  const a = issues({ ...base(), deployment: { spec: 'x' } });
  assert.equal(a.length, 1, a.join('; '));
  assert.ok(a[0]!.startsWith('spec.deployment.spec: '), a[0]);
  const b = issues({ ...base(), deployment: { spec: { replicas: '2' } } });
  assert.equal(b.length, 1, b.join('; '));
  assert.ok(b[0]!.startsWith('spec.deployment.spec.replicas: '), b[0]);
});

test('with autoscaling, a non-persistent topic is refused (the scaler reads persistent topics only)', () => {
  const got = issues({
    ...base(),
    pulsar: { ...base().pulsar, topic: 'non-persistent://public/default/t' },
    autoscaling: {},
  });
  assert.deepEqual(got, [
    "spec.autoscaling: spec.autoscaling needs a persistent topic: KEDA's pulsar scaler reads the backlog of persistent topics, and a non-persistent topic keeps none",
  ]);
  assert.deepEqual(
    issues({ ...base(), pulsar: { ...base().pulsar, topic: 'non-persistent://public/default/t' } }),
    [],
  );
  // Short forms are persistent.
  assert.deepEqual(issues({ ...base(), pulsar: { ...base().pulsar, topic: 't' }, autoscaling: {} }), []);
  assert.ok(
    rulesOf(schema().properties.spec).some((r) => r.rule.includes("startsWith('non-persistent://')")),
  );
});

test('with autoscaling, an Exclusive subscription needs maxReplicas 1', () => {
  const message =
    'spec.autoscaling.maxReplicas: an Exclusive subscription admits one consumer: with spec.autoscaling set maxReplicas to 1, or use a Shared, Key_Shared or Failover subscription';
  const exclusive = { subscriptionType: 'Exclusive' };
  assert.deepEqual(issues({ ...base(), delivery: exclusive, autoscaling: {} }), [message]);
  assert.deepEqual(issues({ ...base(), delivery: exclusive, autoscaling: { maxReplicas: 3 } }), [message]);
  assert.deepEqual(issues({ ...base(), delivery: exclusive, autoscaling: { maxReplicas: 1 } }), []);
  for (const type of ['Shared', 'Key_Shared', 'Failover']) {
    assert.deepEqual(issues({ ...base(), delivery: { subscriptionType: type }, autoscaling: {} }), [], type);
  }
  assert.ok(
    rulesOf(schema().properties.spec).some(
      (r) =>
        r.fieldPath === '.autoscaling.maxReplicas' &&
        `spec.autoscaling.maxReplicas: ${r.message}` === message,
    ),
  );
});
