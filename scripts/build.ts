// Builds what the image runs: one self-contained ES module per subcommand (dist/cli/<name>.js), bundled and
// minified by esbuild from src/cli/<name>.ts with its dependencies inside, so the image needs no node_modules.
// bin/kubeless-pulsar-trigger.js runs dist/cli/<name>.js when it exists, else the TypeScript sources.
//
// Why a bundle rather than tsc's one file per module: the dispatcher's idle RSS (bench/dispatcher.ts, goal
// < 64 MiB). Loading ~400 separate modules kept every source whole in the heap and made Node's module loader hot
// enough to be optimised at start; one minified file with only what is reachable measured ~82 MiB → ~64 MiB
// together with the narrower imports noted at their sites (undici's Pool, prom-client's classes, zod/mini).
//
// Usage: node scripts/build.ts [--outdir DIR]   (default: dist, next to bin/)

import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'esbuild';

const root = join(import.meta.dirname, '..');
const i = process.argv.indexOf('--outdir');
const outdir = i > 0 ? process.argv[i + 1]! : join(root, 'dist');

export const COMMANDS = ['controller', 'dispatcher', 'run'] as const;

rmSync(join(outdir, 'cli'), { recursive: true, force: true });
const result = await build({
  entryPoints: COMMANDS.map((c) => join(root, 'src', 'cli', `${c}.ts`)),
  outdir: join(outdir, 'cli'),
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node22',
  // Identifiers keep their names, so stack traces in logs stay readable; whitespace and syntax are minified.
  minifyWhitespace: true,
  minifySyntax: true,
  // Pure ASCII output: V8 then keeps the source as a one-byte string (a non-ASCII character doubles it).
  charset: 'ascii',
  legalComments: 'none',
  // Each entry is one file: a chunk shared between them would be a second module to load for nothing.
  splitting: false,
  // The CommonJS dependencies (undici, pino, prom-client) call require() for Node's builtins.
  banner: {
    js: "import { createRequire as __kptRequire } from 'node:module'; const require = __kptRequire(import.meta.url);",
  },
  alias: { 'node:http2': join(root, 'scripts', 'bundle-shims', 'no-http2.cjs') },
  logLevel: 'warning',
  metafile: true,
});
for (const [file, out] of Object.entries(result.metafile.outputs)) {
  process.stdout.write(`${file.replace(`${root}/`, '')}  ${(out.bytes / 1024).toFixed(0)} KiB\n`);
}
