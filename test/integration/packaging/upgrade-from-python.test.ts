// docs/upgrading-from-python.md, run as written against a real API server: each `<!-- step: name -->` block of the
// document goes through bash with helm and kubectl on PATH, as a user pasting it would run it. The API server is a
// private control plane (testenv/kube.ts: etcd, kube-apiserver, kube-controller-manager), because the upgrade
// replaces the kubeless.io PulsarTrigger CRD, which the shared API server's other tests need.
//
// The Python project is reproduced from what its README gives (fixtures/python-project): its CRD, applied with
// `kubectl apply -f crd.yaml` as the README says, a stand-in for its chart (a controller Deployment that is never
// scheduled here: the private control plane has no node), and dispatcher Deployments shaped as the Python controller
// made them (every one in `default`, a selector on created-by only). The new controller runs as a process with the
// chart's ServiceAccount token, as its pod would.
//
// Also shown: a release that templated the CRD deletes it, and every object of it, on `helm uninstall` even with
// the CRD annotated helm.sh/resource-policy=keep in the cluster; the document's step 3b keeps it.

import assert from 'node:assert/strict';
import { readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { parse, stringify } from 'yaml';
import { type KubeHandle, startKube } from '../../../testenv/kube.ts';
import { deployDir, repoRoot, run, runOk, tempDir } from '../../support/packaging.ts';
import {
  type Any,
  type ControllerProcess,
  eventually,
  startControllerProcess,
} from '../controller/harness.ts';

const doc = readFileSync(join(repoRoot, 'docs', 'upgrading-from-python.md'), 'utf8');
const fixtures = join(import.meta.dirname, 'fixtures', 'python-project');
const pythonChart = join(fixtures, 'chart');
const work = tempDir('upgrade-from-python');
let k: KubeHandle;
let env: NodeJS.ProcessEnv;
let ctl: ControllerProcess | undefined;

/** The document's `<!-- step: name -->` blocks. */
function steps(): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of doc.matchAll(/<!-- step: ([\w-]+) -->\n```bash\n([\s\S]*?)```/g)) out.set(m[1]!, m[2]!);
  return out;
}

function step(name: string): string {
  const s = steps().get(name);
  assert.ok(s, `docs/upgrading-from-python.md has a step "${name}"`);
  return s;
}

/** Runs a step with bash in the work folder (which has deploy/ of this checkout), stopping at the first error. */
async function runStep(name: string, vars: Record<string, string>, edit = (s: string) => s) {
  const r = await run('bash', ['-euo', 'pipefail', '-c', edit(step(name))], {
    cwd: work.dir,
    env: { ...env, ...vars },
    timeoutMs: 300_000,
  });
  assert.equal(r.code, 0, `step ${name}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`);
  return r.stdout;
}

const kubectl = (args: string[], input?: string) =>
  runOk('kubectl', args, input === undefined ? { env } : { env, input });
const getJson = async (args: string[]): Promise<Any> => {
  const out = (await kubectl([...args, '-o', 'json', '--ignore-not-found'])).stdout.trim();
  return out === '' ? undefined : JSON.parse(out);
};
const helmReleases = async (ns: string): Promise<string[]> =>
  (
    JSON.parse((await runOk('helm', ['list', '-n', ns, '-o', 'json'], { env })).stdout) as { name: string }[]
  ).map((r) => r.name);

/** A dispatcher Deployment as the Python controller made it: in `default`, selected by created-by only. */
function pythonDeployment(name: string): string {
  const labels = { 'created-by': 'kubeless-pulsar-trigger' };
  return JSON.stringify({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: 'default', labels },
    spec: {
      selector: { matchLabels: labels },
      template: {
        metadata: { labels },
        spec: {
          containers: [{ name: 'dispatcher', image: 'python-kubeless-pulsar-trigger/dispatcher:0.0.9' }],
        },
      },
    },
  });
}

function pythonTrigger(name: string, namespace: string, group = 'kubeless.io'): string {
  return JSON.stringify({
    apiVersion: `${group}/v1`,
    kind: 'PulsarTrigger',
    metadata: { name, namespace },
    spec: {
      pulsar: {
        topic: 'persistent://public/default/mytopic',
        broker: 'pulsar://pulsar.addr:6650',
        'auth-token': 'nnn',
      },
      kubeless: { function: 'http://myfunction.default:8080' },
    },
  });
}

/** Installs the stand-in Python chart; with a group, it templates a CRD of that group. */
async function installPythonChart(release: string, namespace: string, crdGroup?: string) {
  await runOk(
    'helm',
    [
      'install',
      release,
      pythonChart,
      '--namespace',
      namespace,
      '--create-namespace',
      ...(crdGroup ? ['--set', 'templateCrd=true', '--set', `crdGroup=${crdGroup}`] : []),
    ],
    { env },
  );
  if (crdGroup)
    await kubectl(['wait', '--for=condition=Established', `crd/pulsartriggers.${crdGroup}`, '--timeout=60s']);
}

before(async () => {
  k = await startKube();
  symlinkSync(deployDir, join(work.dir, 'deploy'));
  env = {
    ...process.env,
    KUBECONFIG: k.kubeconfig,
    PATH: `${k.binDir}:${process.env.PATH ?? '/usr/bin:/bin'}`,
    HELM_CONFIG_HOME: join(work.dir, 'helm', 'config'),
    HELM_CACHE_HOME: join(work.dir, 'helm', 'cache'),
    HELM_DATA_HOME: join(work.dir, 'helm', 'data'),
  };
});

after(async () => {
  if (ctl) {
    const code = await ctl.stop();
    if (code !== 0) process.stderr.write(ctl.logs());
  }
  await k?.stop();
  work.remove();
});

test('a release that templated the CRD deletes it on uninstall, even with the CRD annotated keep in the cluster', async () => {
  const group = 'danger.example.com';
  await installPythonChart('danger', 'kpt-danger', group);
  await kubectl(['apply', '-f', '-'], pythonTrigger('doomed', 'default', group));
  const check = await runStep('check', { OLD_RELEASE: 'danger', OLD_NAMESPACE: 'kpt-danger' });
  assert.equal(check.trim(), '1', 'the check finds the CRD in the release');
  await kubectl(['annotate', 'crd', `pulsartriggers.${group}`, 'helm.sh/resource-policy=keep']);
  await runOk('helm', ['uninstall', 'danger', '--namespace', 'kpt-danger'], { env });
  await eventually(
    'the CRD deleted',
    async () => !(await getJson(['get', 'crd', `pulsartriggers.${group}`])),
  );
});

test('step 3b: a release holding the CRD goes, the CRD and its objects stay', async () => {
  const group = 'held.example.com';
  const crd = `pulsartriggers.${group}`;
  await installPythonChart('held', 'kpt-held', group);
  await kubectl(['apply', '-f', '-'], pythonTrigger('kept', 'default', group));
  const uid = (await getJson(['get', crd, 'kept', '-n', 'default'])).metadata.uid;
  const vars = { OLD_RELEASE: 'held', OLD_NAMESPACE: 'kpt-held' };
  assert.equal((await runStep('check', vars)).trim(), '1');
  await runStep('uninstall-holding-crd', vars, (s) => s.replaceAll('pulsartriggers.kubeless.io', crd));
  assert.deepEqual(await helmReleases('kpt-held'), [], 'the release is gone');
  assert.equal(
    await getJson(['get', 'deployment', 'held-kubeless-pulsar-trigger', '-n', 'kpt-held']),
    undefined,
  );
  assert.ok(await getJson(['get', 'crd', crd]), 'the CRD stays');
  assert.equal((await getJson(['get', crd, 'kept', '-n', 'default'])).metadata.uid, uid, 'its object stays');
  // Step 4's CRD over the one Helm wrote: a server-side apply stops at Helm's fields without --force-conflicts.
  const copy = join(work.dir, 'held-crd.yaml');
  writeFileSync(copy, readFileSync(join(deployDir, 'crd.yaml'), 'utf8').replaceAll('kubeless.io', group));
  const plain = await run('kubectl', ['apply', '--server-side', '-f', copy], { env });
  assert.notEqual(plain.code, 0);
  assert.match(plain.stderr, /conflict with "helm"/);
  const firstLine = step('install').split('\n')[0]!;
  assert.equal(firstLine, 'kubectl apply --server-side --force-conflicts -f deploy/crd.yaml');
  await kubectl(['apply', '--server-side', '--force-conflicts', '-f', copy]);
  assert.deepEqual((await getJson(['get', 'crd', crd])).spec.names.shortNames, ['pt']);
  // Gone again, so that `pulsartriggers` names only kubeless.io's in the next test.
  await kubectl(['delete', 'crd', crd, '--wait=true']);
});

test('the Python project as its README installs it: the triggers survive and are adopted', async () => {
  // The Python README: the CRD first (kubectl apply -f crd.yaml), then the chart as release kpt, in `default`.
  await kubectl(['apply', '-f', join(fixtures, 'crd.yaml')]);
  await kubectl(['wait', '--for=condition=Established', 'crd/pulsartriggers.kubeless.io', '--timeout=60s']);
  await installPythonChart('kpt', 'default');
  await kubectl(['create', 'namespace', 'team-a']);
  await kubectl(['apply', '-f', '-'], pythonTrigger('mytrigger', 'default'));
  await kubectl(['apply', '-f', '-'], pythonTrigger('other', 'team-a'));
  await kubectl(['apply', '-f', '-'], pythonDeployment('mytrigger'));
  await kubectl(['apply', '-f', '-'], pythonDeployment('other'));
  const before = {
    mytrigger: (await getJson(['get', 'pulsartrigger', 'mytrigger', '-n', 'default'])).metadata.uid,
    other: (await getJson(['get', 'pulsartrigger', 'other', '-n', 'team-a'])).metadata.uid,
    deployment: (await getJson(['get', 'deployment', 'mytrigger', '-n', 'default'])).metadata.uid,
  };
  const vars = { OLD_RELEASE: 'kpt', OLD_NAMESPACE: 'default' };

  // 1. Back up.
  await runStep('backup', vars);
  const backup = parse(readFileSync(join(work.dir, 'pulsartriggers-backup.yaml'), 'utf8')) as Any;
  assert.deepEqual(backup.items.map((t: Any) => `${t.metadata.namespace}/${t.metadata.name}`).sort(), [
    'default/mytrigger',
    'team-a/other',
  ]);

  // 2. The release does not hold the CRD; 3a. remove it.
  assert.equal((await runStep('check', vars)).trim(), '0');
  await runStep('uninstall', vars);
  assert.deepEqual(await helmReleases('default'), []);
  assert.equal(
    await getJson(['get', 'deployment', 'kpt-kubeless-pulsar-trigger', '-n', 'default']),
    undefined,
  );
  assert.ok(await getJson(['get', 'pulsartrigger', 'mytrigger', '-n', 'default']), 'the triggers stay');

  // 4. This project's CRD and chart (the images as the test environment names them).
  await runStep('install', {
    ...vars,
    HELM_ARGS: [
      '--set controller.watchNamespaces={default,team-a}',
      '--set dispatcher.deployment.image=kpt/dispatcher --set dispatcher.deployment.tag=test',
    ].join(' '),
  });
  const crd = await getJson(['get', 'crd', 'pulsartriggers.kubeless.io']);
  assert.deepEqual(crd.spec.names.shortNames, ['pt'], "the CRD is this project's now");
  assert.ok(crd.spec.versions[0].subresources?.status, 'with the status subresource');
  assert.deepEqual(await helmReleases('kpt'), ['kpt']);

  // The controller, as the chart's pod would run it: the chart's ServiceAccount and Lease, the chart's flags.
  const chartDeployment = await getJson(['get', 'deployment', 'kpt-kubeless-pulsar-trigger', '-n', 'kpt']);
  const args = chartDeployment.spec.template.spec.containers[0].args as string[];
  const image = args.find((a) => a.startsWith('--dispatcher-image='))!.split('=')[1]!;
  assert.equal(image, 'kpt/dispatcher:test');
  const token = (
    await kubectl(['create', 'token', 'kpt-kubeless-pulsar-trigger', '-n', 'kpt'])
  ).stdout.trim();
  const admin = parse(readFileSync(k.kubeconfig, 'utf8')) as Any;
  const kubeconfig = join(work.dir, 'controller.kubeconfig');
  writeFileSync(
    kubeconfig,
    stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: admin.clusters,
      users: [{ name: 'controller', user: { token } }],
      contexts: [{ name: 'controller', context: { cluster: admin.clusters[0].name, user: 'controller' } }],
      'current-context': 'controller',
    }),
    { mode: 0o600 },
  );
  ctl = await startControllerProcess({
    namespaces: ['default', 'team-a'],
    leaseNamespace: 'kpt',
    leaseName: 'kpt-kubeless-pulsar-trigger',
    kubeconfig,
    image,
  });

  // 5. Adopted: each Python Deployment replaced by the controller's, in the trigger's namespace; the copy in
  // `default` of the trigger in team-a deleted; every trigger reports a status.
  const adopted = await eventually('mytrigger adopted', async () => {
    const d = await getJson(['get', 'deployment', 'mytrigger', '-n', 'default']);
    return d && d.metadata.uid !== before.deployment ? d : undefined;
  });
  assert.equal(adopted.spec.selector.matchLabels['kubeless.io/trigger-name'], 'mytrigger');
  assert.equal(adopted.spec.template.spec.containers[0].image, image);
  await eventually('other adopted in team-a', () => getJson(['get', 'deployment', 'other', '-n', 'team-a']));
  await eventually('the Python copy of other in default deleted', async () =>
    (await getJson(['get', 'deployment', 'other', '-n', 'default'])) === undefined ? true : undefined,
  );
  for (const [name, ns] of [
    ['mytrigger', 'default'],
    ['other', 'team-a'],
  ] as const) {
    const t = await eventually(`${name} has a status`, async () => {
      const x = await getJson(['get', 'pulsartrigger', name, '-n', ns]);
      return x?.status?.conditions?.some((c: Any) => c.type === 'Ready') ? x : undefined;
    });
    assert.equal(t.metadata.uid, before[name], `${name} is the same object`);
    assert.equal(t.spec.pulsar['auth-token'], 'nnn', 'its spec as it was');
  }
  const watched = await runStep('watch', vars);
  assert.match(watched, /mytrigger/);
  assert.match(watched, /team-a\s+other/);

  // The backup restores a lost trigger as the document says; the triggers that exist are left alone.
  await kubectl(['delete', 'pulsartrigger', 'mytrigger', '-n', 'default', '--wait=true']);
  const restore = await run('kubectl', ['create', '-f', 'pulsartriggers-backup.yaml'], {
    env,
    cwd: work.dir,
  });
  assert.match(restore.stdout, /pulsartrigger\.kubeless\.io\/mytrigger created/);
  assert.match(restore.stderr, /AlreadyExists.*"other"|"other" already exists/);
  assert.equal((await getJson(['get', 'pulsartrigger', 'other', '-n', 'team-a'])).metadata.uid, before.other);
  await eventually('the restored trigger reconciled', async () => {
    const d = await getJson(['get', 'deployment', 'mytrigger', '-n', 'default']);
    const t = await getJson(['get', 'pulsartrigger', 'mytrigger', '-n', 'default']);
    return d && t && d.metadata.labels['kubeless.io/trigger-uid'] === t.metadata.uid ? true : undefined;
  });
});
