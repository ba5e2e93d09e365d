// The test node's pause image (testenv/pause): an OCI archive named kpt.local/pause:1 whose only file is a static
// /pause that blocks until SIGTERM or SIGINT and then exits 0.

import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { sha256 } from '../../../scripts/image/oci.ts';
import { buildPauseImage, PAUSE_REF } from '../../../testenv/pause/image.ts';

const tmp = mkdtempSync(join(tmpdir(), 'kpt-pause-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

let archive = '';
let layout = '';
const blob = (digest: string) => readFileSync(join(layout, 'blobs', 'sha256', digest.replace('sha256:', '')));

before(() => {
  const built = buildPauseImage(join(tmp, 'out'));
  assert.equal(built.ref, PAUSE_REF);
  archive = built.archive;
  layout = join(tmp, 'layout');
  mkdirSync(layout);
  execFileSync('tar', ['-xf', archive, '-C', layout]);
  // The image's single layer, unpacked: /pause.
  const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8'));
  const manifest = JSON.parse(blob(index.manifests[0].digest).toString());
  mkdirSync(join(tmp, 'rootfs'));
  execFileSync('tar', ['-xzf', '-', '-C', join(tmp, 'rootfs')], { input: blob(manifest.layers[0].digest) });
});

test('the archive is an OCI layout naming kpt.local/pause:1, with valid digests', () => {
  const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8'));
  assert.equal(index.manifests.length, 1);
  const [m] = index.manifests;
  assert.equal(m.annotations['org.opencontainers.image.ref.name'], 'kpt.local/pause:1');
  assert.equal(m.annotations['io.containerd.image.name'], 'kpt.local/pause:1');
  assert.equal(sha256(blob(m.digest)), m.digest);
  const manifest = JSON.parse(blob(m.digest).toString());
  assert.equal(manifest.mediaType, 'application/vnd.oci.image.manifest.v1+json');
  assert.equal(sha256(blob(manifest.config.digest)), manifest.config.digest);
  const config = JSON.parse(blob(manifest.config.digest).toString());
  assert.deepEqual(config.config, { User: '65535:65535', Entrypoint: ['/pause'] });
  assert.equal(manifest.layers.length, 1);
  const layer = gunzipSync(blob(manifest.layers[0].digest));
  assert.equal(sha256(layer), config.rootfs.diff_ids[0]);
  assert.deepEqual(
    execFileSync('tar', ['-tvf', '-', '--numeric-owner'], { input: layer, encoding: 'utf8' })
      .trim()
      .split('\n')
      .map((l) => l.split(/\s+/).filter((_, i) => i !== 2 && i !== 3 && i !== 4)),
    [['-rwxr-xr-x', '0/0', 'pause']],
  );
});

test('/pause is static, and exits 0 on SIGTERM and SIGINT only', async () => {
  const pause = join(tmp, 'rootfs', 'pause');
  assert.match(execFileSync('file', [pause], { encoding: 'utf8' }), /statically linked/);
  let ldd = '';
  try {
    ldd = execFileSync('ldd', [pause], { encoding: 'utf8', stdio: 'pipe' });
  } catch (err) {
    ldd = String((err as { stdout?: string }).stdout) + String((err as { stderr?: string }).stderr);
  }
  assert.match(ldd, /not a dynamic executable/);
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    const child = spawn(pause, [], { stdio: 'ignore' });
    const exited = new Promise<[number | null, string | null]>((resolve) =>
      child.on('exit', (code, sig) => resolve([code, sig])),
    );
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(child.exitCode, null, 'still running before the signal');
    child.kill('SIGCHLD'); // a stray SIGCHLD with no child to reap changes nothing
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(child.exitCode, null, 'still running after SIGCHLD');
    child.kill(signal);
    assert.deepEqual(await exited, [0, null], `exit status after ${signal}`);
  }
});

test('as PID 1 of a PID namespace, /pause reaps the orphans it inherits', async () => {
  const pause = join(tmp, 'rootfs', 'pause');
  const holder = spawn('unshare', ['--pid', '--fork', '--kill-child', pause], { stdio: 'ignore' });
  const exited = new Promise<number | null>((resolve) => holder.on('exit', (code) => resolve(code)));
  let pid = '';
  try {
    for (let i = 0; i < 50 && !pid; i++) {
      await new Promise((r) => setTimeout(r, 50));
      pid = readFileSync(`/proc/${holder.pid}/task/${holder.pid}/children`, 'utf8').trim();
    }
    assert.match(pid, /^\d+$/, 'unshare started /pause');
    // sh exits at once; its background sleep is orphaned to the namespace's init, /pause, and exits later.
    // (stdio ignored: a pipe would be held open by the sleep, and execFileSync would wait for it to end.)
    execFileSync('nsenter', ['-t', pid, '-p', '--', 'sh', '-c', 'sleep 0.3 & exit 0'], { stdio: 'ignore' });
    const children = () => readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
    assert.notEqual(children(), '', 'the orphan is a child of /pause');
    await new Promise((r) => setTimeout(r, 800));
    assert.equal(children(), '', 'no child left, zombie or not');
    process.kill(Number(pid), 'SIGTERM');
    assert.equal(await exited, 0, '/pause exited 0 on SIGTERM, and unshare with it');
  } finally {
    // Stop /pause itself first: killing only unshare would leave it to die orphaned, a zombie of the host's init.
    if (holder.exitCode === null) {
      if (pid) process.kill(Number(pid), 'SIGKILL');
      holder.kill('SIGKILL');
    }
    await exited;
  }
});
