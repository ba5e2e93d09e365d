// The subscription belongs to the trigger, end to end on the real node and broker with the chart's controller: it
// exists as soon as the trigger is reconciled, before any dispatcher runs, so what is published meanwhile waits in
// it and is delivered once a dispatcher starts; its backlog shows on the status and in `kubectl get pt`; with
// spec.delivery.deleteSubscription it goes with the trigger (and without, it stays); an admin API that does not
// answer is Ready=False PulsarAdminUnavailable.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { FunctionServer } from '../../../examples/function.ts';
import { freePort } from '../../../testenv/lib/proc.ts';
import { node, pulsarPlain } from '../../support/env.ts';
import { bodies, type E2E, publish, readmeTrigger, startE2E, waitUntil } from './fixture.ts';

const TIMEOUT = 120_000;

interface Status {
  backlog?: number;
  oldestBacklogPublishTime?: string;
  consumers?: number;
  conditions?: { type: string; status: string; reason?: string; message?: string }[];
}

async function subscriptions(topic: string): Promise<Record<string, { msgBacklog: number }>> {
  const r = await fetch(`${pulsarPlain().adminUrl}/admin/v2/${topic.replace('://', '/')}/stats`);
  if (r.status === 404) return {};
  return ((await r.json()) as { subscriptions?: Record<string, { msgBacklog: number }> }).subscriptions ?? {};
}

describe('the trigger owns its subscription', { timeout: 600_000 }, () => {
  let fx: E2E;
  let fn: FunctionServer;
  before(async () => {
    fx = await startE2E('sub');
    await fx.installController();
    fn = await fx.startFunction('sub');
  });
  after(async () => {
    await fx?.close();
  });

  const status = async (name: string): Promise<Status> => {
    const out = await fx.kubectl(['get', 'pulsartrigger', name, '-n', fx.ns, '-o', 'json']);
    return (JSON.parse(out) as { status?: Status }).status ?? {};
  };

  test('made before any dispatcher runs: messages published meanwhile wait, show as backlog, then arrive', async () => {
    const name = 'early';
    const topic = `persistent://public/default/e2e-sub-early-${fx.suffix}`;
    const subscription = `${name}-${fx.ns}`;
    const t = readmeTrigger(fx.ns, name, topic, fn.url) as { spec: Record<string, unknown> };
    // No dispatcher yet: the subscription must come from the controller.
    t.spec.deployment = { spec: { replicas: 0 } };
    await fx.apply(t);
    await waitUntil(
      'the controller made the subscription',
      async () => subscription in (await subscriptions(topic)),
      TIMEOUT,
      fx,
    );
    const sent = await publish(topic, 12, 'early');
    await waitUntil(
      'the status shows the backlog of 12',
      async () => (await status(name)).backlog === 12,
      TIMEOUT,
      fx,
    );
    const s = await status(name);
    assert.ok(s.oldestBacklogPublishTime, 'the oldest message in the backlog has a publish time');
    assert.equal(s.consumers, 0);
    const table = await fx.kubectl(['get', 'pt', name, '-n', fx.ns]);
    assert.match(table, /^NAME\s+BROKER\s+TOPIC\s+FUNCTION\s+READY\s+BACKLOG\s+OLDEST\s+AGE$/m);
    assert.match(table, new RegExp(`^${name}\\s.*\\s12\\s+\\S+\\s+\\S+$`, 'm'), table);
    // A dispatcher starts: everything published before it arrives, and the backlog goes back to 0.
    t.spec.deployment = { spec: { replicas: 1 } };
    await fx.apply(t);
    await waitUntil(
      'every message reached the function',
      () => sent.every((p) => bodies(fn).includes(p)),
      TIMEOUT,
      fx,
    );
    await waitUntil(
      'the status shows an empty backlog and one consumer',
      async () => {
        const x = await status(name);
        return x.backlog === 0 && x.consumers === 1 && x.oldestBacklogPublishTime === undefined;
      },
      TIMEOUT,
      fx,
    );
    await fx.kubectl(['delete', 'pulsartrigger', name, '-n', fx.ns, '--wait=true', '--timeout=60s']);
    assert.ok(
      subscription in (await subscriptions(topic)),
      'kept by default: the cursor survives a re-create',
    );
  });

  test('deleteSubscription: the subscription goes with the trigger, after its dispatchers', async () => {
    const name = 'gone';
    const topic = `persistent://public/default/e2e-sub-gone-${fx.suffix}`;
    const subscription = `${name}-${fx.ns}`;
    const t = readmeTrigger(fx.ns, name, topic, fn.url) as { spec: Record<string, unknown> };
    t.spec.delivery = { deleteSubscription: true };
    await fx.apply(t);
    await waitUntil(
      'a dispatcher is attached to the subscription',
      async () => (await status(name)).consumers === 1,
      TIMEOUT,
      fx,
    );
    await fx.kubectl(['delete', 'pulsartrigger', name, '-n', fx.ns, '--wait=true', '--timeout=90s']);
    assert.equal(subscription in (await subscriptions(topic)), false, 'deleted with the trigger');
  });

  test('an admin API that does not answer: Ready=False PulsarAdminUnavailable, dispatchers still run', async () => {
    const name = 'noadmin';
    const topic = `persistent://public/default/e2e-sub-noadmin-${fx.suffix}`;
    const closed = `http://${node().ip}:${await freePort()}`;
    await fx.apply(readmeTrigger(fx.ns, name, topic, fn.url, node().pulsarServiceUrl, closed));
    await waitUntil(
      'the trigger reports PulsarAdminUnavailable',
      async () =>
        (await status(name)).conditions?.find((c) => c.type === 'Ready')?.reason === 'PulsarAdminUnavailable',
      TIMEOUT,
      fx,
    );
    const ready = (await status(name)).conditions!.find((c) => c.type === 'Ready')!;
    assert.equal(ready.status, 'False');
    assert.match(ready.message ?? '', new RegExp(closed.replaceAll('.', '\\.')));
    await waitUntil(
      'its dispatcher still delivers',
      async () => (await fx.deployment(name))?.status?.readyReplicas === 1,
      TIMEOUT,
      fx,
    );
    const sent = await publish(topic, 3, 'noadmin');
    await waitUntil('delivered', () => sent.every((p) => bodies(fn).includes(p)), TIMEOUT, fx);
  });
});
