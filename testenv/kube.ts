// A real Kubernetes control plane for tests: etcd, kube-apiserver and kube-controller-manager, built from their Go
// modules by testenv/scripts/build-go-tools.sh (cached) and started on 127.0.0.1 with free ports. The API server
// serves TLS with a generated CA, authenticates with a static token file (an admin in system:masters and an
// unprivileged user) and authorizes with RBAC; service account tokens are signed with a generated key. The
// controller-manager makes ownerReference garbage collection and Deployment → ReplicaSet → Pod real (and the HPA);
// the node that runs the pods (kube-scheduler, kubelet, containerd) is testenv/node.ts. The aggregation layer is on,
// so an extension API server (KEDA's metrics adapter, testenv/keda.ts) can serve an APIService.

import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeCa, makeLeaf, makeRsaKeyPair } from './lib/certs.ts';
import { freePort, type ServiceProcess, spawnService, waitFor } from './lib/proc.ts';

const here = dirname(fileURLToPath(import.meta.url));

/** Builds (once, cached) and returns the folder with etcd, kube-apiserver, kube-controller-manager, kubectl, helm. */
export function ensureGoTools(): string {
  const out = execFileSync('bash', [join(here, 'scripts', 'build-go-tools.sh')], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return out.toString().trim().split('\n').pop()!;
}

export interface KubeHandle {
  readonly dir: string;
  readonly binDir: string;
  readonly server: string;
  readonly caFile: string;
  readonly adminToken: string;
  readonly kubeconfig: string;
  readonly unprivilegedKubeconfig: string;
  readonly env: Record<string, string>;
  peakRssMiB(): { apiserver?: number; etcd?: number; controllerManager?: number };
  /** The running processes (for `make env-up`, which leaves them running after it exits). */
  processes(): ServiceProcess[];
  /** Stop and start the API server again on the same port (etcd keeps the data): watches must resume. */
  restartApiserver(): Promise<void>;
  stop(): Promise<void>;
}

function kubeconfigYaml(server: string, caFile: string, user: string, token: string): string {
  const ca = readFileSync(caFile).toString('base64');
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '- name: kpt-testenv',
    '  cluster:',
    `    server: ${server}`,
    `    certificate-authority-data: ${ca}`,
    'users:',
    `- name: ${user}`,
    '  user:',
    `    token: ${token}`,
    'contexts:',
    `- name: ${user}@kpt-testenv`,
    '  context:',
    '    cluster: kpt-testenv',
    `    user: ${user}`,
    '    namespace: default',
    `current-context: ${user}@kpt-testenv`,
    '',
  ].join('\n');
}

export interface KubeOptions {
  startTimeoutMs?: number;
  /**
   * Another address of this machine the API server also serves on, e.g. the pod bridge's gateway (testenv/node.ts),
   * so pods reach it: it listens on every address then, and its certificate names this one too.
   */
  podAddress?: string;
}

export async function startKube(opts: KubeOptions = {}): Promise<KubeHandle> {
  const binDir = ensureGoTools();
  const dir = mkdtempSync(join(tmpdir(), 'kpt-kube-'));
  const timeoutMs = opts.startTimeoutMs ?? 120_000;
  const [etcdClient, etcdPeer, apiPort] = [await freePort(), await freePort(), await freePort()];

  const ca = makeCa(dir, 'kube-ca');
  const serving = makeLeaf(dir, ca, 'apiserver', {
    cn: 'kube-apiserver',
    altNames: [
      'DNS:localhost',
      'IP:127.0.0.1',
      'DNS:kubernetes',
      'DNS:kubernetes.default',
      'DNS:kubernetes.default.svc',
      'IP:10.0.0.1',
      ...(opts.podAddress ? [`IP:${opts.podAddress}`] : []),
    ],
  });
  const sa = makeRsaKeyPair(dir, 'service-account');
  // The aggregation layer (an APIService served by an extension API server, e.g. KEDA's metrics adapter,
  // testenv/keda.ts): the API server proxies to it with a client certificate of its own and passes the caller's
  // identity in X-Remote-* headers, which the extension server trusts because a CA only for this signed that
  // certificate (the "front proxy" CA, published in kube-system/extension-apiserver-authentication).
  const frontProxyCa = makeCa(dir, 'front-proxy-ca');
  const frontProxyClient = makeLeaf(dir, frontProxyCa, 'front-proxy-client', {
    cn: 'front-proxy-client',
    client: true,
  });
  const adminToken = randomToken();
  const userToken = randomToken();
  const tokenFile = join(dir, 'tokens.csv');
  writeFileSync(
    tokenFile,
    `${adminToken},kpt-admin,kpt-admin,"system:masters"\n${userToken},kpt-unprivileged,kpt-unprivileged,""\n`,
    { mode: 0o600 },
  );
  const server = `https://127.0.0.1:${apiPort}`;
  const kubeconfig = join(dir, 'admin.kubeconfig');
  const unprivilegedKubeconfig = join(dir, 'unprivileged.kubeconfig');
  writeFileSync(kubeconfig, kubeconfigYaml(server, ca.certFile, 'kpt-admin', adminToken), { mode: 0o600 });
  writeFileSync(unprivilegedKubeconfig, kubeconfigYaml(server, ca.certFile, 'kpt-unprivileged', userToken), {
    mode: 0o600,
  });

  mkdirSync(join(dir, 'etcd'));
  const etcd = spawnService(
    'etcd',
    join(binDir, 'etcd'),
    [
      '--name=kpt',
      `--data-dir=${join(dir, 'etcd')}`,
      `--listen-client-urls=http://127.0.0.1:${etcdClient}`,
      `--advertise-client-urls=http://127.0.0.1:${etcdClient}`,
      `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-cluster=kpt=http://127.0.0.1:${etcdPeer}`,
      // Test data is thrown away: skip fsync, the slowest part of etcd on a shared disk.
      '--unsafe-no-fsync',
      '--quota-backend-bytes=4294967296',
      '--log-level=warn',
    ],
    { logFile: join(dir, 'etcd.log') },
  );
  await waitFor(
    'etcd health',
    async () => {
      const r = await fetch(`http://127.0.0.1:${etcdClient}/health`, { signal: AbortSignal.timeout(2000) });
      return r.ok ? true : undefined;
    },
    { timeoutMs, svc: etcd },
  );

  const apiserverArgs = [
    `--etcd-servers=http://127.0.0.1:${etcdClient}`,
    `--bind-address=${opts.podAddress ? '0.0.0.0' : '127.0.0.1'}`,
    '--advertise-address=127.0.0.1',
    `--secure-port=${apiPort}`,
    `--tls-cert-file=${serving.certFile}`,
    `--tls-private-key-file=${serving.keyFile}`,
    `--client-ca-file=${ca.certFile}`,
    `--token-auth-file=${tokenFile}`,
    '--authorization-mode=RBAC',
    '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
    `--service-account-key-file=${sa.publicKeyFile}`,
    `--service-account-signing-key-file=${sa.privateKeyFile}`,
    '--service-cluster-ip-range=10.0.0.0/24',
    `--requestheader-client-ca-file=${frontProxyCa.certFile}`,
    '--requestheader-allowed-names=front-proxy-client',
    '--requestheader-username-headers=X-Remote-User',
    '--requestheader-group-headers=X-Remote-Group',
    '--requestheader-extra-headers-prefix=X-Remote-Extra-',
    `--proxy-client-cert-file=${frontProxyClient.certFile}`,
    `--proxy-client-key-file=${frontProxyClient.keyFile}`,
    // No kube-proxy here: an APIService's Service is reached at its EndpointSlice's address, not its cluster IP.
    '--enable-aggregator-routing=true',
    '--enable-priority-and-fairness=false',
    '--profiling=false',
    // `kubectl logs`/`exec` reach a kubelet at its node's InternalIP: its name resolves nowhere here.
    '--kubelet-preferred-address-types=InternalIP,Hostname',
    '--v=1',
    // Extra flags for diagnosis, e.g. KPT_KUBE_APISERVER_ARGS=--profiling=true (the last of a repeated flag wins).
    ...(process.env.KPT_KUBE_APISERVER_ARGS ?? '').split(' ').filter(Boolean),
  ];
  let apiserver = spawnService('kube-apiserver', join(binDir, 'kube-apiserver'), apiserverArgs, {
    logFile: join(dir, 'kube-apiserver.log'),
  });
  const caPem = readFileSync(ca.certFile);
  const api = (method: string, path: string, body?: unknown) =>
    kubeRequest(server, method, path, { token: adminToken, ca: caPem, body });
  const apiserverReady = async () => {
    await waitFor(
      'kube-apiserver /readyz',
      async () => {
        const r = await api('GET', '/readyz');
        return r.status === 200 && r.body.trim() === 'ok' ? true : undefined;
      },
      { timeoutMs, svc: apiserver },
    );
  };
  await apiserverReady();

  const controllerManager = spawnService(
    'kube-controller-manager',
    join(binDir, 'kube-controller-manager'),
    [
      `--kubeconfig=${kubeconfig}`,
      '--leader-elect=false',
      '--secure-port=0',
      `--service-account-private-key-file=${sa.privateKeyFile}`,
      `--root-ca-file=${ca.certFile}`,
      // No cloud, no pod CIDRs (the node's CNI configuration has its own range): the controllers that need them
      // only log noise. The node lifecycle controller stays: it lifts a new node's not-ready taint.
      '--controllers=*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller,-route,-persistentvolume-binder,-attachdetach,-persistentvolume-expander,-ttl,-bootstrapsigner,-tokencleaner',
      '--concurrent-gc-syncs=5',
      '--v=1',
    ],
    { logFile: join(dir, 'kube-controller-manager.log') },
  );

  // Ready means a namespace can be created.
  await waitFor(
    'kube-apiserver namespace creation',
    async () => {
      const r = await api('POST', '/api/v1/namespaces', {
        apiVersion: 'v1',
        kind: 'Namespace',
        metadata: { name: 'kpt-ready-check' },
      });
      return r.status === 201 || r.status === 409 ? true : undefined;
    },
    { timeoutMs, svc: apiserver },
  );

  const peaks: { apiserver?: number; etcd?: number; controllerManager?: number } = {};
  const sample = () => {
    const max = (a: number | undefined, b: number | undefined) =>
      a === undefined ? b : b === undefined ? a : Math.max(a, b);
    peaks.apiserver = max(peaks.apiserver, apiserver.peakRssMiB());
    peaks.etcd = max(peaks.etcd, etcd.peakRssMiB());
    peaks.controllerManager = max(peaks.controllerManager, controllerManager.peakRssMiB());
    return peaks;
  };

  return {
    dir,
    binDir,
    server,
    caFile: ca.certFile,
    adminToken,
    kubeconfig,
    unprivilegedKubeconfig,
    env: { KUBECONFIG: kubeconfig, KUBECONFIG_UNPRIVILEGED: unprivilegedKubeconfig, KPT_BIN_DIR: binDir },
    peakRssMiB: sample,
    processes: () => [etcd, apiserver, controllerManager],
    async restartApiserver() {
      sample();
      await apiserver.stop();
      apiserver = spawnService('kube-apiserver', join(binDir, 'kube-apiserver'), apiserverArgs, {
        logFile: join(dir, 'kube-apiserver.log'),
      });
      await apiserverReady();
    },
    async stop() {
      sample();
      await controllerManager.stop(5000);
      await apiserver.stop(10_000);
      await etcd.stop(5000);
      if (!process.env.KPT_KEEP_DATA) rmSync(dir, { recursive: true, force: true });
    },
  };
}

function randomToken(): string {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(24))).toString('base64url');
}

export async function kubeRequest(
  server: string,
  method: string,
  path: string,
  opts: { token: string; ca: Buffer; body?: unknown },
): Promise<{ status: number; body: string }> {
  const body = opts.body === undefined ? undefined : JSON.stringify(opts.body);
  const headers: Record<string, string> = { authorization: `Bearer ${opts.token}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  return new Promise((resolve, reject) => {
    const req = httpsRequest(`${server}${path}`, { method, headers, ca: opts.ca, timeout: 5000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(body);
  });
}

export type { ServiceProcess };
