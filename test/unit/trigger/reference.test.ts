import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { referenceMarkdown } from '../../../src/trigger/reference.ts';

const doc = readFileSync(new URL('../../../docs/reference.md', import.meta.url), 'utf8');

test('docs/reference.md is exactly what the CRD schema renders (node scripts/gen-crd.ts)', () => {
  assert.equal(doc, referenceMarkdown());
});

test('the reference lists the seed fields, required where the seed required them', () => {
  for (const [field, required] of [
    ['spec.pulsar.topic', 'yes'],
    ['spec.pulsar.broker', 'yes'],
    ['spec.pulsar.auth-token', ''],
    ['spec.kubeless.function', 'yes'],
    ['spec.deployment', ''],
  ] as const) {
    const row = doc.split('\n').find((l) => l.startsWith(`| \`${field}\` |`));
    assert.ok(row, `${field} is documented`);
    assert.equal(row.split(' | ')[2]?.trim(), required, `${field} required column`);
  }
});
