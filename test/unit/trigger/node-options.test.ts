import assert from 'node:assert/strict';
import { test } from 'node:test';
import { dispatcherNodeOptions, memoryBytes } from '../../../src/trigger/node-options.ts';
import { DEFAULT_RESOURCES, type JsonObject, renderTrigger } from '../../../src/trigger/render.ts';
import type { PulsarTrigger, TriggerSpec } from '../../../src/trigger/spec.ts';

function trigger(spec: Partial<TriggerSpec> & Record<string, unknown> = {}): PulsarTrigger {
  return {
    apiVersion: 'kubeless.io/v1',
    kind: 'PulsarTrigger',
    metadata: { name: 'mytrigger', namespace: 'default' },
    spec: {
      pulsar: { topic: 'persistent://public/default/mytopic', broker: 'pulsar://pulsar.addr:6650' },
      kubeless: { function: 'http://myfunction.default:8080' },
      ...spec,
    } as TriggerSpec,
  };
}

function dispatcherEnv(t: PulsarTrigger): { name: string; value?: string }[] {
  const r = renderTrigger(t, {
    dispatcherImage: 'kpt/dispatcher:1',
    timezone: 'UTC',
    resources: DEFAULT_RESOURCES,
  });
  assert.ok(r.ok, r.ok ? '' : r.error.message);
  // biome-ignore lint/suspicious/noExplicitAny: walking rendered JSON in assertions
  return ((r.value.deployment as JsonObject).spec as any).template.spec.containers[0].env;
}

test('memory quantities in bytes: binary and decimal suffixes, plain numbers; unreadable ones are undefined', () => {
  assert.equal(memoryBytes('1Gi'), 2 ** 30);
  assert.equal(memoryBytes('512Mi'), 512 * 2 ** 20);
  assert.equal(memoryBytes('800M'), 800e6);
  assert.equal(memoryBytes('1e9'), 1e9);
  assert.equal(memoryBytes(1073741824), 2 ** 30);
  assert.equal(memoryBytes('lots'), undefined);
  assert.equal(memoryBytes(undefined), undefined);
});

test('the old space is an eighth of the limit, at least 64 MiB and at most 2 GiB; the young generation is fixed', () => {
  assert.equal(dispatcherNodeOptions('1Gi'), '--max-semi-space-size=4 --max-old-space-size=128');
  assert.equal(dispatcherNodeOptions('256Mi'), '--max-semi-space-size=4 --max-old-space-size=64');
  assert.equal(dispatcherNodeOptions('4Gi'), '--max-semi-space-size=4 --max-old-space-size=512');
  assert.equal(dispatcherNodeOptions('64Gi'), '--max-semi-space-size=4 --max-old-space-size=2048');
  assert.equal(dispatcherNodeOptions(undefined), dispatcherNodeOptions('1Gi'));
});

test("the rendered dispatcher gets NODE_OPTIONS sized from its container's memory limit", () => {
  const byDefault = dispatcherEnv(trigger()).find((e) => e.name === 'NODE_OPTIONS');
  assert.equal(byDefault?.value, dispatcherNodeOptions(DEFAULT_RESOURCES.limits?.memory));
  const bigger = dispatcherEnv(
    trigger({
      deployment: {
        spec: { template: { spec: { containers: [{ resources: { limits: { memory: '4Gi' } } }] } } },
      },
    }),
  ).find((e) => e.name === 'NODE_OPTIONS');
  assert.equal(bigger?.value, dispatcherNodeOptions('4Gi'));
});

test("a user's own NODE_OPTIONS is kept, and ours is not added next to it", () => {
  const env = dispatcherEnv(
    trigger({
      deployment: {
        spec: {
          template: {
            spec: { containers: [{ env: [{ name: 'NODE_OPTIONS', value: '--max-old-space-size=300' }] }] },
          },
        },
      },
    }),
  );
  assert.deepEqual(
    env.filter((e) => e.name === 'NODE_OPTIONS'),
    [{ name: 'NODE_OPTIONS', value: '--max-old-space-size=300' }],
  );
});
