import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { parse } from 'yaml';
import { CRD_FILES } from '../../../scripts/gen-crd.ts';
import { crdYaml, openApiSchema } from '../../../src/trigger/crd.ts';

const root = new URL('../../../', import.meta.url);

test('the checked-in CRD files are exactly what src/trigger/spec.ts generates', () => {
  const want = crdYaml();
  for (const file of CRD_FILES) {
    assert.equal(
      readFileSync(new URL(file, root), 'utf8'),
      want,
      `${file} is stale: run node scripts/gen-crd.ts`,
    );
  }
});

test('the schema is structural: every node has a type, no additionalProperties: false, no $schema', () => {
  const problems: string[] = [];
  const walk = (node: unknown, path: string): void => {
    if (typeof node !== 'object' || node === null) return;
    const n = node as Record<string, unknown>;
    // Structural schemas let x-kubernetes-int-or-string and x-kubernetes-preserve-unknown-fields nodes omit the type.
    if (
      n.type === undefined &&
      !n['x-kubernetes-preserve-unknown-fields'] &&
      !n['x-kubernetes-int-or-string']
    )
      problems.push(`${path}: no type`);
    if (n['x-kubernetes-int-or-string'] && n.type !== undefined)
      problems.push(`${path}: int-or-string with a type`);
    if (n.additionalProperties === false) problems.push(`${path}: additionalProperties false`);
    if ('$schema' in n || 'anyOf' in n || 'oneOf' in n) problems.push(`${path}: unsupported keyword`);
    for (const [k, v] of Object.entries((n.properties as Record<string, unknown>) ?? {}))
      walk(v, `${path}.${k}`);
    if (n.items) walk(n.items, `${path}[]`);
  };
  walk(openApiSchema(), '');
  assert.deepEqual(problems, []);
});

test('the seed fields are where the seed had them, spec.deployment keeps unknown fields', () => {
  const crd = parse(crdYaml());
  const version = crd.spec.versions[0];
  assert.equal(version.name, 'v1');
  assert.deepEqual(version.subresources, { status: {} });
  const spec = version.schema.openAPIV3Schema.properties.spec;
  assert.deepEqual(spec.required, ['pulsar', 'kubeless']);
  assert.deepEqual(spec.properties.pulsar.required, ['topic', 'broker']);
  assert.equal(spec.properties.pulsar.properties['auth-token'].type, 'string');
  assert.deepEqual(spec.properties.kubeless.required, ['function']);
  assert.equal(spec.properties.deployment['x-kubernetes-preserve-unknown-fields'], true);
  assert.deepEqual(
    version.additionalPrinterColumns.map((c: { name: string }) => c.name),
    ['Broker', 'Topic', 'Function', 'Ready', 'Backlog', 'Oldest', 'Age'],
  );
});

test('the schema sets no defaults: the reconciler renders a trigger once per generation', () => {
  // A schema default would change what the API server returns for a stored object without a new generation, and
  // Reconciler keeps each trigger's plan per uid and generation (src/controller/reconcile.ts).
  const defaults: string[] = [];
  const walk = (node: unknown, path: string) => {
    if (typeof node !== 'object' || node === null) return;
    for (const [k, v] of Object.entries(node)) {
      if (k === 'default' && path.split('.').at(-1) !== 'properties') defaults.push(path);
      walk(v, `${path}.${k}`);
    }
  };
  walk(openApiSchema(), 'openAPIV3Schema');
  assert.deepEqual(defaults, []);
});
