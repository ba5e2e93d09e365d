// The controller's identity as the Helm chart installs it: the chart's ServiceAccount with exactly the chart's
// RBAC objects (rendered by the pinned helm from deploy/chart, applied with the admin kubeconfig), and a
// kubeconfig that authenticates as that ServiceAccount with a real token from the TokenRequest API. Controller
// tests that run under this identity prove the chart grants everything the controller calls; anything the chart
// forgot shows up as a 403 in those tests.
//
//   const id = await installChartIdentity({ watchNamespaces: [ns] });   // or {} for cluster-wide
//   const kc = new KubeConfig(); kc.loadFromFile(id.kubeconfig);        // the controller's client
//   ... run the controller with --lease-namespace id.namespace --lease-name id.leaseName ...
//   await id.remove();

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, parseAllDocuments, stringify } from 'yaml';
import { kube } from './env.ts';
import { chartDir, randomSuffix, runOk, SetupError, tempDir } from './packaging.ts';

export interface ChartIdentityOptions {
  /**
   * Release namespace: where the ServiceAccount, the leader-election Role and the Lease live. Created when
   * missing (and then deleted by remove()). Default: a new kpt-id-<random> namespace.
   */
  namespace?: string;
  /** Helm release name; it names the ServiceAccount and the RBAC objects. Default: kpt-<random>. */
  release?: string;
  /**
   * The chart's controller.watchNamespaces. Empty or absent: cluster-wide (ClusterRole); otherwise one Role per
   * namespace. Missing namespaces are created (and deleted by remove()).
   */
  watchNamespaces?: string[];
  /** Lifetime of the ServiceAccount token. Default 2 hours. */
  tokenSeconds?: number;
}

export interface ChartIdentity {
  release: string;
  namespace: string;
  serviceAccount: string;
  /** system:serviceaccount:<namespace>:<serviceAccount>, for `kubectl --as=...` from the admin kubeconfig. */
  username: string;
  /** The Lease the chart lets this identity use for leader election (in `namespace`). */
  leaseName: string;
  watchNamespaces: string[];
  /** A kubeconfig file authenticating as the ServiceAccount (bearer token), current namespace `namespace`. */
  kubeconfig: string;
  token: string;
  /** The ServiceAccount and RBAC manifests as rendered by the chart and applied. */
  manifests: string;
  /** Deletes the RBAC objects, the ServiceAccount, the namespaces this call created, and the kubeconfig. */
  remove(): Promise<void>;
}

/** The Kubernetes version of the test API server ("1.35.4"), so helm renders for that version. */
export async function serverKubeVersion(kubectl: string, kubeconfig: string): Promise<string> {
  const r = await runOk(kubectl, ['version', '-o', 'json', '--kubeconfig', kubeconfig]);
  const v = (JSON.parse(r.stdout) as { serverVersion?: { gitVersion?: string } }).serverVersion?.gitVersion;
  if (!v) throw new SetupError('kubectl version reported no server version', { stdout: r.stdout });
  return v.replace(/^v/, '');
}

/** Renders the chart's ServiceAccount and RBAC, applies them, and returns a kubeconfig for that ServiceAccount. */
export async function installChartIdentity(opts: ChartIdentityOptions = {}): Promise<ChartIdentity> {
  const k = kube();
  const kubectl = join(k.binDir, 'kubectl');
  const helm = join(k.binDir, 'helm');
  const tmp = tempDir('chart-identity');
  const env = {
    ...process.env,
    KUBECONFIG: k.kubeconfig,
    HELM_CONFIG_HOME: join(tmp.dir, 'helm-config'),
    HELM_CACHE_HOME: join(tmp.dir, 'helm-cache'),
    HELM_DATA_HOME: join(tmp.dir, 'helm-data'),
  };
  const admin = (args: string[], input?: string) =>
    runOk(kubectl, args, input === undefined ? { env } : { env, input });

  const suffix = randomSuffix();
  const release = opts.release ?? `kpt-${suffix}`;
  const namespace = opts.namespace ?? `kpt-id-${suffix}`;
  const watchNamespaces = [...new Set(opts.watchNamespaces ?? [])];

  const created: string[] = [];
  for (const ns of [namespace, ...watchNamespaces]) {
    if (created.includes(ns)) continue;
    const exists = await admin(['get', 'namespace', ns, '--ignore-not-found', '-o', 'name']);
    if (exists.stdout.trim() === '') {
      await admin(['create', 'namespace', ns]);
      created.push(ns);
    }
  }

  const valuesFile = join(tmp.dir, 'values.json');
  writeFileSync(valuesFile, JSON.stringify({ controller: { watchNamespaces } }));
  const kubeVersion = await serverKubeVersion(kubectl, k.kubeconfig);
  const rendered = await runOk(
    helm,
    [
      'template',
      release,
      chartDir,
      '--namespace',
      namespace,
      '--kube-version',
      kubeVersion,
      '--values',
      valuesFile,
      '--show-only',
      'templates/serviceaccount.yaml',
      '--show-only',
      'templates/rbac.yaml',
    ],
    { env },
  );
  const manifests = rendered.stdout;
  const docs = parseAllDocuments(manifests)
    .map((d) => d.toJS() as { kind?: string; metadata?: { name?: string } } | null)
    .filter((d) => d?.kind);
  const sa = docs.find((d) => d?.kind === 'ServiceAccount')?.metadata?.name;
  const leaseRole = docs.find((d) => d?.kind === 'Role' && d.metadata?.name?.endsWith('-leader-election')) as
    | { rules?: { resourceNames?: string[] }[] }
    | undefined;
  const leaseName = leaseRole?.rules?.find((r) => r.resourceNames)?.resourceNames?.[0];
  if (!sa || !leaseName) {
    throw new SetupError('the chart rendered no ServiceAccount or leader-election Lease name', { manifests });
  }
  await admin(['apply', '--server-side', '--field-manager=kpt-chart-identity', '-f', '-'], manifests);

  const tokenSeconds = opts.tokenSeconds ?? 7200;
  const token = (
    await admin(['create', 'token', sa, '--namespace', namespace, `--duration=${tokenSeconds}s`])
  ).stdout.trim();

  const kubeconfig = join(tmp.dir, 'kubeconfig');
  writeFileSync(kubeconfig, identityKubeconfig(k.kubeconfig, `${namespace}-${sa}`, token, namespace), {
    mode: 0o600,
  });

  return {
    release,
    namespace,
    serviceAccount: sa,
    username: `system:serviceaccount:${namespace}:${sa}`,
    leaseName,
    watchNamespaces,
    kubeconfig,
    token,
    manifests,
    async remove() {
      try {
        await admin(['delete', '--ignore-not-found', '--wait=false', '-f', '-'], manifests);
        for (const ns of created)
          await admin(['delete', 'namespace', ns, '--ignore-not-found', '--wait=false']);
      } finally {
        tmp.remove();
      }
    },
  };
}

interface KubeconfigFile {
  'current-context'?: string;
  contexts?: { name: string; context: { cluster: string } }[];
  clusters?: { name: string; cluster: Record<string, unknown> }[];
}

/** A kubeconfig for `token` on the admin kubeconfig's current cluster (same server and CA). */
function identityKubeconfig(adminKubeconfig: string, user: string, token: string, namespace: string): string {
  const admin = parse(readFileSync(adminKubeconfig, 'utf8')) as KubeconfigFile;
  const ctx = admin.contexts?.find((c) => c.name === admin['current-context']);
  const cluster = admin.clusters?.find((c) => c.name === ctx?.context.cluster);
  if (!cluster)
    throw new SetupError('admin kubeconfig: no cluster for the current context', { adminKubeconfig });
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: cluster.name, cluster: cluster.cluster }],
    users: [{ name: user, user: { token } }],
    contexts: [{ name: user, context: { cluster: cluster.name, user, namespace } }],
    'current-context': user,
  });
}
