// The subscription type follows the ordering unless the trigger names one: key → Key_Shared, strict → Failover,
// none → Shared. One rule (settings.ts subscriptionTypeFor) for the controller's rendering and for the dispatcher
// reading an environment without PULSAR_SUBSCRIPTION_TYPE, so both sides agree.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  DEFAULT_RESOURCES,
  type JsonObject,
  renderTrigger,
  settingsFor,
} from '../../../src/trigger/render.ts';
import {
  decodeSettingsEnv,
  ENV,
  encodeSettingsEnv,
  envRecord,
  ORDERINGS,
  type Ordering,
  SUBSCRIPTION_TYPES,
  type SubscriptionType,
  subscriptionTypeFor,
} from '../../../src/trigger/settings.ts';
import type { PulsarTrigger, TriggerSpec } from '../../../src/trigger/spec.ts';

const DERIVED: Record<Ordering, SubscriptionType> = { none: 'Shared', key: 'Key_Shared', strict: 'Failover' };

const spec = (delivery: TriggerSpec['delivery']): TriggerSpec => ({
  pulsar: { topic: 'persistent://public/default/orders', broker: 'pulsar://pulsar.addr:6650' },
  kubeless: { function: 'http://fn.default:8080' },
  ...(delivery ? { delivery } : {}),
});

const trigger = (delivery: TriggerSpec['delivery']): PulsarTrigger => ({
  apiVersion: 'kubeless.io/v1',
  kind: 'PulsarTrigger',
  metadata: { name: 'orders', namespace: 'default', uid: '5d0c8a52-3c1e-4f5e-9a55-0c2b8a7e1d10' },
  spec: spec(delivery),
});

function settings(delivery: TriggerSpec['delivery']) {
  const s = settingsFor({ name: 'orders', namespace: 'default' }, spec(delivery), 'UTC');
  assert.ok(s.ok, s.ok ? '' : s.error.message);
  return s.value;
}

/** The minimal environment a dispatcher needs, plus `extra`. */
const env = (extra: Record<string, string>) => ({
  TRIGGER_NAME: 't',
  TRIGGER_NAMESPACE: 'ns',
  PULSAR_TOPIC: 'orders',
  PULSAR_BROKER: 'pulsar://b:6650',
  KUBELESS_FUNCTION: 'http://f.ns:8080',
  ...extra,
});

function decoded(vars: Record<string, string | undefined>) {
  const r = decodeSettingsEnv(vars);
  assert.ok(r.ok, r.ok ? '' : r.error.message);
  return r.value;
}

test('the rule: key → Key_Shared, strict → Failover, none → Shared; a given type always wins', () => {
  for (const ordering of ORDERINGS) {
    assert.equal(subscriptionTypeFor(ordering, undefined), DERIVED[ordering], ordering);
    for (const given of SUBSCRIPTION_TYPES) assert.equal(subscriptionTypeFor(ordering, given), given);
  }
});

test('from the spec: no ordering (key by default) → Key_Shared; each ordering its type; spec.delivery.subscriptionType wins', () => {
  assert.equal(settings(undefined).subscriptionType, 'Key_Shared');
  assert.equal(settings({}).subscriptionType, 'Key_Shared');
  for (const ordering of ORDERINGS) {
    assert.equal(settings({ ordering }).subscriptionType, DERIVED[ordering], ordering);
    for (const subscriptionType of SUBSCRIPTION_TYPES)
      assert.equal(settings({ ordering, subscriptionType }).subscriptionType, subscriptionType);
  }
  // The seed's choice, kept by writing it down.
  assert.equal(settings({ subscriptionType: 'Exclusive' }).subscriptionType, 'Exclusive');
});

test('the dispatcher without PULSAR_SUBSCRIPTION_TYPE follows DISPATCH_ORDERING the same way; a given type wins', () => {
  assert.equal(decoded(env({})).subscriptionType, 'Key_Shared');
  assert.equal(decoded(env({ [ENV.subscriptionType]: '' })).subscriptionType, 'Key_Shared', 'blank is unset');
  for (const ordering of ORDERINGS) {
    assert.equal(decoded(env({ [ENV.ordering]: ordering })).subscriptionType, DERIVED[ordering], ordering);
    for (const type of SUBSCRIPTION_TYPES)
      assert.equal(
        decoded(env({ [ENV.ordering]: ordering, [ENV.subscriptionType]: type })).subscriptionType,
        type,
      );
  }
});

test('the env codec: what the controller writes decodes to the same settings, and the variable could be left out', () => {
  for (const ordering of [undefined, ...ORDERINGS]) {
    for (const subscriptionType of [undefined, ...SUBSCRIPTION_TYPES]) {
      const s = settings({
        ...(ordering ? { ordering } : {}),
        ...(subscriptionType ? { subscriptionType } : {}),
      });
      const vars = envRecord(encodeSettingsEnv(s));
      assert.equal(vars[ENV.subscriptionType], s.subscriptionType, 'the type is always written');
      assert.deepEqual(decoded(vars), s);
      // Without the variable the dispatcher derives the type from DISPATCH_ORDERING as the controller did: the
      // same settings when the trigger named no type.
      const without = decoded({ ...vars, [ENV.subscriptionType]: undefined });
      assert.equal(without.subscriptionType, DERIVED[ordering ?? 'key']);
      if (subscriptionType === undefined) assert.deepEqual(without, s);
    }
  }
});

test('the rendered Deployment: the derived type in its env; a rolling update for every type but Exclusive', () => {
  const cases: [TriggerSpec['delivery'], SubscriptionType][] = [
    [undefined, 'Key_Shared'],
    [{ ordering: 'key' }, 'Key_Shared'],
    [{ ordering: 'strict' }, 'Failover'],
    [{ ordering: 'none' }, 'Shared'],
    [{ ordering: 'key', subscriptionType: 'Shared' }, 'Shared'],
    [{ ordering: 'strict', subscriptionType: 'Exclusive' }, 'Exclusive'],
  ];
  for (const [delivery, type] of cases) {
    const r = renderTrigger(trigger(delivery), {
      dispatcherImage: 'kpt/dispatcher:1',
      timezone: 'UTC',
      resources: DEFAULT_RESOURCES,
    });
    assert.ok(r.ok, r.ok ? '' : r.error.message);
    const d = r.value.deployment;
    // biome-ignore lint/suspicious/noExplicitAny: walking rendered JSON in assertions
    const container = (d.spec as any).template.spec.containers[0] as {
      env: { name: string; value?: string }[];
    };
    const value = container.env.find((e) => e.name === ENV.subscriptionType)?.value;
    assert.equal(value, type, JSON.stringify(delivery));
    assert.equal(r.value.settings.subscriptionType, type);
    // Several Shared, Key_Shared or Failover consumers may subscribe at once, so old and new pods overlap in a
    // rolling update (Kubernetes' default, no strategy written); one Exclusive consumer at a time: Recreate.
    const strategy = (d.spec as JsonObject).strategy;
    if (type === 'Exclusive') assert.deepEqual(strategy, { type: 'Recreate' });
    else assert.equal(strategy, undefined, type);
  }
});
