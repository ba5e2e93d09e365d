#!/usr/bin/env node
// Launcher: `kubeless-pulsar-trigger <controller|dispatcher|run> [options]`. Each subcommand lives in
// src/cli/<name>.ts and exports main(argv) → exit code. The image runs the bundled JavaScript
// (dist/cli/<name>.js, built by `make build` / scripts/build.ts): Node then neither loads the type stripper nor
// loads hundreds of modules at start (RSS and start-up time). Without dist/ (a checkout), Node runs the TypeScript
// directly.

import { existsSync } from 'node:fs';

const commands = ['controller', 'dispatcher', 'run'];

const [name, ...argv] = process.argv.slice(2);
if (!commands.includes(name ?? '')) {
  process.stderr.write(`Usage: kubeless-pulsar-trigger <${commands.join('|')}> [options]\n`);
  process.exit(2);
}
const compiled = new URL(`../dist/cli/${name}.js`, import.meta.url);
const module = existsSync(compiled) ? compiled : new URL(`../src/cli/${name}.ts`, import.meta.url);
const { main } = await import(module.href);
const code = await main(argv);
process.exitCode = code;
setTimeout(() => process.exit(code), 200).unref();
