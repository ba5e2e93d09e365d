// The chart as helm sees it: lint, render with the default values, with every value changed, and with a values
// file written for the seed chart; bad values refused by values.schema.json with a message naming the value; the
// controller's flags rendered by the chart are accepted by the controller's own parser; the Makefile's image names
// are the chart's; the CRD in crds/ is the seed-path CRD; the NOTES.txt example trigger is accepted by the API
// server.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parse, parseAllDocuments } from 'yaml';
import { parseConfig } from '../../../src/controller/config.ts';
import { serverKubeVersion } from '../../support/chart-identity.ts';
import {
  chartCrd,
  chartDir,
  deployDir,
  type Manifest,
  run,
  runOk,
  seedCrd,
  type Tools,
  tempDir,
  tools,
} from '../../support/packaging.ts';

const fixtures = join(import.meta.dirname, 'fixtures');
const fullValues = join(fixtures, 'full-values.yaml');
const seedValues = join(fixtures, 'seed-values.yaml');
const chart = parse(readFileSync(join(chartDir, 'Chart.yaml'), 'utf8')) as {
  appVersion: string;
  version: string;
};

let t: Tools;
let kubeVersion: string;
const home = tempDir('chart-test');

before(async () => {
  t = tools(home.dir);
  kubeVersion = await serverKubeVersion(t.kubectl, t.kubeconfig);
});
after(() => home.remove());

async function render(args: string[], namespace = 'kpt-system'): Promise<Manifest[]> {
  const r = await runOk(
    t.helm,
    ['template', 'kpt', chartDir, '--namespace', namespace, '--kube-version', kubeVersion, ...args],
    { env: t.env },
  );
  return parseAllDocuments(r.stdout)
    .map((d) => d.toJS() as Manifest | null)
    .filter((d): d is Manifest => d !== null);
}

function one(objs: Manifest[], kind: string): Manifest {
  const found = objs.filter((o) => o.kind === kind);
  assert.equal(found.length, 1, `exactly one ${kind}, got ${found.length}`);
  return found[0]!;
}

interface Container {
  name: string;
  image: string;
  imagePullPolicy: string;
  args: string[];
  env?: { name: string; value?: string }[];
  resources: unknown;
  securityContext: Record<string, unknown>;
  ports: { name: string; containerPort: number }[];
  livenessProbe: { httpGet: { path: string; port: string } };
  readinessProbe: { httpGet: { path: string; port: string } };
}

interface PodSpec {
  serviceAccountName: string;
  securityContext: Record<string, unknown>;
  containers: Container[];
  nodeSelector?: unknown;
  tolerations?: unknown;
  affinity?: unknown;
  topologySpreadConstraints?: unknown;
  priorityClassName?: string;
  imagePullSecrets?: unknown;
}

function deployment(objs: Manifest[]): {
  d: Manifest;
  spec: { replicas: number; template: { metadata: { labels: Record<string, string> } } };
  pod: PodSpec;
  c: Container;
} {
  const d = one(objs, 'Deployment');
  const spec = d.spec as {
    replicas: number;
    template: { metadata: { labels: Record<string, string> }; spec: PodSpec };
  };
  const pod = spec.template.spec;
  assert.equal(pod.containers.length, 1);
  return { d, spec, pod, c: pod.containers[0]! };
}

/** The controller's configuration as it would parse the rendered flags inside the pod. */
function controllerConfig(c: Container, namespace: string) {
  assert.equal(c.args[0], 'controller', 'the first argument selects the controller entrypoint');
  const parsed = parseConfig(c.args.slice(1), { POD_NAMESPACE: namespace, POD_NAME: 'kpt-abc' });
  assert.ok(parsed.ok, parsed.ok ? '' : parsed.error.message);
  return parsed.value;
}

test('the CRD in the chart is the seed-path CRD (deploy/crd.yaml), byte for byte', () => {
  const inChart = readFileSync(chartCrd, 'utf8');
  assert.equal(inChart, readFileSync(seedCrd, 'utf8'));
  const crd = parse(inChart) as Manifest & { spec: { group: string; names: { kind: string } } };
  assert.equal(crd.kind, 'CustomResourceDefinition');
  assert.equal(crd.spec.group, 'kubeless.io');
  assert.equal(crd.spec.names.kind, 'PulsarTrigger');
});

test('helm lint --strict passes with the default, the full and the seed values', async () => {
  for (const values of [[], ['--values', fullValues], ['--values', seedValues]]) {
    const r = await run(t.helm, ['lint', '--strict', '--kube-version', kubeVersion, chartDir, ...values], {
      env: t.env,
    });
    assert.equal(r.code, 0, `${values.join(' ')}\n${r.stdout}${r.stderr}`);
    assert.match(r.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
  }
});

describe('default values', () => {
  let objs: Manifest[];
  before(async () => {
    objs = await render([]);
  });

  test('renders the controller objects and nothing optional', () => {
    const kinds = objs.map((o) => `${o.kind}/${o.metadata.name}`).sort();
    assert.deepEqual(kinds, [
      'ClusterRole/kpt-kubeless-pulsar-trigger-kpt-system',
      'ClusterRole/kpt-kubeless-pulsar-trigger-kpt-system-edit',
      'ClusterRole/kpt-kubeless-pulsar-trigger-kpt-system-view',
      'ClusterRoleBinding/kpt-kubeless-pulsar-trigger-kpt-system',
      'Deployment/kpt-kubeless-pulsar-trigger',
      'Role/kpt-kubeless-pulsar-trigger-leader-election',
      'RoleBinding/kpt-kubeless-pulsar-trigger-leader-election',
      'Service/kpt-kubeless-pulsar-trigger-metrics',
      'ServiceAccount/kpt-kubeless-pulsar-trigger',
    ]);
    for (const o of objs) {
      if (!o.kind.startsWith('Cluster'))
        assert.equal(o.metadata.namespace, 'kpt-system', `${o.kind} namespace`);
      assert.equal(o.metadata.labels?.['app.kubernetes.io/instance'], 'kpt');
      assert.equal(o.metadata.labels?.['app.kubernetes.io/managed-by'], 'Helm');
      assert.equal(o.metadata.labels?.['app.kubernetes.io/version'], chart.appVersion);
    }
  });

  test('the controller Deployment: images from appVersion, seed resources, locked-down security contexts', () => {
    const { spec, pod, c } = deployment(objs);
    assert.equal(spec.replicas, 1);
    assert.equal(c.image, `ghcr.io/kubeless-pulsar-trigger/controller:${chart.appVersion}`);
    assert.equal(c.imagePullPolicy, 'IfNotPresent');
    assert.deepEqual(c.resources, {
      limits: { cpu: '1', memory: '512Mi' },
      requests: { cpu: '50m', memory: '128Mi' },
    });
    assert.equal(pod.serviceAccountName, 'kpt-kubeless-pulsar-trigger');
    assert.equal(pod.securityContext.runAsNonRoot, true);
    assert.deepEqual(pod.securityContext.seccompProfile, { type: 'RuntimeDefault' });
    assert.equal(c.securityContext.runAsNonRoot, true);
    assert.equal(c.securityContext.readOnlyRootFilesystem, true);
    assert.equal(c.securityContext.allowPrivilegeEscalation, false);
    assert.equal(c.securityContext.privileged, false);
    assert.deepEqual(c.securityContext.capabilities, { drop: ['ALL'] });
    assert.deepEqual(c.securityContext.seccompProfile, { type: 'RuntimeDefault' });
    assert.equal(c.livenessProbe.httpGet.path, '/healthz');
    assert.equal(c.readinessProbe.httpGet.path, '/readyz');
    assert.deepEqual(
      c.ports.map((p) => [p.name, p.containerPort]),
      [['http', 8080]],
    );
  });

  test("the controller's own parser accepts the rendered flags, with the seed's dispatcher defaults", () => {
    const { c } = deployment(objs);
    const config = controllerConfig(c, 'kpt-system');
    assert.equal(config.dispatcherImage, `ghcr.io/kubeless-pulsar-trigger/dispatcher:${chart.appVersion}`);
    assert.deepEqual(config.resources, {
      limits: { cpu: '1', memory: '1Gi' },
      requests: { cpu: '500m', memory: '512Mi' },
    });
    assert.deepEqual(config.namespaces, []);
    assert.deepEqual(
      config.allowCrossNamespace,
      [],
      'no namespace accepts triggers from another unless asked',
    );
    assert.equal(config.timezone, 'UTC');
    assert.equal(config.logLevel, 'info');
    assert.equal(config.httpPort, 8080);
    assert.equal(config.leaderElect, true);
    assert.equal(config.leaseName, 'kpt-kubeless-pulsar-trigger');
    assert.equal(config.leaseNamespace, 'kpt-system');
    assert.equal(config.kubeconfig, undefined, 'in the pod: the in-cluster configuration');
  });

  test('the metrics Service selects the controller pods on the http port', () => {
    const svc = one(objs, 'Service') as Manifest & {
      spec: { selector: Record<string, string>; ports: { port: number; targetPort: string }[] };
    };
    const { spec } = deployment(objs);
    for (const [k, v] of Object.entries(svc.spec.selector)) assert.equal(spec.template.metadata.labels[k], v);
    assert.deepEqual(
      svc.spec.ports.map((p) => [p.port, p.targetPort]),
      [[8080, 'http']],
    );
  });
});

describe('every value changed (fixtures/full-values.yaml)', () => {
  let objs: Manifest[];
  before(async () => {
    objs = await render(['--values', fullValues]);
  });

  test('optional objects appear; watched namespaces get Roles, and cluster-wide only their Namespaces by name', () => {
    const kinds = objs.map((o) => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`).sort();
    assert.deepEqual(kinds, [
      'ClusterRole//my-kpt-kpt-system-namespaces',
      'ClusterRoleBinding//my-kpt-kpt-system-namespaces',
      'Deployment/kpt-system/my-kpt',
      'PodDisruptionBudget/kpt-system/my-kpt',
      'PodMonitor/kpt-system/my-kpt-dispatchers',
      'PrometheusRule/kpt-system/my-kpt',
      'Role/kpt-system/my-kpt-leader-election',
      'Role/team-a/my-kpt',
      'Role/team-b/my-kpt',
      'RoleBinding/kpt-system/my-kpt-leader-election',
      'RoleBinding/team-a/my-kpt',
      'RoleBinding/team-b/my-kpt',
      'Service/kpt-system/my-kpt-metrics',
      'ServiceAccount/kpt-system/kpt-sa',
      'ServiceMonitor/kpt-system/my-kpt',
    ]);
    for (const o of objs) {
      assert.equal(o.metadata.labels?.team, 'platform', `${o.kind} carries commonLabels`);
      const annotations = (o.metadata as { annotations?: Record<string, string> }).annotations;
      assert.equal(annotations?.owner, 'platform@example.com', `${o.kind} carries commonAnnotations`);
    }
    const namespaces = objs.find((o) => o.metadata.name === 'my-kpt-kpt-system-namespaces') as
      | (Manifest & { rules: unknown })
      | undefined;
    assert.deepEqual(namespaces?.rules, [
      {
        apiGroups: [''],
        resources: ['namespaces'],
        verbs: ['list', 'watch'],
        resourceNames: ['team-a', 'team-b'],
      },
    ]);
    for (const rb of objs.filter((o) => o.kind === 'RoleBinding' || o.kind === 'ClusterRoleBinding')) {
      assert.deepEqual((rb as { subjects?: unknown }).subjects, [
        { kind: 'ServiceAccount', name: 'kpt-sa', namespace: 'kpt-system' },
      ]);
    }
  });

  test('the Deployment takes every value', () => {
    const { d, spec, pod, c } = deployment(objs);
    assert.equal(spec.replicas, 2);
    assert.equal(c.image, 'registry.example.com/kpt/controller:1.2.3');
    assert.equal(c.imagePullPolicy, 'Always');
    assert.deepEqual(pod.imagePullSecrets, [{ name: 'regcred' }]);
    assert.equal(pod.serviceAccountName, 'kpt-sa');
    assert.equal(pod.securityContext.runAsUser, 10001);
    assert.deepEqual(c.resources, {
      limits: { cpu: '2', memory: '1Gi' },
      requests: { cpu: '100m', memory: '256Mi' },
    });
    assert.deepEqual(pod.nodeSelector, { 'kubernetes.io/os': 'linux' });
    assert.equal((pod.tolerations as { key: string }[])[0]?.key, 'dedicated');
    assert.ok((pod.affinity as { podAntiAffinity?: unknown }).podAntiAffinity);
    assert.equal((pod.topologySpreadConstraints as unknown[]).length, 1);
    assert.equal(pod.priorityClassName, 'system-cluster-critical');
    assert.equal(spec.template.metadata.labels.tier, 'control');
    assert.equal(spec.template.metadata.labels.team, 'platform');
    const podAnnotations = (spec.template.metadata as { annotations?: Record<string, string> }).annotations;
    assert.equal(podAnnotations?.['example.com/scrape'], 'true');
    assert.deepEqual(
      c.env?.find((e) => e.name === 'FOO'),
      { name: 'FOO', value: 'bar' },
    );
    assert.equal(d.metadata.labels?.['app.kubernetes.io/name'], 'pt');
    assert.equal(c.ports[0]?.containerPort, 9090);
  });

  test("the controller's parser accepts the rendered flags and sees every setting", () => {
    const { c } = deployment(objs);
    const config = controllerConfig(c, 'kpt-system');
    assert.equal(config.dispatcherImage, 'registry.example.com/kpt/dispatcher:1.2.4');
    assert.deepEqual(config.resources, {
      limits: { cpu: '2', memory: '2Gi' },
      requests: { cpu: '250m', memory: '256Mi' },
    });
    assert.deepEqual(config.namespaces, ['team-a', 'team-b']);
    assert.deepEqual(config.allowCrossNamespace, [
      { from: 'team-a', to: 'team-b' },
      { from: '*', to: 'shared' },
    ]);
    assert.equal(config.timezone, 'America/Sao_Paulo');
    assert.equal(config.logLevel, 'debug');
    assert.equal(config.httpPort, 9090);
    assert.equal(config.leaseName, 'kpt-leader');
    assert.equal(config.workers, 4, 'extraArgs reach the controller');
  });

  test('ServiceMonitor and PodDisruptionBudget select the controller pods', () => {
    const { spec } = deployment(objs);
    const sm = one(objs, 'ServiceMonitor') as Manifest & {
      spec: {
        selector: { matchLabels: Record<string, string> };
        endpoints: { interval: string; port: string }[];
      };
    };
    assert.equal(sm.metadata.labels?.release, 'prometheus');
    assert.deepEqual(sm.spec.endpoints[0], {
      port: 'http',
      path: '/metrics',
      interval: '15s',
      scrapeTimeout: '5s',
    });
    const pdb = one(objs, 'PodDisruptionBudget') as Manifest & {
      spec: { minAvailable: number; selector: { matchLabels: Record<string, string> } };
    };
    assert.equal(pdb.spec.minAvailable, 1);
    for (const sel of [sm.spec.selector.matchLabels, pdb.spec.selector.matchLabels]) {
      for (const [k, v] of Object.entries(sel)) assert.equal(spec.template.metadata.labels[k], v);
    }
  });
});

test("a values file written for the seed chart still installs, and the seed's names keep their meaning", async () => {
  const objs = await render(['--values', seedValues]);
  const { c, spec } = deployment(objs);
  assert.equal(spec.replicas, 1);
  assert.equal(c.image, `docker.io/example/kpt-controller:${chart.appVersion}`);
  assert.deepEqual(c.resources, {
    limits: { cpu: 1, memory: '512Mi' },
    requests: { cpu: '50m', memory: '128Mi' },
  });
  const config = controllerConfig(c, 'kpt-system');
  assert.equal(config.dispatcherImage, 'docker.io/example/kpt-dispatcher:0.9.0');
  assert.equal(one(objs, 'ServiceAccount').metadata.name, 'kpt-kubeless-pulsar-trigger');
  assert.ok(!objs.some((o) => o.kind === 'Ingress' || o.kind === 'HorizontalPodAutoscaler'));
});

test('rbac.aggregateClusterRoles=false (or rbac.create=false) leaves the user-facing roles out', async () => {
  const names = (objs: Manifest[]) =>
    objs.filter((o) => o.kind === 'ClusterRole').map((o) => o.metadata.name);
  assert.deepEqual(names(await render(['--set', 'rbac.aggregateClusterRoles=false'])), [
    'kpt-kubeless-pulsar-trigger-kpt-system',
  ]);
  assert.deepEqual(names(await render(['--set', 'rbac.create=false'])), []);
  const labels = (await render([]))
    .filter((o) => o.kind === 'ClusterRole')
    .map((o) => [
      o.metadata.name,
      Object.keys(o.metadata.labels ?? {})
        .filter((k) => k.startsWith('rbac.authorization.k8s.io/'))
        .sort(),
      (o as Manifest & { rules: { verbs: string[] }[] }).rules.flatMap((r) => r.verbs).sort(),
    ]);
  assert.deepEqual(labels.slice(1), [
    [
      'kpt-kubeless-pulsar-trigger-kpt-system-edit',
      ['rbac.authorization.k8s.io/aggregate-to-admin', 'rbac.authorization.k8s.io/aggregate-to-edit'],
      ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'],
    ],
    [
      'kpt-kubeless-pulsar-trigger-kpt-system-view',
      ['rbac.authorization.k8s.io/aggregate-to-view'],
      ['get', 'list', 'watch'],
    ],
  ]);
});

test('a dispatcher tag left empty follows appVersion; a tag on its own is used as given', async () => {
  const objs = await render(['--set', 'dispatcher.deployment.tag=7.7.7', '--set', 'image.tag=']);
  const { c } = deployment(objs);
  assert.equal(c.image, `ghcr.io/kubeless-pulsar-trigger/controller:${chart.appVersion}`);
  assert.equal(controllerConfig(c, 'x').dispatcherImage, 'ghcr.io/kubeless-pulsar-trigger/dispatcher:7.7.7');
});

test('bad values are refused by the schema, naming the bad value', async () => {
  const cases: [string[], RegExp][] = [
    [['--set', 'replicaCount=two'], /\/replicaCount': got string, want integer/],
    [['--set', 'replicas=2'], /additional properties 'replicas' not allowed/],
    [['--set', 'image.pullPolicy=Sometimes'], /\/image\/pullPolicy': value must be one of/],
    [['--set', 'image.repository=Not An Image'], /\/image\/repository'/],
    [['--set', 'dispatcher.deployment.image='], /\/dispatcher\/deployment\/image'/],
    [['--set', 'controller.logLevel=verbose'], /\/controller\/logLevel': value must be one of/],
    [['--set', 'controller.watchNamespaces={Team_A}'], /\/controller\/watchNamespaces\/0'/],
    [['--set', 'controller.port=80'], /\/controller\/port'/],
    [
      [
        '--set',
        'controller.allowCrossNamespace[0].from=team-a',
        '--set',
        'controller.allowCrossNamespace[0].to=B',
      ],
      /\/controller\/allowCrossNamespace\/0\/to'/,
    ],
    [['--set', 'controller.allowCrossNamespace[0].from=team-a'], /\/controller\/allowCrossNamespace\/0'/],
    [['--set', 'rbac.aggregateClusterRoles=maybe'], /\/rbac\/aggregateClusterRoles'/],
    [['--set', 'resources.limits.cpu=lots'], /\/resources\/limits\/cpu'/],
    [['--set', 'dispatcher.deployment.resources.limits.gpu=1'], /additional properties 'gpu' not allowed/],
    [['--set', 'serviceAccount.create=false'], /\/serviceAccount\/name'/],
    [['--set', 'serviceMonitor.interval=often'], /\/serviceMonitor\/interval'/],
    [
      ['--set', 'replicaCount=2', '--set', 'controller.leaderElection.enabled=false'],
      /leaderElection\/enabled/,
    ],
    [['--set-string', 'nodeSelector.zone=a', '--set', 'nodeSelector.size=3'], /\/nodeSelector\/size'/],
  ];
  for (const [args, message] of cases) {
    const r = await run(
      t.helm,
      ['template', 'kpt', chartDir, '--namespace', 'kpt-system', '--kube-version', kubeVersion, ...args],
      { env: t.env },
    );
    assert.notEqual(r.code, 0, `${args.join(' ')} was accepted`);
    assert.match(r.stderr, /values don't meet the specifications of the schema/, args.join(' '));
    assert.match(r.stderr, message, args.join(' '));
  }
});

describe('deploy/Makefile', () => {
  test('print-images shows the images the chart deploys (one source for names and tags)', async () => {
    const objs = await render([]);
    const { c } = deployment(objs);
    const r = await runOk('make', ['-s', '-C', deployDir, 'print-images'], { env: t.env });
    assert.equal(r.stdout, `controller=${c.image}\ndispatcher=${controllerConfig(c, 'x').dispatcherImage}\n`);
    const tagged = await runOk('make', ['-s', '-C', deployDir, 'print-images', 'IMAGE_TAG=9.9.9'], {
      env: t.env,
    });
    assert.equal(
      tagged.stdout,
      'controller=ghcr.io/kubeless-pulsar-trigger/controller:9.9.9\ndispatcher=ghcr.io/kubeless-pulsar-trigger/dispatcher:9.9.9\n',
    );
    const taggedObjs = parseAllDocuments(
      (await runOk('make', ['-s', '-C', deployDir, 'template', 'IMAGE_TAG=9.9.9'], { env: t.env })).stdout,
    )
      .map((d) => d.toJS() as Manifest | null)
      .filter((d): d is Manifest => d !== null);
    const tc = deployment(taggedObjs).c;
    assert.equal(tc.image, 'ghcr.io/kubeless-pulsar-trigger/controller:9.9.9');
    assert.equal(
      controllerConfig(tc, 'x').dispatcherImage,
      'ghcr.io/kubeless-pulsar-trigger/dispatcher:9.9.9',
    );
  });

  test('lint and template targets work with the pinned helm and a values file', async () => {
    const lint = await runOk('make', ['-C', deployDir, 'lint', `VALUES=${fullValues}`], { env: t.env });
    assert.equal(lint.stdout.match(/1 chart\(s\) linted, 0 chart\(s\) failed/g)?.length, 2);
    const tpl = await runOk(
      'make',
      ['-s', '-C', deployDir, 'template', `VALUES=${fullValues}`, 'NAMESPACE=kpt-system'],
      {
        env: t.env,
      },
    );
    const fromMake = parseAllDocuments(tpl.stdout)
      .map((d) => d.toJS() as Manifest | null)
      .filter((d): d is Manifest => d !== null);
    assert.deepEqual(fromMake, await render(['--values', fullValues]));
  });

  test('without KPT_BIN_DIR, HELM= picks the binary; a missing one is a clear error', async () => {
    const env = { ...t.env, KPT_BIN_DIR: '' };
    const ok = await runOk('make', ['-s', '-C', deployDir, 'lint', `HELM=${t.helm}`], { env });
    assert.match(ok.stdout, /0 chart\(s\) failed/);
    const bad = await run('make', ['-s', '-C', deployDir, 'lint', 'HELM=/nonexistent/helm'], { env });
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /helm not found at '\/nonexistent\/helm'/);
  });
});

test('the first trigger NOTES.txt shows is accepted by the API server', async () => {
  await runOk(
    t.kubectl,
    ['apply', '--server-side', '--force-conflicts', '--field-manager=kpt-packaging-tests', '-f', seedCrd],
    { env: t.env },
  );
  const r = await runOk(
    t.helm,
    ['install', 'kpt', chartDir, '--dry-run=server', '--namespace', 'kpt-system'],
    { env: t.env },
  );
  const notes = r.stdout.slice(r.stdout.indexOf('NOTES:'));
  assert.match(notes, /kubectl -n kpt-system rollout status deployment\/kpt-kubeless-pulsar-trigger/);
  const start = notes.indexOf('  apiVersion: kubeless.io/v1');
  const end = notes.indexOf('\nthen', start);
  assert.ok(start > 0 && end > start, notes);
  const trigger = notes
    .slice(start, end)
    .split('\n')
    .map((l) => l.slice(2))
    .join('\n');
  const created = await runOk(t.kubectl, ['create', '--dry-run=server', '-o', 'json', '-f', '-'], {
    env: t.env,
    input: trigger,
  });
  const obj = JSON.parse(created.stdout) as Manifest;
  assert.equal(obj.kind, 'PulsarTrigger');
  assert.equal(obj.metadata.name, 'mytrigger');
});
