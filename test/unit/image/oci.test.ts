// The image writer (scripts/image/tar.ts, scripts/image/oci.ts) on small inputs: GNU tar reads its archives
// (ustar, a ustar prefix, pax for long paths and link targets), entries come sorted with the given owners and
// modes, the same input gives the same bytes, and the OCI layout is consistent (every digest and size matches its
// blob, shared layers are stored once, index.json names each image, the archive holds the folder's files).

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import {
  CONTAINERD_NAME,
  type ImageSpec,
  type LayerSpec,
  MEDIA,
  REF_NAME,
  sha256,
  writeImage,
  writeImages,
} from '../../../scripts/image/oci.ts';
import { type TarEntry, tar } from '../../../scripts/image/tar.ts';

const tmp = mkdtempSync(join(tmpdir(), 'kpt-oci-unit-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** `tar -tv` of an archive given as bytes: GNU tar's reading of it. */
function gnuList(archive: Buffer): string[] {
  return execFileSync('tar', ['--numeric-owner', '-tvf', '-'], { input: archive, encoding: 'utf8' })
    .trim()
    .split('\n')
    .map((l) => l.replace(/\s+/g, ' '));
}

const file = (path: string, data: string, mode = 0o644, uid = 0): TarEntry => ({
  type: 'file',
  path,
  mode,
  uid,
  gid: uid,
  data: Buffer.from(data),
});

describe('tar', () => {
  test('GNU tar lists every entry, sorted, with its type, mode, owner, size and mtime', () => {
    const archive = tar(
      [
        file('b/file', 'hello', 0o755),
        { type: 'dir', path: 'b', mode: 0o700, uid: 65532, gid: 65532 },
        { type: 'symlink', path: 'a-link', target: 'b/file', uid: 0, gid: 0 },
        file('a', ''),
      ],
      86400,
    );
    assert.equal(archive.length % 512, 0);
    assert.deepEqual(gnuList(archive), [
      '-rw-r--r-- 0/0 0 1970-01-02 00:00 a',
      'lrwxrwxrwx 0/0 0 1970-01-02 00:00 a-link -> b/file',
      'drwx------ 65532/65532 0 1970-01-02 00:00 b/',
      '-rwxr-xr-x 0/0 5 1970-01-02 00:00 b/file',
    ]);
  });

  test('long paths and link targets survive (ustar prefix, pax records)', () => {
    const deep = `${'d'.repeat(60)}/${'e'.repeat(60)}/${'f'.repeat(90)}`; // > 100 bytes, splits at a slash
    const unsplittable = 'x'.repeat(180); // one 180-byte name: pax
    const longTarget = `/${'t'.repeat(150)}`;
    const archive = tar([
      file(deep, 'deep'),
      file(unsplittable, 'pax'),
      { type: 'symlink', path: 'l', target: longTarget, uid: 0, gid: 0 },
      file('é', 'utf-8 name'),
    ]);
    const names = execFileSync('tar', ['-tf', '-'], { input: archive, encoding: 'utf8' }).trim().split('\n');
    assert.deepEqual(names.sort(), [deep, 'l', unsplittable, 'é'].sort());
    const out = join(tmp, 'long');
    execFileSync('mkdir', ['-p', out]);
    execFileSync('tar', ['-xf', '-', '-C', out], { input: archive });
    assert.equal(readFileSync(join(out, deep), 'utf8'), 'deep');
    assert.equal(readFileSync(join(out, unsplittable), 'utf8'), 'pax');
    assert.equal(execFileSync('readlink', [join(out, 'l')], { encoding: 'utf8' }).trim(), longTarget);
  });

  test('the same entries in any order give the same bytes; a path given twice is refused', () => {
    const entries = [file('a', '1'), file('c', '3'), file('b', '2')];
    assert.deepEqual(tar(entries), tar([...entries].reverse()));
    assert.throws(() => tar([file('a', '1'), file('a', '2')]), /two entries for a/);
    assert.throws(() => tar([file('/abs', '')]), /must be relative/);
  });
});

describe('OCI layout', () => {
  const base: LayerSpec = {
    files: [
      { path: '/etc/passwd', data: 'root:x:0:0:root:/root:/sbin/nologin\n' },
      { path: '/home/nonroot', type: 'dir', mode: 0o700, uid: 65532, gid: 65532 },
      { path: '/bin/sh-less', type: 'symlink', target: '/nowhere' },
    ],
  };
  const app: LayerSpec = { files: [{ path: '/app/main.js', data: 'console.log(1)\n', mode: 0o644 }] };
  const images: ImageSpec[] = [
    { ref: 'example.test/one:1', layers: [base, app], config: { cmd: ['one'], exposedPorts: ['8080/tcp'] } },
    { ref: 'example.test/two:1', layers: [base, app], config: { cmd: ['two'], user: '65532:65532' } },
  ];

  function readLayout(dir: string) {
    const blob = (digest: string) =>
      readFileSync(join(dir, 'blobs', 'sha256', digest.replace('sha256:', '')));
    const index = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8'));
    return { blob, index };
  }

  test('every descriptor matches its blob; shared layers are stored once; both names are annotated', () => {
    const dir = join(tmp, 'layout');
    const written = writeImages(images, { dir, mtime: 0 });
    const { blob, index } = readLayout(dir);
    assert.deepEqual(JSON.parse(readFileSync(join(dir, 'oci-layout'), 'utf8')), {
      imageLayoutVersion: '1.0.0',
    });
    assert.equal(index.mediaType, MEDIA.index);
    assert.equal(index.manifests.length, 2);
    const blobs = new Set<string>();
    for (const [i, m] of index.manifests.entries()) {
      assert.equal(m.annotations[REF_NAME], images[i]!.ref);
      assert.equal(m.annotations[CONTAINERD_NAME], images[i]!.ref);
      assert.deepEqual(m.platform, { architecture: 'amd64', os: 'linux' });
      assert.equal(m.digest, written[i]!.manifest.digest);
      const manifestBytes = blob(m.digest);
      assert.equal(sha256(manifestBytes), m.digest);
      assert.equal(manifestBytes.length, m.size);
      const manifest = JSON.parse(manifestBytes.toString());
      assert.equal(manifest.mediaType, MEDIA.manifest);
      const config = JSON.parse(blob(manifest.config.digest).toString());
      assert.equal(sha256(blob(manifest.config.digest)), manifest.config.digest);
      assert.equal(manifest.layers.length, 2);
      for (const [j, l] of manifest.layers.entries()) {
        const gz = blob(l.digest);
        assert.equal(l.mediaType, MEDIA.layer);
        assert.equal(sha256(gz), l.digest);
        assert.equal(gz.length, l.size);
        assert.equal(sha256(gunzipSync(gz)), config.rootfs.diff_ids[j]);
      }
      for (const d of [
        m.digest,
        manifest.config.digest,
        ...manifest.layers.map((l: { digest: string }) => l.digest),
      ]) {
        blobs.add(d);
      }
    }
    assert.equal(written[0]!.layers[0]!.digest, written[1]!.layers[0]!.digest, 'one base layer');
    // 2 manifests + 2 configs + 2 shared layers, and nothing else in blobs/.
    assert.equal(blobs.size, 6);
    assert.deepEqual(
      readdirSync(join(dir, 'blobs', 'sha256')).sort(),
      [...blobs].map((d) => d.slice(7)).sort(),
    );
  });

  test('the config carries what the spec says, and sizes add up', () => {
    const dir = join(tmp, 'config');
    const [one, two] = writeImages(images, { dir, mtime: 0, created: new Date('2020-01-02T03:04:05Z') });
    const { blob } = readLayout(dir);
    const c1 = JSON.parse(blob(one!.config.digest).toString());
    const c2 = JSON.parse(blob(two!.config.digest).toString());
    assert.equal(c1.created, '2020-01-02T03:04:05Z');
    assert.deepEqual(c1.config, { ExposedPorts: { '8080/tcp': {} }, Cmd: ['one'] });
    assert.deepEqual(c2.config, { User: '65532:65532', Cmd: ['two'] });
    assert.equal(c1.architecture, 'amd64');
    assert.equal(c1.os, 'linux');
    assert.equal(c1.history.length, 2);
    const passwd = Buffer.byteLength('root:x:0:0:root:/root:/sbin/nologin\n');
    assert.equal(one!.unpackedSize, passwd + Buffer.byteLength('console.log(1)\n'));
    assert.equal(
      one!.compressedSize,
      one!.layers.reduce((n, l) => n + l.size, 0) + one!.config.size + one!.manifest.size,
    );
  });

  test('layers hold the files with parents added, owners and modes as given', () => {
    const dir = join(tmp, 'files');
    const [w] = writeImages([images[0]!], { dir });
    const { blob } = readLayout(dir);
    assert.deepEqual(gnuList(gunzipSync(blob(w!.layers[0]!.digest))), [
      'drwxr-xr-x 0/0 0 1970-01-01 00:00 bin/',
      'lrwxrwxrwx 0/0 0 1970-01-01 00:00 bin/sh-less -> /nowhere',
      'drwxr-xr-x 0/0 0 1970-01-01 00:00 etc/',
      '-rw-r--r-- 0/0 36 1970-01-01 00:00 etc/passwd',
      'drwxr-xr-x 0/0 0 1970-01-01 00:00 home/',
      'drwx------ 65532/65532 0 1970-01-01 00:00 home/nonroot/',
    ]);
  });

  test('writing twice gives the same bytes; the archive holds the same files as the folder', () => {
    const a = join(tmp, 'a');
    const b = join(tmp, 'b');
    writeImages(images, { dir: a, archive: `${a}.tar` });
    writeImages(images, { dir: b, archive: `${b}.tar` });
    assert.deepEqual(readFileSync(`${a}.tar`), readFileSync(`${b}.tar`));
    const x = join(tmp, 'x');
    execFileSync('mkdir', ['-p', x]);
    execFileSync('tar', ['-xf', `${a}.tar`, '-C', x]);
    const list = (d: string) =>
      (readdirSync(d, { recursive: true }) as string[])
        .filter((f) => statSync(join(d, f)).isFile())
        .sort()
        .map((f) => [f, sha256(readFileSync(join(d, f)))]);
    assert.deepEqual(list(x), list(a));
  });

  test('writeImage writes one image; bad paths are named', () => {
    const w = writeImage({
      ref: 'example.test/single:1',
      layers: [app],
      config: {},
      archive: join(tmp, 's.tar'),
    });
    assert.match(w.manifest.digest, /^sha256:[0-9a-f]{64}$/);
    assert.throws(
      () =>
        writeImage({
          ref: 'r',
          layers: [{ files: [{ path: 'rel', data: '' }] }],
          config: {},
          dir: join(tmp, 'bad'),
        }),
      /"rel" must be absolute/,
    );
    assert.throws(
      () =>
        writeImage({
          ref: 'r',
          layers: [{ files: [{ path: '/f', source: join(tmp, 'none') }] }],
          config: {},
          dir: join(tmp, 'bad'),
        }),
      /image file \/f: cannot read/,
    );
    assert.throws(() => writeImages(images, {}), /give a layout folder/);
  });
});
