import assert from 'node:assert/strict';
import { test } from 'node:test';
import { keySharedPolicyProblem, subscribe } from '../../../src/pulsar/commands.ts';
import { KeySharedMode } from '../../../src/pulsar/proto/generated/PulsarApi.ts';

const base = {
  topic: 'persistent://public/default/t',
  subscription: 's',
  consumerId: 1n,
  requestId: 2n,
  initialPosition: 'Latest' as const,
  durable: true,
};

test('Key_Shared: auto-split by default, sticky ranges as given', () => {
  const auto = subscribe({ ...base, subscriptionType: 'Key_Shared' }).subscribe?.keySharedMeta;
  assert.deepEqual(auto, {
    keySharedMode: KeySharedMode.AUTO_SPLIT,
    hashRanges: [],
    allowOutOfOrderDelivery: false,
  });
  const sticky = subscribe({
    ...base,
    subscriptionType: 'Key_Shared',
    keySharedPolicy: {
      mode: 'Sticky',
      ranges: [
        [0, 99],
        [200, 299],
      ],
      allowOutOfOrderDelivery: true,
    },
  }).subscribe?.keySharedMeta;
  assert.deepEqual(sticky, {
    keySharedMode: KeySharedMode.STICKY,
    hashRanges: [
      { start: 0, end: 99 },
      { start: 200, end: 299 },
    ],
    allowOutOfOrderDelivery: true,
  });
  assert.equal(subscribe({ ...base, subscriptionType: 'Shared' }).subscribe?.keySharedMeta, undefined);
});

test('Key_Shared: sticky ranges are validated', () => {
  assert.equal(keySharedPolicyProblem({ mode: 'AutoSplit' }), undefined);
  assert.equal(keySharedPolicyProblem({ mode: 'Sticky', ranges: [[0, 65535]] }), undefined);
  assert.match(keySharedPolicyProblem({ mode: 'Sticky', ranges: [] }) ?? '', /at least one/);
  assert.match(keySharedPolicyProblem({ mode: 'Sticky', ranges: [[5, 4]] }) ?? '', /invalid hash range/);
  assert.match(keySharedPolicyProblem({ mode: 'Sticky', ranges: [[0, 70000]] }) ?? '', /invalid hash range/);
  assert.match(
    keySharedPolicyProblem({
      mode: 'Sticky',
      ranges: [
        [100, 200],
        [0, 100],
      ],
    }) ?? '',
    /overlaps/,
  );
});
