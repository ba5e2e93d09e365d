// The images the real node runs: the project's controller and dispatcher images, built as `make image` builds them
// (scripts/image.ts, into dist/image/), and the pause image of every pod sandbox (testenv/pause/). Both come as OCI
// archives that testenv/node.ts imports into containerd; no registry is involved.

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildPauseImage } from './pause/image.ts';
import { cacheDir } from './pulsar.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

export interface NodeImages {
  /** OCI archive holding both project images. */
  archive: string;
  controller: string;
  dispatcher: string;
  pause: { archive: string; ref: string };
}

/** Builds the project's images (bundles included) and the pause image; returns their archives and references. */
export function ensureImages(): NodeImages {
  const out = join(root, 'dist', 'image');
  execFileSync(process.execPath, [join(root, 'scripts', 'image.ts'), '--out', out], {
    cwd: root,
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const index = JSON.parse(readFileSync(join(out, 'oci', 'index.json'), 'utf8')) as {
    manifests: { annotations?: Record<string, string> }[];
  };
  const refs = index.manifests.map((m) => m.annotations?.['io.containerd.image.name'] ?? '');
  const controller = refs.find((r) => /\/controller[:@]/.test(r));
  const dispatcher = refs.find((r) => /\/dispatcher[:@]/.test(r));
  if (!controller || !dispatcher) {
    throw new Error(
      `testenv: ${out}/oci/index.json names no controller and dispatcher image: ${refs.join(', ')}`,
    );
  }
  const pause = buildPauseImage(join(cacheDir(), 'pause'));
  return { archive: join(out, 'images.tar'), controller, dispatcher, pause };
}
