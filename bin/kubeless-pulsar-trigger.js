#!/usr/bin/env node
// Launcher: `kubeless-pulsar-trigger <controller|dispatcher|run> [options]`. Each subcommand lives in
// src/cli/<name>.ts and exports main(argv) → exit code; Node runs the TypeScript directly (type stripping).

const commands = {
  controller: '../src/cli/controller.ts',
  dispatcher: '../src/cli/dispatcher.ts',
  run: '../src/cli/run.ts',
};

const [name, ...argv] = process.argv.slice(2);
const module = commands[name ?? ''];
if (!module) {
  process.stderr.write(`Usage: kubeless-pulsar-trigger <${Object.keys(commands).join('|')}> [options]\n`);
  process.exit(2);
}
const { main } = await import(new URL(module, import.meta.url).href);
const code = await main(argv);
process.exitCode = code;
setTimeout(() => process.exit(code), 200).unref();
