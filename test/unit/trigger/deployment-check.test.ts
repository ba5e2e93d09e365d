// The type check of spec.deployment (src/trigger/deployment-check.ts): one test per rule listed in
// docs/reference.md, then how it reaches validateSpec and renderTrigger.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  checkDeployment,
  DEPLOYMENT_TYPE_RULES,
  formatPath,
  MAX_ISSUES,
} from '../../../src/trigger/deployment-check.ts';
import { DEFAULT_RESOURCES, renderTrigger } from '../../../src/trigger/render.ts';
import { type PulsarTrigger, type TriggerSpec, validateSpec } from '../../../src/trigger/spec.ts';

/** The check's issues as `path: message` lines. */
const check = (override: unknown): string[] =>
  checkDeployment(override).map((i) => `${i.path}: ${i.message}`);

const pod = (spec: Record<string, unknown>) => ({ spec: { template: { spec } } });
const first = (container: Record<string, unknown>) => pod({ containers: [container] });

const base = {
  pulsar: {
    topic: 'persistent://public/default/mytopic',
    broker: 'pulsar://pulsar.addr:6650',
    'auth-token': 'nnn',
  },
  kubeless: { function: 'http://myfunction.default:8080' },
};

test('the rules are listed for docs/reference.md, one test each below', () => {
  assert.equal(DEPLOYMENT_TYPE_RULES.length, 11);
});

test('rule 1: an object stays an object', () => {
  assert.deepEqual(check({ spec: 'x' }), ['spec.deployment.spec: expected an object, got a string']);
  assert.deepEqual(check({ spec: { strategy: [] } }), [
    'spec.deployment.spec.strategy: expected an object, got a list',
  ]);
  assert.deepEqual(check(pod({ securityContext: true, affinity: 'zone-a' })), [
    'spec.deployment.spec.template.spec.affinity: expected an object, got a string',
    'spec.deployment.spec.template.spec.securityContext: expected an object, got a boolean',
  ]);
  assert.deepEqual(check(first({ resources: 'big', livenessProbe: 3 })), [
    'spec.deployment.spec.template.spec.containers[0].resources: expected an object, got a string',
    'spec.deployment.spec.template.spec.containers[0].livenessProbe: expected an object, got a number',
  ]);
});

test('rule 2: a list stays a list, its items are not null and have their type', () => {
  assert.deepEqual(check(pod({ containers: { name: 'x' } })), [
    'spec.deployment.spec.template.spec.containers: expected a list, got an object',
  ]);
  assert.deepEqual(check(pod({ volumes: 'data', tolerations: {}, imagePullSecrets: 'regcred' })), [
    'spec.deployment.spec.template.spec.volumes: expected a list, got a string',
    'spec.deployment.spec.template.spec.tolerations: expected a list, got an object',
    'spec.deployment.spec.template.spec.imagePullSecrets: expected a list, got a string',
  ]);
  assert.deepEqual(check(first({ env: { EXTRA: 'x' }, args: '--verbose', ports: [null] })), [
    'spec.deployment.spec.template.spec.containers[0].args: expected a list, got a string',
    'spec.deployment.spec.template.spec.containers[0].env: expected a list, got an object',
    'spec.deployment.spec.template.spec.containers[0].ports[0]: expected an object, got null',
  ]);
  assert.deepEqual(check(pod({ containers: [{}, 'sidecar:1'], initContainers: [null] })), [
    'spec.deployment.spec.template.spec.containers[1]: expected an object, got a string',
    'spec.deployment.spec.template.spec.initContainers[0]: expected an object, got null',
  ]);
  assert.deepEqual(check(first({ command: ['node', 1] })), [
    'spec.deployment.spec.template.spec.containers[0].command[1]: expected a string, got a number',
  ]);
});

test('rule 3: text fields are strings', () => {
  assert.deepEqual(check(first({ image: 1, imagePullPolicy: true, env: [{ name: 'A', value: 5 }] })), [
    'spec.deployment.spec.template.spec.containers[0].image: expected a string, got a number',
    'spec.deployment.spec.template.spec.containers[0].imagePullPolicy: expected a string, got a boolean',
    'spec.deployment.spec.template.spec.containers[0].env[0].value: expected a string, got a number',
  ]);
  assert.deepEqual(check(pod({ serviceAccountName: ['a'] })), [
    'spec.deployment.spec.template.spec.serviceAccountName: expected a string, got a list',
  ]);
});

test('rule 4: counts, ports, seconds and ids are integers, 32-bit ones in range', () => {
  assert.deepEqual(check({ spec: { replicas: '2' } }), [
    'spec.deployment.spec.replicas: expected an integer, got a string',
  ]);
  assert.deepEqual(check({ spec: { replicas: 1.5 } }), [
    'spec.deployment.spec.replicas: expected an integer, got 1.5',
  ]);
  assert.deepEqual(check({ spec: { replicas: 2 ** 31 } }), [
    'spec.deployment.spec.replicas: expected a 32-bit integer (-2147483648 to 2147483647), got 2147483648',
  ]);
  assert.deepEqual(
    check(first({ ports: [{ containerPort: 'x' }], readinessProbe: { periodSeconds: '5' } })),
    [
      'spec.deployment.spec.template.spec.containers[0].ports[0].containerPort: expected an integer, got a string',
      'spec.deployment.spec.template.spec.containers[0].readinessProbe.periodSeconds: expected an integer, got a string',
    ],
  );
  // 64-bit: larger than int32 is fine.
  assert.deepEqual(
    check(pod({ securityContext: { runAsUser: 2 ** 40 }, terminationGracePeriodSeconds: 30 })),
    [],
  );
  assert.deepEqual(check(pod({ securityContext: { runAsUser: '1000' } })), [
    'spec.deployment.spec.template.spec.securityContext.runAsUser: expected an integer, got a string',
  ]);
});

test('rule 5: switches are true or false', () => {
  assert.deepEqual(check({ spec: { paused: 'false' } }), [
    'spec.deployment.spec.paused: expected true or false, got a string',
  ]);
  assert.deepEqual(
    check(pod({ hostNetwork: 1, containers: [{ volumeMounts: [{ name: 'v', readOnly: 'yes' }] }] })),
    [
      'spec.deployment.spec.template.spec.containers[0].volumeMounts[0].readOnly: expected true or false, got a string',
      'spec.deployment.spec.template.spec.hostNetwork: expected true or false, got a number',
    ],
  );
});

test('rule 6: labels, annotations, nodeSelector and matchLabels are objects of strings', () => {
  assert.deepEqual(
    check({ metadata: { labels: { team: 1, 'app.kubernetes.io/part-of': 'x' }, annotations: [] } }),
    [
      'spec.deployment.metadata.labels.team: expected a string, got a number',
      'spec.deployment.metadata.annotations: expected an object of strings, got a list',
    ],
  );
  assert.deepEqual(
    check({
      spec: {
        template: {
          metadata: { annotations: { 'prometheus.io/scrape': true } },
          spec: { nodeSelector: { 'kubernetes.io/os': 'linux', 'node.example/ssd': false } },
        },
      },
    }),
    [
      'spec.deployment.spec.template.metadata.annotations[prometheus.io/scrape]: expected a string, got a boolean',
      'spec.deployment.spec.template.spec.nodeSelector[node.example/ssd]: expected a string, got a boolean',
    ],
  );
  assert.deepEqual(
    check(pod({ topologySpreadConstraints: [{ maxSkew: 1, labelSelector: { matchLabels: { a: 2 } } }] })),
    [
      'spec.deployment.spec.template.spec.topologySpreadConstraints[0].labelSelector.matchLabels.a: expected a string, got a number',
    ],
  );
});

test('rule 7: quantities are numbers or quantity strings', () => {
  // The seed README's second manifest: numbers for cpu.
  assert.deepEqual(
    check(first({ resources: { limits: { cpu: 4, memory: '1Gi' }, requests: { cpu: 1, memory: '512Mi' } } })),
    [],
  );
  assert.deepEqual(
    check(first({ resources: { limits: { cpu: '500m', memory: '1e9', 'nvidia.com/gpu': '1' } } })),
    [],
  );
  assert.deepEqual(check(first({ resources: { limits: { cpu: true, memory: '1 GB' }, requests: [] } })), [
    'spec.deployment.spec.template.spec.containers[0].resources.limits.cpu: expected a quantity (a number, or a string like 500m or 1Gi), got a boolean',
    'spec.deployment.spec.template.spec.containers[0].resources.limits.memory: expected a quantity (a number, or a string like 500m or 1Gi), got "1 GB"',
    'spec.deployment.spec.template.spec.containers[0].resources.requests: expected an object, got a list',
  ]);
  assert.deepEqual(check(pod({ volumes: [{ name: 'tmp', emptyDir: { sizeLimit: {} } }] })), [
    'spec.deployment.spec.template.spec.volumes[0].emptyDir.sizeLimit: expected a quantity (a number, or a string like 500m or 1Gi), got an object',
  ]);
});

test('rule 8: probe ports and rolling-update sizes are integers or strings', () => {
  assert.deepEqual(
    check({
      spec: {
        strategy: { rollingUpdate: { maxSurge: '25%', maxUnavailable: 0 } },
        template: { spec: { containers: [{ livenessProbe: { httpGet: { port: 'metrics' } } }] } },
      },
    }),
    [],
  );
  assert.deepEqual(
    check({
      spec: {
        strategy: { rollingUpdate: { maxSurge: 1.5 } },
        template: { spec: { containers: [{ readinessProbe: { tcpSocket: { port: [8080] } } }] } },
      },
    }),
    [
      'spec.deployment.spec.strategy.rollingUpdate.maxSurge: expected an integer or a string, got 1.5',
      'spec.deployment.spec.template.spec.containers[0].readinessProbe.tcpSocket.port: expected an integer or a string, got a list',
    ],
  );
});

test('rule 9: every env item has a name', () => {
  assert.deepEqual(check(first({ env: [{ value: 'x' }, { name: null, value: 'y' }, { name: 'OK' }] })), [
    'spec.deployment.spec.template.spec.containers[0].env[0].name: is required (a string)',
    'spec.deployment.spec.template.spec.containers[0].env[1].name: is required (a string)',
  ]);
});

test('rule 10: null is unset, except where the dispatcher Deployment is built', () => {
  assert.deepEqual(
    check({
      metadata: { labels: null },
      spec: { strategy: null, template: { metadata: null, spec: { nodeSelector: null, containers: null } } },
    }),
    [],
  );
  assert.deepEqual(check({ metadata: null, spec: { replicas: null, template: { spec: null } } }), [
    'spec.deployment.metadata: expected an object, got null',
    'spec.deployment.spec.replicas: expected an integer, got null',
    'spec.deployment.spec.template.spec: expected an object, got null',
  ]);
  assert.deepEqual(check({ spec: { template: null } }), [
    'spec.deployment.spec.template: expected an object, got null',
  ]);
  assert.deepEqual(check({ spec: null }), ['spec.deployment.spec: expected an object, got null']);
});

test('rule 11: unknown fields are left to the API server', () => {
  assert.deepEqual(
    check({ status: 'x', spec: { futureField: [1], template: { spec: { newThing: 'y' } } } }),
    [],
  );
  assert.deepEqual(check(first({ someNewField: { a: 1 } })), []);
});

test('paths are written as the API server writes them', () => {
  assert.equal(formatPath(['spec', 'containers', 0, 'env', 2, 'name']), 'spec.containers[0].env[2].name');
  assert.equal(
    formatPath(['metadata', 'labels', 'app.kubernetes.io/name']),
    'metadata.labels[app.kubernetes.io/name]',
  );
  assert.equal(formatPath(['spec', 'pulsar', 'auth-token']), 'spec.pulsar.auth-token');
  assert.equal(formatPath([]), '');
});

test('every issue is found; past MAX_ISSUES the rest are counted on spec.deployment', () => {
  const env = Array.from({ length: MAX_ISSUES + 5 }, (_, i) => ({ name: `V${i}`, value: i }));
  const issues = checkDeployment(first({ env }));
  assert.equal(issues.length, MAX_ISSUES + 1);
  assert.deepEqual(issues.at(-1), { path: 'spec.deployment', message: '5 more values of the wrong type' });
  assert.equal(checkDeployment(first({ env: env.slice(0, MAX_ISSUES) })).length, MAX_ISSUES);
});

test('the Deployment the renderer writes passes the check (the shape matches what we render)', () => {
  const t: PulsarTrigger = {
    apiVersion: 'kubeless.io/v1',
    kind: 'PulsarTrigger',
    metadata: { name: 'shape', namespace: 'default', uid: 'u-1' },
    spec: {
      ...base,
      pulsar: {
        ...base.pulsar,
        tls: { caSecretRef: { name: 'ca', key: 'ca.crt' }, clientCertSecretRef: { name: 'c' } },
      },
      delivery: { subscriptionType: 'Exclusive' },
    } as TriggerSpec,
  };
  const r = renderTrigger(t, {
    dispatcherImage: 'kpt/dispatcher:1',
    timezone: 'UTC',
    resources: DEFAULT_RESOURCES,
  });
  assert.ok(r.ok);
  assert.deepEqual(checkDeployment(r.value.deployment), []);
});

test('validateSpec reports the issues under spec.deployment, with the schema issues, once each', () => {
  const r = validateSpec({
    ...base,
    deployment: { metadata: { namespace: 'Bad_NS', labels: { a: 1 } }, spec: { replicas: '2' } },
    delivery: { statusActions: [{ status: '2xx', action: 'drop' }] },
  });
  assert.equal(r.ok, false);
  if (r.ok) return;
  assert.equal(r.error.code, 'E_TRIGGER_INVALID');
  assert.deepEqual(
    r.error.issues.map((i) => i.path),
    [
      'spec.deployment.metadata.namespace',
      'spec.deployment.metadata.labels.a',
      'spec.deployment.spec.replicas',
      'spec.delivery.statusActions[0].status',
    ],
  );
  assert.match(r.error.message, /spec\.deployment\.spec\.replicas: expected an integer, got a string/);
  // metadata of the wrong type: the schema's message only, not a second one from the check.
  const m = validateSpec({ ...base, deployment: { metadata: 'x' } });
  assert.equal(m.ok, false);
  if (!m.ok)
    assert.deepEqual(
      m.error.issues.map((i) => i.path),
      ['spec.deployment.metadata'],
    );
});

test('renderTrigger refuses a bad override with an error value, where it used to drop or throw', () => {
  const render = (deployment: unknown) =>
    renderTrigger(
      {
        apiVersion: 'kubeless.io/v1',
        kind: 'PulsarTrigger',
        metadata: { name: 'x', namespace: 'default', uid: 'u-2' },
        spec: { ...base, deployment } as TriggerSpec,
      },
      { dispatcherImage: 'kpt/dispatcher:1', timezone: 'UTC', resources: DEFAULT_RESOURCES },
    );
  for (const [deployment, path] of [
    [{ spec: 'x' }, 'spec.deployment.spec'],
    [{ spec: { template: { spec: null } } }, 'spec.deployment.spec.template.spec'],
    [pod({ containers: { name: 'x' } }), 'spec.deployment.spec.template.spec.containers'],
    [first({ env: { A: 'b' } }), 'spec.deployment.spec.template.spec.containers[0].env'],
  ] as const) {
    const r = render(deployment);
    assert.equal(r.ok, false, JSON.stringify(deployment));
    if (!r.ok) {
      assert.equal(r.error.code, 'E_TRIGGER_INVALID');
      assert.deepEqual(
        r.error.issues.map((i) => i.path),
        [path],
      );
    }
  }
  // What the seed README and the lifecycle tests use still renders.
  assert.ok(
    render({
      metadata: { namespace: 'another-namespace', labels: { team: 'a' } },
      spec: {
        replicas: 2,
        template: {
          spec: {
            containers: [
              {
                image: 'custom:1',
                env: [{ name: 'EXTRA', value: 'x' }],
                resources: { limits: { cpu: 4, memory: '1Gi' }, requests: { cpu: 1, memory: '512Mi' } },
              },
              { name: 'sidecar', image: 'side:1' },
            ],
          },
        },
      },
    }).ok,
  );
});
