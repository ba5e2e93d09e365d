// Regenerates src/pulsar/proto/generated/ from src/pulsar/proto/PulsarApi.proto with ts-proto through buf
// (both from node_modules, offline). The generated code is committed: tests and the build never run this.
//
// One post-processing step: ts-proto encodes proto2 `required` scalar fields like proto3 implicit-presence fields
// and skips them when they hold the zero value (entryId 0, sequence_id 0, an empty KeyValue value...). The broker
// rejects a command missing a required field, so every required scalar is made unconditional in the encoders.
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const protoDir = join(root, 'src/pulsar/proto');
const outFile = join(protoDir, 'generated/PulsarApi.ts');

const bin = join(root, 'node_modules/.bin');
execFileSync(join(bin, 'buf'), ['generate', protoDir, '--template', join(protoDir, 'buf.gen.yaml')], {
  cwd: root,
  stdio: 'inherit',
  env: { ...process.env, PATH: `${bin}:${process.env.PATH ?? ''}` },
});

/** message name → required scalar field names (camelCase, as ts-proto names them). */
function requiredScalars(protoText: string): Map<string, string[]> {
  const scalar = new Set([
    'double',
    'float',
    'int32',
    'int64',
    'uint32',
    'uint64',
    'sint32',
    'sint64',
    'fixed32',
    'fixed64',
    'sfixed32',
    'sfixed64',
    'bool',
    'string',
    'bytes',
  ]);
  const enums = new Set<string>();
  for (const m of protoText.matchAll(/^\s*enum\s+(\w+)\s*\{/gm)) enums.add(m[1] as string);
  const result = new Map<string, string[]>();
  const stack: { kind: 'message' | 'enum'; name: string }[] = [];
  for (const line of protoText.split('\n')) {
    const open = /^\s*(message|enum)\s+(\w+)\s*\{/.exec(line);
    if (open) {
      stack.push({ kind: open[1] as 'message' | 'enum', name: open[2] as string });
      if (line.includes('}')) stack.pop();
      continue;
    }
    if (/^\s*\}/.test(line)) {
      stack.pop();
      continue;
    }
    const field = /^\s*required\s+(\w+)\s+(\w+)\s*=/.exec(line);
    const top = stack.at(-1);
    if (!field || !top || top.kind !== 'message') continue;
    const [, type, name] = field as unknown as [string, string, string];
    if (!scalar.has(type) && !enums.has(type)) continue;
    const tsMessage = stack
      .filter((s) => s.kind === 'message')
      .map((s) => s.name)
      .join('_');
    const camel = name.replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase());
    const list = result.get(tsMessage) ?? [];
    list.push(camel);
    result.set(tsMessage, list);
  }
  return result;
}

let code = readFileSync(outFile, 'utf8');
const required = requiredScalars(readFileSync(join(protoDir, 'PulsarApi.proto'), 'utf8'));
let patched = 0;
for (const [message, fields] of required) {
  const start = code.indexOf(`export const ${message}: MessageFns<${message}> = {`);
  if (start < 0) throw new Error(`gen-proto: generated encoder for ${message} not found`);
  const end = code.indexOf('  decode(', start);
  let encoder = code.slice(start, end);
  for (const field of fields) {
    const guard = new RegExp(`if \\(message\\.${field}(?:\\.length)? !== (?!undefined)[^)]*\\) \\{`);
    if (!guard.test(encoder)) throw new Error(`gen-proto: no zero-value guard for ${message}.${field}`);
    encoder = encoder.replace(guard, `/* required */ {`);
    patched++;
  }
  code = code.slice(0, start) + encoder + code.slice(end);
}
writeFileSync(outFile, code);
console.log(`gen-proto: wrote ${outFile} (${patched} required fields always encoded)`);
