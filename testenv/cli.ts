// The project's environment commands (called by the Makefile):
//   test       set up everything, start the real servers, run lint, type checks and every test, stop the servers
//   up / down  start the servers in the background (state in .testenv/) / stop them
//   env        print `export ...` lines for the running servers
//   run-tests  run the tests against servers from the environment (after `up`, or your own servers)
//   demo       the whole system on this machine until Ctrl-C
//   bench      every benchmark, one table

import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runBenches } from './bench.ts';
import { runDemo } from './demo.ts';
import { ensureImages, type NodeImages } from './images.ts';
import { type KedaHandle, startKeda } from './keda.ts';
import { ensureGoTools, type KubeHandle, startKube } from './kube.ts';
import { groupAlive, release, sleep, stopAll } from './lib/proc.ts';
import {
  createPodNetwork,
  ensureNodePackages,
  type NodeHandle,
  type NodeState,
  type PodNetwork,
  removeNodeLeftovers,
  startNode,
} from './node.ts';
import { ensurePulsarDistribution, type PulsarHandle, startPulsar } from './pulsar.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const stateDir = join(root, '.testenv');
const stateFile = join(stateDir, 'state.json');
const envFile = join(stateDir, 'env.sh');

interface Timing {
  step: string;
  seconds: number;
  ok: boolean;
}
const timings: Timing[] = [];

async function step<T>(name: string, fn: () => Promise<T> | T): Promise<T> {
  const t0 = performance.now();
  process.stderr.write(`\n==> ${name}\n`);
  try {
    const v = await fn();
    // A command step returns its exit code: non-zero is a failed step, though the run goes on.
    const ok = typeof v !== 'number' || v === 0;
    timings.push({ step: name, seconds: (performance.now() - t0) / 1000, ok });
    const verdict = ok ? 'ok' : `FAILED (exit ${v})`;
    process.stderr.write(`<== ${name}: ${verdict} (${((performance.now() - t0) / 1000).toFixed(1)} s)\n`);
    return v;
  } catch (err) {
    timings.push({ step: name, seconds: (performance.now() - t0) / 1000, ok: false });
    process.stderr.write(`<== ${name}: FAILED (${((performance.now() - t0) / 1000).toFixed(1)} s)\n`);
    throw err;
  }
}

function printTimings(extra: string[] = []): void {
  const lines = ['', 'testenv timings:'];
  for (const t of timings)
    lines.push(`  ${t.ok ? 'ok  ' : 'FAIL'} ${t.seconds.toFixed(1).padStart(7)} s  ${t.step}`);
  lines.push(...extra);
  process.stderr.write(`${lines.join('\n')}\n`);
}

/** Run a command with inherited output; resolve with its exit code. */
function run(cmd: string, args: string[], env: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: root, stdio: 'inherit', env: { ...process.env, ...env } });
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
    child.on('error', () => resolve(127));
  });
}

function bin(name: string): string {
  return join(root, 'node_modules', '.bin', name);
}

interface Servers {
  plain?: PulsarHandle;
  secure?: PulsarHandle;
  kube?: KubeHandle;
  node?: NodeHandle;
  keda?: KedaHandle;
  network?: PodNetwork;
  env: Record<string, string>;
}

const given = (...names: string[]) => names.every((n) => Boolean(process.env[n]));

/**
 * Start the servers the tests need, except those the caller already points at: PULSAR_SERVICE_URL and
 * PULSAR_ADMIN_URL (plain broker), PULSAR_SECURE_* (secure broker), KUBECONFIG (API server; then
 * KUBECONFIG_UNPRIVILEGED is needed too).
 */
async function startServers(
  opts: { secure?: boolean; pulsar?: boolean; kube?: boolean; images?: NodeImages | undefined } = {},
): Promise<Servers> {
  // Wanted: all, except what the caller leaves out (`pulsar: false` or `kube: false`: a benchmark that does not use
  // them; `secure: false`: the demo, which needs no secure broker), neither started nor expected.
  const wantPlain = opts.pulsar !== false;
  const wantSecure = wantPlain && opts.secure !== false;
  const wantKube = opts.kube !== false;
  const givenPlain = wantPlain && given('PULSAR_SERVICE_URL', 'PULSAR_ADMIN_URL');
  const givenSecure =
    wantSecure &&
    given(
      'PULSAR_SECURE_SERVICE_URL',
      'PULSAR_SECURE_ADMIN_URL',
      'PULSAR_SECURE_CA_FILE',
      'PULSAR_SECURE_ADMIN_TOKEN',
      'PULSAR_SECURE_CLIENT_TOKEN',
    );
  const givenKube = wantKube && given('KUBECONFIG');
  for (const [used, what] of [
    [givenPlain, 'plain Pulsar from PULSAR_SERVICE_URL'],
    [givenSecure, 'secure Pulsar from PULSAR_SECURE_*'],
    [givenKube, 'Kubernetes API server from KUBECONFIG'],
  ] as const) {
    if (used) process.stderr.write(`using existing ${what}\n`);
  }
  // With images to run, the API server gets a node (testenv/node.ts). Its pod network comes first: the brokers and
  // the API server listen on its gateway too, where pods reach them.
  const network = opts.images && wantKube && !givenKube ? createPodNetwork() : undefined;
  const podAddress = network?.gateway;
  const started = await Promise.allSettled([
    wantPlain && !givenPlain
      ? step('start pulsar (plain)', () => startPulsar({ profile: 'plain', podAddress }))
      : undefined,
    wantSecure && !givenSecure
      ? step('start pulsar (secure)', () =>
          startPulsar({ profile: 'secure', authRefreshSeconds: 5, podAddress }),
        )
      : undefined,
    wantKube && !givenKube
      ? step('start etcd + kube-apiserver + kube-controller-manager', () => startKube({ podAddress }))
      : undefined,
  ]);
  const [plain, secure, kube] = started.map((r) => (r.status === 'fulfilled' ? r.value : undefined)) as [
    PulsarHandle | undefined,
    PulsarHandle | undefined,
    KubeHandle | undefined,
  ];
  const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  let node: NodeHandle | undefined;
  let keda: KedaHandle | undefined;
  try {
    if (failed) throw failed.reason;
    if (network && kube && opts.images) {
      const images = opts.images;
      node = await step('start the node (containerd, kubelet, kube-scheduler)', () =>
        startNode({
          binDir: kube.binDir,
          kubeconfig: kube.kubeconfig,
          network,
          images: [images.pause.archive, images.archive],
          sandboxImage: images.pause.ref,
        }),
      );
      // KEDA on the host; its metrics adapter listens on the node's address, where the API server reaches it.
      keda = await step('start KEDA (operator, metrics adapter)', () =>
        startKeda({ binDir: kube.binDir, kubeconfig: kube.kubeconfig, address: network.gateway }),
      );
    }
  } catch (e) {
    await stopServers({ plain, secure, kube, node, network, env: {} });
    throw e;
  }
  const env: Record<string, string> = {
    ...plain?.env,
    ...secure?.env,
    ...kube?.env,
    ...node?.env,
    ...keda?.env,
  };
  if (node && kube && opts.images) {
    env.KPT_POD_API_SERVER = kube.server.replace('127.0.0.1', network!.gateway);
    env.KPT_CONTROLLER_IMAGE = opts.images.controller;
    env.KPT_DISPATCHER_IMAGE = opts.images.dispatcher;
  }
  if (givenKube && !process.env.KPT_BIN_DIR) env.KPT_BIN_DIR = ensureGoTools();
  if (wantPlain && !env.PULSAR_HOME && !process.env.PULSAR_HOME) env.PULSAR_HOME = ensurePulsarDistribution();
  return { plain, secure, kube, node, keda, network, env };
}

/**
 * What the node needs before it starts: containerd, runc and the CNI plugins, and the images it runs. Nothing when
 * the caller gives its own API server (KUBECONFIG): then no node is started here.
 */
async function prepareNode(): Promise<NodeImages | undefined> {
  if (given('KUBECONFIG')) return undefined;
  await step('node packages (containerd, runc, CNI plugins)', ensureNodePackages);
  return step('images (make image, and the pause image)', ensureImages);
}

async function stopServers(s: Servers | undefined): Promise<string[]> {
  if (!s) return [];
  const k = s.kube?.peakRssMiB();
  const n = s.node?.peakRssMiB();
  const kd = s.keda?.peakRssMiB();
  const mem = [
    `  peak RSS: pulsar plain ${fmt(s.plain?.peakRssMiB())} MiB, pulsar secure ${fmt(s.secure?.peakRssMiB())} MiB, ` +
      `kube-apiserver ${fmt(k?.apiserver)} MiB, etcd ${fmt(k?.etcd)} MiB, ` +
      `kube-controller-manager ${fmt(k?.controllerManager)} MiB`,
    ...(s.node
      ? [
          `  node: kubelet ${fmt(n?.kubelet)} MiB, containerd ${fmt(n?.containerd)} MiB, ` +
            `kube-scheduler ${fmt(n?.scheduler)} MiB`,
        ]
      : []),
    ...(s.keda ? [`  KEDA: operator ${fmt(kd?.operator)} MiB, metrics adapter ${fmt(kd?.adapter)} MiB`] : []),
  ];
  // KEDA goes first (it takes its APIService along), then the node, while the API server still answers: its pods
  // leave through the kubelet.
  await step('stop servers', async () => {
    if (s.keda) await s.keda.stop();
    if (s.node) await s.node.stop();
    else s.network?.remove();
    await Promise.all([s.plain?.stop(), s.secure?.stop(), s.kube?.stop()]);
  });
  return mem;
}

function fmt(n: number | undefined): string {
  return n === undefined ? '?' : n.toFixed(0);
}

function testFiles(): string[] {
  return ['test/**/*.test.ts'];
}

async function runTests(env: Record<string, string>): Promise<number> {
  return run(process.execPath, ['--test', '--test-reporter=spec', '--test-timeout=900000', ...testFiles()], {
    ...env,
    KPT_IN_TEST_RUN: '1',
  });
}

async function cmdTest(): Promise<number> {
  let failed = false;
  await step('build go tools (etcd, Kubernetes, helm, crictl, registry, KEDA)', ensureGoTools);
  await step('pulsar distribution', ensurePulsarDistribution);
  const images = await prepareNode();
  // Servers boot (mostly JVM and apiserver start-up) while lint and type checks use the CPU.
  const servers = startServers({ images });
  servers.catch(() => {});
  const lint = await step('lint (biome)', () => run(bin('biome'), ['check', '.']));
  const types = await step('typecheck (tsc)', () => run(bin('tsc'), ['--noEmit', '-p', 'tsconfig.json']));
  if (lint !== 0 || types !== 0) failed = true;
  let s: Servers | undefined;
  let mem: string[] = [];
  try {
    s = await servers;
    const code = await step('tests (node --test)', () => runTests(s!.env));
    if (code !== 0) failed = true;
  } finally {
    mem = await stopServers(s);
    await stopAll();
  }
  printTimings(mem);
  if (lint !== 0) process.stderr.write('lint failed (see above)\n');
  if (types !== 0) process.stderr.write('typecheck failed (see above)\n');
  return failed ? 1 : 0;
}

interface State {
  pids: { name: string; pid: number }[];
  env: Record<string, string>;
  dirs: string[];
  node?: NodeState;
}

function readState(): State | undefined {
  if (!existsSync(stateFile)) return undefined;
  return JSON.parse(readFileSync(stateFile, 'utf8')) as State;
}

async function cmdUp(): Promise<number> {
  const prior = readState();
  if (prior?.pids.some((p) => groupAlive(p.pid))) {
    process.stderr.write('servers already running (make env-down first); their variables:\n');
    process.stdout.write(readFileSync(envFile, 'utf8'));
    return 0;
  }
  await step('build go tools', ensureGoTools);
  await step('pulsar distribution', ensurePulsarDistribution);
  const s = await startServers({ images: await prepareNode() });
  const procs = [
    s.plain?.process(),
    s.secure?.process(),
    ...(s.kube?.processes() ?? []),
    ...(s.node?.processes() ?? []),
    ...(s.keda?.processes() ?? []),
  ].filter((p) => p !== undefined);
  for (const p of procs) release(p);
  const dirs = [s.plain?.dataDir, s.secure?.dataDir, s.kube?.dir, s.keda?.dir].filter((d) => d !== undefined);
  const state: State = {
    pids: procs.map((p) => ({ name: p.name, pid: p.pid })),
    env: s.env,
    dirs,
    node: s.node?.state,
  };
  mkdirSync(stateDir, { recursive: true });
  writeFileSync(stateFile, JSON.stringify(state, null, 2));
  writeFileSync(envFile, exportLines(s.env));
  process.stdout.write(exportLines(s.env));
  process.stderr.write(
    `\nservers are up. In your shell: eval "$(make -s env)". Stop them with: make env-down\n`,
  );
  process.exit(0);
}

function exportLines(env: Record<string, string>): string {
  return `${Object.entries(env)
    .map(([k, v]) => `export ${k}='${v.replaceAll("'", "'\\''")}'`)
    .join('\n')}\n`;
}

async function cmdDown(): Promise<number> {
  const state = readState();
  if (!state) {
    process.stderr.write('no servers recorded in .testenv/\n');
    return 0;
  }
  const stop = async (pids: State['pids']) => {
    for (const p of pids) {
      try {
        process.kill(-p.pid, 'SIGTERM');
      } catch {
        try {
          process.kill(p.pid, 'SIGTERM');
        } catch {}
      }
    }
    const deadline = Date.now() + 15_000;
    while (pids.some((p) => groupAlive(p.pid)) && Date.now() < deadline) await sleep(200);
    for (const p of pids) {
      try {
        process.kill(-p.pid, 'SIGKILL');
      } catch {}
    }
  };
  // KEDA first, then the node's kubelet and scheduler, then its pods through the runtime while containerd still
  // answers (their network namespaces go with them), then everything else.
  await stop(state.pids.filter((p) => p.name.startsWith('keda-')));
  const nodeDaemons = state.pids.filter((p) => p.name === 'kubelet' || p.name === 'kube-scheduler');
  await stop(nodeDaemons);
  if (state.node) await removeNodeLeftovers(state.node);
  await stop(state.pids.filter((p) => !nodeDaemons.includes(p)));
  if (state.node) await removeNodeLeftovers(state.node);
  for (const d of state.dirs) rmSync(d, { recursive: true, force: true });
  rmSync(stateDir, { recursive: true, force: true });
  process.stderr.write('servers stopped\n');
  return 0;
}

function cmdEnv(): number {
  if (!existsSync(envFile)) {
    process.stderr.write('no servers running: make env-up\n');
    return 1;
  }
  process.stdout.write(readFileSync(envFile, 'utf8'));
  return 0;
}

async function cmdRunTests(): Promise<number> {
  const env: Record<string, string> = existsSync(stateFile) ? (readState()?.env ?? {}) : {};
  return runTests(env);
}

async function cmdServe(): Promise<number> {
  await step('build go tools', ensureGoTools);
  await step('pulsar distribution', ensurePulsarDistribution);
  const s = await startServers({ images: await prepareNode() });
  process.stdout.write(`\nServers are up:\n${exportLines(s.env)}\nPress Ctrl-C to stop.\n`);
  await new Promise(() => {});
  return 0;
}

async function cmdDemo(): Promise<number> {
  await step('build go tools', ensureGoTools);
  await step('pulsar distribution', ensurePulsarDistribution);
  const s = await startServers({ secure: false, images: await prepareNode() });
  // Once the demo is up, Ctrl-C stops it in order (trigger, agent, controller, identity, then the servers)
  // instead of lib/proc.ts's immediate stop-everything-and-exit; a second Ctrl-C does that. proc.ts's exit hook
  // still kills whatever is left if the process ends some other way.
  const waitForStop = () =>
    new Promise((resolve) => {
      for (const sig of ['SIGINT', 'SIGTERM'] as const) {
        process.removeAllListeners(sig);
        process.once(sig, () => {
          process.stderr.write('\nstopping (Ctrl-C again to stop at once)\n');
          resolve(sig);
          process.once(sig, () => void stopAll().finally(() => process.exit(130)));
        });
      }
    });
  process.once('exit', () => {
    for (const d of [s.plain?.dataDir, s.kube?.dir, s.keda?.dir])
      if (d) rmSync(d, { recursive: true, force: true });
  });
  let code = 1;
  try {
    code = await runDemo({
      env: { ...pick(process.env), ...s.env },
      exitAfterReady: process.env.KPT_DEMO_EXIT_AFTER_READY === '1',
      namespace: process.env.KPT_DEMO_NAMESPACE || undefined,
      waitForStop,
    });
  } finally {
    await stopServers(s);
    await stopAll();
  }
  // Idle keep-alive sockets of the API and Pulsar clients must not keep the demo alive.
  setTimeout(() => process.exit(code), 1000);
  return code;
}

async function cmdBench(): Promise<number> {
  await step('build go tools', ensureGoTools);
  await step('pulsar distribution', ensurePulsarDistribution);
  try {
    // Each group of benchmarks gets only the servers it uses (testenv/bench.ts, runBenches).
    return await runBenches(async (servers) => {
      // No benchmark uses the secure broker.
      const s = await startServers({
        pulsar: servers.includes('pulsar'),
        kube: servers.includes('kube'),
        secure: false,
        images: servers.includes('node') ? await prepareNode() : undefined,
      });
      return {
        env: { ...pick(process.env), ...s.env },
        stop: async () => {
          await stopServers(s);
        },
      };
    }, process.argv.slice(3));
  } finally {
    await stopAll();
  }
}

/** The servers' variables already in the environment (reused servers). */
function pick(env: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) {
    if (
      v &&
      /^(PULSAR_|KUBECONFIG|KPT_BIN_DIR$|KPT_NODE_|KPT_CONTAINERD_|KPT_POD_|KPT_KEDA|KPT_.*_IMAGE$)/.test(k)
    )
      out[k] = v;
  }
  return out;
}

const commands: Record<string, () => Promise<number> | number> = {
  test: cmdTest,
  up: cmdUp,
  down: cmdDown,
  env: cmdEnv,
  'run-tests': cmdRunTests,
  serve: cmdServe,
  demo: cmdDemo,
  bench: cmdBench,
};

const name = process.argv[2] ?? '';
const command = commands[name];
if (!command) {
  process.stderr.write(`usage: node testenv/cli.ts <${Object.keys(commands).join('|')}>\n`);
  process.exit(2);
}
try {
  process.exitCode = await command();
} catch (err) {
  process.stderr.write(`\n${err instanceof Error ? err.message : String(err)}\n`);
  await stopAll();
  process.exitCode = 1;
}
