// The test node's pause image, kpt.local/pause:1: one static binary (pause.c, built with gcc -static) at /pause,
// run as 65535, written as an OCI archive by the project's own image writer (scripts/image/oci.ts) for
// `ctr images import`. The binary is compiled once per source and kept under ${KPT_CACHE:-~/.cache/kpt}/pause.

import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { writeImage } from '../../scripts/image/oci.ts';

export const PAUSE_REF = 'kpt.local/pause:1';

const source = join(import.meta.dirname, 'pause.c');
const flags = ['-static', '-Os', '-s', '-Wall', '-Wextra', '-Werror'];

/** The compiled pause binary (built on first use, then cached by the hash of its source and flags). */
export function pauseBinary(): string {
  const hash = createHash('sha256')
    .update(readFileSync(source))
    .update(flags.join(' '))
    .digest('hex')
    .slice(0, 16);
  const dir = join(process.env.KPT_CACHE || join(homedir(), '.cache', 'kpt'), 'pause');
  const binary = join(dir, `pause-${hash}`);
  if (existsSync(binary)) return binary;
  mkdirSync(dir, { recursive: true });
  const tmp = `${binary}.${process.pid}.tmp`;
  const r = spawnSync('gcc', [...flags, '-o', tmp, source], { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    throw new Error(
      `gcc ${flags.join(' ')} -o ${tmp} ${source} failed: ${r.error?.message ?? r.stderr.trim()}` +
        ' (a static build needs gcc and libc6-dev)',
    );
  }
  renameSync(tmp, binary);
  return binary;
}

/** Writes the pause image as an OCI archive, `outDir`/pause.oci.tar, and returns its path and reference. */
export function buildPauseImage(outDir: string): { archive: string; ref: string } {
  const archive = join(outDir, 'pause.oci.tar');
  writeImage({
    ref: PAUSE_REF,
    layers: [
      {
        files: [{ path: '/pause', source: pauseBinary(), mode: 0o755 }],
        createdBy: 'gcc -static testenv/pause/pause.c',
      },
    ],
    config: { entrypoint: ['/pause'], user: '65535:65535' },
    archive,
  });
  return { archive, ref: PAUSE_REF };
}
