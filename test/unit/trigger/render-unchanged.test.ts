// Triggers without the fields of issue #20 render as they did before them: the same Deployment, byte for byte, and
// the same token Secret, but for two changes on purpose (expectedDeployment): the Deployment's annotation naming its
// subscription type (metadata only: no pod restarts for it; its hash changes, so each Deployment is applied once
// after an upgrade), and, for a trigger without a subscription type, the type itself, which now follows its
// ordering. fixtures/render-before-autoscaling.json holds what src/trigger/ rendered for these triggers, with this
// configuration, before spec.autoscaling.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import {
  ANNOTATION_HASH,
  ANNOTATION_SUBSCRIPTION_TYPE,
  DEFAULT_RESOURCES,
  type RenderConfig,
  renderTrigger,
} from '../../../src/trigger/render.ts';
import { ENV, subscriptionTypeFor } from '../../../src/trigger/settings.ts';
import type { PulsarTrigger } from '../../../src/trigger/spec.ts';

const config: RenderConfig = {
  dispatcherImage: 'kpt/dispatcher:1',
  timezone: 'UTC',
  resources: DEFAULT_RESOURCES,
};
const meta = (name: string, namespace = 'default') => ({
  name,
  namespace,
  uid: '0b8e0f5a-4a8e-4d39-9a7e-1f0c4d2a9b11',
});
const base = { apiVersion: 'kubeless.io/v1', kind: 'PulsarTrigger' } as const;

const TRIGGERS: Record<string, PulsarTrigger> = {
  // The seed README's two manifests.
  seedFirst: {
    ...base,
    metadata: meta('mytrigger'),
    spec: {
      pulsar: {
        topic: 'persistent://public/default/mytopic',
        broker: 'pulsar://pulsar.addr:6650',
        'auth-token': 'nnn',
      },
      kubeless: { function: 'http://myfunction.default:8080' },
    },
  },
  seedSecond: {
    ...base,
    metadata: meta('mytrigger'),
    spec: {
      pulsar: {
        topic: 'persistent://public/default/mytopic',
        broker: 'pulsar://pulsar.addr:6650',
        'auth-token': 'nnn',
      },
      kubeless: { function: 'http://myfunction.default:8080' },
      deployment: {
        metadata: { namespace: 'another-namespace' },
        spec: {
          template: {
            spec: {
              containers: [
                { resources: { limits: { cpu: 4, memory: '1Gi' }, requests: { cpu: 1, memory: '512Mi' } } },
              ],
            },
          },
        },
      },
    },
  },
  noToken: {
    ...base,
    metadata: meta('plain', 'apps'),
    spec: {
      pulsar: { topic: 'events', broker: 'pulsar://b:6650' },
      kubeless: { function: 'http://f.apps:8080' },
    },
  },
  secretRefTls: {
    ...base,
    metadata: meta('secure', 'apps'),
    spec: {
      pulsar: {
        topic: 'persistent://t/n/orders',
        broker: 'pulsar+ssl://broker.pulsar:6651',
        authTokenSecretRef: { name: 'pulsar-token', key: 'jwt' },
        tls: {
          caSecretRef: { name: 'pulsar-ca', key: 'ca.crt' },
          clientCertSecretRef: { name: 'client-tls' },
        },
      },
      kubeless: { function: 'https://orders.apps:8443' },
      delivery: {
        subscription: 'orders-sub',
        subscriptionType: 'Key_Shared',
        concurrency: 8,
        ordering: 'key',
        timeout: '30s',
        retry: { initialBackoff: '500ms', maxBackoff: '1m', maxAttempts: 5 },
        statusActions: [{ status: '4xx', action: 'drop' }],
      },
      deployment: { spec: { replicas: 3 } },
    },
  },
  exclusiveConfigMapCa: {
    ...base,
    metadata: meta('solo'),
    spec: {
      pulsar: {
        topic: 'persistent://public/default/solo',
        broker: 'pulsar+ssl://b:6651',
        tls: { caConfigMapRef: { name: 'ca', key: 'ca.pem' }, verifyHostname: false },
      },
      kubeless: { function: 'http://solo.default:8080' },
      delivery: { subscriptionType: 'Exclusive', ordering: 'strict' },
    },
  },
};

interface Golden {
  hash: string;
  deployment: unknown;
  secret: unknown;
}

const golden = JSON.parse(
  readFileSync(new URL('fixtures/render-before-autoscaling.json', import.meta.url), 'utf8'),
) as Record<string, Golden>;

test('the fixture covers every trigger here', () => {
  assert.deepEqual(Object.keys(golden).sort(), Object.keys(TRIGGERS).sort());
});

/**
 * The one difference on purpose (issue #20, part 5): without spec.delivery.subscriptionType the subscription type
 * follows the ordering (settings.ts subscriptionTypeFor) where the fixture has the old default, Shared. The seed's
 * manifests (ordering key by default) now subscribe Key_Shared; their Deployment changes in that value and so in
 * its hash, nothing else.
 */
function expectedDeployment(trigger: PulsarTrigger, want: Golden, hash: string): unknown {
  const delivery = trigger.spec.delivery;
  const d = structuredClone(want.deployment) as {
    metadata: { annotations: Record<string, string> };
    spec: { template: { spec: { containers: { env: { name: string; value?: string }[] }[] } } };
  };
  const env = d.spec.template.spec.containers[0]!.env.find((e) => e.name === ENV.subscriptionType)!;
  if (!delivery?.subscriptionType) {
    assert.equal(env.value, 'Shared', 'the fixture has the old default');
    env.value = subscriptionTypeFor(delivery?.ordering ?? 'key', undefined);
  }
  // The annotation comes after kubeless.io/trigger and before the hash (render.ts's fixed order).
  const { [ANNOTATION_HASH]: _old, ...rest } = d.metadata.annotations;
  d.metadata.annotations = { ...rest, [ANNOTATION_SUBSCRIPTION_TYPE]: env.value!, [ANNOTATION_HASH]: hash };
  return d;
}

for (const [name, trigger] of Object.entries(TRIGGERS)) {
  test(`${name}: the same Deployment (byte for byte, but for the derived subscription type), Secret and hash as before spec.autoscaling; no KEDA object`, () => {
    const r = renderTrigger(trigger, config);
    assert.ok(r.ok, r.ok ? '' : r.error.message);
    const want = golden[name]!;
    assert.notEqual(r.value.hash, want.hash, 'the new annotation is hashed too');
    if (trigger.spec.delivery?.subscriptionType) {
      const template = (x: unknown) => JSON.stringify((x as { spec: { template: unknown } }).spec.template);
      assert.equal(template(r.value.deployment), template(want.deployment), 'no pod restart for it');
    }
    // JSON.stringify compares key order too: the hash is of this text.
    assert.equal(
      JSON.stringify(r.value.deployment),
      JSON.stringify(expectedDeployment(trigger, want, r.value.hash)),
    );
    assert.equal(JSON.stringify(r.value.secret ?? null), JSON.stringify(want.secret));
    assert.equal(r.value.scaledObject, undefined);
    assert.equal(r.value.scaledObjectHash, undefined);
    assert.equal(r.value.triggerAuthentication, undefined);
    assert.equal(r.value.triggerAuthenticationHash, undefined);
    assert.equal(r.value.deleteSubscription, false);
  });
}
