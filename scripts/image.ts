// Builds the controller and dispatcher images without a container engine, as an OCI image layout:
//   dist/image/oci/      the layout folder: index.json names both images by their full reference
//   dist/image/images.tar the same layout as one tar file (`ctr images import`, `skopeo copy oci-archive:`)
// Both images have the same three layers (Debian runtime files, node, /app; scripts/image/contents.ts) and differ
// only in their config (Cmd, ExposedPorts). The references are the chart's, computed as deploy/Makefile's
// print-images does: values.yaml's image.repository / dispatcher.deployment.image, tagged IMAGE_TAG if given,
// else the values' tag, else Chart.yaml's appVersion.
//
// Usage: node scripts/image.ts [--out DIR] [--bundle DIR] [--node PATH] [--tag TAG]
//                              [--controller-ref REF] [--dispatcher-ref REF]
//        node scripts/image.ts --rootfs DIR [--bundle DIR] [--node PATH]
//   --out      where oci/ and images.tar go (default dist/image)
//   --bundle   scripts/build.ts's output folder (with cli/*.js); default: build it into <out>/bundle
//   --node     the Node binary to ship (default: the root Makefile's, .tools/node-<NODE_VERSION>/...)
//   --tag      tag of both images (default $IMAGE_TAG, else the chart's)
//   --rootfs   write only the images' root filesystem into DIR (what deploy/Dockerfile copies into scratch)
// Layer mtimes are $SOURCE_DATE_EPOCH or 0; the config's "created" is $SOURCE_DATE_EPOCH or the last commit's
// time. Two builds of one commit give the same digests.

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import {
  appLayer,
  BASE_CONFIG,
  cacheRoot,
  chartRefs,
  debianPackages,
  makefileNode,
  nodeLayer,
  runtimeLayer,
  sourceDateEpoch,
  TARGETS,
  type Target,
} from './image/contents.ts';
import { type ImageSpec, writeImages, writeTree } from './image/oci.ts';

const root = join(import.meta.dirname, '..');

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

async function main(): Promise<void> {
  const { values: opts } = parseArgs({
    options: {
      out: { type: 'string', default: join(root, 'dist', 'image') },
      bundle: { type: 'string' },
      node: { type: 'string' },
      tag: { type: 'string' },
      'controller-ref': { type: 'string' },
      'dispatcher-ref': { type: 'string' },
      rootfs: { type: 'string' },
    },
  });
  const out = resolve(opts.out);
  const node = resolve(opts.node ?? makefileNode(root));
  if (!existsSync(node)) throw new Error(`node binary ${node} not found: run \`make deps\` (or give --node)`);

  let bundle = opts.bundle && resolve(opts.bundle);
  if (!bundle) {
    bundle = join(out, 'bundle');
    const r = spawnSync(process.execPath, [join(root, 'scripts', 'build.ts'), '--outdir', bundle], {
      stdio: 'inherit',
    });
    if (r.status !== 0)
      throw new Error(`scripts/build.ts --outdir ${bundle} failed (${r.status ?? r.signal})`);
  }

  const packages = debianPackages(join(cacheRoot(), 'image-debs'));
  const layers = [runtimeLayer(node, packages), nodeLayer(node), appLayer(root, bundle)];
  const mtime = process.env.SOURCE_DATE_EPOCH ? sourceDateEpoch(root) : 0;

  if (opts.rootfs) {
    writeTree(layers, resolve(opts.rootfs), mtime);
    process.stdout.write(`root filesystem written to ${resolve(opts.rootfs)}\n`);
    return;
  }

  const chart = await chartRefs(root, opts.tag || process.env.IMAGE_TAG);
  const refs: Record<Target, string> = {
    controller: opts['controller-ref'] || chart.controller,
    dispatcher: opts['dispatcher-ref'] || chart.dispatcher,
  };
  const images: ImageSpec[] = (Object.keys(TARGETS) as Target[]).map((target) => ({
    ref: refs[target],
    layers,
    config: { ...BASE_CONFIG, ...TARGETS[target] },
  }));
  const written = writeImages(images, {
    dir: join(out, 'oci'),
    archive: join(out, 'images.tar'),
    mtime,
    created: new Date(sourceDateEpoch(root) * 1000),
    cacheDir: join(cacheRoot(), 'image-layers'),
  });
  for (const w of written) {
    process.stdout.write(
      `${w.ref}\n  manifest ${w.manifest.digest}\n  config   ${w.config.digest}\n` +
        `  size     ${mib(w.compressedSize)} compressed (${w.compressedSize} bytes), ` +
        `${mib(w.unpackedSize)} unpacked (${w.unpackedSize} bytes)\n`,
    );
  }
  const [first] = written;
  for (const [i, l] of (first?.layers ?? []).entries()) {
    process.stdout.write(`layer ${i + 1}: ${l.digest} ${mib(l.size)} (${layers[i]!.createdBy})\n`);
  }
  process.stdout.write(`OCI layout: ${join(out, 'oci')}\narchive:    ${join(out, 'images.tar')}\n`);
}

try {
  await main();
} catch (err) {
  process.stderr.write(`scripts/image.ts: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
}
