// The real KEDA for tests: its operator and its metrics adapter, built from the Go module github.com/kedacore/keda/v2
// pinned in testenv/gobin/keda (testenv/scripts/build-go-tools.sh), run as local processes with the admin
// kubeconfig (like the other control-plane servers), and KEDA's CRDs from the same module version.
//
// - The operator reconciles ScaledObjects: it creates their HPAs, polls the scalers and scales a workload between
//   0 and 1 itself. Leader election is off (one operator); its probes, metrics and its gRPC metrics service listen
//   on free loopback ports.
// - The metrics adapter serves external.metrics.k8s.io/v1beta1, asking the operator over gRPC (mutual TLS with a
//   CA generated here). The API server reaches it through the aggregation layer (testenv/kube.ts): an APIService
//   names a Service in KEDA's namespace whose EndpointSlice holds `address`, where the adapter listens. Loopback
//   cannot be an endpoint address, so `address` is the pod bridge's gateway (testenv/node.ts). The HPA controller
//   of kube-controller-manager reads the metrics through it and scales a workload beyond 1.
//
// stop() deletes the APIService first (an unavailable aggregated API breaks discovery, e.g. namespace deletion),
// then stops both processes. The CRDs and the namespace stay with the API server.

import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { makeCa, makeLeaf } from './lib/certs.ts';
import { freePort, type ServiceProcess, spawnService, waitFor } from './lib/proc.ts';

const here = dirname(fileURLToPath(import.meta.url));
const MODULE = 'github.com/kedacore/keda/v2';
/** KEDA's defaults: its namespace, its adapter's Service, the APIService it serves. */
export const KEDA_NAMESPACE = 'keda';
const ADAPTER_SERVICE = 'keda-metrics-apiserver';
const APISERVICE = 'v1beta1.external.metrics.k8s.io';

export interface KedaOptions {
  /** Folder with keda-operator, keda-adapter and kubectl (testenv/scripts/build-go-tools.sh). */
  binDir: string;
  /** An admin kubeconfig (system:masters): both processes and the set-up use it. */
  kubeconfig: string;
  /**
   * An address of this machine, not loopback, that the API server reaches: the adapter listens there and the
   * APIService's EndpointSlice names it (the pod bridge's gateway, testenv/node.ts).
   */
  address: string;
  /** Parent of this run's folder (certificates, logs); the OS temp folder by default. */
  dir?: string;
  startTimeoutMs?: number;
}

export interface KedaHandle {
  readonly dir: string;
  /** The KEDA release, the module version in testenv/gobin/keda/go.mod. */
  readonly version: string;
  readonly namespace: string;
  /** Environment variables for tests. */
  readonly env: Record<string, string>;
  processes(): ServiceProcess[];
  peakRssMiB(): { operator?: number; adapter?: number };
  stop(): Promise<void>;
}

/** The KEDA module as the Go module cache holds it (testenv/gobin/keda pins the version). */
export function kedaModule(): { version: string; dir: string } {
  const out = execFileSync('go', ['mod', 'download', '-json', MODULE], {
    cwd: join(here, 'gobin', 'keda'),
    env: { ...process.env, GOTOOLCHAIN: 'local', GOFLAGS: '-mod=mod' },
    stdio: ['ignore', 'pipe', 'pipe'],
  }).toString();
  const info = JSON.parse(out) as { Version?: string; Dir?: string; Error?: string };
  if (!info.Version || !info.Dir) throw new Error(`testenv: go mod download ${MODULE}: ${info.Error ?? out}`);
  return { version: info.Version, dir: info.Dir };
}

type Json = Record<string, unknown>;

/** Applies one JSON Patch `add` or `remove` (RFC 6902; `-` appends) to `doc`. */
function applyPatchOp(doc: Json, op: { op: string; path: string; value?: unknown }): void {
  const keys = op.path
    .split('/')
    .slice(1)
    .map((k) => k.replaceAll('~1', '/').replaceAll('~0', '~'));
  const last = keys.pop();
  let parent: unknown = doc;
  for (const k of keys) {
    parent = Array.isArray(parent) ? parent[Number(k)] : (parent as Json | undefined)?.[k];
    if (parent === undefined) throw new Error(`testenv: KEDA CRD patch: no ${op.path}`);
  }
  if (last === undefined) throw new Error(`testenv: KEDA CRD patch: empty path`);
  if (op.op === 'add') {
    if (Array.isArray(parent)) {
      if (last === '-') parent.push(op.value);
      else parent.splice(Number(last), 0, op.value);
    } else (parent as Json)[last] = op.value;
  } else if (op.op === 'remove') {
    if (Array.isArray(parent)) parent.splice(Number(last), 1);
    else delete (parent as Json)[last];
  } else throw new Error(`testenv: KEDA CRD patch: unsupported op ${op.op}`);
}

/**
 * KEDA's CRDs as its release manifests carry them: config/crd/bases with the JSON patches that
 * config/crd/kustomization.yaml applies (schema fixes for ScaledObject and ScaledJob).
 */
export function kedaCrds(moduleDir: string): Json[] {
  const crdDir = join(moduleDir, 'config', 'crd');
  const crds = readdirSync(join(crdDir, 'bases'))
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .map((f) => parse(readFileSync(join(crdDir, 'bases', f), 'utf8')) as Json);
  const kustomization = parse(readFileSync(join(crdDir, 'kustomization.yaml'), 'utf8')) as {
    patches?: { path: string; target?: { name?: string } }[];
  };
  for (const p of kustomization.patches ?? []) {
    const crd = crds.find((c) => (c.metadata as { name?: string } | undefined)?.name === p.target?.name);
    if (!crd) throw new Error(`testenv: KEDA CRD patch ${p.path} names no CRD of config/crd/bases`);
    const ops = parse(readFileSync(join(crdDir, p.path), 'utf8')) as { op: string; path: string }[];
    for (const op of ops) applyPatchOp(crd, op);
  }
  return crds;
}

export async function startKeda(opts: KedaOptions): Promise<KedaHandle> {
  const timeoutMs = opts.startTimeoutMs ?? 120_000;
  const dir = mkdtempSync(join(opts.dir ?? tmpdir(), 'kpt-keda-'));
  const ns = KEDA_NAMESPACE;
  const kubectl = (args: string[], input?: string) =>
    execFileSync(join(opts.binDir, 'kubectl'), ['--kubeconfig', opts.kubeconfig, ...args], {
      input,
      stdio: ['pipe', 'pipe', 'pipe'],
      timeout: 60_000,
    }).toString();
  let operator: ServiceProcess | undefined;
  let adapter: ServiceProcess | undefined;
  const peaks: { operator?: number; adapter?: number } = {};
  const sample = () => {
    const max = (a: number | undefined, b: number | undefined) =>
      a === undefined ? b : b === undefined ? a : Math.max(a, b);
    peaks.operator = max(peaks.operator, operator?.peakRssMiB());
    peaks.adapter = max(peaks.adapter, adapter?.peakRssMiB());
    return peaks;
  };
  const stop = async () => {
    sample();
    try {
      kubectl([
        'delete',
        'apiservice',
        APISERVICE,
        '--ignore-not-found',
        '--wait=false',
        '--request-timeout=10s',
      ]);
    } catch {
      // The API server is gone already: nothing to keep consistent.
    }
    await adapter?.stop(5000);
    await operator?.stop(5000);
    if (!process.env.KPT_KEEP_DATA) rmSync(dir, { recursive: true, force: true });
  };

  try {
    const mod = kedaModule();
    // Server-side apply: ScaledObject's and ScaledJob's schemas are too big for the last-applied annotation.
    const crds = kedaCrds(mod.dir);
    kubectl(
      ['apply', '--server-side', '--force-conflicts', '--field-manager=kpt-testenv', '-f', '-'],
      JSON.stringify({ apiVersion: 'v1', kind: 'List', items: crds }),
    );
    kubectl([
      'wait',
      '--for=condition=Established',
      `--timeout=${Math.round(timeoutMs / 1000)}s`,
      ...crds.map((c) => `crd/${(c.metadata as { name: string }).name}`),
    ]);
    kubectl(
      ['apply', '--server-side', '--field-manager=kpt-testenv', '-f', '-'],
      JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } }),
    );

    // One CA and one certificate for both ends of the gRPC link (mutual TLS, named by the loopback address the
    // adapter dials) and for the adapter's HTTPS (named as the API server's proxy expects: <service>.<ns>.svc).
    // KEDA's own certificate rotation would keep them in a Secret for pods; local processes read files.
    const certDir = join(dir, 'certs');
    mkdirSync(certDir);
    const ca = makeCa(certDir, 'ca');
    const leaf = makeLeaf(certDir, ca, 'tls', {
      cn: 'keda',
      altNames: [
        'DNS:localhost',
        'IP:127.0.0.1',
        `IP:${opts.address}`,
        `DNS:${ADAPTER_SERVICE}.${ns}.svc`,
        `DNS:keda-operator.${ns}.svc`,
      ],
    });
    // Scalers' extra CA certificates (--ca-dir): none, and not the default /custom/ca of the host.
    const caDir = join(dir, 'custom-ca');
    mkdirSync(caDir);

    const env = {
      KUBECONFIG: opts.kubeconfig,
      WATCH_NAMESPACE: '',
      POD_NAMESPACE: ns,
      KEDA_CLUSTER_OBJECT_NAMESPACE: ns,
    };
    const [probePort, operatorMetricsPort, grpcPort, adapterPort, adapterMetricsPort] = [
      await freePort(),
      await freePort(),
      await freePort(),
      await freePort(),
      await freePort(),
    ];
    const probeUrl = `http://127.0.0.1:${probePort}`;
    operator = spawnService(
      'keda-operator',
      join(opts.binDir, 'keda-operator'),
      [
        '--leader-elect=false',
        `--health-probe-bind-address=127.0.0.1:${probePort}`,
        `--metrics-bind-address=127.0.0.1:${operatorMetricsPort}`,
        `--metrics-service-bind-address=127.0.0.1:${grpcPort}`,
        '--enable-cert-rotation=false',
        `--cert-dir=${certDir}`,
        `--ca-dir=${caDir}`,
        '--zap-log-level=info',
        '--zap-encoder=console',
        '--zap-time-encoding=rfc3339',
      ],
      { env, logFile: join(dir, 'keda-operator.log') },
    );
    adapter = spawnService(
      'keda-adapter',
      join(opts.binDir, 'keda-adapter'),
      [
        `--bind-address=${opts.address}`,
        `--secure-port=${adapterPort}`,
        `--tls-cert-file=${leaf.certFile}`,
        `--tls-private-key-file=${leaf.keyFile}`,
        // Also where its gRPC client finds ca.crt, tls.crt and tls.key.
        `--cert-dir=${certDir}`,
        `--lister-kubeconfig=${opts.kubeconfig}`,
        `--authentication-kubeconfig=${opts.kubeconfig}`,
        `--authorization-kubeconfig=${opts.kubeconfig}`,
        `--metrics-service-address=127.0.0.1:${grpcPort}`,
        `--port=${adapterMetricsPort}`,
        '--zap-log-level=info',
        '--zap-encoder=console',
        '--zap-time-encoding=rfc3339',
      ],
      { env, logFile: join(dir, 'keda-adapter.log') },
    );

    const svc = {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: ADAPTER_SERVICE, namespace: ns },
      spec: { ports: [{ name: 'https', port: 443, targetPort: adapterPort, protocol: 'TCP' }] },
    };
    // No selector: this slice, kept by nobody but this file, is the Service's only endpoint.
    const slice = {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: {
        name: `${ADAPTER_SERVICE}-host`,
        namespace: ns,
        labels: {
          'kubernetes.io/service-name': ADAPTER_SERVICE,
          'endpointslice.kubernetes.io/managed-by': 'testenv.kpt.io',
        },
      },
      addressType: 'IPv4',
      endpoints: [{ addresses: [opts.address], conditions: { ready: true } }],
      ports: [{ name: 'https', port: adapterPort, protocol: 'TCP' }],
    };
    const apiService = {
      apiVersion: 'apiregistration.k8s.io/v1',
      kind: 'APIService',
      metadata: { name: APISERVICE },
      spec: {
        group: 'external.metrics.k8s.io',
        version: 'v1beta1',
        service: { name: ADAPTER_SERVICE, namespace: ns, port: 443 },
        caBundle: readFileSync(ca.certFile).toString('base64'),
        groupPriorityMinimum: 100,
        versionPriority: 100,
      },
    };
    kubectl(
      ['apply', '--server-side', '--force-conflicts', '--field-manager=kpt-testenv', '-f', '-'],
      JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [svc, slice, apiService] }),
    );

    await waitFor(
      `keda-operator ${probeUrl}/readyz`,
      async () => {
        const r = await fetch(`${probeUrl}/readyz`, { signal: AbortSignal.timeout(2000) });
        return r.ok ? true : undefined;
      },
      { timeoutMs, svc: operator, intervalMs: 250 },
    );
    const caPem = readFileSync(ca.certFile);
    await waitFor(
      `keda-adapter https://${opts.address}:${adapterPort}/readyz`,
      async () =>
        (await httpsStatus(`https://${opts.address}:${adapterPort}/readyz`, caPem)) === 200
          ? true
          : undefined,
      { timeoutMs, svc: adapter, intervalMs: 250 },
    );
    // Available: the API server's availability check reached the adapter through the aggregation layer.
    let lastCondition = '';
    await waitFor(
      `APIService ${APISERVICE} Available`,
      async () => {
        const o = JSON.parse(kubectl(['get', 'apiservice', APISERVICE, '-o', 'json'])) as {
          status?: { conditions?: { type: string; status: string; reason?: string; message?: string }[] };
        };
        const c = o.status?.conditions?.find((x) => x.type === 'Available');
        lastCondition = c ? `${c.status} ${c.reason ?? ''}: ${c.message ?? ''}` : '';
        return c?.status === 'True' ? true : undefined;
      },
      { timeoutMs, svc: adapter, intervalMs: 250 },
    ).catch((e: unknown) => {
      throw new Error(`${e instanceof Error ? e.message : String(e)}\nAvailable condition: ${lastCondition}`);
    });

    return {
      dir,
      version: mod.version,
      namespace: ns,
      env: {
        KPT_KEDA: '1',
        KPT_KEDA_VERSION: mod.version,
        KPT_KEDA_NAMESPACE: ns,
        KPT_KEDA_OPERATOR_PROBE_URL: probeUrl,
      },
      processes: () => [operator!, adapter!],
      peakRssMiB: sample,
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** The HTTP status of a GET over TLS verified against `ca`. */
function httpsStatus(url: string, ca: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { ca, timeout: 2000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}
