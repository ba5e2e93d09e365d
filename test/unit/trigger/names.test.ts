// The rules on the broker and function URLs (src/trigger/names.ts), the TypeScript side; the CEL side runs in the
// real API server (test/integration/controller/validation.test.ts), on the same values.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { openApiSchema } from '../../../src/trigger/crd.ts';
import {
  BROKER_CEL,
  BROKER_MESSAGE,
  BROKER_PORT_CEL,
  BROKER_PORT_MESSAGE,
  brokerFormOk,
  brokerPortsOk,
  FUNCTION_PORT_CEL,
  FUNCTION_PORT_MESSAGE,
  FUNCTION_URL_MESSAGE,
  functionUrlFormOk,
  functionUrlPortOk,
  PORT_PATTERN,
} from '../../../src/trigger/names.ts';
import { validateSpec } from '../../../src/trigger/spec.ts';

test('PORT_PATTERN is exactly 1 to 65535 (leading zeros allowed)', () => {
  const re = new RegExp(`^${PORT_PATTERN}$`);
  for (let p = 0; p <= 70_000; p++) assert.equal(re.test(String(p)), p >= 1 && p <= 65535, String(p));
  for (const ok of ['06650', '0001']) assert.ok(re.test(ok), ok);
  for (const bad of ['', '0', '00', '-1', '+1', '6650x', ' 6650', '1e3', '99999999999999999999']) {
    assert.ok(!re.test(bad), bad);
  }
});

test('broker form rule: pulsar:// or pulsar+ssl://, a host, an optional path', () => {
  for (const ok of ['pulsar://pulsar.addr:6650', 'pulsar+ssl://b:6651', 'pulsar://b', 'pulsar://a:1,b:2/'])
    assert.ok(brokerFormOk(ok), ok);
  for (const bad of ['http://b:6650', 'pulsar://', 'pulsar:// b:6650', 'pulsar:b:6650', 'b:6650'])
    assert.ok(!brokerFormOk(bad), bad);
});

test('broker port rule: every host has no port or one from 1 to 65535', () => {
  for (const ok of [
    'pulsar://pulsar.addr:6650',
    'pulsar+ssl://pulsar.addr:6651',
    'pulsar://pulsar.addr',
    'pulsar://b:65535/',
    'pulsar://b:1',
    'pulsar://b:06650',
    'pulsar://a:6650,b:6651,c',
    'pulsar://[::1]:6650',
    'pulsar://[fe80::1]',
    'pulsar://10.0.0.1:6650',
  ])
    assert.ok(brokerPortsOk(ok), ok);
  for (const bad of [
    'pulsar://b:0',
    'pulsar://b:65536',
    'pulsar://b:99999999999',
    'pulsar://b:x',
    'pulsar://b:',
    'pulsar://b:6650:6651',
    'pulsar://a:6650,b:70000',
    'pulsar://a:6650,,b:6650',
    'pulsar://[::1]:0',
    'pulsar://:6650',
  ])
    assert.ok(!brokerPortsOk(bad), bad);
  // A URL of the wrong form is the form rule's: the port rule says nothing.
  assert.ok(brokerPortsOk('http://b:0'));
});

test('function form rule: an http(s) URL with a host, whatever number the port is (as CEL url() reads it)', () => {
  for (const ok of [
    'http://myfunction.default:8080',
    'https://f.d',
    'http://f.d:99999',
    'http://[::1]:70000/x',
  ])
    assert.ok(functionUrlFormOk(ok), ok);
  for (const bad of [
    'ftp://f.d:21',
    'myfunction.default:8080',
    'http://f.d:abc',
    'http://',
    'ftp://f.d:99999',
  ])
    assert.ok(!functionUrlFormOk(bad), bad);
});

test('function port rule: no port, or one from 1 to 65535', () => {
  for (const ok of [
    'http://myfunction.default:8080',
    'https://f.d',
    'http://f.d:',
    'http://f.d:65535/path?q=1#x',
    'http://u:p@f.d:1/',
    'http://[::1]:8080',
    'http://f.d:08080',
  ])
    assert.ok(functionUrlPortOk(ok), ok);
  for (const bad of [
    'http://f.d:0',
    'http://f.d:65536',
    'https://f.d:99999999999/x',
    'http://[::1]:70000',
    'http://u:p@f.d:70000/x',
    'http://f.d:0000',
  ])
    assert.ok(!functionUrlPortOk(bad), bad);
  // A URL of the wrong form is the form rule's.
  assert.ok(functionUrlPortOk('ftp://f.d:99999'));
});

test('validateSpec names spec.pulsar.broker and spec.kubeless.function with the rule that failed', () => {
  const spec = (broker: string, fn: string) => ({
    pulsar: { topic: 't', broker },
    kubeless: { function: fn },
  });
  const issues = (broker: string, fn: string) => {
    const r = validateSpec(spec(broker, fn));
    return r.ok ? [] : r.error.issues.map((i) => `${i.path}: ${i.message}`);
  };
  assert.deepEqual(issues('pulsar://b:6650', 'http://f.d:8080'), []);
  assert.deepEqual(issues('pulsar://b:65536', 'http://f.d:8080'), [
    `spec.pulsar.broker: ${BROKER_PORT_MESSAGE}`,
  ]);
  assert.deepEqual(issues('http://b:6650', 'http://f.d:8080'), [`spec.pulsar.broker: ${BROKER_MESSAGE}`]);
  assert.deepEqual(issues('pulsar://b:6650', 'http://f.d:0'), [
    `spec.kubeless.function: ${FUNCTION_PORT_MESSAGE}`,
  ]);
  assert.deepEqual(issues('pulsar://b:6650', 'http://f.d:65536'), [
    `spec.kubeless.function: ${FUNCTION_PORT_MESSAGE}`,
  ]);
  assert.deepEqual(issues('pulsar://b:6650', 'ftp://f.d:21'), [
    `spec.kubeless.function: ${FUNCTION_URL_MESSAGE}`,
  ]);
});

test('the CRD carries the same rules for the API server', () => {
  // biome-ignore lint/suspicious/noExplicitAny: walking the generated schema
  const spec = (openApiSchema() as any).properties.spec.properties;
  const rulesOf = (node: { 'x-kubernetes-validations'?: { rule: string; message: string }[] }) =>
    (node['x-kubernetes-validations'] ?? []).map((v) => [v.rule, v.message]);
  assert.deepEqual(rulesOf(spec.pulsar.properties.broker), [
    [BROKER_CEL, BROKER_MESSAGE],
    [BROKER_PORT_CEL, BROKER_PORT_MESSAGE],
  ]);
  assert.equal(spec.pulsar.properties.broker.pattern, undefined, 'the form is a CEL rule with a message now');
  assert.deepEqual(rulesOf(spec.kubeless.properties.function)[1], [FUNCTION_PORT_CEL, FUNCTION_PORT_MESSAGE]);
});
