// The image's application folder, built without Docker: the same steps deploy/Dockerfile's build stage runs
// (scripts/build.ts bundles every subcommand into dist/cli/, the launcher and package.json beside it, no
// node_modules; scripts/image.ts lays them out under /app), then both entrypoints run from that folder the way the
// image runs them (node + bin/kubeless-pulsar-trigger.js, no shell, no PATH, no HOME, cwd /). A file missing from
// the package, a dependency declared as dev-only, or an entrypoint that needs something outside its folder fails
// here. Static checks keep deploy/Dockerfile and .dockerignore in line with it; oci-image.test.ts checks the
// images themselves.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import {
  accessSync,
  constants,
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  realpathSync,
  statSync,
} from 'node:fs';
import { isBuiltin } from 'node:module';
import { delimiter, dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { appLayer } from '../../../scripts/image/contents.ts';
import { installChartIdentity, serverKubeVersion } from '../../support/chart-identity.ts';
import {
  chartDir,
  deployDir,
  type Manifest,
  randomSuffix,
  repoRoot,
  run,
  runOk,
  SetupError,
  seedCrd,
  tempDir,
  tools,
} from '../../support/packaging.ts';

const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as {
  name: string;
  bin: Record<string, string>;
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};
const dockerfile = readFileSync(join(deployDir, 'Dockerfile'), 'utf8');
const dockerignore = readFileSync(join(repoRoot, '.dockerignore'), 'utf8');

/** npm's own CLI script (npm-cli.js), run with this Node 24, as the root Makefile does. */
function npmCli(): string {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const candidate = join(dir, 'npm');
    try {
      accessSync(candidate, constants.X_OK);
    } catch {
      continue;
    }
    const cli = join(dirname(realpathSync(candidate)), 'npm-cli.js');
    if (existsSync(cli)) return cli;
  }
  throw new SetupError('npm not found on PATH (needed to pack the project and install its dependencies)');
}

const tmp = tempDir('image');
const app = join(tmp.dir, 'app');
let packedFiles: string[] = [];

/** Runs the packaged launcher as the image does: absolute node, nothing from the developer's environment. */
function entrypoint(args: string[], env: Record<string, string> = {}) {
  return run(process.execPath, [join(app, 'bin', 'kubeless-pulsar-trigger.js'), ...args], {
    cwd: '/',
    env: { NODE_ENV: 'production', ...env },
    timeoutMs: 30_000,
  });
}

before(async () => {
  const npm = npmCli();
  // What `npm publish` would ship (for `npx kubeless-pulsar-trigger run`): listed, not built.
  const packed = await runOk(process.execPath, [npm, 'pack', '--dry-run', '--json', '--ignore-scripts'], {
    cwd: repoRoot,
    timeoutMs: 120_000,
  });
  const info = JSON.parse(packed.stdout) as { files: { path: string }[] }[];
  if (!info[0]) throw new SetupError('npm pack --dry-run reported nothing', { stdout: packed.stdout });
  packedFiles = info[0].files.map((f) => f.path).sort();
  // As the Dockerfile's build stage.
  await runOk(process.execPath, [join(repoRoot, 'scripts', 'build.ts'), '--outdir', join(app, 'dist')], {
    cwd: repoRoot,
    timeoutMs: 240_000,
  });
  mkdirSync(join(app, 'bin'));
  copyFileSync(
    join(repoRoot, 'bin', 'kubeless-pulsar-trigger.js'),
    join(app, 'bin', 'kubeless-pulsar-trigger.js'),
  );
  copyFileSync(join(repoRoot, 'package.json'), join(app, 'package.json'));
});

after(() => tmp.remove());

describe('the npm package', () => {
  test('holds the launcher and the sources, and no tests, tooling or test environment', () => {
    assert.ok(packedFiles.includes('bin/kubeless-pulsar-trigger.js'));
    assert.ok(packedFiles.includes('src/cli/controller.ts'));
    assert.ok(packedFiles.includes('src/cli/dispatcher.ts'));
    const outside = packedFiles.filter(
      (f) => !/^(bin|src)\//.test(f) && !/^(package\.json|README(\.md)?|LICENSE(\.md)?)$/i.test(f),
    );
    assert.deepEqual(outside, []);
    assert.deepEqual(
      packedFiles.filter((f) => f.endsWith('.test.ts')),
      [],
    );
  });
});

describe('the production folder', () => {
  test('holds the launcher, one bundle per subcommand and package.json, and nothing else', () => {
    const files = (readdirSync(app, { recursive: true }) as string[])
      .filter((f) => !statSync(join(app, f)).isDirectory())
      .sort();
    assert.deepEqual(files, [
      'bin/kubeless-pulsar-trigger.js',
      'dist/cli/controller.js',
      'dist/cli/dispatcher.js',
      'dist/cli/run.js',
      'package.json',
    ]);
  });

  test('each bundle imports nothing but Node builtins (no node_modules in the image)', () => {
    for (const cmd of ['controller', 'dispatcher', 'run']) {
      const code = readFileSync(join(app, 'dist', 'cli', `${cmd}.js`), 'utf8');
      const specifiers = [
        // Static imports and re-exports as statements (a string that merely ends in "from" is not one).
        ...code.matchAll(/(?:^|[;}\n])\s*(?:import|export)\b[^;'"]*?\bfrom\s*["']([^"']+)["']/g),
        ...code.matchAll(/(?:^|[;}\n])\s*import\s*["']([^"']+)["']/g),
        ...code.matchAll(/\bimport\(\s*["']([^"']+)["']\s*\)/g),
        ...code.matchAll(/\brequire\(\s*["']([^"']+)["']\s*\)/g),
      ].map((m) => m[1]!);
      assert.ok(specifiers.length > 0, `${cmd}: imports found`);
      assert.deepEqual(
        specifiers.filter((spec) => !isBuiltin(spec)),
        [],
        `${cmd}.js imports only builtins`,
      );
    }
  });

  test('the launcher runs it with type stripping off', async () => {
    const r = await entrypoint(['dispatcher'], { NODE_OPTIONS: '--no-experimental-strip-types' });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /invalid configuration/);
  });
});

describe('the entrypoints, run as the image runs them', () => {
  test('the launcher names its subcommands when given none', async () => {
    const r = await entrypoint([]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /controller\|dispatcher\|run/);
  });

  test('controller --help prints its options and exits 0', async () => {
    const r = await entrypoint(['controller', '--help']);
    assert.equal(r.code, 0, r.stderr);
    for (const flag of ['--dispatcher-image', '--timezone', '--kubeconfig', '--namespaces', '--http-port']) {
      assert.ok(r.stdout.includes(flag), `controller --help lists ${flag}`);
    }
  });

  test('run --help prints its usage and exits 0', async () => {
    const r = await entrypoint(['run', '--help']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /-f/);
  });

  test('dispatcher with a bad environment names the variables and exits 2', async () => {
    const empty = await entrypoint(['dispatcher']);
    assert.equal(empty.code, 2, empty.stderr);
    assert.match(empty.stderr, /invalid configuration/);
    assert.match(empty.stderr, /PULSAR_BROKER/);
    const bad = await entrypoint(['dispatcher'], {
      PULSAR_BROKER: 'not a url',
      PULSAR_TOPIC_NAME: 'mytopic',
      KUBELESS_FUNCTION: 'myfunction',
    });
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(bad.stderr, /PULSAR_BROKER/);
  });

  test("the packaged controller runs with the chart's arguments under the chart's identity and reconciles", async (t) => {
    const suffix = randomSuffix();
    const watched = `kpt-img-${suffix}`;
    const id = await installChartIdentity({ watchNamespaces: [watched] });
    const home = tempDir('image-helm');
    t.after(async () => {
      home.remove();
      await id.remove();
    });
    const tl = tools(home.dir);
    await runOk(
      tl.kubectl,
      ['apply', '--server-side', '--force-conflicts', '--field-manager=kpt-packaging-tests', '-f', seedCrd],
      { env: tl.env },
    );
    const kubeVersion = await serverKubeVersion(tl.kubectl, tl.kubeconfig);
    const rendered = await runOk(
      tl.helm,
      [
        'template',
        id.release,
        chartDir,
        '--namespace',
        id.namespace,
        '--kube-version',
        kubeVersion,
        '--set',
        `controller.watchNamespaces={${watched}}`,
        // The trigger's broker (the seed's pulsar.addr) resolves nowhere: no admin API to own its subscription.
        '--set',
        'controller.pulsarAdmin=false',
        '--show-only',
        'templates/deployment.yaml',
      ],
      { env: tl.env },
    );
    const d = parseAllDocuments(rendered.stdout)[0]?.toJS() as Manifest & {
      spec: { template: { spec: { containers: { args: string[] }[] } } };
    };
    const args = d.spec.template.spec.containers[0]!.args;
    const dispatcherImage = args.find((a) => a.startsWith('--dispatcher-image='))!.split('=')[1];

    // In the pod the configuration is in-cluster; here the ServiceAccount's token comes in a kubeconfig, and the
    // HTTP port is any free one. Everything else is the chart's.
    const child = spawn(
      process.execPath,
      [
        join(app, 'bin', 'kubeless-pulsar-trigger.js'),
        ...args,
        `--kubeconfig=${id.kubeconfig}`,
        '--http-port=0',
      ],
      { cwd: '/', env: { NODE_ENV: 'production', POD_NAMESPACE: id.namespace, POD_NAME: 'kpt-0' } },
    );
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    t.after(() => {
      if (child.exitCode === null) child.kill('SIGKILL');
    });
    let log = '';
    child.stderr.on('data', (c: Buffer) => {
      log += c.toString();
    });
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new SetupError('controller did not listen', { log })), 30_000);
      child.stdout.on('data', (c: Buffer) => {
        log += c.toString();
        const m = /"port":(\d+)[^\n]*"msg":"listening"/.exec(log);
        if (m) {
          clearTimeout(timer);
          resolve(Number(m[1]));
        }
      });
    });

    const trigger = [
      'apiVersion: kubeless.io/v1',
      'kind: PulsarTrigger',
      'metadata:',
      '  name: mytrigger',
      `  namespace: ${watched}`,
      'spec:',
      '  pulsar:',
      '    topic: persistent://public/default/mytopic',
      '    broker: pulsar://pulsar.addr:6650',
      '  kubeless:',
      '    function: http://myfunction.default:8080',
    ].join('\n');
    await runOk(tl.kubectl, ['apply', '-f', '-'], { env: tl.env, input: trigger });
    let image = '';
    for (let i = 0; i < 120 && !image; i++) {
      const r = await run(
        tl.kubectl,
        [
          'get',
          'deployment',
          'mytrigger',
          '-n',
          watched,
          '-o',
          'jsonpath={.spec.template.spec.containers[0].image}',
        ],
        { env: tl.env },
      );
      if (r.code === 0) image = r.stdout.trim();
      else await new Promise((r) => setTimeout(r, 250));
    }
    assert.equal(image, dispatcherImage, `the packaged controller created the dispatcher Deployment\n${log}`);
    const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
    assert.equal(ready.status, 200);
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    assert.match(metrics, /^# TYPE /m);
    assert.doesNotMatch(log, /forbidden|Forbidden|"statusCode":403/, 'no request refused by the chart RBAC');

    child.kill('SIGTERM');
    assert.equal(await exited, 0, log);
  });
});

describe('deploy/Dockerfile and .dockerignore build this same folder', () => {
  const stages = dockerfile.split(/^FROM /m).slice(1);

  test('multi-stage: a Node 24 build stage, a runtime of only its root filesystem, two targets', () => {
    assert.match(dockerfile, /^ARG NODE_IMAGE=node:24-bookworm-slim$/m);
    assert.match(dockerfile, /^ARG NODE_VERSION=24\.\d+\.\d+$/m);
    assert.ok(stages.length >= 3);
    assert.match(dockerfile, /^FROM scratch AS runtime\nCOPY --from=build \/rootfs \/$/m);
    assert.match(dockerfile, /^FROM runtime AS controller\n[\s\S]*CMD \["controller"\]/m);
    assert.match(dockerfile, /^FROM runtime AS dispatcher\n[\s\S]*CMD \["dispatcher"\]/m);
  });

  test('the build stage bundles with scripts/build.ts and lays out /app with scripts/image.ts --rootfs', () => {
    const build = stages.find((s) => s.includes(' AS build'));
    assert.ok(build);
    for (const what of [
      'package.json',
      'package-lock.json',
      'tsconfig.json',
      'bin',
      'scripts/build.ts',
      'scripts/image.ts',
      'scripts/bundle-shims',
      'scripts/image',
      'src',
    ]) {
      assert.match(build, new RegExp(`^COPY .*\\b${what.replaceAll('.', '\\.')}\\b`, 'm'), `COPY ${what}`);
    }
    assert.match(build, /npm ci /);
    assert.match(build, /scripts\/image\.ts --node "\$NODE" --rootfs \/rootfs/);
    assert.doesNotMatch(build, /\/app\/node_modules|npm ci --omit=dev/);
    // scripts/image.ts's app layer is this same folder under /app.
    const layer = appLayer(repoRoot, join(app, 'dist'));
    assert.deepEqual(
      layer.files.map((f) => f.path),
      [
        '/app/bin/kubeless-pulsar-trigger.js',
        '/app/dist/cli/controller.js',
        '/app/dist/cli/dispatcher.js',
        '/app/dist/cli/run.js',
        '/app/package.json',
      ],
    );
  });

  test('the runtime runs the launcher as a non-root user, without a shell', () => {
    const runtime = stages.find((s) => s.startsWith('scratch AS runtime'));
    assert.ok(runtime);
    assert.match(runtime, /^USER 65532:65532$/m);
    const entry = /^ENTRYPOINT (\[.*\])$/m.exec(runtime);
    assert.ok(entry, 'exec-form ENTRYPOINT');
    const argv = JSON.parse(entry[1]!) as string[];
    assert.equal(argv[0], '/nodejs/bin/node');
    assert.equal(argv[1], `/app/${pkg.bin[pkg.name]!.replace(/^\.\//, '')}`);
    assert.doesNotMatch(dockerfile, /^(CMD|ENTRYPOINT) [^[]/m, 'no shell-form CMD/ENTRYPOINT');
  });

  test('.dockerignore lets in exactly what the build stage copies', () => {
    const lines = dockerignore.split('\n').filter((l) => l.trim() && !l.startsWith('#'));
    assert.equal(lines[0], '*', 'everything is excluded unless listed');
    for (const keep of [
      '!package.json',
      '!package-lock.json',
      '!tsconfig.json',
      '!bin/',
      '!scripts/build.ts',
      '!scripts/image.ts',
      '!scripts/image/',
      '!scripts/bundle-shims/',
      '!src/',
    ]) {
      assert.ok(lines.includes(keep), `.dockerignore keeps ${keep}`);
    }
    const topLevel = [...new Set(packedFiles.map((f) => f.split('/')[0]!))];
    for (const entry of topLevel) {
      const allowed = lines.some((l) => l === `!${entry}` || l === `!${entry}/`);
      assert.ok(allowed || /^(README|LICENSE)/i.test(entry), `${entry} (in the package) is let in`);
    }
  });
});
