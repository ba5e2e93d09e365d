// A change of subscription type on a running trigger, end to end on the real node: the broker refuses a consumer of
// another type while one is attached, so the controller replaces the Deployment instead of rolling it (a rolling
// update would wait forever for the new pod to subscribe). The new pod subscribes with the new type and everything
// published before, during and after reaches the function.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { FunctionServer } from '../../../examples/function.ts';
import { pulsarPlain } from '../../support/env.ts';
import { bodies, type E2E, publish, readmeTrigger, startE2E, waitUntil } from './fixture.ts';

const TIMEOUT = 180_000;

async function subscriptionType(topic: string, subscription: string): Promise<string | undefined> {
  const r = await fetch(`${pulsarPlain().adminUrl}/admin/v2/${topic.replace('://', '/')}/stats`);
  const stats = (await r.json()) as {
    subscriptions?: Record<string, { type?: string; consumers?: unknown[] }>;
  };
  const s = stats.subscriptions?.[subscription];
  return s && (s.consumers?.length ?? 0) > 0 ? s.type : undefined;
}

describe('changing the subscription type of a running trigger', { timeout: 600_000 }, () => {
  let fx: E2E;
  let fn: FunctionServer;
  before(async () => {
    fx = await startE2E('type');
    await fx.installController();
    fn = await fx.startFunction('type');
  });
  after(async () => {
    await fx?.close();
  });

  test('ordering none (Shared) to key (Key_Shared): replaced, subscribed with the new type, nothing lost', async () => {
    const name = 'typed';
    const topic = `persistent://public/default/e2e-type-${fx.suffix}`;
    const subscription = `${name}-${fx.ns}`;
    const t = readmeTrigger(fx.ns, name, topic, fn.url) as { spec: Record<string, unknown> };
    t.spec.delivery = { ordering: 'none' };
    await fx.apply(t);
    await waitUntil(
      'a Shared consumer',
      async () => (await subscriptionType(topic, subscription)) === 'Shared',
      TIMEOUT,
      fx,
    );
    const first = await fx.deployment(name);
    const before = await publish(topic, 10, 'before');
    t.spec.delivery = { ordering: 'key' };
    await fx.apply(t);
    const during = await publish(topic, 10, 'during');
    await waitUntil(
      'a Key_Shared consumer on a new Deployment, ready',
      async () => {
        const d = await fx.deployment(name);
        return (
          d !== undefined &&
          d.metadata?.uid !== first?.metadata?.uid &&
          d.status?.readyReplicas === 1 &&
          (await subscriptionType(topic, subscription)) === 'Key_Shared'
        );
      },
      TIMEOUT,
      fx,
    );
    const d = await fx.deployment(name);
    assert.equal(d?.metadata?.annotations?.['kubeless.io/subscription-type'], 'Key_Shared');
    const after = await publish(topic, 10, 'after');
    await waitUntil(
      'every message reached the function',
      () => [...before, ...during, ...after].every((p) => bodies(fn).includes(p)),
      TIMEOUT,
      fx,
    );
  });
});
