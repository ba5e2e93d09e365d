// A real Kubernetes node for tests and the demo: kube-scheduler and kubelet (built from the same k8s.io/kubernetes
// module as the API server, testenv/scripts/build-go-tools.sh), containerd and runc (Debian packages), the Debian CNI
// plugins with a bridge network for pods, and a pause image built from source (testenv/pause/). The project's images
// are imported into containerd, so pods run them without a registry (imagePullPolicy IfNotPresent or Never).
//
// Everything of one run is private to it: containerd's root, state, socket and runc state, the kubelet's root and
// pod logs, the CNI configuration and IPAM state live under one temp folder; the pod bridge, its /24 and the
// node's cgroup root (/kpt-<id> in every cgroup v1 hierarchy) are named after the run. stop() removes the pods
// through the kubelet (so the runtime tears down their sandboxes and network namespaces), stops the processes, then
// removes what is left: containers, mounts, the bridge, the cgroups and the folder.
//
// Pods reach servers on this machine only at the bridge's gateway address (the node's InternalIP): the network
// is created first (createPodNetwork), so the brokers and the API server can be started to listen there too.

import { execFileSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, type ServiceProcess, sleep, spawnService, waitFor } from './lib/proc.ts';

/** The Debian packages the node needs, and a file each installs. */
const PACKAGES: { name: string; file: string }[] = [
  { name: 'containerd', file: '/usr/bin/containerd' },
  { name: 'runc', file: '/usr/sbin/runc' },
  { name: 'containernetworking-plugins', file: '/usr/lib/cni/bridge' },
];
export const CNI_BIN_DIR = '/usr/lib/cni';
const CGROUP_ROOT = '/sys/fs/cgroup';
/** A loopback port nothing listens on (discard): where containerd's registry requests go, refused at once. */
const NO_REGISTRY = 'http://127.0.0.1:9';

/** Installs containerd, runc and the CNI plugins from Debian's packages when they are missing (needs root). */
export function ensureNodePackages(): string {
  const missing = PACKAGES.filter((p) => !existsSync(p.file));
  if (missing.length === 0) return 'present';
  const names = missing.map((p) => p.name);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const apt = (args: string[]) =>
    execFileSync('apt-get', args, { stdio: ['ignore', 'inherit', 'inherit'], env });
  try {
    apt(['install', '-y', '--no-install-recommends', ...names]);
  } catch {
    // A fresh machine has no package lists yet.
    apt(['update']);
    apt(['install', '-y', '--no-install-recommends', ...names]);
  }
  for (const p of missing) {
    if (!existsSync(p.file)) throw new Error(`testenv: apt-get installed ${p.name} but ${p.file} is missing`);
  }
  return `installed ${names.join(', ')}`;
}

export interface PodNetwork {
  /** Linux bridge the CNI bridge plugin attaches pods to. */
  readonly bridge: string;
  /** The bridge's address: the node's InternalIP, and where pods reach servers on this machine. */
  readonly gateway: string;
  /** The pods' /24, e.g. 10.247.13.0/24. */
  readonly subnet: string;
  remove(): void;
}

function ip(args: string[]): string {
  return execFileSync('ip', args, { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
}

/** Creates this run's pod bridge with its gateway address, on a /24 that no route of the machine covers. */
export function createPodNetwork(): PodNetwork {
  const routes = ip(['-4', 'route', 'show', 'table', 'all']);
  const id = Buffer.from(crypto.getRandomValues(new Uint8Array(3))).toString('hex');
  const bridge = `kpt${id}`;
  let third = -1;
  for (let tries = 0; tries < 64 && third < 0; tries++) {
    const n = crypto.getRandomValues(new Uint8Array(1))[0]!;
    if (!routes.includes(`10.247.${n}.`)) third = n;
  }
  if (third < 0) throw new Error('testenv: no free /24 in 10.247.0.0/16 for the pod network');
  const subnet = `10.247.${third}.0/24`;
  const gateway = `10.247.${third}.1`;
  ip(['link', 'add', bridge, 'type', 'bridge']);
  try {
    ip(['addr', 'add', `${gateway}/24`, 'dev', bridge]);
    ip(['link', 'set', bridge, 'up']);
  } catch (e) {
    ip(['link', 'del', bridge]);
    throw e;
  }
  return {
    bridge,
    gateway,
    subnet,
    remove() {
      try {
        ip(['link', 'del', bridge]);
      } catch {
        // Already gone.
      }
    },
  };
}

/** What names one run's node on this machine: enough to remove all of it, also from another process (env-down). */
export interface NodeState {
  readonly dir: string;
  readonly socket: string;
  readonly bridge: string;
  readonly cgroupRoot: string;
  /** Folder of the crictl binary. */
  readonly binDir: string;
}

export interface NodeHandle {
  readonly name: string;
  readonly state: NodeState;
  readonly dir: string;
  readonly network: PodNetwork;
  /** containerd's socket (unix path), for ctr and crictl. */
  readonly containerdSocket: string;
  readonly env: Record<string, string>;
  /** Imports an OCI archive (with io.containerd.image.name annotations) into the runtime's k8s.io namespace. */
  importImage(archive: string): void;
  /** The host pid of a running container's first process (for tests that signal it). */
  containerPid(containerId: string): number;
  processes(): ServiceProcess[];
  peakRssMiB(): { containerd?: number; kubelet?: number; scheduler?: number };
  stop(): Promise<void>;
}

export interface NodeOptions {
  binDir: string;
  /** An admin kubeconfig (system:masters): the kubelet and the scheduler use it. */
  kubeconfig: string;
  network: PodNetwork;
  /** OCI archives to import before the node registers (the pause image first). */
  images: string[];
  /** The pause image's reference, named in containerd's sandbox_image. */
  sandboxImage: string;
  startTimeoutMs?: number;
}

function containerdConfig(dir: string, sandboxImage: string): string {
  return `version = 2
root = "${dir}/containerd/root"
state = "${dir}/containerd/state"
oom_score = 0
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "${dir}/containerd.sock"

[ttrpc]
  address = "${dir}/containerd.ttrpc.sock"

[plugins."io.containerd.internal.v1.opt"]
  path = "${dir}/containerd/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${sandboxImage}"
  # Root here lacks CAP_SYS_RESOURCE: without this, runc fails every sandbox setting a lower oom_score_adj.
  restrict_oom_score_adj = true
  disable_apparmor = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "${dir}/runc"

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "${CNI_BIN_DIR}"
    conf_dir = "${dir}/cni/net.d"
    max_conf_num = 1
`;
}

function cniConfig(dir: string, network: PodNetwork): string {
  return JSON.stringify(
    {
      cniVersion: '0.4.0',
      name: `kpt-pods-${network.bridge}`,
      plugins: [
        {
          type: 'bridge',
          bridge: network.bridge,
          isGateway: true,
          // No masquerading: pods talk only to this machine, at the gateway address.
          ipMasq: false,
          hairpinMode: true,
          ipam: {
            type: 'host-local',
            dataDir: join(dir, 'cni', 'ipam'),
            ranges: [[{ subnet: network.subnet, gateway: network.gateway }]],
            routes: [{ dst: network.subnet }],
          },
        },
      ],
    },
    null,
    2,
  );
}

function kubeletConfig(o: {
  dir: string;
  address: string;
  port: number;
  healthzPort: number;
  socket: string;
  cgroupRoot: string;
}): string {
  return `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: ${o.address}
port: ${o.port}
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: ${o.healthzPort}
# The API server reaches the kubelet (logs, exec) without a client certificate; the kubelet listens only on the
# pod bridge's gateway address.
authentication:
  anonymous:
    enabled: true
  webhook:
    enabled: false
authorization:
  mode: AlwaysAllow
containerRuntimeEndpoint: unix://${o.socket}
imageServiceEndpoint: unix://${o.socket}
# The host is on cgroup v1 (cgroupfs driver); the kubelet refuses v1 unless told otherwise.
cgroupDriver: cgroupfs
failCgroupV1: false
cgroupRoot: ${o.cgroupRoot}
failSwapOn: false
oomScoreAdj: 0
podLogsDir: ${o.dir}/pod-logs
resolvConf: ""
serializeImagePulls: false
syncFrequency: 10s
nodeStatusUpdateFrequency: 5s
# Imported images have no registry to come back from: never collect them.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: 100Mi
  nodefs.available: 1%
  nodefs.inodesFree: 1%
  imagefs.available: 1%
evictionPressureTransitionPeriod: 5s
shutdownGracePeriod: 0s
registerNode: true
kubeAPIQPS: 50
kubeAPIBurst: 100
`;
}

function cgroupHierarchies(): string[] {
  try {
    return readdirSync(CGROUP_ROOT).filter(
      (n) => n !== 'unified' && existsSync(join(CGROUP_ROOT, n, 'tasks')),
    );
  } catch {
    return [];
  }
}

/** Removes a cgroup tree depth first; processes still in it keep it (and the error says so). */
function removeCgroupTree(path: string): void {
  if (!existsSync(path)) return;
  for (const entry of readdirSync(path, { withFileTypes: true })) {
    if (entry.isDirectory()) removeCgroupTree(join(path, entry.name));
  }
  try {
    rmdirSync(path);
  } catch {
    // Busy: a process is still inside; reported by the caller's leftover check.
  }
}

function mountsUnder(dir: string): string[] {
  const lines = readFileSync('/proc/self/mountinfo', 'utf8').split('\n');
  const points = lines
    .map((l) => l.split(' ')[4])
    .filter((p): p is string => p !== undefined && (p === dir || p.startsWith(`${dir}/`)));
  // Deepest first.
  return [...new Set(points)].sort((a, b) => b.length - a.length);
}

function pidsWithArg(needle: string): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const cmd = readFileSync(`/proc/${name}/cmdline`, 'utf8');
      if (cmd.includes(needle)) out.push(Number(name));
    } catch {
      // Gone.
    }
  }
  return out;
}

export async function startNode(opts: NodeOptions): Promise<NodeHandle> {
  const timeoutMs = opts.startTimeoutMs ?? 180_000;
  const dir = mkdtempSync(join(tmpdir(), 'kpt-node-'));
  const id = opts.network.bridge.replace(/^kpt/, '');
  const name = `kpt-node-${id}`;
  const socket = join(dir, 'containerd.sock');
  const cgroupRoot = `/kpt-${id}`;
  for (const sub of ['containerd', 'cni/net.d', 'cni/ipam', 'kubelet', 'pod-logs', 'runc']) {
    mkdirSync(join(dir, sub), { recursive: true });
  }
  writeFileSync(join(dir, 'containerd.toml'), containerdConfig(dir, opts.sandboxImage));
  writeFileSync(join(dir, 'cni', 'net.d', '10-kpt.conflist'), cniConfig(dir, opts.network));
  for (const h of cgroupHierarchies()) mkdirSync(join(CGROUP_ROOT, h, cgroupRoot), { recursive: true });

  const state: NodeState = { dir, socket, bridge: opts.network.bridge, cgroupRoot, binDir: opts.binDir };
  const procs: ServiceProcess[] = [];
  const peaks: { containerd?: number; kubelet?: number; scheduler?: number } = {};
  let containerd: ServiceProcess | undefined;
  let kubelet: ServiceProcess | undefined;
  let scheduler: ServiceProcess | undefined;
  const ctr = (args: string[]) =>
    execFileSync('ctr', ['--address', socket, '--namespace', 'k8s.io', ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    }).toString();
  const kubectl = (args: string[]) =>
    execFileSync(join(opts.binDir, 'kubectl'), ['--kubeconfig', opts.kubeconfig, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 60_000,
    }).toString();
  const sample = () => {
    const max = (a: number | undefined, b: number | undefined) =>
      a === undefined ? b : b === undefined ? a : Math.max(a, b);
    peaks.containerd = max(peaks.containerd, containerd?.peakRssMiB());
    peaks.kubelet = max(peaks.kubelet, kubelet?.peakRssMiB());
    peaks.scheduler = max(peaks.scheduler, scheduler?.peakRssMiB());
    return peaks;
  };

  const cleanup = async () => {
    sample();
    await scheduler?.stop(5000);
    // 1. Pods off the node through the kubelet, so the runtime stops their sandboxes (CNI teardown, netns removed).
    if (kubelet && isAlive(kubelet)) {
      try {
        kubectl(['cordon', name]);
        kubectl([
          'delete',
          'pods',
          '--all-namespaces',
          `--field-selector=spec.nodeName=${name}`,
          '--grace-period=0',
          '--force',
          '--wait=false',
        ]);
        const deadline = Date.now() + 30_000;
        while (Date.now() < deadline && crictlAt(state, ['pods', '-q', '--state', 'ready']).trim())
          await sleep(250);
      } catch {
        // The API server or the runtime may be gone already; the runtime is cleaned below.
      }
    }
    await kubelet?.stop(10_000);
    await removeNodeLeftovers(state, () => containerd?.stop(10_000));
  };

  try {
    containerd = spawnService('containerd', 'containerd', ['--config', join(dir, 'containerd.toml')], {
      logFile: join(dir, 'containerd.log'),
      // Images come only from imports. A pod naming an image that is not here would make containerd pull it from a
      // registry on the internet; every registry request goes to a closed loopback port instead and fails at once
      // (a proxy also keeps it from resolving the registry's name).
      env: {
        HTTPS_PROXY: NO_REGISTRY,
        HTTP_PROXY: NO_REGISTRY,
        NO_PROXY: '',
        https_proxy: '',
        http_proxy: '',
      },
    });
    procs.push(containerd);
    await waitFor(
      'containerd',
      async () => {
        execFileSync('ctr', ['--address', socket, 'version'], { stdio: 'ignore', timeout: 5000 });
        return true;
      },
      { timeoutMs, svc: containerd, intervalMs: 200 },
    );
    for (const image of opts.images) ctr(['images', 'import', image]);

    const [port, healthzPort] = [await freePort(), await freePort()];
    writeFileSync(
      join(dir, 'kubelet.yaml'),
      kubeletConfig({ dir, address: opts.network.gateway, port, healthzPort, socket, cgroupRoot }),
    );
    kubelet = spawnService(
      'kubelet',
      join(opts.binDir, 'kubelet'),
      [
        `--config=${join(dir, 'kubelet.yaml')}`,
        `--kubeconfig=${opts.kubeconfig}`,
        `--root-dir=${join(dir, 'kubelet')}`,
        `--cert-dir=${join(dir, 'kubelet', 'pki')}`,
        `--hostname-override=${name}`,
        `--node-ip=${opts.network.gateway}`,
        '--v=1',
      ],
      { logFile: join(dir, 'kubelet.log') },
    );
    procs.push(kubelet);
    scheduler = spawnService(
      'kube-scheduler',
      join(opts.binDir, 'kube-scheduler'),
      [
        `--kubeconfig=${opts.kubeconfig}`,
        `--authentication-kubeconfig=${opts.kubeconfig}`,
        `--authorization-kubeconfig=${opts.kubeconfig}`,
        '--leader-elect=false',
        '--bind-address=127.0.0.1',
        `--secure-port=${await freePort()}`,
        '--v=1',
      ],
      { logFile: join(dir, 'kube-scheduler.log') },
    );
    procs.push(scheduler);
    // Ready: the kubelet reports Ready and the node lifecycle controller has lifted the not-ready taint.
    await waitFor(
      `node ${name} Ready`,
      async () => {
        const node = JSON.parse(kubectl(['get', 'node', name, '-o', 'json'])) as {
          spec?: { taints?: { key: string }[] };
          status?: { conditions?: { type: string; status: string }[] };
        };
        const ready = node.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
        const tainted = (node.spec?.taints ?? []).some((t) => t.key.startsWith('node.kubernetes.io/'));
        return ready && !tainted ? true : undefined;
      },
      { timeoutMs, svc: kubelet, intervalMs: 500 },
    );
  } catch (e) {
    await cleanup();
    throw e;
  }

  return {
    name,
    state,
    dir,
    network: opts.network,
    containerdSocket: socket,
    env: {
      KPT_NODE_NAME: name,
      KPT_NODE_IP: opts.network.gateway,
      KPT_CONTAINERD_ADDRESS: socket,
    },
    importImage(archive) {
      ctr(['images', 'import', archive]);
    },
    containerPid(containerId) {
      const out = ctr(['tasks', 'ls']);
      for (const line of out.split('\n').slice(1)) {
        const [task, pid] = line.trim().split(/\s+/);
        if (task === containerId) return Number(pid);
      }
      throw new Error(`testenv: container ${containerId} has no running task on ${name}`);
    },
    processes: () => procs,
    peakRssMiB: sample,
    stop: cleanup,
  };
}

function crictlAt(state: NodeState, args: string[]): string {
  return execFileSync(
    join(state.binDir, 'crictl'),
    ['--runtime-endpoint', `unix://${state.socket}`, ...args],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 60_000,
    },
  ).toString();
}

/**
 * Removes what a node leaves once its kubelet is gone: every pod sandbox through the CRI while containerd still
 * runs (the runtime's own teardown: CNI DEL, network namespace removed), then containerd (`stopContainerd`, or a
 * SIGTERM to whatever serves the socket), the shims, mounts under the node's folder, its cgroups, the bridge and the
 * folder.
 */
export async function removeNodeLeftovers(
  state: NodeState,
  stopContainerd?: () => Promise<void> | undefined,
): Promise<void> {
  if (existsSync(state.socket)) {
    try {
      crictlAt(state, ['rmp', '-af']);
    } catch {
      // Nothing left, or containerd is gone or stuck: the shims are killed below.
    }
  }
  if (stopContainerd) await stopContainerd();
  // Shims (each container's parent) outlive containerd by design; this run's are the ones naming its socket.
  for (const pid of pidsWithArg(state.socket)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Gone.
    }
  }
  for (const m of mountsUnder(state.dir)) {
    try {
      execFileSync('umount', ['-l', m], { stdio: 'ignore' });
    } catch {
      // Already unmounted with its parent.
    }
  }
  for (const h of cgroupHierarchies()) removeCgroupTree(join(CGROUP_ROOT, h, state.cgroupRoot));
  try {
    ip(['link', 'del', state.bridge]);
  } catch {
    // Already gone.
  }
  if (!process.env.KPT_KEEP_DATA) rmSync(state.dir, { recursive: true, force: true });
}

function isAlive(svc: ServiceProcess): boolean {
  try {
    process.kill(svc.pid, 0);
    return true;
  } catch {
    return false;
  }
}
