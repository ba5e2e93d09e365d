import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  expandVars,
  type ObjectData,
  type PodLike,
  type ProcessPlan,
  planPod,
  podStatus,
  referencedObjects,
  resolveEnv,
  restartDelayMs,
  rewriteMountPath,
  volumeFiles,
} from '../../../testenv/pod-plan.ts';

const bytes = (s: string) => new TextEncoder().encode(s);

function pod(
  overrides: Partial<NonNullable<PodLike['spec']>> = {},
  meta: Partial<NonNullable<PodLike['metadata']>> = {},
): PodLike {
  return {
    metadata: { name: 'mytrigger-abc-xyz', namespace: 'ns1', uid: 'u-1', labels: { app: 'a' }, ...meta },
    spec: {
      containers: [
        {
          name: 'dispatcher',
          image: 'kpt:1',
          env: [
            { name: 'PULSAR_BROKER', value: 'pulsar://127.0.0.1:6650' },
            { name: 'PULSAR_AUTH_TOKEN', valueFrom: { secretKeyRef: { name: 'tok', key: 'token' } } },
            { name: 'TZ', valueFrom: { configMapKeyRef: { name: 'cfg', key: 'tz' } } },
            { name: 'POD', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
            { name: 'PULSAR_TLS_CA_FILE', value: '/etc/kpt/tls-ca/ca.crt' },
            { name: 'GREETING', value: 'pod $(POD) $$(POD) $(NOPE)' },
          ],
          volumeMounts: [{ name: 'ca', mountPath: '/etc/kpt/tls-ca' }],
        },
      ],
      volumes: [{ name: 'ca', secret: { secretName: 'ca-secret', items: [{ key: 'pem', path: 'ca.crt' }] } }],
      ...overrides,
    },
  };
}

function planOf(p: PodLike): ProcessPlan {
  const r = planPod(p);
  assert.ok(r.ok, r.ok ? '' : r.reason);
  return r.plan;
}

const data: ObjectData = {
  secrets: new Map<string, Record<string, Uint8Array>>([
    ['tok', { token: bytes('s3cret') }],
    ['ca-secret', { pem: bytes('-----PEM-----') }],
  ]),
  configMaps: new Map([['cfg', { tz: bytes('Europe/Lisbon') }]]),
};

const ctx = (p: PodLike) => ({
  pod: p,
  mountDirs: new Map([['/etc/kpt/tls-ca', '/tmp/agent/ns1_pod/ca']]),
  podIp: '127.0.0.1',
  nodeName: 'kpt-local',
});

test('a pod plans its first container, its Secret/ConfigMap mounts and what it references', () => {
  const plan = planOf(pod());
  assert.equal(plan.key, 'ns1/mytrigger-abc-xyz');
  assert.equal(plan.container, 'dispatcher');
  assert.deepEqual(plan.mounts, [
    {
      volume: 'ca',
      mountPath: '/etc/kpt/tls-ca',
      kind: 'secret',
      source: 'ca-secret',
      items: [{ key: 'pem', path: 'ca.crt' }],
      optional: false,
    },
  ]);
  assert.deepEqual(referencedObjects(plan), { secrets: ['ca-secret', 'tok'], configMaps: ['cfg'] });
  assert.equal(plan.graceMs, 30_000);
});

test('a pod being deleted or without containers runs nothing', () => {
  assert.equal(planPod(pod({}, { deletionTimestamp: '2024-01-01T00:00:00Z' })).ok, false);
  assert.equal(planPod(pod({ containers: [] })).ok, false);
});

test('other volume kinds and extra containers are reported as ignored', () => {
  const plan = planOf(
    pod({
      containers: [
        { name: 'dispatcher', volumeMounts: [{ name: 'scratch', mountPath: '/scratch' }] },
        { name: 'sidecar' },
      ],
      volumes: [{ name: 'scratch', emptyDir: {} }],
    }),
  );
  assert.equal(plan.mounts.length, 0);
  assert.equal(plan.ignored.length, 2);
});

test('env resolves values, Secret and ConfigMap keys, fieldRefs, $(VAR) and mount paths', () => {
  const p = pod();
  const r = resolveEnv(planOf(p), data, ctx(p));
  assert.ok(r.ok);
  assert.deepEqual(r.env, {
    PULSAR_BROKER: 'pulsar://127.0.0.1:6650',
    PULSAR_AUTH_TOKEN: 's3cret',
    TZ: 'Europe/Lisbon',
    POD: 'mytrigger-abc-xyz',
    PULSAR_TLS_CA_FILE: '/tmp/agent/ns1_pod/ca/ca.crt',
    GREETING: 'pod mytrigger-abc-xyz $(POD) $(NOPE)',
  });
});

test('a missing Secret or key fails like CreateContainerConfigError, unless optional', () => {
  const p = pod();
  const noSecret: ObjectData = { secrets: new Map(), configMaps: data.configMaps };
  const r = resolveEnv(planOf(p), noSecret, ctx(p));
  assert.equal(r.ok, false);
  assert.match(r.ok ? '' : r.reason, /secret "tok" not found \(env PULSAR_AUTH_TOKEN\)/);

  const noKey: ObjectData = { secrets: new Map([['tok', {}]]), configMaps: data.configMaps };
  const r2 = resolveEnv(planOf(p), noKey, ctx(p));
  assert.match(r2.ok ? '' : r2.reason, /key "token" not found in secret "tok"/);

  const optional = pod({
    containers: [
      {
        name: 'dispatcher',
        env: [{ name: 'X', valueFrom: { secretKeyRef: { name: 'gone', key: 'k', optional: true } } }],
      },
    ],
  });
  const r3 = resolveEnv(planOf(optional), noSecret, ctx(optional));
  assert.deepEqual(r3, { ok: true, env: {} });
});

test('envFrom comes first with its prefix; env entries override it', () => {
  const p = pod({
    containers: [
      {
        name: 'dispatcher',
        envFrom: [{ prefix: 'CFG_', configMapRef: { name: 'cfg' } }, { secretRef: { name: 'tok' } }],
        env: [{ name: 'token', value: 'explicit' }],
      },
    ],
  });
  const r = resolveEnv(planOf(p), data, ctx(p));
  assert.deepEqual(r, { ok: true, env: { CFG_tz: 'Europe/Lisbon', token: 'explicit' } });
});

test('fieldRefs for labels, namespace, node and IP; unknown paths fail', () => {
  const p = pod({
    containers: [
      {
        name: 'dispatcher',
        env: [
          { name: 'NS', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
          { name: 'APP', valueFrom: { fieldRef: { fieldPath: "metadata.labels['app']" } } },
          { name: 'NODE', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } },
          { name: 'IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
        ],
      },
    ],
  });
  assert.deepEqual(resolveEnv(planOf(p), data, ctx(p)), {
    ok: true,
    env: { NS: 'ns1', APP: 'a', NODE: 'kpt-local', IP: '127.0.0.1' },
  });
  const bad = pod({
    containers: [
      { name: 'dispatcher', env: [{ name: 'X', valueFrom: { fieldRef: { fieldPath: 'status.nope' } } }] },
    ],
  });
  assert.equal(resolveEnv(planOf(bad), data, ctx(bad)).ok, false);
});

test('mount path rewriting picks the longest matching mountPath and leaves other values alone', () => {
  const dirs = new Map([
    ['/etc/a', '/tmp/x/a'],
    ['/etc/a/b/', '/tmp/x/b'],
  ]);
  assert.equal(rewriteMountPath('/etc/a/file', dirs), '/tmp/x/a/file');
  assert.equal(rewriteMountPath('/etc/a/b/file', dirs), '/tmp/x/b/file');
  assert.equal(rewriteMountPath('/etc/a', dirs), '/tmp/x/a');
  assert.equal(rewriteMountPath('/etc/ab/file', dirs), '/etc/ab/file');
  assert.equal(rewriteMountPath('http://x/etc/a', dirs), 'http://x/etc/a');
});

test('$(VAR) expansion', () => {
  assert.equal(expandVars('$(A)-$(B)-$$(A)-$', { A: '1' }), '1-$(B)-$(A)-$');
});

test('volume files: items or every key; missing sources fail unless optional; paths stay inside', () => {
  const plan = planOf(pod());
  const files = volumeFiles(plan.mounts[0]!, data);
  assert.deepEqual(files, { ok: true, files: [{ path: 'ca.crt', content: bytes('-----PEM-----') }] });
  const all = volumeFiles({ ...plan.mounts[0]!, items: undefined }, data);
  assert.deepEqual(all.ok ? all.files.map((f) => f.path) : [], ['pem']);
  assert.equal(volumeFiles({ ...plan.mounts[0]!, source: 'gone' }, data).ok, false);
  assert.deepEqual(volumeFiles({ ...plan.mounts[0]!, source: 'gone', optional: true }, data), {
    ok: true,
    files: [],
  });
  assert.equal(
    volumeFiles({ ...plan.mounts[0]!, items: [{ key: 'pem', path: '../escape' }] }, data).ok,
    false,
  );
});

test('restart delays double and are capped', () => {
  assert.deepEqual(
    [0, 1, 2, 3, 4, 5, 6, 50].map((n) => restartDelayMs(n)),
    [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000],
  );
});

test('pod status: Ready conditions follow the process; restarts and the last exit are shown', () => {
  const plan = planOf(pod());
  const ready = podStatus(
    plan,
    { phase: 'running', ready: true, restartCount: 0, startedAt: 'T1', pid: 42 },
    'T2',
    'T0',
    '127.0.0.1',
    { ready: 'T1' },
  ) as { phase: string; conditions: { type: string; status: string; lastTransitionTime: string }[] };
  assert.equal(ready.phase, 'Running');
  assert.deepEqual(
    ready.conditions.map((c) => [c.type, c.status, c.lastTransitionTime]),
    [
      ['PodScheduled', 'True', 'T0'],
      ['Initialized', 'True', 'T0'],
      ['ContainersReady', 'True', 'T1'],
      ['Ready', 'True', 'T1'],
    ],
  );
  const crashed = podStatus(
    plan,
    {
      phase: 'waiting',
      ready: false,
      restartCount: 3,
      reason: 'CrashLoopBackOff',
      lastExit: { exitCode: 1, reason: 'Error', finishedAt: 'T3' },
    },
    'T4',
    'T0',
    '127.0.0.1',
  ) as { containerStatuses: Record<string, unknown>[]; conditions: { type: string; status: string }[] };
  const cs = crashed.containerStatuses[0]!;
  assert.equal(cs.restartCount, 3);
  assert.deepEqual(cs.state, { waiting: { reason: 'CrashLoopBackOff' } });
  assert.deepEqual(cs.lastState, { terminated: { exitCode: 1, reason: 'Error', finishedAt: 'T3' } });
  assert.equal(crashed.conditions.find((c) => c.type === 'Ready')?.status, 'False');
});
