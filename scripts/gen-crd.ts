// Writes the PulsarTrigger CRD generated from src/trigger/spec.ts to its two checked-in places. `--check` only
// compares, and exits 1 when a file is stale (the unit test does the same).

import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { crdYaml } from '../src/trigger/crd.ts';
import { referenceMarkdown } from '../src/trigger/reference.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
export const CRD_FILES = ['deploy/crd.yaml', 'deploy/chart/kubeless-pulsar-trigger/crds/crd.yaml'];
export const REFERENCE_FILE = 'docs/reference.md';

function main(argv: string[]): number {
  const check = argv.includes('--check');
  let stale = 0;
  const wanted: [string, string][] = [
    ...CRD_FILES.map((f): [string, string] => [f, crdYaml()]),
    [REFERENCE_FILE, referenceMarkdown()],
  ];
  for (const [file, want] of wanted) {
    const path = join(root, file);
    let have: string | undefined;
    try {
      have = readFileSync(path, 'utf8');
    } catch {
      have = undefined;
    }
    if (have === want) continue;
    if (check) {
      process.stderr.write(`${file} differs from src/trigger/spec.ts: run node scripts/gen-crd.ts\n`);
      stale++;
    } else {
      writeFileSync(path, want);
      process.stdout.write(`wrote ${file}\n`);
    }
  }
  return stale === 0 ? 0 : 1;
}

if (import.meta.url === `file://${process.argv[1]}`) process.exitCode = main(process.argv.slice(2));
