import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  ANNOTATION_HASH,
  DEFAULT_RESOURCES,
  type JsonObject,
  labelValue,
  type RenderConfig,
  renderTrigger,
} from '../../../src/trigger/render.ts';
import type { PulsarTrigger, TriggerSpec } from '../../../src/trigger/spec.ts';

const config: RenderConfig = {
  dispatcherImage: 'kpt/dispatcher:1',
  timezone: 'UTC',
  resources: DEFAULT_RESOURCES,
};

function trigger(spec: Partial<TriggerSpec> & Record<string, unknown>, name = 'mytrigger'): PulsarTrigger {
  return {
    apiVersion: 'kubeless.io/v1',
    kind: 'PulsarTrigger',
    metadata: { name, namespace: 'default', uid: '0b8e0f5a-4a8e-4d39-9a7e-1f0c4d2a9b11' },
    spec: {
      pulsar: {
        topic: 'persistent://public/default/mytopic',
        broker: 'pulsar://pulsar.addr:6650',
        'auth-token': 'nnn',
      },
      kubeless: { function: 'http://myfunction.default:8080' },
      ...spec,
    } as TriggerSpec,
  };
}

function render(t: PulsarTrigger) {
  const r = renderTrigger(t, config);
  assert.ok(r.ok, r.ok ? '' : r.error.message);
  return r.value;
}

// biome-ignore lint/suspicious/noExplicitAny: walking rendered JSON in assertions
const pod = (d: JsonObject): any => (d.spec as any).template.spec;
const envOf = (d: JsonObject): Record<string, unknown> =>
  Object.fromEntries(
    pod(d).containers[0].env.map((e: { name: string; value?: string; valueFrom?: unknown }) => [
      e.name,
      e.value ?? e.valueFrom,
    ]),
  );

test("the seed README's first manifest: the documented Deployment, token from the owned Secret", () => {
  const r = render(trigger({}));
  const d = r.deployment;
  assert.equal((d.metadata as JsonObject).name, 'mytrigger');
  assert.equal((d.metadata as JsonObject).namespace, 'default');
  assert.equal((d.spec as JsonObject).replicas, 1);
  const c = pod(d).containers[0];
  assert.equal(c.name, 'dispatcher');
  assert.equal(c.image, 'kpt/dispatcher:1');
  assert.deepEqual(c.resources, {
    limits: { cpu: '1', memory: '1Gi' },
    requests: { cpu: '500m', memory: '512Mi' },
  });
  const env = envOf(d);
  assert.equal(env.TRIGGER_NAME, 'mytrigger');
  assert.equal(env.TRIGGER_NAMESPACE, 'default');
  assert.equal(env.TZ, 'UTC');
  assert.equal(env.TIMEZONE, 'UTC');
  assert.equal(env.PULSAR_TOPIC, 'persistent://public/default/mytopic');
  assert.equal(env.PULSAR_TOPIC_NAMESPACE, 'public/default');
  assert.equal(env.PULSAR_TOPIC_NAME, 'mytopic');
  assert.equal(env.PULSAR_BROKER, 'pulsar://pulsar.addr:6650');
  assert.deepEqual(env.PULSAR_AUTH_TOKEN, {
    secretKeyRef: { name: 'mytrigger-pulsar-auth-token', key: 'token' },
  });
  assert.equal(env.KUBELESS_FUNCTION, 'http://myfunction.default:8080');
  assert.equal(env.KUBELESS_FUNCTION_NAMESPACE, 'default');
  assert.equal(env.KUBELESS_FUNCTION_PORT, '8080');
  assert.equal(env.KUBELESS_FUNCTION_SCHEMA, 'http');
  assert.ok(!JSON.stringify(d).includes('"nnn"'), 'the token must not appear in the Deployment');
  assert.equal(r.secret?.data && (r.secret.data as JsonObject).token, Buffer.from('nnn').toString('base64'));
  const labels = (d.metadata as JsonObject).labels as Record<string, string>;
  assert.equal(labels['created-by'], 'kubeless-pulsar-trigger');
  assert.equal(labels['app.kubernetes.io/managed-by'], 'kubeless-pulsar-trigger');
  assert.deepEqual((d.spec as JsonObject).selector, {
    matchLabels: {
      'created-by': 'kubeless-pulsar-trigger',
      'kubeless.io/trigger-namespace': 'default',
      'kubeless.io/trigger-name': 'mytrigger',
    },
  });
  assert.equal(((d.metadata as JsonObject).ownerReferences as JsonObject[])[0]?.kind, 'PulsarTrigger');
  assert.equal(r.sameNamespace, true);
});

test("the seed README's second manifest: resources overridden, namespace moved, everything else kept", () => {
  const r = render(
    trigger({
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
    }),
  );
  const d = r.deployment;
  assert.equal((d.metadata as JsonObject).namespace, 'another-namespace');
  assert.equal(r.sameNamespace, false);
  assert.equal((d.metadata as JsonObject).ownerReferences, undefined);
  assert.equal((r.secret!.metadata as JsonObject).namespace, 'another-namespace');
  const c = pod(d).containers[0];
  assert.equal(c.name, 'dispatcher');
  assert.equal(c.image, 'kpt/dispatcher:1');
  assert.deepEqual(c.resources, { limits: { cpu: 4, memory: '1Gi' }, requests: { cpu: 1, memory: '512Mi' } });
  assert.equal(envOf(d).TRIGGER_NAMESPACE, 'default');
});

test('a trigger without a token or spec.deployment', () => {
  const t = trigger({});
  t.spec.pulsar = { topic: 'events', broker: 'pulsar://b:6650' };
  const r = render(t);
  assert.equal(r.secret, undefined);
  assert.equal(envOf(r.deployment).PULSAR_AUTH_TOKEN, undefined);
  assert.equal(envOf(r.deployment).PULSAR_TOPIC, 'persistent://public/default/events');
});

test('a full override: replicas, labels, image, extra env, sidecar; trigger vars win on a clash', () => {
  const r = render(
    trigger({
      deployment: {
        metadata: { labels: { team: 'a', 'created-by': 'someone-else' } },
        spec: {
          replicas: 3,
          selector: { matchLabels: { app: 'x' } },
          template: {
            metadata: { labels: { tier: 'x' } },
            spec: {
              serviceAccountName: 'sa',
              containers: [
                {
                  name: 'renamed',
                  image: 'custom:2',
                  env: [
                    { name: 'EXTRA', value: '1' },
                    { name: 'PULSAR_BROKER', value: 'pulsar://evil:6650' },
                  ],
                },
                { name: 'sidecar', image: 'side:1' },
              ],
            },
          },
        },
      },
    }),
  );
  const d = r.deployment;
  // biome-ignore lint/suspicious/noExplicitAny: JSON
  const spec = d.spec as any;
  assert.equal(spec.replicas, 3);
  assert.deepEqual(spec.selector.matchLabels, r.selector);
  assert.equal(spec.template.metadata.labels.tier, 'x');
  assert.equal(spec.template.metadata.labels['kubeless.io/trigger-name'], 'mytrigger');
  assert.equal(((d.metadata as JsonObject).labels as JsonObject).team, 'a');
  assert.equal(((d.metadata as JsonObject).labels as JsonObject)['created-by'], 'kubeless-pulsar-trigger');
  assert.equal(spec.template.spec.serviceAccountName, 'sa');
  assert.equal(spec.template.spec.containers.length, 2);
  assert.equal(spec.template.spec.containers[0].image, 'custom:2');
  assert.equal(spec.template.spec.containers[1].name, 'sidecar');
  const env = envOf(d);
  assert.equal(env.EXTRA, '1');
  assert.equal(env.PULSAR_BROKER, 'pulsar://pulsar.addr:6650');
});

test('rendering is deterministic and the hash follows the spec', () => {
  const a = render(trigger({}));
  const b = render(trigger({}));
  assert.equal(a.hash, b.hash);
  assert.equal(((a.deployment.metadata as JsonObject).annotations as JsonObject)[ANNOTATION_HASH], a.hash);
  const c = render(trigger({ delivery: { concurrency: 4 } }));
  assert.notEqual(a.hash, c.hash);
  assert.equal(envOf(c.deployment).DISPATCH_CONCURRENCY, '4');
});

test('the hash does not depend on the order of keys in spec.deployment or in the configured resources', () => {
  // The same override written twice, every object's keys in the opposite order, at every level.
  const forward = {
    metadata: { labels: { a: '1', b: '2' }, annotations: { x: 'y' } },
    spec: {
      replicas: 2,
      template: {
        metadata: { labels: { tier: 'edge' } },
        spec: {
          nodeSelector: { disk: 'ssd', zone: 'a' },
          containers: [
            {
              resources: { limits: { cpu: '2', memory: '2Gi' } },
              env: [{ name: 'EXTRA', value: '1' }],
            },
            { name: 'sidecar', image: 'side:1', args: ['--b', '--a'] },
          ],
        },
      },
    },
  };
  const reversed = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(reversed);
    if (typeof v !== 'object' || v === null) return v;
    return Object.fromEntries(
      Object.keys(v)
        .reverse()
        .map((k) => [k, reversed((v as Record<string, unknown>)[k])]),
    );
  };
  const a = render(trigger({ deployment: forward }));
  const b = render(trigger({ deployment: reversed(forward) as JsonObject }));
  assert.equal(a.hash, b.hash);
  assert.equal(JSON.stringify(a.deployment), JSON.stringify(b.deployment));
  assert.equal(JSON.stringify(a.secret), JSON.stringify(b.secret));
  // Lists keep their order: it means something (args, env, containers).
  const args = (r: typeof a) =>
    (
      (((r.deployment.spec as JsonObject).template as JsonObject).spec as JsonObject)
        .containers as JsonObject[]
    )[1]!.args;
  assert.deepEqual(args(b), ['--b', '--a']);
  // The configuration's resources: same values, other order, same hash.
  const resources = reversed(DEFAULT_RESOURCES) as typeof DEFAULT_RESOURCES;
  const c = renderTrigger(trigger({ deployment: forward }), { ...config, resources });
  assert.ok(c.ok);
  assert.equal(c.value.hash, a.hash);
  // And a different value still changes it.
  const d = render(trigger({ deployment: { ...forward, spec: { ...forward.spec, replicas: 3 } } }));
  assert.notEqual(d.hash, a.hash);
});

test('names longer than a label value still render, with distinct label values', () => {
  const long = `t${'x'.repeat(80)}`;
  const r = render(trigger({}, long));
  assert.equal((r.deployment.metadata as JsonObject).name, long);
  const v = r.selector['kubeless.io/trigger-name']!;
  assert.ok(v.length <= 63);
  assert.notEqual(v, labelValue(`${long}y`));
});

test('TLS settings become mounted files', () => {
  const t = trigger({});
  t.spec.pulsar.tls = {
    caConfigMapRef: { name: 'ca', key: 'ca.pem' },
    clientCertSecretRef: { name: 'client' },
  };
  const r = render(t);
  const p = pod(r.deployment);
  assert.deepEqual(
    p.volumes.map((v: { name: string }) => v.name),
    ['pulsar-tls-ca', 'pulsar-tls-client'],
  );
  assert.equal(p.containers[0].volumeMounts.length, 2);
  assert.match(String(envOf(r.deployment).PULSAR_TLS_CA_FILE), /ca\.crt$/);
  assert.match(String(envOf(r.deployment).PULSAR_TLS_KEY_FILE), /tls\.key$/);
});

test('a spec that cannot be rendered is an error value naming the field', () => {
  const t = trigger({});
  (t.spec.kubeless as { function: string }).function = 'ftp://x';
  const r = renderTrigger(t, config);
  assert.equal(r.ok, false);
  if (!r.ok) {
    assert.equal(r.error.code, 'E_TRIGGER_INVALID');
    assert.equal(r.error.issues[0]?.path, 'spec.kubeless.function');
  }
});
