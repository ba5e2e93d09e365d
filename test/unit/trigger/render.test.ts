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

test('the override cannot change what the object is: apiVersion and kind stay apps/v1 Deployment', () => {
  const r = render(trigger({ deployment: { apiVersion: 'v1', kind: 'Pod', spec: { replicas: 2 } } }));
  assert.equal(r.deployment.apiVersion, 'apps/v1');
  assert.equal(r.deployment.kind, 'Deployment');
  assert.equal((r.deployment.spec as JsonObject).replicas, 2);
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
          securityContext: { runAsGroup: 1000, fsGroup: 1000 },
          nodeSelector: { disk: 'ssd', zone: 'a' },
          containers: [
            {
              resources: { limits: { cpu: '2', memory: '2Gi' } },
              env: [{ name: 'EXTRA', value: '1' }],
              readinessProbe: { timeoutSeconds: 5, periodSeconds: 10 },
              securityContext: { runAsUser: 1000, readOnlyRootFilesystem: false },
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
    ['pulsar-tls-ca', 'pulsar-tls-client', 'pulsar-auth-token'],
  );
  assert.equal(p.containers[0].volumeMounts.length, 3);
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

test('the dispatcher pod: probes on the named ops port, non-root, read-only, no service account token', () => {
  const d = render(trigger({})).deployment;
  const p = pod(d);
  const c = p.containers[0];
  assert.deepEqual(c.ports, [{ name: 'metrics', containerPort: 9102, protocol: 'TCP' }]);
  assert.deepEqual(c.readinessProbe, {
    httpGet: { path: '/readyz', port: 'metrics' },
    periodSeconds: 5,
    timeoutSeconds: 3,
    failureThreshold: 3,
  });
  assert.deepEqual(c.livenessProbe, {
    httpGet: { path: '/healthz', port: 'metrics' },
    periodSeconds: 10,
    timeoutSeconds: 3,
    failureThreshold: 3,
  });
  assert.equal(c.startupProbe, undefined);
  assert.deepEqual(c.securityContext, {
    allowPrivilegeEscalation: false,
    capabilities: { drop: ['ALL'] },
    readOnlyRootFilesystem: true,
    runAsNonRoot: true,
    seccompProfile: { type: 'RuntimeDefault' },
  });
  // fsGroup because of the token file (the trigger has an inline token); see the token tests below.
  assert.deepEqual(p.securityContext, {
    runAsNonRoot: true,
    runAsUser: 65532,
    runAsGroup: 65532,
    fsGroup: 65532,
    seccompProfile: { type: 'RuntimeDefault' },
  });
  assert.equal(p.automountServiceAccountToken, false);
  // Nothing is written, so no scratch volume (only the token, read-only); and the default rolling update (no
  // strategy) for a Shared subscription.
  assert.deepEqual(
    p.volumes.map((v: { name: string }) => v.name),
    ['pulsar-auth-token'],
  );
  assert.deepEqual(
    c.volumeMounts.map((m: { readOnly: boolean }) => m.readOnly),
    [true],
  );
  assert.equal((d.spec as JsonObject).strategy, undefined);
});

test('probes are overridden field by field, and null removes one', () => {
  const d = render(
    trigger({
      deployment: {
        spec: {
          template: {
            spec: {
              containers: [
                {
                  readinessProbe: { periodSeconds: 20, httpGet: { path: '/healthz' } },
                  livenessProbe: null,
                  startupProbe: { httpGet: { path: '/healthz', port: 'metrics' }, failureThreshold: 30 },
                },
              ],
            },
          },
        },
      },
    }),
  ).deployment;
  const c = pod(d).containers[0];
  assert.deepEqual(c.readinessProbe, {
    httpGet: { path: '/healthz', port: 'metrics' },
    periodSeconds: 20,
    timeoutSeconds: 3,
    failureThreshold: 3,
  });
  // A null reaches the API server as null, which it reads as "no probe".
  assert.equal(c.livenessProbe, null);
  assert.deepEqual(c.startupProbe, { failureThreshold: 30, httpGet: { path: '/healthz', port: 'metrics' } });
});

test('a user image can run as root with a writable root filesystem; the rest of the context is kept', () => {
  const d = render(
    trigger({
      deployment: {
        spec: {
          template: {
            spec: {
              automountServiceAccountToken: true,
              securityContext: { runAsUser: 0, runAsGroup: 0, runAsNonRoot: false },
              containers: [
                {
                  image: 'mine/dispatcher:root',
                  securityContext: { runAsNonRoot: false, runAsUser: 0, readOnlyRootFilesystem: false },
                },
              ],
            },
          },
        },
      },
    }),
  ).deployment;
  const p = pod(d);
  const c = p.containers[0];
  assert.equal(c.image, 'mine/dispatcher:root');
  assert.deepEqual(c.securityContext, {
    allowPrivilegeEscalation: false,
    capabilities: { drop: ['ALL'] },
    readOnlyRootFilesystem: false,
    runAsNonRoot: false,
    runAsUser: 0,
    seccompProfile: { type: 'RuntimeDefault' },
  });
  assert.deepEqual(p.securityContext, {
    runAsNonRoot: false,
    runAsUser: 0,
    runAsGroup: 0,
    fsGroup: 65532,
    seccompProfile: { type: 'RuntimeDefault' },
  });
  assert.equal(p.automountServiceAccountToken, true);
  // The container's own setting is enough to run the dispatcher as root: it wins over the pod's.
  const containerOnly = render(
    trigger({
      deployment: {
        spec: {
          template: { spec: { containers: [{ securityContext: { runAsNonRoot: false, runAsUser: 0 } }] } },
        },
      },
    }),
  ).deployment;
  assert.equal(pod(containerOnly).containers[0].securityContext.runAsUser, 0);
  assert.equal(pod(containerOnly).containers[0].securityContext.runAsNonRoot, false);
  assert.equal(pod(containerOnly).securityContext.runAsUser, 65532);
});

test("the probes' named port survives a user's list of ports", () => {
  const d = render(
    trigger({
      deployment: {
        spec: {
          template: {
            spec: {
              containers: [
                {
                  ports: [
                    { name: 'debug', containerPort: 9229 },
                    { name: 'metrics', containerPort: 1234 },
                  ],
                },
              ],
            },
          },
        },
      },
    }),
  ).deployment;
  assert.deepEqual(pod(d).containers[0].ports, [
    { containerPort: 9229, name: 'debug' },
    { name: 'metrics', containerPort: 9102, protocol: 'TCP' },
  ]);
});

test('an Exclusive subscription recreates its pod instead of a rolling update; spec.deployment may say otherwise', () => {
  const exclusive = render(trigger({ delivery: { subscriptionType: 'Exclusive' } })).deployment;
  assert.deepEqual((exclusive.spec as JsonObject).strategy, { type: 'Recreate' });
  for (const type of ['Failover', 'Key_Shared'] as const) {
    const other = render(trigger({ delivery: { subscriptionType: type } })).deployment;
    assert.equal((other.spec as JsonObject).strategy, undefined, type);
  }
  const overridden = render(
    trigger({
      delivery: { subscriptionType: 'Exclusive' },
      deployment: {
        spec: { strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 0, maxUnavailable: 1 } } },
      },
    }),
  ).deployment;
  assert.deepEqual((overridden.spec as JsonObject).strategy, {
    type: 'RollingUpdate',
    rollingUpdate: { maxSurge: 0, maxUnavailable: 1 },
  });
});
