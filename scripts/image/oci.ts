// Writes container images in the OCI image layout (https://github.com/opencontainers/image-spec, image-layout.md):
// gzip'd tar layers, an image config, a manifest per image and an index.json naming each image by its full
// reference, as a folder and/or as one tar archive (what `ctr images import` and `skopeo copy oci-archive:` read).
// Everything is deterministic: sorted tar entries, one fixed mtime, fixed owners and modes, gzip at a fixed level,
// JSON with a fixed key order. Images that share a layer share its blob.
//
// Used by scripts/image.ts (the controller and dispatcher images) and by testenv (small images of its own).

import { createHash } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  existsSync,
  lchownSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  openSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { dirname, join, posix } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { byPath, type TarEntry, tarChunks } from './tar.ts';

/** A file in an image, at an absolute path ("/etc/passwd"). Owner 0:0 unless given. */
export type FileSpec =
  | { path: string; type?: 'file'; data: Uint8Array | string; mode?: number; uid?: number; gid?: number }
  /** Read from this machine when the layer is built; the mode defaults to 0755 if executable there, else 0644. */
  | { path: string; type?: 'file'; source: string; mode?: number; uid?: number; gid?: number }
  | { path: string; type: 'dir'; mode?: number; uid?: number; gid?: number }
  | { path: string; type: 'symlink'; target: string; uid?: number; gid?: number };

export interface LayerSpec {
  files: FileSpec[];
  /** What the image config's history says made this layer. */
  createdBy?: string;
}

export interface ImageConfigSpec {
  user?: string;
  entrypoint?: string[];
  cmd?: string[];
  env?: string[];
  workingDir?: string;
  /** "8080/tcp" */
  exposedPorts?: string[];
  labels?: Record<string, string>;
}

export interface ImageSpec {
  /** Full reference, e.g. ghcr.io/org/name:1.0; written to index.json as both name annotations. */
  ref: string;
  layers: LayerSpec[];
  config: ImageConfigSpec;
  architecture?: string;
  os?: string;
}

export interface WriteOptions {
  /** OCI layout folder to (re)create. */
  dir?: string;
  /** The same layout as one tar file. */
  archive?: string;
  /** mtime of every tar entry, seconds since the epoch. Default 0. */
  mtime?: number;
  /** The config's "created". Default: the mtime. */
  created?: Date;
  /** Folder keeping gzip'd layers by content, so an unchanged large layer is not compressed again. */
  cacheDir?: string;
  /** gzip level, fixed so the same layer always gives the same blob. Default 9. */
  gzipLevel?: number;
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
}

export interface WrittenLayer extends Descriptor {
  diffId: string;
  /** Sum of the sizes of the layer's regular files. */
  unpackedSize: number;
}

export interface WrittenImage {
  ref: string;
  manifest: Descriptor;
  config: Descriptor;
  layers: WrittenLayer[];
  /** Layer blobs + config + manifest, as a registry stores them. */
  compressedSize: number;
  /** Sum of the sizes of the regular files in all layers. */
  unpackedSize: number;
}

export const MEDIA = {
  index: 'application/vnd.oci.image.index.v1+json',
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  layer: 'application/vnd.oci.image.layer.v1.tar+gzip',
} as const;

export const REF_NAME = 'org.opencontainers.image.ref.name';
export const CONTAINERD_NAME = 'io.containerd.image.name';

export function sha256(data: Uint8Array): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** The tar entries of a layer: its files with their parent folders (0755, root) added where not given. */
export function layerEntries(layer: LayerSpec): TarEntry[] {
  const entries = new Map<string, TarEntry>();
  for (const f of layer.files) {
    const path = posix.normalize(f.path).replace(/^\/+/, '').replace(/\/+$/, '');
    if (!f.path.startsWith('/') || path === '' || path.startsWith('..')) {
      throw new Error(`image file path "${f.path}" must be absolute and below /`);
    }
    if (entries.has(path)) throw new Error(`image layer lists ${f.path} twice`);
    const uid = f.uid ?? 0;
    const gid = f.gid ?? 0;
    let entry: TarEntry;
    if (f.type === 'dir') entry = { type: 'dir', path, mode: f.mode ?? 0o755, uid, gid };
    else if (f.type === 'symlink') entry = { type: 'symlink', path, target: f.target, uid, gid };
    else if ('source' in f) {
      let st: ReturnType<typeof lstatSync>;
      try {
        st = lstatSync(f.source);
      } catch (err) {
        throw new Error(`image file ${f.path}: cannot read ${f.source}: ${(err as Error).message}`);
      }
      if (st.isSymbolicLink()) entry = { type: 'symlink', path, target: readlinkSync(f.source), uid, gid };
      else if (st.isFile()) {
        const mode = f.mode ?? (st.mode & 0o111 ? 0o755 : 0o644);
        entry = { type: 'file', path, mode, uid, gid, data: readFileSync(f.source) };
      } else throw new Error(`image file ${f.path}: ${f.source} is neither a file nor a symlink`);
    } else {
      const data = typeof f.data === 'string' ? Buffer.from(f.data) : f.data;
      entry = { type: 'file', path, mode: f.mode ?? 0o644, uid, gid, data };
    }
    entries.set(path, entry);
  }
  for (const path of [...entries.keys()]) {
    for (let dir = posix.dirname(path); dir !== '.'; dir = posix.dirname(dir)) {
      if (!entries.has(dir)) entries.set(dir, { type: 'dir', path: dir, mode: 0o755, uid: 0, gid: 0 });
      else if (entries.get(dir)!.type !== 'dir')
        throw new Error(`image layer: /${dir} is a parent and not a folder`);
    }
  }
  return [...entries.values()].sort(byPath);
}

function json(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value));
}

interface Blob extends Descriptor {
  data: Uint8Array;
}

function blob(mediaType: string, data: Uint8Array): Blob {
  return { mediaType, digest: sha256(data), size: data.length, data };
}

/** gzip at a fixed level, through the cache when given (keyed by the uncompressed digest and the level). */
function compress(tarball: Buffer, diffId: string, level: number, cacheDir: string | undefined): Buffer {
  const cached = cacheDir && join(cacheDir, `${diffId.replace(':', '-')}.gz${level}`);
  if (cached && existsSync(cached)) {
    const gz = readFileSync(cached);
    try {
      if (sha256(gunzipSync(gz)) === diffId) return gz;
    } catch {
      // A damaged cache entry is rebuilt below.
    }
  }
  const gz = gzipSync(tarball, { level });
  if (cached) {
    mkdirSync(cacheDir, { recursive: true });
    writeFileSync(`${cached}.tmp`, gz);
    renameSync(`${cached}.tmp`, cached);
  }
  return gz;
}

/** Builds every image's blobs, then writes them as a layout folder and/or archive. */
export function writeImages(images: readonly ImageSpec[], opts: WriteOptions): WrittenImage[] {
  if (!opts.dir && !opts.archive)
    throw new Error('writeImages: give a layout folder (dir) or an archive path');
  const mtime = opts.mtime ?? 0;
  const created = (opts.created ?? new Date(mtime * 1000)).toISOString().replace(/\.000Z$/, 'Z');
  const level = opts.gzipLevel ?? 9;
  const blobs = new Map<string, Blob>();
  const layerMemo = new Map<LayerSpec, WrittenLayer>();
  const add = (b: Blob) => {
    blobs.set(b.digest, b);
    return { mediaType: b.mediaType, digest: b.digest, size: b.size };
  };

  const written = images.map((image): WrittenImage & { index: Record<string, unknown> } => {
    const layers = image.layers.map((layer) => {
      const known = layerMemo.get(layer);
      if (known) return known;
      const entries = layerEntries(layer);
      const tarball = Buffer.concat([...tarChunks(entries, mtime)]);
      const diffId = sha256(tarball);
      const gz = compress(tarball, diffId, level, opts.cacheDir);
      const unpackedSize = entries.reduce((n, e) => n + (e.type === 'file' ? e.data.length : 0), 0);
      const w: WrittenLayer = { ...add(blob(MEDIA.layer, gz)), diffId, unpackedSize };
      layerMemo.set(layer, w);
      return w;
    });
    const c = image.config;
    const config = {
      created,
      architecture: image.architecture ?? 'amd64',
      os: image.os ?? 'linux',
      config: {
        User: c.user,
        ExposedPorts: c.exposedPorts && Object.fromEntries(c.exposedPorts.map((p) => [p, {}])),
        Env: c.env,
        Entrypoint: c.entrypoint,
        Cmd: c.cmd,
        WorkingDir: c.workingDir,
        Labels: c.labels,
      },
      rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
      history: image.layers.map((l) => ({ created, created_by: l.createdBy ?? 'scripts/image/oci.ts' })),
    };
    const configDesc = add(blob(MEDIA.config, json(config)));
    const manifest = {
      schemaVersion: 2,
      mediaType: MEDIA.manifest,
      config: configDesc,
      layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
    };
    const manifestDesc = add(blob(MEDIA.manifest, json(manifest)));
    return {
      ref: image.ref,
      manifest: manifestDesc,
      config: configDesc,
      layers,
      compressedSize: layers.reduce((n, l) => n + l.size, 0) + configDesc.size + manifestDesc.size,
      unpackedSize: layers.reduce((n, l) => n + l.unpackedSize, 0),
      index: {
        ...manifestDesc,
        platform: { architecture: config.architecture, os: config.os },
        annotations: { [CONTAINERD_NAME]: image.ref, [REF_NAME]: image.ref },
      },
    };
  });

  const index = json({ schemaVersion: 2, mediaType: MEDIA.index, manifests: written.map((w) => w.index) });
  const ociLayout = json({ imageLayoutVersion: '1.0.0' });
  const sortedBlobs = [...blobs.values()].sort((a, b) => (a.digest < b.digest ? -1 : 1));

  if (opts.dir) {
    rmSync(opts.dir, { recursive: true, force: true });
    mkdirSync(join(opts.dir, 'blobs', 'sha256'), { recursive: true });
    for (const b of sortedBlobs) writeFileSync(join(opts.dir, 'blobs', 'sha256', b.digest.slice(7)), b.data);
    writeFileSync(join(opts.dir, 'oci-layout'), ociLayout);
    writeFileSync(join(opts.dir, 'index.json'), index);
  }
  if (opts.archive) {
    const entries: TarEntry[] = [
      { type: 'file', path: 'oci-layout', mode: 0o644, uid: 0, gid: 0, data: ociLayout },
      { type: 'file', path: 'index.json', mode: 0o644, uid: 0, gid: 0, data: index },
      { type: 'dir', path: 'blobs', mode: 0o755, uid: 0, gid: 0 },
      { type: 'dir', path: 'blobs/sha256', mode: 0o755, uid: 0, gid: 0 },
      ...sortedBlobs.map(
        (b): TarEntry => ({
          type: 'file',
          path: `blobs/sha256/${b.digest.slice(7)}`,
          mode: 0o644,
          uid: 0,
          gid: 0,
          data: b.data,
        }),
      ),
    ];
    mkdirSync(dirname(opts.archive), { recursive: true });
    const tmp = `${opts.archive}.tmp`;
    const fd = openSync(tmp, 'w');
    try {
      for (const chunk of tarChunks(entries, mtime)) writeSync(fd, chunk);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, opts.archive);
  }
  return written.map(({ index: _, ...w }) => w);
}

/** One image: writeImages for a single spec. */
export function writeImage(image: ImageSpec & WriteOptions): WrittenImage {
  const { dir, archive, mtime, created, cacheDir, gzipLevel, ...spec } = image;
  return writeImages([spec], { dir, archive, mtime, created, cacheDir, gzipLevel })[0]!;
}

/**
 * The layers' files as a folder (later layers win), with the same modes, owners (when run as root) and mtime as
 * in the tar layers: the root filesystem deploy/Dockerfile copies into its `FROM scratch` stage.
 */
export function writeTree(layers: readonly LayerSpec[], dir: string, mtime = 0): void {
  const merged = new Map<string, TarEntry>();
  for (const layer of layers) for (const e of layerEntries(layer)) merged.set(e.path, e);
  const entries = [...merged.values()].sort(byPath);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const asRoot = process.getuid?.() === 0;
  for (const e of entries) {
    const path = join(dir, e.path);
    if (e.type === 'dir') mkdirSync(path);
    else if (e.type === 'symlink') symlinkSync(e.target, path);
    else writeFileSync(path, e.data);
  }
  // Modes, owners and times last, deepest first: a folder's mtime stays put once its children exist.
  for (const e of entries.reverse()) {
    const path = join(dir, e.path);
    if (asRoot) lchownSync(path, e.uid, e.gid);
    if (e.type !== 'symlink') chmodSync(path, e.mode);
    lutimesSync(path, mtime, mtime);
  }
}
