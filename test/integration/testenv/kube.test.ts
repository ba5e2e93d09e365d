// Proves the test control plane is a real Kubernetes: CRDs serve objects, the controller-manager turns a
// Deployment into a ReplicaSet and garbage-collects dependents of a deleted owner, and RBAC refuses an
// unprivileged identity.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { kube } from '../../support/env.ts';

const ns = `testenv-${randomBytes(4).toString('hex')}`;

async function kubectl(args: string[], opts: { input?: string; kubeconfig?: string } = {}) {
  const env = kube();
  return new Promise<{ code: number; out: string }>((resolve) => {
    const child = execFile(
      join(env.binDir, 'kubectl'),
      ['--kubeconfig', opts.kubeconfig ?? env.kubeconfig, ...args],
      { timeout: 60_000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? Number(err.code) : 1) : 0;
        resolve({ code, out: `${stdout}${stderr}` });
      },
    );
    child.stdin?.end(opts.input ?? '');
  });
}

async function eventually<T>(what: string, fn: () => Promise<T | undefined>, tries = 120): Promise<T> {
  for (let i = 0; i < tries; i++) {
    const v = await fn();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`never happened: ${what}`);
}

before(async () => {
  const r = await kubectl(['create', 'namespace', ns]);
  assert.equal(r.code, 0, r.out);
});
after(async () => {
  await kubectl(['delete', 'namespace', ns, '--wait=false']);
});

test('/readyz answers ok', async () => {
  const r = await kubectl(['get', '--raw', '/readyz']);
  assert.equal(r.code, 0, r.out);
  assert.equal(r.out.trim(), 'ok');
});

test('a CustomResourceDefinition is served and an object of it can be created', async () => {
  const group = `${randomBytes(3).toString('hex')}.testenv.kpt.io`;
  const crd = {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `widgets.${group}` },
    spec: {
      group,
      scope: 'Namespaced',
      names: { plural: 'widgets', singular: 'widget', kind: 'Widget' },
      versions: [
        {
          name: 'v1',
          served: true,
          storage: true,
          schema: {
            openAPIV3Schema: {
              type: 'object',
              properties: { spec: { type: 'object', properties: { size: { type: 'integer' } } } },
            },
          },
        },
      ],
    },
  };
  let r = await kubectl(['apply', '-f', '-'], { input: JSON.stringify(crd) });
  assert.equal(r.code, 0, r.out);
  await eventually('CRD established', async () => {
    const s = await kubectl([
      'get',
      'crd',
      `widgets.${group}`,
      '-o',
      'jsonpath={.status.conditions[?(@.type=="Established")].status}',
    ]);
    return s.out.trim() === 'True' ? true : undefined;
  });
  const obj = {
    apiVersion: `${group}/v1`,
    kind: 'Widget',
    metadata: { name: 'w1', namespace: ns },
    spec: { size: 3 },
  };
  r = await kubectl(['apply', '-f', '-'], { input: JSON.stringify(obj) });
  assert.equal(r.code, 0, r.out);
  r = await kubectl(['get', `widgets.${group}`, 'w1', '-n', ns, '-o', 'jsonpath={.spec.size}']);
  assert.equal(r.out.trim(), '3');
  await kubectl(['delete', 'crd', `widgets.${group}`, '--wait=false']);
});

test('the controller-manager creates a ReplicaSet for a Deployment and garbage-collects it with its owner', async () => {
  let r = await kubectl(['create', 'deployment', 'web', '--image=example.invalid/web:1', '-n', ns]);
  assert.equal(r.code, 0, r.out);
  const rsName = await eventually('ReplicaSet created', async () => {
    const s = await kubectl([
      'get',
      'rs',
      '-n',
      ns,
      '-l',
      'app=web',
      '-o',
      'jsonpath={.items[0].metadata.name}',
    ]);
    return s.out.trim() || undefined;
  });
  r = await kubectl(['get', 'rs', rsName, '-n', ns, '-o', 'jsonpath={.metadata.ownerReferences[0].kind}']);
  assert.equal(r.out.trim(), 'Deployment');
  // Pods exist but stay Pending: there is no kubelet.
  await eventually('pod created', async () => {
    const s = await kubectl([
      'get',
      'pods',
      '-n',
      ns,
      '-l',
      'app=web',
      '-o',
      'jsonpath={.items[0].status.phase}',
    ]);
    return s.out.trim() === 'Pending' ? true : undefined;
  });
  r = await kubectl(['delete', 'deployment', 'web', '-n', ns, '--cascade=background']);
  assert.equal(r.code, 0, r.out);
  await eventually('ReplicaSet garbage-collected', async () => {
    const s = await kubectl(['get', 'rs', '-n', ns, '-o', 'name']);
    return s.code === 0 && s.out.trim() === '' ? true : undefined;
  });
});

test('RBAC refuses the unprivileged identity (403) and allows admin', async () => {
  const env = kube();
  const denied = await kubectl(['get', 'secrets', '-n', ns], { kubeconfig: env.unprivilegedKubeconfig });
  assert.notEqual(denied.code, 0);
  assert.match(denied.out, /Forbidden|forbidden/);
  const can = await kubectl(['auth', 'can-i', 'create', 'deployments', '-n', ns], {
    kubeconfig: env.unprivilegedKubeconfig,
  });
  assert.equal(can.out.trim(), 'no');
  const admin = await kubectl(['auth', 'can-i', 'create', 'deployments', '-n', ns]);
  assert.equal(admin.out.trim(), 'yes');
});
