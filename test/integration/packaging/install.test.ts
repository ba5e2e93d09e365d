// deploy/Makefile against the real API server: `make install` applies the CRD and installs every object of the
// chart (the Deployment is admitted and kube-controller-manager makes its ReplicaSet and pods), a second
// `make install` upgrades in place, `make delete` removes every object, and `make deletecrd` removes the CRD and
// with it every trigger. deletecrd runs on a copy of the CRD under a group of its own: the API server is shared
// with tests that need the real PulsarTrigger CRD.

import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import {
  deployDir,
  type Manifest,
  randomSuffix,
  run,
  runOk,
  seedCrd,
  type Tools,
  tempDir,
  tools,
} from '../../support/packaging.ts';

const home = tempDir('install-test');
let t: Tools;

before(() => {
  t = tools(home.dir);
});
after(() => home.remove());

function make(args: string[]) {
  return run('make', ['-C', deployDir, ...args], { env: t.env, timeoutMs: 300_000 });
}

async function exists(kind: string, name: string, namespace?: string): Promise<boolean> {
  const args = ['get', kind, name, '--ignore-not-found', '-o', 'name'];
  if (namespace) args.push('--namespace', namespace);
  const r = await runOk(t.kubectl, args, { env: t.env });
  return r.stdout.trim() !== '';
}

async function eventually(what: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

describe('make install / make delete', () => {
  const ns = `kpt-install-${randomSuffix()}`;
  let objects: Manifest[] = [];

  after(async () => {
    await run(t.kubectl, ['delete', 'namespace', ns, '--ignore-not-found', '--wait=false'], { env: t.env });
  });

  test('make install creates the CRD and every object of the chart', async () => {
    const r = await make([
      'install',
      `NAMESPACE=${ns}`,
      'HELM_ARGS=--set podDisruptionBudget.enabled=true --set replicaCount=2',
    ]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.ok(await exists('customresourcedefinition', 'pulsartriggers.kubeless.io'));
    const established = await runOk(
      t.kubectl,
      [
        'get',
        'crd',
        'pulsartriggers.kubeless.io',
        '-o',
        'jsonpath={.status.conditions[?(@.type=="Established")].status}',
      ],
      { env: t.env },
    );
    assert.equal(established.stdout, 'True');

    const manifest = await runOk(t.helm, ['get', 'manifest', 'kpt', '--namespace', ns], { env: t.env });
    objects = parseAllDocuments(manifest.stdout)
      .map((d) => d.toJS() as Manifest | null)
      .filter((d): d is Manifest => d !== null);
    assert.deepEqual(objects.map((o) => o.kind).sort(), [
      // The controller's, and the two aggregated into the built-in edit/admin and view roles.
      'ClusterRole',
      'ClusterRole',
      'ClusterRole',
      'ClusterRoleBinding',
      'Deployment',
      'PodDisruptionBudget',
      'Role',
      'RoleBinding',
      'Service',
      'ServiceAccount',
    ]);
    for (const o of objects) {
      const namespaced = !o.kind.startsWith('Cluster');
      assert.ok(
        await exists(o.kind, o.metadata.name, namespaced ? ns : undefined),
        `${o.kind}/${o.metadata.name}`,
      );
    }
  });

  test('the controller Deployment is admitted as it is: ReplicaSet and pods are created', async () => {
    const deployment = objects.find((o) => o.kind === 'Deployment')!;
    await eventually('2 controller pods', async () => {
      const r = await runOk(
        t.kubectl,
        [
          'get',
          'pods',
          '--namespace',
          ns,
          '-l',
          `app.kubernetes.io/instance=kpt,app.kubernetes.io/component=controller`,
          '-o',
          'name',
        ],
        { env: t.env },
      );
      return r.stdout.trim().split('\n').filter(Boolean).length === 2;
    });
    const sa = await runOk(
      t.kubectl,
      [
        'get',
        'deployment',
        deployment.metadata.name,
        '--namespace',
        ns,
        '-o',
        'jsonpath={.spec.template.spec.serviceAccountName}',
      ],
      { env: t.env },
    );
    assert.equal(sa.stdout, objects.find((o) => o.kind === 'ServiceAccount')!.metadata.name);
  });

  test('make install again upgrades the release in place', async () => {
    const r = await make(['install', `NAMESPACE=${ns}`, 'HELM_ARGS=--set podDisruptionBudget.enabled=true']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const list = await runOk(t.helm, ['list', '--namespace', ns, '-o', 'json'], { env: t.env });
    const releases = JSON.parse(list.stdout) as {
      name: string;
      revision: string;
      status: string;
      chart: string;
    }[];
    assert.deepEqual(
      releases.map((x) => [x.name, x.revision, x.status]),
      [['kpt', '2', 'deployed']],
    );
    const replicas = await runOk(
      t.kubectl,
      [
        'get',
        'deployment',
        '--namespace',
        ns,
        '-l',
        'app.kubernetes.io/instance=kpt',
        '-o',
        'jsonpath={..replicas}',
      ],
      { env: t.env },
    );
    assert.match(replicas.stdout, /^1\b/);
  });

  test('make delete removes every object, cluster-scoped ones included, and keeps the CRD', async () => {
    const r = await make(['delete', `NAMESPACE=${ns}`]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    for (const o of objects) {
      const namespaced = !o.kind.startsWith('Cluster');
      await eventually(`${o.kind}/${o.metadata.name} gone`, async () => {
        return !(await exists(o.kind, o.metadata.name, namespaced ? ns : undefined));
      });
    }
    const list = await runOk(t.helm, ['list', '--namespace', ns, '-q'], { env: t.env });
    assert.equal(list.stdout.trim(), '');
    assert.ok(await exists('customresourcedefinition', 'pulsartriggers.kubeless.io'));
    const again = await make(['delete', `NAMESPACE=${ns}`]);
    assert.equal(again.code, 0, `a second delete is harmless\n${again.stderr}`);
  });
});

test('make deletecrd warns, then deletes the CRD and every trigger with it', async () => {
  const group = `kpt${randomSuffix()}.example.com`;
  const ns = `kpt-deletecrd-${randomSuffix()}`;
  const crdFile = join(home.dir, 'crd-copy.yaml');
  writeFileSync(crdFile, readFileSync(seedCrd, 'utf8').replaceAll('kubeless.io', group));
  const crdName = `pulsartriggers.${group}`;
  try {
    await runOk(t.kubectl, ['create', 'namespace', ns], { env: t.env });
    await runOk(t.kubectl, ['apply', '-f', crdFile], { env: t.env });
    await runOk(t.kubectl, ['wait', '--for=condition=Established', '--timeout=60s', `crd/${crdName}`], {
      env: t.env,
    });
    const trigger = [
      `apiVersion: ${group}/v1`,
      'kind: PulsarTrigger',
      'metadata:',
      '  name: doomed',
      `  namespace: ${ns}`,
      'spec:',
      '  pulsar:',
      '    topic: persistent://public/default/mytopic',
      '    broker: pulsar://pulsar.addr:6650',
      '  kubeless:',
      '    function: http://myfunction.default:8080',
    ].join('\n');
    await runOk(t.kubectl, ['apply', '-f', '-'], { env: t.env, input: trigger });
    assert.ok(await exists(crdName, 'doomed', ns));

    const r = await make(['deletecrd', `CRD=${crdFile}`]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stderr, /WARNING: .*permanently deletes ALL PulsarTriggers/);
    assert.ok(!(await exists('customresourcedefinition', crdName)));
    const gone = await run(t.kubectl, ['get', crdName, '--namespace', ns], { env: t.env });
    assert.notEqual(gone.code, 0, 'the trigger type no longer exists');
    assert.ok(
      await exists('customresourcedefinition', 'pulsartriggers.kubeless.io'),
      'the real CRD is untouched',
    );
  } finally {
    await run(t.kubectl, ['delete', '--ignore-not-found', '--wait=false', '-f', crdFile], { env: t.env });
    await run(t.kubectl, ['delete', 'namespace', ns, '--ignore-not-found', '--wait=false'], { env: t.env });
  }
});
