// Helpers for the packaging tests (chart, Makefile, images): where things are, and running the pinned helm and
// kubectl against the test environment's API server. Every helm call gets its own config/cache/data folders, so
// tests never read or write the developer's ~/.config/helm and can run in parallel.

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { kube } from './env.ts';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const deployDir = join(repoRoot, 'deploy');
export const chartDir = join(deployDir, 'chart', 'kubeless-pulsar-trigger');
export const chartCrd = join(chartDir, 'crds', 'crd.yaml');
export const seedCrd = join(deployDir, 'crd.yaml');

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export class CommandError extends Error {
  readonly code = 'E_COMMAND_FAILED';
  readonly result: RunResult;
  readonly command: string;

  constructor(command: string, result: RunResult) {
    super(
      `${command}: exited with ${result.code ?? result.signal}\n--- stdout\n${result.stdout.slice(-4000)}\n--- stderr\n${result.stderr.slice(-4000)}`,
    );
    this.name = 'CommandError';
    this.command = command;
    this.result = result;
  }
}

/** A test's setup went wrong (a tool printed something unexpected, a rendered chart lacks an object). */
export class SetupError extends Error {
  readonly code = 'E_TEST_SETUP';
  readonly context: Record<string, unknown>;

  constructor(what: string, context: Record<string, unknown> = {}) {
    super(`${what}${Object.keys(context).length ? ` ${JSON.stringify(context).slice(0, 4000)}` : ''}`);
    this.name = 'SetupError';
    this.context = context;
  }
}

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  input?: string;
  timeoutMs?: number;
}

/** Runs a program (no shell) and collects its output; never throws for a non-zero exit. */
export function run(file: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(file, args, {
      cwd: opts.cwd ?? repoRoot,
      env: opts.env ?? process.env,
      stdio: ['pipe', 'pipe', 'pipe'],
      timeout: opts.timeoutMs ?? 180_000,
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.on('error', reject);
    child.on('close', (code, signal) =>
      resolvePromise({
        code,
        signal,
        stdout: Buffer.concat(out).toString(),
        stderr: Buffer.concat(err).toString(),
      }),
    );
    child.stdin.end(opts.input ?? '');
  });
}

/** Like run, but a non-zero exit is a CommandError carrying both outputs. */
export async function runOk(
  file: string,
  args: readonly string[],
  opts: RunOptions = {},
): Promise<RunResult> {
  const r = await run(file, args, opts);
  if (r.code !== 0) throw new CommandError([file, ...args].join(' '), r);
  return r;
}

/** A fresh temporary folder and a function removing it. */
export function tempDir(prefix: string): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), `kpt-${prefix}-`));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export function randomSuffix(): string {
  return Math.random().toString(36).slice(2, 8);
}

export interface Tools {
  helm: string;
  kubectl: string;
  binDir: string;
  /** Admin kubeconfig. */
  kubeconfig: string;
  /**
   * Environment for helm, kubectl and make: the admin KUBECONFIG, KPT_BIN_DIR, and private helm folders (under
   * `helmHome`) so no test sees another's repositories or the developer's.
   */
  env: NodeJS.ProcessEnv;
}

/** The pinned helm and kubectl of the test environment, with an isolated helm home under `helmHome`. */
export function tools(helmHome: string): Tools {
  const k = kube();
  return {
    helm: join(k.binDir, 'helm'),
    kubectl: join(k.binDir, 'kubectl'),
    binDir: k.binDir,
    kubeconfig: k.kubeconfig,
    env: {
      ...process.env,
      KUBECONFIG: k.kubeconfig,
      KPT_BIN_DIR: k.binDir,
      HELM_CONFIG_HOME: join(helmHome, 'config'),
      HELM_CACHE_HOME: join(helmHome, 'cache'),
      HELM_DATA_HOME: join(helmHome, 'data'),
    },
  };
}

/** A resource in a multi-document YAML stream, as parsed. */
export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; [k: string]: unknown };
  [k: string]: unknown;
}
