// spec.autoscaling rendered into KEDA's ScaledObject and TriggerAuthentication (src/trigger/keda.ts, called from
// renderTrigger), the Deployment without replicas beside them, and the admin URL they read the backlog from.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  AUTOSCALING_DEFAULTS,
  KEDA_API_VERSION,
  resolveAutoscaling,
  WHOLE_SECONDS_PATTERN,
  wholeSeconds,
} from '../../../src/trigger/keda.ts';
import {
  ADMIN_PORT_HTTP,
  ADMIN_PORT_HTTPS,
  adminUrlOf,
  defaultAdminUrl,
} from '../../../src/trigger/names.ts';
import {
  ANNOTATION_HASH,
  ANNOTATION_TRIGGER,
  DEFAULT_RESOURCES,
  type JsonObject,
  type RenderConfig,
  type RenderFacts,
  renderTrigger,
} from '../../../src/trigger/render.ts';
import type { PulsarSpec, PulsarTrigger, TriggerSpec } from '../../../src/trigger/spec.ts';

const config: RenderConfig = {
  dispatcherImage: 'kpt/dispatcher:1',
  timezone: 'UTC',
  resources: DEFAULT_RESOURCES,
};
const UID = '0b8e0f5a-4a8e-4d39-9a7e-1f0c4d2a9b11';

function trigger(
  spec: Partial<TriggerSpec>,
  pulsar: Partial<PulsarSpec> = {},
  name = 'mytrigger',
  namespace = 'default',
): PulsarTrigger {
  return {
    apiVersion: 'kubeless.io/v1',
    kind: 'PulsarTrigger',
    metadata: { name, namespace, uid: UID },
    spec: {
      pulsar: {
        topic: 'persistent://public/default/mytopic',
        broker: 'pulsar://pulsar.addr:6650',
        ...pulsar,
      },
      kubeless: { function: 'http://myfunction.default:8080' },
      ...spec,
    } as TriggerSpec,
  };
}

function render(t: PulsarTrigger, facts?: RenderFacts) {
  const r = renderTrigger(t, config, facts);
  assert.ok(r.ok, r.ok ? '' : r.error.message);
  return r.value;
}

// biome-ignore lint/suspicious/noExplicitAny: walking rendered JSON in assertions
type Any = any;
const so = (r: ReturnType<typeof render>): Any => r.scaledObject;
const ta = (r: ReturnType<typeof render>): Any => r.triggerAuthentication;
const scaler = (r: ReturnType<typeof render>): Any => so(r).spec.triggers[0];

test('spec.autoscaling: {} is KEDA with its defaults written out; the Deployment has no replicas', () => {
  const r = render(trigger({ autoscaling: {} }));
  assert.deepEqual(r.scaledObject, {
    apiVersion: 'keda.sh/v1alpha1',
    kind: 'ScaledObject',
    metadata: {
      name: 'mytrigger',
      namespace: 'default',
      labels: (r.deployment.metadata as JsonObject).labels,
      annotations: { [ANNOTATION_TRIGGER]: 'default/mytrigger', [ANNOTATION_HASH]: r.scaledObjectHash },
      ownerReferences: [
        {
          apiVersion: 'kubeless.io/v1',
          kind: 'PulsarTrigger',
          name: 'mytrigger',
          uid: UID,
          controller: true,
          blockOwnerDeletion: true,
        },
      ],
    },
    spec: {
      scaleTargetRef: { name: 'mytrigger' },
      pollingInterval: 30,
      cooldownPeriod: 300,
      minReplicaCount: 0,
      maxReplicaCount: 100,
      triggers: [
        {
          type: 'pulsar',
          metadata: {
            adminURL: 'http://pulsar.addr:8080',
            topic: 'persistent://public/default/mytopic',
            subscription: 'mytrigger-default',
            isPartitionedTopic: 'false',
            msgBacklogThreshold: '10',
            activationMsgBacklogThreshold: '0',
          },
        },
      ],
    },
  });
  assert.match(r.scaledObjectHash ?? '', /^[0-9a-f]{16}$/);
  // No token, no TLS: KEDA needs no TriggerAuthentication.
  assert.equal(r.triggerAuthentication, undefined);
  assert.equal(r.triggerAuthenticationHash, undefined);
  assert.equal(r.triggerAuthenticationName, 'mytrigger-keda-auth');
  const spec = r.deployment.spec as JsonObject;
  assert.ok(!('replicas' in spec), 'no spec.replicas: the apply leaves it to the HPA');
  // Everything else in the Deployment is what it is without autoscaling.
  const plain = render(trigger({}));
  const strip = (d: JsonObject) => {
    const c = structuredClone(d) as Any;
    delete c.spec.replicas;
    delete c.metadata.annotations[ANNOTATION_HASH];
    return c;
  };
  assert.deepEqual(strip(r.deployment), strip(plain.deployment));
  assert.notEqual(r.hash, plain.hash);
  assert.equal((plain.deployment.spec as JsonObject).replicas, 1);
  assert.equal(plain.scaledObject, undefined);
});

test('the defaults are KEDA’s own, as its pulsar scaler and ScaledObject document them', () => {
  assert.deepEqual(resolveAutoscaling({}), {
    minReplicas: 0,
    maxReplicas: 100,
    backlogPerReplica: 10,
    activationBacklog: 0,
    pollingIntervalSeconds: 30,
    cooldownPeriodSeconds: 300,
  });
  assert.equal(AUTOSCALING_DEFAULTS.pollingInterval, '30s');
});

test('every field reaches KEDA: replicas, thresholds as strings, durations in seconds', () => {
  const r = render(
    trigger({
      autoscaling: {
        minReplicas: 2,
        maxReplicas: 7,
        backlogPerReplica: 500,
        activationBacklog: 3,
        pollingInterval: '1m30s',
        cooldownPeriod: '1h',
      },
    }),
  );
  const s = so(r).spec;
  assert.equal(s.minReplicaCount, 2);
  assert.equal(s.maxReplicaCount, 7);
  assert.equal(s.pollingInterval, 90);
  assert.equal(s.cooldownPeriod, 3600);
  assert.equal(scaler(r).metadata.msgBacklogThreshold, '500');
  assert.equal(scaler(r).metadata.activationMsgBacklogThreshold, '3');
  for (const v of Object.values(scaler(r).metadata)) assert.equal(typeof v, 'string');
});

test('minReplicas 0 given explicitly is 0 (scale to zero), not a missing value', () => {
  const r = render(trigger({ autoscaling: { minReplicas: 0, maxReplicas: 1 } }));
  assert.equal(so(r).spec.minReplicaCount, 0);
  assert.equal(so(r).spec.maxReplicaCount, 1);
});

test('topic and subscription: the full topic name; <trigger>-<namespace> or spec.delivery.subscription', () => {
  const short = render(trigger({ autoscaling: {} }, { topic: 'orders' }, 'orders', 'shop'));
  assert.equal(scaler(short).metadata.topic, 'persistent://public/default/orders');
  assert.equal(scaler(short).metadata.subscription, 'orders-shop');
  const named = render(trigger({ autoscaling: {}, delivery: { subscription: 'billing' } }));
  assert.equal(scaler(named).metadata.subscription, 'billing');
  assert.equal(scaler(named).metadata.subscription, named.settings.subscription);
});

test('a partitioned topic (a fact the controller reads from the admin API) sets isPartitionedTopic', () => {
  const t = trigger({ autoscaling: {} });
  assert.equal(scaler(render(t, { partitionedTopic: true })).metadata.isPartitionedTopic, 'true');
  assert.equal(scaler(render(t, { partitionedTopic: false })).metadata.isPartitionedTopic, 'false');
  assert.equal(scaler(render(t)).metadata.isPartitionedTopic, 'false');
  assert.notEqual(render(t, { partitionedTopic: true }).scaledObjectHash, render(t).scaledObjectHash);
  // The fact changes only the ScaledObject.
  assert.equal(render(t, { partitionedTopic: true }).hash, render(t).hash);
});

test('an inline token: bearer from the controller’s Secret, never the token itself', () => {
  const token = 'eyJhbGciOiJIUzI1NiJ9.c2VjcmV0LXRva2Vu.sig';
  const r = render(trigger({ autoscaling: {} }, { 'auth-token': token }));
  assert.equal(scaler(r).metadata.authModes, 'bearer');
  assert.deepEqual(scaler(r).authenticationRef, { name: 'mytrigger-keda-auth' });
  assert.deepEqual(r.triggerAuthentication, {
    apiVersion: KEDA_API_VERSION,
    kind: 'TriggerAuthentication',
    metadata: {
      name: 'mytrigger-keda-auth',
      namespace: 'default',
      labels: (r.deployment.metadata as JsonObject).labels,
      annotations: {
        [ANNOTATION_TRIGGER]: 'default/mytrigger',
        [ANNOTATION_HASH]: r.triggerAuthenticationHash,
      },
      ownerReferences: (r.deployment.metadata as JsonObject).ownerReferences,
    },
    spec: {
      secretTargetRef: [{ parameter: 'bearerToken', name: 'mytrigger-pulsar-auth-token', key: 'token' }],
    },
  });
  assert.equal(r.secretName, 'mytrigger-pulsar-auth-token');
  const text = JSON.stringify([r.scaledObject, r.triggerAuthentication]);
  for (const form of [token, Buffer.from(token).toString('base64'), 'c2VjcmV0LXRva2Vu'])
    assert.ok(!text.includes(form), `no ${form} in the KEDA objects`);
  // A changed token changes the Secret (and rolls the pods), not KEDA's objects, which only name the Secret.
  const other = render(trigger({ autoscaling: {} }, { 'auth-token': `${token}x` }));
  assert.equal(other.scaledObjectHash, r.scaledObjectHash);
  assert.equal(other.triggerAuthenticationHash, r.triggerAuthenticationHash);
});

test('authTokenSecretRef: bearer from the user’s Secret and key', () => {
  const r = render(trigger({ autoscaling: {} }, { authTokenSecretRef: { name: 'pulsar-jwt', key: 'jwt' } }));
  assert.equal(scaler(r).metadata.authModes, 'bearer');
  assert.deepEqual(ta(r).spec, {
    secretTargetRef: [{ parameter: 'bearerToken', name: 'pulsar-jwt', key: 'jwt' }],
  });
});

test('pulsar+ssl with a CA Secret, a client certificate and a token: https, tls,bearer, ca, cert and key', () => {
  const r = render(
    trigger(
      { autoscaling: {} },
      {
        broker: 'pulsar+ssl://broker.pulsar:6651',
        authTokenSecretRef: { name: 'pulsar-jwt', key: 'jwt' },
        tls: {
          caSecretRef: { name: 'pulsar-ca', key: 'ca.crt' },
          clientCertSecretRef: { name: 'client-tls' },
        },
      },
    ),
  );
  assert.equal(scaler(r).metadata.adminURL, 'https://broker.pulsar:8443');
  assert.equal(scaler(r).metadata.authModes, 'tls,bearer');
  assert.deepEqual(ta(r).spec, {
    secretTargetRef: [
      { parameter: 'bearerToken', name: 'pulsar-jwt', key: 'jwt' },
      { parameter: 'ca', name: 'pulsar-ca', key: 'ca.crt' },
      { parameter: 'cert', name: 'client-tls', key: 'tls.crt' },
      { parameter: 'key', name: 'client-tls', key: 'tls.key' },
    ],
  });
});

test('a CA from a ConfigMap goes through configMapTargetRef', () => {
  const r = render(
    trigger(
      { autoscaling: {} },
      {
        broker: 'pulsar+ssl://b:6651',
        'auth-token': 'nnn',
        tls: { caConfigMapRef: { name: 'ca-bundle', key: 'ca.pem' } },
      },
    ),
  );
  assert.deepEqual(ta(r).spec, {
    secretTargetRef: [{ parameter: 'bearerToken', name: 'mytrigger-pulsar-auth-token', key: 'token' }],
    configMapTargetRef: [{ parameter: 'ca', name: 'ca-bundle', key: 'ca.pem' }],
  });
});

test('a CA alone over https is passed, without an auth mode (KEDA then uses its system roots: documented)', () => {
  const r = render(
    trigger(
      { autoscaling: {} },
      { broker: 'pulsar+ssl://b:6651', tls: { caSecretRef: { name: 'ca', key: 'c' } } },
    ),
  );
  assert.equal(scaler(r).metadata.authModes, undefined);
  assert.deepEqual(ta(r).spec, { secretTargetRef: [{ parameter: 'ca', name: 'ca', key: 'c' }] });
  assert.deepEqual(scaler(r).authenticationRef, { name: 'mytrigger-keda-auth' });
});

test('an http admin URL takes no TLS material: only the token', () => {
  const tls = { caSecretRef: { name: 'ca', key: 'c' }, clientCertSecretRef: { name: 'client' } };
  const r = render(
    trigger(
      { autoscaling: {} },
      { broker: 'pulsar+ssl://b:6651', adminUrl: 'http://b:8080', 'auth-token': 'nnn', tls },
    ),
  );
  assert.equal(scaler(r).metadata.authModes, 'bearer');
  assert.deepEqual(ta(r).spec, {
    secretTargetRef: [{ parameter: 'bearerToken', name: 'mytrigger-pulsar-auth-token', key: 'token' }],
  });
  // Without a token, nothing at all.
  const none = render(
    trigger({ autoscaling: {} }, { broker: 'pulsar+ssl://b:6651', adminUrl: 'http://b:8080', tls }),
  );
  assert.equal(none.triggerAuthentication, undefined);
  assert.equal(scaler(none).authenticationRef, undefined);
  assert.equal(scaler(none).metadata.authModes, undefined);
});

test('another namespace: KEDA objects beside the Deployment, without ownerReferences (the finalizer cleans up)', () => {
  const r = render(
    trigger({ autoscaling: {}, deployment: { metadata: { namespace: 'workers' } } }, { 'auth-token': 'nnn' }),
  );
  assert.equal(r.sameNamespace, false);
  for (const obj of [r.scaledObject, r.triggerAuthentication]) {
    const m = (obj as Any).metadata;
    assert.equal(m.namespace, 'workers');
    assert.equal(m.ownerReferences, undefined);
    assert.equal(m.annotations[ANNOTATION_TRIGGER], 'default/mytrigger');
  }
  // The token Secret the TriggerAuthentication names is the one beside it.
  assert.equal((r.secret!.metadata as JsonObject).namespace, 'workers');
  assert.equal(ta(r).spec.secretTargetRef[0].name, r.secretName);
});

test('a long trigger name: the ScaledObject name fits a label value (KEDA labels with it), still unique', () => {
  const long = `t${'x'.repeat(80)}`;
  const r = render(trigger({ autoscaling: {} }, { 'auth-token': 'nnn' }, long));
  assert.equal((r.deployment.metadata as JsonObject).name, long);
  assert.ok(r.scaledObjectName.length <= 63);
  assert.equal(so(r).metadata.name, r.scaledObjectName);
  assert.equal(so(r).spec.scaleTargetRef.name, long);
  assert.notEqual(r.scaledObjectName, render(trigger({ autoscaling: {} }, {}, `${long}y`)).scaledObjectName);
  assert.equal(ta(r).metadata.name, `${long}-keda-auth`);
  const short = render(trigger({ autoscaling: {} }, {}, 'x'.repeat(63)));
  assert.equal(short.scaledObjectName, 'x'.repeat(63));
});

test('KEDA objects are deterministic; their hashes are their kubeless.io/spec-hash and follow their content', () => {
  const t = trigger({ autoscaling: { maxReplicas: 5 } }, { 'auth-token': 'nnn' });
  const a = render(t);
  const b = render(t);
  assert.equal(JSON.stringify(a.scaledObject), JSON.stringify(b.scaledObject));
  assert.equal(JSON.stringify(a.triggerAuthentication), JSON.stringify(b.triggerAuthentication));
  assert.equal(so(a).metadata.annotations[ANNOTATION_HASH], a.scaledObjectHash);
  assert.equal(ta(a).metadata.annotations[ANNOTATION_HASH], a.triggerAuthenticationHash);
  const c = render(trigger({ autoscaling: { maxReplicas: 6 } }, { 'auth-token': 'nnn' }));
  assert.notEqual(c.scaledObjectHash, a.scaledObjectHash);
  assert.equal(c.triggerAuthenticationHash, a.triggerAuthenticationHash);
  // The Deployment does not depend on the autoscaler's numbers.
  assert.equal(c.hash, a.hash);
});

test('delivery.deleteSubscription and the admin URL are in the render for the controller', () => {
  assert.equal(render(trigger({ delivery: { deleteSubscription: true } })).deleteSubscription, true);
  assert.equal(render(trigger({ delivery: { deleteSubscription: false } })).deleteSubscription, false);
  assert.equal(render(trigger({})).deleteSubscription, false);
  assert.equal(render(trigger({})).adminUrl, 'http://pulsar.addr:8080');
  assert.equal(
    render(trigger({}, { adminUrl: 'https://admin.example:443/pulsar/' })).adminUrl,
    'https://admin.example:443/pulsar',
  );
  // Neither changes the Deployment: the controller acts on them.
  assert.equal(render(trigger({ delivery: { deleteSubscription: true } })).hash, render(trigger({})).hash);
  assert.equal(render(trigger({}, { adminUrl: 'http://elsewhere:80' })).hash, render(trigger({})).hash);
});

test('the default admin URL: first host of the broker URL, the usual admin port whatever the broker port', () => {
  assert.equal(ADMIN_PORT_HTTP, 8080);
  assert.equal(ADMIN_PORT_HTTPS, 8443);
  const cases: [string, string][] = [
    ['pulsar://host:6650', 'http://host:8080'],
    ['pulsar+ssl://host:6651', 'https://host:8443'],
    ['pulsar://host', 'http://host:8080'],
    ['pulsar://host:16650', 'http://host:8080'],
    ['pulsar+ssl://host:443/', 'https://host:8443'],
    ['pulsar://a:6650,b:6650,c:6650', 'http://a:8080'],
    ['pulsar://[::1]:6650', 'http://[::1]:8080'],
    ['pulsar+ssl://[fe80::1]', 'https://[fe80::1]:8443'],
    ['pulsar://10.0.0.1:6650/path', 'http://10.0.0.1:8080'],
  ];
  for (const [broker, admin] of cases) assert.equal(defaultAdminUrl(broker), admin, broker);
  for (const bad of ['http://host:8080', 'pulsar://', 'pulsar://host:0'])
    assert.equal(defaultAdminUrl(bad), undefined);
  // A given URL wins, without its trailing slashes.
  assert.equal(adminUrlOf({ broker: 'pulsar://b:6650', adminUrl: 'https://x:9443//' }), 'https://x:9443');
  assert.equal(
    adminUrlOf({ broker: 'pulsar://b:6650', adminUrl: 'http://x/admin-proxy' }),
    'http://x/admin-proxy',
  );
  assert.equal(adminUrlOf({ broker: 'pulsar+ssl://b:6651' }), 'https://b:8443');
});

test('whole-second durations: the form KEDA can take, in seconds', () => {
  const re = new RegExp(WHOLE_SECONDS_PATTERN);
  const ok: [string, number][] = [
    ['1s', 1],
    ['30s', 30],
    ['5m', 300],
    ['1m30s', 90],
    ['1h30m', 5400],
    ['2h0m5s', 7205],
    ['0s', 0],
    ['99999h99999h99999h', 3 * 99999 * 3600],
  ];
  for (const [text, seconds] of ok) {
    assert.ok(re.test(text), text);
    assert.equal(wholeSeconds(text), seconds, text);
  }
  for (const bad of ['', '30', '1.5s', '500ms', '1d', '1h1h1h1h', '100000s', '-1s', ' 30s', '30S']) {
    assert.ok(!re.test(bad), bad);
    assert.equal(wholeSeconds(bad), undefined, bad);
  }
  // The largest fits KEDA's int32 seconds.
  assert.ok(3 * 99999 * 3600 < 2 ** 31);
});
