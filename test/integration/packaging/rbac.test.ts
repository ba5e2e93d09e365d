// The chart's RBAC against the real API server: with the identity the chart gives the controller (its
// ServiceAccount, authenticated by a real token, and also by impersonation from the admin), everything the
// controller calls is allowed and a sample of what it must not do is refused. Both the cluster-wide mode
// (ClusterRole) and the watched-namespaces mode (one Role per namespace, and a ClusterRole reading only the watched
// Namespaces by name) are checked.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { type ChartIdentity, installChartIdentity } from '../../support/chart-identity.ts';
import { kube } from '../../support/env.ts';
import { randomSuffix, run, runOk, seedCrd } from '../../support/packaging.ts';

interface Check {
  verb: string;
  /** resource[.group][/name] as `kubectl auth can-i` takes it. */
  resource: string;
  subresource?: string;
  /** A namespace, or 'ALL' for --all-namespaces, or undefined for a cluster-scoped resource. */
  namespace?: string;
}

const TRIGGERS = 'pulsartriggers.kubeless.io';

/** What the controller does in a namespace whose triggers it reconciles (src/controller). */
function neededIn(ns: string): Check[] {
  return [
    ...['get', 'list', 'watch', 'update', 'patch'].map((verb) => ({
      verb,
      resource: TRIGGERS,
      namespace: ns,
    })),
    ...['get', 'update', 'patch'].map((verb) => ({
      verb,
      resource: TRIGGERS,
      subresource: 'status',
      namespace: ns,
    })),
    { verb: 'update', resource: TRIGGERS, subresource: 'finalizers', namespace: ns },
    ...['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'].map((verb) => ({
      verb,
      resource: 'deployments.apps',
      namespace: ns,
    })),
    ...['get', 'create', 'update', 'patch', 'delete'].map((verb) => ({
      verb,
      resource: 'secrets',
      namespace: ns,
    })),
    { verb: 'get', resource: 'configmaps', namespace: ns },
    ...['create', 'patch'].map((verb) => ({ verb, resource: 'events', namespace: ns })),
    ...['create', 'patch'].map((verb) => ({ verb, resource: 'events.events.k8s.io', namespace: ns })),
    ...['create', 'patch', 'delete'].flatMap((verb) =>
      ['scaledobjects.keda.sh', 'triggerauthentications.keda.sh'].map((resource) => ({
        verb,
        resource,
        namespace: ns,
      })),
    ),
  ];
}

/** Leader election in the release namespace. */
function neededForLease(id: ChartIdentity): Check[] {
  return [
    { verb: 'create', resource: 'leases.coordination.k8s.io', namespace: id.namespace },
    ...['get', 'update', 'patch'].map((verb) => ({
      verb,
      resource: `leases.coordination.k8s.io/${id.leaseName}`,
      namespace: id.namespace,
    })),
    ...['create', 'patch'].map((verb) => ({ verb, resource: 'events', namespace: id.namespace })),
  ];
}

/** Things the controller never does; a sample of reads and writes that must be refused wherever it runs. */
function forbiddenEverywhere(id: ChartIdentity, ns: string): Check[] {
  return [
    // Triggers are the users'; the controller never creates or deletes them.
    { verb: 'create', resource: TRIGGERS, namespace: ns },
    { verb: 'delete', resource: TRIGGERS, namespace: ns },
    { verb: 'deletecollection', resource: TRIGGERS, namespace: ns },
    { verb: 'deletecollection', resource: 'deployments.apps', namespace: ns },
    // Other kinds.
    { verb: 'get', resource: 'pods', namespace: ns },
    { verb: 'create', resource: 'pods', namespace: ns },
    { verb: 'exec', resource: 'pods', namespace: ns },
    // Secrets are read one by one, by name: never enumerated.
    { verb: 'list', resource: 'secrets', namespace: ns },
    { verb: 'watch', resource: 'secrets', namespace: ns },
    { verb: 'list', resource: 'secrets', namespace: 'ALL' },
    { verb: 'watch', resource: 'secrets', namespace: 'ALL' },
    { verb: 'list', resource: 'configmaps', namespace: ns },
    { verb: 'watch', resource: 'configmaps', namespace: ns },
    { verb: 'update', resource: 'configmaps', namespace: ns },
    { verb: 'create', resource: 'services', namespace: ns },
    { verb: 'create', resource: 'serviceaccounts', subresource: 'token', namespace: ns },
    { verb: 'create', resource: 'statefulsets.apps', namespace: ns },
    { verb: 'create', resource: 'roles.rbac.authorization.k8s.io', namespace: ns },
    { verb: 'create', resource: 'rolebindings.rbac.authorization.k8s.io', namespace: ns },
    // Cluster-scoped writes and privilege escalation. Namespaces are listed and watched, never got or written.
    { verb: 'create', resource: 'namespaces' },
    { verb: 'delete', resource: 'namespaces' },
    { verb: 'update', resource: 'namespaces' },
    { verb: 'patch', resource: 'namespaces' },
    { verb: 'get', resource: 'namespaces' },
    { verb: 'patch', resource: 'nodes' },
    { verb: 'create', resource: 'clusterroles.rbac.authorization.k8s.io' },
    { verb: 'escalate', resource: 'clusterroles.rbac.authorization.k8s.io' },
    { verb: 'bind', resource: 'clusterroles.rbac.authorization.k8s.io' },
    { verb: 'create', resource: 'clusterrolebindings.rbac.authorization.k8s.io' },
    { verb: 'create', resource: 'customresourcedefinitions.apiextensions.k8s.io' },
    { verb: 'update', resource: 'customresourcedefinitions.apiextensions.k8s.io' },
    { verb: 'delete', resource: 'customresourcedefinitions.apiextensions.k8s.io' },
    { verb: 'impersonate', resource: 'users' },
    { verb: '*', resource: '*', namespace: ns },
    // Leases: only its own, only in its own namespace.
    { verb: 'get', resource: 'leases.coordination.k8s.io/someone-elses-lease', namespace: id.namespace },
    { verb: 'update', resource: 'leases.coordination.k8s.io/someone-elses-lease', namespace: id.namespace },
    { verb: 'list', resource: 'leases.coordination.k8s.io', namespace: id.namespace },
    {
      verb: 'create',
      resource: 'leases.coordination.k8s.io',
      namespace: ns === id.namespace ? 'default' : ns,
    },
  ];
}

function canIArgs(c: Check): string[] {
  const args = ['auth', 'can-i', c.verb, c.resource];
  if (c.subresource) args.push(`--subresource=${c.subresource}`);
  if (c.namespace === 'ALL') args.push('--all-namespaces');
  else if (c.namespace) args.push('--namespace', c.namespace);
  return args;
}

function show(c: Check): string {
  return `${c.verb} ${c.resource}${c.subresource ? `/${c.subresource}` : ''}${c.namespace ? ` in ${c.namespace}` : ''}`;
}

/** `kubectl auth can-i` for every check, as the identity's token and by impersonation; answers must agree. */
async function canI(id: ChartIdentity, checks: Check[]): Promise<Map<Check, boolean>> {
  const k = kube();
  const kubectl = join(k.binDir, 'kubectl');
  const answers = new Map<Check, boolean>();
  const one = async (c: Check) => {
    const asToken = await run(kubectl, [...canIArgs(c), '--kubeconfig', id.kubeconfig]);
    const asImpersonated = await run(kubectl, [
      ...canIArgs(c),
      '--kubeconfig',
      k.kubeconfig,
      `--as=${id.username}`,
    ]);
    for (const r of [asToken, asImpersonated]) {
      assert.ok(r.code === 0 || r.code === 1, `kubectl auth can-i ${show(c)} failed: ${r.stderr}`);
    }
    assert.equal(asToken.code, asImpersonated.code, `token and impersonation disagree on ${show(c)}`);
    answers.set(c, asToken.code === 0);
  };
  for (let i = 0; i < checks.length; i += 8) await Promise.all(checks.slice(i, i + 8).map(one));
  return answers;
}

function assertAll(answers: Map<Check, boolean>, want: boolean): void {
  const wrong = [...answers].filter(([, allowed]) => allowed !== want).map(([c]) => show(c));
  assert.deepEqual(wrong, [], want ? 'needed by the controller but refused' : 'allowed but must be refused');
}

interface Rule {
  apiGroups?: string[];
  resources?: string[];
  verbs?: string[];
  resourceNames?: string[];
}

function rulesOf(manifests: string, kind: string): Rule[][] {
  return parseAllDocuments(manifests)
    .map((d) => d.toJS() as { kind?: string; rules?: Rule[] } | null)
    .filter((d) => d?.kind === kind)
    .map((d) => d?.rules ?? []);
}

before(async () => {
  // The CRD, so that kubectl resolves pulsartriggers.kubeless.io (applying the same file again changes nothing).
  const k = kube();
  await runOk(join(k.binDir, 'kubectl'), [
    'apply',
    '--server-side',
    '--force-conflicts',
    '--field-manager=kpt-packaging-tests',
    '--kubeconfig',
    k.kubeconfig,
    '-f',
    seedCrd,
  ]);
});

describe('cluster-wide chart RBAC (no watchNamespaces)', () => {
  let id: ChartIdentity;
  const elsewhere = `kpt-rbac-any-${randomSuffix()}`;
  before(async () => {
    id = await installChartIdentity();
  });
  after(async () => {
    await id?.remove();
  });

  test('the rendered RBAC has no wildcard and is exactly the controller rule set', () => {
    const clusterRoles = rulesOf(id.manifests, 'ClusterRole');
    assert.equal(clusterRoles.length, 1);
    const all = [...clusterRoles.flat(), ...rulesOf(id.manifests, 'Role').flat()];
    for (const r of all) {
      for (const field of [r.apiGroups, r.resources, r.verbs])
        assert.ok(!field?.includes('*'), JSON.stringify(r));
    }
    const flat = (rules: Rule[]) =>
      rules
        .flatMap((r) =>
          (r.resources ?? []).flatMap((res) =>
            (r.verbs ?? []).map(
              (v) => `${r.apiGroups?.[0] || 'core'}/${res}:${v}${r.resourceNames ? '@named' : ''}`,
            ),
          ),
        )
        .sort();
    assert.deepEqual(flat(clusterRoles[0]!), [
      'apps/deployments:create',
      'apps/deployments:delete',
      'apps/deployments:get',
      'apps/deployments:list',
      'apps/deployments:patch',
      'apps/deployments:update',
      'apps/deployments:watch',
      'core/configmaps:get',
      'core/events:create',
      'core/events:patch',
      'core/namespaces:list',
      'core/namespaces:watch',
      'core/secrets:create',
      'core/secrets:delete',
      'core/secrets:get',
      'core/secrets:patch',
      'core/secrets:update',
      'events.k8s.io/events:create',
      'events.k8s.io/events:patch',
      'keda.sh/scaledobjects:create',
      'keda.sh/scaledobjects:delete',
      'keda.sh/scaledobjects:patch',
      'keda.sh/triggerauthentications:create',
      'keda.sh/triggerauthentications:delete',
      'keda.sh/triggerauthentications:patch',
      'kubeless.io/pulsartriggers/finalizers:update',
      'kubeless.io/pulsartriggers/status:get',
      'kubeless.io/pulsartriggers/status:patch',
      'kubeless.io/pulsartriggers/status:update',
      'kubeless.io/pulsartriggers:get',
      'kubeless.io/pulsartriggers:list',
      'kubeless.io/pulsartriggers:patch',
      'kubeless.io/pulsartriggers:update',
      'kubeless.io/pulsartriggers:watch',
    ]);
  });

  test('everything the controller needs is allowed, in any namespace and across all of them', async () => {
    const checks = [
      ...neededIn(elsewhere),
      ...neededIn(id.namespace),
      ...neededForLease(id),
      ...['list', 'watch'].map((verb) => ({ verb, resource: TRIGGERS, namespace: 'ALL' })),
      ...['list', 'watch'].map((verb) => ({ verb, resource: 'deployments.apps', namespace: 'ALL' })),
      // Namespaces, for their accept-triggers-from annotation (src/controller/placement.ts).
      ...['list', 'watch'].map((verb) => ({ verb, resource: 'namespaces' })),
    ];
    assertAll(await canI(id, checks), true);
  });

  test('what the controller must not do is refused', async () => {
    assertAll(await canI(id, forbiddenEverywhere(id, elsewhere)), false);
  });

  test('the token really authenticates as the ServiceAccount', async () => {
    const k = kube();
    const r = await runOk(join(k.binDir, 'kubectl'), [
      'auth',
      'whoami',
      '-o',
      'json',
      '--kubeconfig',
      id.kubeconfig,
    ]);
    const who = JSON.parse(r.stdout) as { status?: { userInfo?: { username?: string } } };
    assert.equal(who.status?.userInfo?.username, id.username);
  });
});

describe('watched-namespaces chart RBAC (controller.watchNamespaces)', () => {
  let id: ChartIdentity;
  const suffix = randomSuffix();
  const watched = [`kpt-rbac-a-${suffix}`, `kpt-rbac-b-${suffix}`];
  const unwatched = `kpt-rbac-c-${suffix}`;
  before(async () => {
    id = await installChartIdentity({ watchNamespaces: watched });
  });
  after(async () => {
    await id?.remove();
  });

  test('one Role per watched namespace; cluster-wide only listing and watching the watched Namespaces', () => {
    assert.deepEqual(rulesOf(id.manifests, 'ClusterRole'), [
      [{ apiGroups: [''], resources: ['namespaces'], verbs: ['list', 'watch'], resourceNames: watched }],
    ]);
    const roles = parseAllDocuments(id.manifests)
      .map((d) => d.toJS() as { kind?: string; metadata?: { namespace?: string; name?: string } } | null)
      .filter((d) => d?.kind === 'Role')
      .map((d) => d?.metadata?.namespace)
      .sort();
    assert.deepEqual(roles, [...watched, id.namespace].sort());
  });

  test('everything the controller needs is allowed in each watched namespace', async () => {
    // A Namespace by name: the controller lists and watches each watched one with a field selector on its name.
    const ownNamespace = (ns: string) =>
      ['list', 'watch'].map((verb) => ({ verb, resource: `namespaces/${ns}` }));
    assertAll(
      await canI(id, [...watched.flatMap(neededIn), ...watched.flatMap(ownNamespace), ...neededForLease(id)]),
      true,
    );
  });

  test('nothing is allowed outside the watched namespaces, nor across all namespaces', async () => {
    const outside: Check[] = [
      ...neededIn(unwatched),
      { verb: 'list', resource: TRIGGERS, namespace: 'ALL' },
      { verb: 'watch', resource: TRIGGERS, namespace: 'ALL' },
      { verb: 'list', resource: 'deployments.apps', namespace: 'ALL' },
      { verb: 'create', resource: 'deployments.apps', namespace: id.namespace },
      // Other Secrets: none outside the watched namespaces, not even in its own.
      { verb: 'get', resource: 'secrets', namespace: id.namespace },
      { verb: 'get', resource: 'secrets', namespace: 'kube-system' },
      { verb: 'list', resource: 'secrets', namespace: 'ALL' },
      { verb: 'watch', resource: 'secrets', namespace: 'ALL' },
      { verb: 'get', resource: 'configmaps', namespace: 'kube-system' },
      // Namespaces: not all of them, not another one, and the watched ones not by get.
      { verb: 'list', resource: 'namespaces' },
      { verb: 'watch', resource: 'namespaces' },
      { verb: 'list', resource: `namespaces/${unwatched}` },
      { verb: 'watch', resource: `namespaces/${unwatched}` },
      { verb: 'list', resource: 'namespaces/kube-system' },
      { verb: 'get', resource: `namespaces/${watched[0]}` },
      { verb: 'patch', resource: `namespaces/${watched[0]}` },
      ...forbiddenEverywhere(id, watched[0]!),
    ];
    assertAll(await canI(id, outside), false);
  });
});
