// The seed README's installation steps, run as written against our chart and the real API server:
//
//   cd deploy && make repo && make install                 (quick installation into `default`)
//   helm repo add kubeless-pulsar-trigger <URL>            (manual: add the published chart repository,
//   helm repo up                                            refresh it,
//   kubectl apply -f crd.yaml                               the CRD first,
//   helm upgrade --install kpt kubeless-pulsar-trigger/kubeless-pulsar-trigger    then install from the repo)
//   make delete                                            (uninstall)
//
// The only change is the repository URL: `make repo` writes the index for a URL given by REPO_URL, and a local
// HTTP server publishes that folder there, as GitHub Pages did for the seed. The commands run through bash from
// a copy of deploy/ (so `make repo` writes nowhere in the tree), with helm and kubectl on PATH as a user would
// have them, and helm's own folders private to this test. `make deletecrd` is left to install.test.ts, which runs
// it on a copy of the CRD: the API server is shared with tests that need the real one.

import assert from 'node:assert/strict';
import { cpSync, createReadStream, existsSync, readFileSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, normalize } from 'node:path';
import { after, before, test } from 'node:test';
import { parse } from 'yaml';
import { chartDir, deployDir, run, type Tools, tempDir, tools } from '../../support/packaging.ts';

const chart = parse(readFileSync(join(chartDir, 'Chart.yaml'), 'utf8')) as { version: string; name: string };
const work = tempDir('seed-readme');
const deployCopy = join(work.dir, 'deploy');
const repoDir = join(deployCopy, 'chart-index');
let t: Tools;
let server: Server;
let repoUrl: string;
let env: NodeJS.ProcessEnv;

/** Runs README lines with bash in `cwd`, stopping at the first failure, as a user pasting them would notice. */
async function readme(lines: string[], cwd: string) {
  const r = await run('bash', ['-euo', 'pipefail', '-c', lines.join('\n')], { cwd, env, timeoutMs: 300_000 });
  assert.equal(r.code, 0, `${lines.join('\n')}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`);
  return r;
}

async function release(): Promise<
  { name: string; revision: string; status: string; chart: string } | undefined
> {
  const r = await run(t.helm, ['list', '--namespace', 'default', '--filter', '^kpt$', '-o', 'json'], { env });
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as { name: string; revision: string; status: string; chart: string }[])[0];
}

before(async () => {
  t = tools(join(work.dir, 'helm-home'));
  cpSync(deployDir, deployCopy, { recursive: true, filter: (src) => !src.includes('chart-index') });
  // The chart repository, published over HTTP the way GitHub Pages served the seed's.
  server = createServer((req, res) => {
    const path = normalize(decodeURIComponent((req.url ?? '/').split('?')[0]!));
    const file = join(repoDir, path.replace(/^\/chart-index\/?/, ''));
    if (
      !path.startsWith('/chart-index/') ||
      !file.startsWith(repoDir) ||
      !existsSync(file) ||
      statSync(file).isDirectory()
    ) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200);
    createReadStream(file).pipe(res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  repoUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/chart-index`;
  env = {
    ...t.env,
    // helm and kubectl on PATH, as the README's manual steps assume.
    PATH: `${t.binDir}:${process.env.PATH ?? '/usr/bin:/bin'}`,
    REPO_URL: repoUrl,
  };
});

after(async () => {
  await run(t.helm, ['uninstall', 'kpt', '--namespace', 'default', '--ignore-not-found'], { env });
  await new Promise((resolve) => server.close(resolve));
  work.remove();
});

test('quick installation: cd deploy && make repo && make install', async () => {
  await readme(['cd deploy && make repo && make install'], work.dir);
  const index = parse(readFileSync(join(repoDir, 'index.yaml'), 'utf8')) as {
    entries: Record<string, { version: string; urls: string[] }[]>;
  };
  const entry = index.entries[chart.name]?.[0];
  assert.equal(entry?.version, chart.version);
  assert.deepEqual(entry?.urls, [`${repoUrl}/${chart.name}-${chart.version}.tgz`]);
  const r = await release();
  assert.equal(r?.status, 'deployed');
  assert.equal(r?.chart, `${chart.name}-${chart.version}`);
});

test('manual installation: helm repo add, helm repo up, kubectl apply -f crd.yaml, helm upgrade --install', async () => {
  await readme(
    [
      `helm repo add kubeless-pulsar-trigger ${repoUrl}`,
      'helm repo up',
      'kubectl apply -f crd.yaml',
      'helm upgrade --install kpt kubeless-pulsar-trigger/kubeless-pulsar-trigger',
    ],
    deployCopy,
  );
  const r = await release();
  assert.equal(r?.status, 'deployed');
  assert.equal(r?.revision, '2', 'the release made by make install was upgraded from the repository');
  const search = await run(
    t.helm,
    ['search', 'repo', 'kubeless-pulsar-trigger/kubeless-pulsar-trigger', '-o', 'json'],
    {
      env,
    },
  );
  assert.equal((JSON.parse(search.stdout) as { version: string }[])[0]?.version, chart.version);
  const deployments = await run(
    t.kubectl,
    ['get', 'deployments', '--namespace', 'default', '-l', 'app.kubernetes.io/instance=kpt', '-o', 'name'],
    { env },
  );
  assert.equal(deployments.stdout.trim(), 'deployment.apps/kpt-kubeless-pulsar-trigger');
});

test('uninstall: make delete', async () => {
  await readme(['make delete'], deployCopy);
  assert.equal(await release(), undefined);
  const left = await run(
    t.kubectl,
    [
      'get',
      'deployments,services,serviceaccounts',
      '--namespace',
      'default',
      '-l',
      'app.kubernetes.io/instance=kpt',
      '-o',
      'name',
    ],
    { env },
  );
  assert.equal(left.stdout.trim(), '');
  const crd = await run(t.kubectl, ['get', 'crd', 'pulsartriggers.kubeless.io', '-o', 'name'], { env });
  assert.equal(crd.code, 0, 'make delete keeps the CRD (and the triggers)');
});
