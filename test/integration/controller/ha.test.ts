// Two controller replicas share a Lease: one leads, the other stands by and takes over when the leader stops
// (SIGTERM releases the Lease) or dies (SIGKILL: the Lease expires). And the controller runs under the chart's
// RBAC identity, not as admin.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { installChartIdentity } from '../../support/chart-identity.ts';
import {
  type Any,
  applyCrd,
  type ControllerProcess,
  eventually,
  getJson,
  kubectl,
  namespace,
  startControllerProcess,
  trigger,
} from './harness.ts';

let ns: string;
const running: ControllerProcess[] = [];

async function start(identity: string, extra: Partial<Parameters<typeof startControllerProcess>[0]> = {}) {
  const c = await startControllerProcess({ namespaces: [ns], leaseNamespace: ns, identity, ...extra });
  running.push(c);
  return c;
}

const leads = async (c: ControllerProcess) => /^kpt_controller_leader 1$/m.test(await c.metrics());
const dep = (name: string) => getJson<Any>(['get', 'deployment', name, '-n', ns]);

before(async () => {
  await applyCrd();
  ns = await namespace('kpt-ha');
});

after(async () => {
  for (const c of running) await c.kill();
  await kubectl(['delete', 'namespace', ns, '--wait=false', '--ignore-not-found']);
});

test('one of two replicas leads; SIGTERM hands over, SIGKILL is taken over after the Lease expires', async () => {
  const a = await start('replica-a');
  await eventually('a leads', () => leads(a));
  const b = await start('replica-b');
  await kubectl(['apply', '-f', '-'], trigger('one', ns));
  await eventually('Deployment one', () => dep('one'));
  assert.equal(await leads(b), false);
  assert.equal((await b.readyz()).body.trim(), 'ok standby');

  // Graceful stop: the Lease is released, b takes over.
  assert.equal(await a.stop(), 0);
  await eventually('b leads', () => leads(b));
  const lease = await getJson<Any>(['get', 'lease', 'kubeless-pulsar-trigger', '-n', ns]);
  assert.equal(lease.spec.holderIdentity, 'replica-b');
  await kubectl(['apply', '-f', '-'], trigger('two', ns));
  await eventually('Deployment two (by b)', () => dep('two'));

  // Crash: c stands by, b is killed without releasing; c waits for the Lease to expire and takes over.
  const c = await start('replica-c');
  await b.kill();
  await eventually('c leads', () => leads(c));
  await kubectl(['apply', '-f', '-'], trigger('three', ns));
  await eventually('Deployment three (by c)', () => dep('three'));
  const after = await getJson<Any>(['get', 'lease', 'kubeless-pulsar-trigger', '-n', ns]);
  assert.equal(after.spec.holderIdentity, 'replica-c');
  assert.ok(after.spec.leaseTransitions >= 1);
});

test("the controller works under the chart's ServiceAccount and RBAC, not as admin", async () => {
  const watched = await namespace('kpt-rbac');
  const id = await installChartIdentity({ watchNamespaces: [watched] });
  try {
    const c = await start('rbac', {
      namespaces: [watched],
      kubeconfig: id.kubeconfig,
      leaseNamespace: id.namespace,
      leaseName: id.leaseName,
    });
    await kubectl(['create', 'secret', 'generic', 'tok', '--from-literal=token=t', '-n', watched]);
    await kubectl(['create', 'configmap', 'ca', '--from-literal=ca.crt=pem', '-n', watched]);
    await kubectl(['apply', '-f', '-'], trigger('inline', watched));
    await kubectl(
      ['apply', '-f', '-'],
      trigger(
        'refs',
        watched,
        {},
        {
          authTokenSecretRef: { name: 'tok', key: 'token' },
          tls: { caConfigMapRef: { name: 'ca', key: 'ca.crt' } },
        },
      ),
    );
    for (const name of ['inline', 'refs']) {
      const t = await eventually(`${name} reconciled`, async () => {
        const x = await getJson<Any>(['get', 'pulsartrigger', name, '-n', watched]);
        return x?.status?.deployment ? x : undefined;
      });
      assert.equal(t.status.conditions[0].reason, 'ReplicasNotReady');
      assert.ok(await getJson<Any>(['get', 'deployment', name, '-n', watched]));
    }
    assert.ok(await getJson<Any>(['get', 'secret', 'inline-pulsar-auth-token', '-n', watched]));
    await kubectl(['delete', 'pulsartrigger', 'inline', '-n', watched, '--wait=true', '--timeout=60s']);
    await eventually(
      'inline cleaned up',
      async () => (await getJson<Any>(['get', 'deployment', 'inline', '-n', watched])) === undefined,
    );
    assert.doesNotMatch(c.logs(), /forbidden/i);
  } finally {
    await id.remove();
    await kubectl(['delete', 'namespace', watched, '--wait=false', '--ignore-not-found']);
  }
});
