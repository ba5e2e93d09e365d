// Proves the test environment runs a real KEDA (testenv/keda.ts): its CRDs are established, the operator is
// healthy, the API server serves external.metrics.k8s.io through the aggregation layer from KEDA's metrics adapter,
// and a ScaledObject with the pulsar trigger scales a Deployment on a subscription's backlog: to 0 with none, to 1
// by the operator once active, and beyond 1 by kube-controller-manager's HPA reading the backlog as an external
// metric through the aggregation layer.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { PulsarClient } from '../../../src/pulsar/index.ts';
import { kube, node, pulsarPlain } from '../../support/env.ts';

const ns = `testenv-keda-${randomBytes(4).toString('hex')}`;

/** KEDA's variables (testenv/keda.ts); missing ones fail the test as test/support/env.ts does. */
function keda(): { namespace: string; probeUrl: string } {
  const need = (name: string) => {
    const v = process.env[name];
    if (!v)
      throw new Error(`test environment: ${name} is not set (KEDA runs with the node: make test, env-up)`);
    return v;
  };
  need('KPT_KEDA');
  return { namespace: need('KPT_KEDA_NAMESPACE'), probeUrl: need('KPT_KEDA_OPERATOR_PROBE_URL') };
}

async function kubectl(args: string[], input?: string) {
  const env = kube();
  return new Promise<{ code: number; out: string }>((resolve) => {
    const child = execFile(
      join(env.binDir, 'kubectl'),
      ['--kubeconfig', env.kubeconfig, ...args],
      { timeout: 60_000, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? Number(err.code) : 1) : 0;
        resolve({ code, out: code === 0 ? stdout : `${stdout}${stderr}` });
      },
    );
    child.stdin?.end(input ?? '');
  });
}

async function getJson<T>(args: string[]): Promise<T | undefined> {
  const r = await kubectl([...args, '-o', 'json']);
  return r.code === 0 ? (JSON.parse(r.out) as T) : undefined;
}

/** Polls until `fn` gives a value; fails with `what` and the last state it saw. */
async function eventually<T>(
  what: string,
  fn: () => Promise<T | undefined>,
  opts: { tries?: number; state?: () => Promise<string> } = {},
): Promise<T> {
  for (let i = 0; i < (opts.tries ?? 240); i++) {
    const v = await fn();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`never happened: ${what}${opts.state ? `\n${await opts.state()}` : ''}`);
}

interface Condition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
}

/** A Kubernetes quantity as KEDA's metrics carry it ("23", "23500m", "2k"). */
function quantity(q: string): number {
  const m = /^(\d+(?:\.\d+)?)(m|k|M)?$/.exec(q);
  if (!m) throw new Error(`not a quantity: ${q}`);
  const scale = { m: 1e-3, k: 1e3, M: 1e6 }[m[2] ?? ''] ?? 1;
  return Number(m[1]) * scale;
}

const admin = (method: string, path: string) =>
  fetch(`${pulsarPlain().adminUrl}${path}`, { method, signal: AbortSignal.timeout(10_000) });

before(async () => {
  const r = await kubectl(['create', 'namespace', ns]);
  assert.equal(r.code, 0, r.out);
});
after(async () => {
  // The operator removes its finalizer from the ScaledObject, so the namespace goes with everything in it.
  await kubectl(['delete', 'namespace', ns, '--wait=false']);
});

test("KEDA's CRDs are established", async () => {
  for (const crd of ['scaledobjects.keda.sh', 'triggerauthentications.keda.sh']) {
    const o = await getJson<{ status?: { conditions?: Condition[] } }>(['get', 'crd', crd]);
    assert.ok(o, `${crd} exists`);
    const established = o.status?.conditions?.find((c) => c.type === 'Established');
    assert.equal(established?.status, 'True', `${crd} Established`);
  }
});

test('the KEDA operator is healthy and ready', async () => {
  const { probeUrl } = keda();
  for (const path of ['/healthz', '/readyz']) {
    const r = await fetch(`${probeUrl}${path}`, { signal: AbortSignal.timeout(5000) });
    assert.equal(r.status, 200, `${path}: ${await r.text()}`);
  }
});

test('the API server serves external.metrics.k8s.io from the KEDA metrics adapter (APIService Available)', async () => {
  const { namespace } = keda();
  const o = await getJson<{
    spec?: { service?: { namespace?: string } };
    status?: { conditions?: Condition[] };
  }>(['get', 'apiservice', 'v1beta1.external.metrics.k8s.io']);
  assert.ok(o, 'APIService v1beta1.external.metrics.k8s.io exists');
  assert.equal(o.spec?.service?.namespace, namespace);
  const available = o.status?.conditions?.find((c) => c.type === 'Available');
  assert.equal(available?.status, 'True', `Available: ${available?.reason}: ${available?.message}`);
  const r = await kubectl(['get', '--raw', '/apis/external.metrics.k8s.io/v1beta1']);
  assert.equal(r.code, 0, r.out);
  const list = JSON.parse(r.out) as { resources: { name: string }[] };
  assert.ok(list.resources.some((x) => x.name === 'externalmetrics'));
});

test('a pulsar ScaledObject scales a Deployment to 0 without backlog, to 1 (KEDA) and beyond (HPA) with one', async () => {
  const { adminUrl, serviceUrl } = pulsarPlain();
  const image = node().dispatcherImage;
  const suffix = randomBytes(4).toString('hex');
  const topic = `persistent://public/default/keda-${suffix}`;
  const topicPath = `/admin/v2/persistent/public/default/keda-${suffix}`;
  const subscription = 'keda-test';
  const name = 'backlog';
  const threshold = 5;

  let res = await admin('PUT', topicPath);
  assert.equal(res.status, 204, await res.text());
  // A durable subscription at the topic's end: its backlog is what is published from now on.
  res = await admin('PUT', `${topicPath}/subscription/${subscription}`);
  assert.equal(res.status, 204, await res.text());

  // One replica to begin with, so the scale to 0 is KEDA's doing. The pods run the image's node, idle.
  const deployment = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: ns },
    spec: {
      replicas: 1,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: {
          terminationGracePeriodSeconds: 1,
          containers: [
            {
              name: 'idle',
              image,
              imagePullPolicy: 'Never',
              command: ['/nodejs/bin/node', '-e', 'setInterval(() => {}, 1 << 30)'],
            },
          ],
        },
      },
    },
  };
  // KEDA's pulsar scaler runs in the operator on this machine, so it reaches the broker's admin API on loopback.
  const scaledObject = {
    apiVersion: 'keda.sh/v1alpha1',
    kind: 'ScaledObject',
    metadata: { name, namespace: ns },
    spec: {
      scaleTargetRef: { name },
      pollingInterval: 5,
      cooldownPeriod: 5,
      minReplicaCount: 0,
      maxReplicaCount: 3,
      triggers: [
        {
          type: 'pulsar',
          metadata: {
            adminURL: adminUrl,
            topic,
            subscription,
            isPartitionedTopic: 'false',
            msgBacklogThreshold: String(threshold),
            activationMsgBacklogThreshold: '2',
          },
        },
      ],
    },
  };
  let r = await kubectl(['apply', '-f', '-'], JSON.stringify(deployment));
  assert.equal(r.code, 0, r.out);
  await eventually('the Deployment has its replica', async () => {
    const d = await getJson<{ status?: { replicas?: number } }>(['get', 'deployment', name, '-n', ns]);
    return d?.status?.replicas === 1 ? true : undefined;
  });
  r = await kubectl(['apply', '-f', '-'], JSON.stringify(scaledObject));
  assert.equal(r.code, 0, r.out);

  type Scaled = { status?: { conditions?: Condition[]; hpaName?: string } };
  type Deploy = { spec?: { replicas?: number }; status?: { readyReplicas?: number } };
  const state = async () => {
    const so = await kubectl(['get', 'scaledobject', name, '-n', ns, '-o', 'jsonpath={.status}']);
    const hpa = await kubectl(['get', 'hpa', '-n', ns, '-o', 'jsonpath={.items[*].status}']);
    const d = await kubectl(['get', 'deployment', name, '-n', ns, '-o', 'jsonpath={.spec.replicas}']);
    return `ScaledObject status: ${so.out}\nHPA status: ${hpa.out}\nDeployment spec.replicas: ${d.out}`;
  };
  const replicas = async () => (await getJson<Deploy>(['get', 'deployment', name, '-n', ns]))?.spec?.replicas;

  // Ready: KEDA read the subscription's stats (backlog 0) and found no activity.
  await eventually(
    'ScaledObject Ready and not Active',
    async () => {
      const so = await getJson<Scaled>(['get', 'scaledobject', name, '-n', ns]);
      const c = (t: string) => so?.status?.conditions?.find((x) => x.type === t)?.status;
      return c('Ready') === 'True' && c('Active') === 'False' ? true : undefined;
    },
    { state },
  );
  await eventually(
    'KEDA scales the Deployment to 0',
    async () => ((await replicas()) === 0 ? true : undefined),
    {
      state,
    },
  );

  const client = new PulsarClient({ serviceUrl, operationTimeoutMs: 30_000 });
  try {
    const producer = await client.createProducer({ topic, batchingMaxMessages: 1 });
    const publish = (n: number) =>
      Promise.all(
        Array.from({ length: n }, (_, i) => producer.send({ payload: new TextEncoder().encode(`m${i}`) })),
      );

    // A backlog above the activation threshold and below the target: KEDA scales 0 → 1 itself.
    await publish(3);
    await eventually(
      'KEDA scales the Deployment to 1 or more',
      async () => ((await replicas()) ?? 0) >= 1 || undefined,
      { state },
    );
    const hpaName = `keda-hpa-${name}`;
    const hpa = await eventually(
      `HPA ${hpaName} exists`,
      () =>
        getJson<{
          spec: { metrics: { type: string; external?: { metric: { name: string; selector?: unknown } } }[] };
        }>(['get', 'hpa', hpaName, '-n', ns]),
      { state },
    );
    const external = hpa.spec.metrics.find((m) => m.type === 'External')?.external;
    assert.ok(external, 'the HPA scales on an external metric');

    // Above twice the target: the HPA, reading the backlog through the aggregation layer, scales beyond 1.
    await publish(4 * threshold);
    await eventually(
      'the HPA scales the Deployment to 2 or more',
      async () => ((await replicas()) ?? 0) >= 2 || undefined,
      {
        state,
      },
    );
    const scaled = await getJson<{
      status?: {
        conditions?: Condition[];
        currentMetrics?: { external?: { current?: { averageValue?: string } } }[];
      };
    }>(['get', 'hpa', hpaName, '-n', ns]);
    const active = scaled?.status?.conditions?.find((c) => c.type === 'ScalingActive');
    assert.equal(active?.status, 'True', `ScalingActive: ${active?.reason}: ${active?.message}`);
    assert.ok(
      scaled?.status?.currentMetrics?.some((m) => m.external?.current?.averageValue !== undefined),
      'the HPA read the external metric',
    );

    // The same metric as the HPA's controller reads it: the backlog, from the adapter through the API server.
    const selector = `scaledobject.keda.sh/name=${name}`;
    r = await kubectl([
      'get',
      '--raw',
      `/apis/external.metrics.k8s.io/v1beta1/namespaces/${ns}/${external.metric.name}?labelSelector=${encodeURIComponent(selector)}`,
    ]);
    assert.equal(r.code, 0, r.out);
    const values = JSON.parse(r.out) as { items: { metricName: string; value: string }[] };
    assert.equal(values.items.length, 1, r.out);
    // Nothing consumes: the backlog is every message published.
    assert.equal(quantity(values.items[0]!.value), 3 + 4 * threshold, r.out);
    await producer.close();
  } finally {
    await client.close();
    await admin('DELETE', `${topicPath}?force=true`);
  }
});
