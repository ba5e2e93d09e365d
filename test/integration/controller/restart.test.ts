// The API server restarts under a running controller: its watches resume and it keeps reconciling, in the same
// process. The shared API server must not be restarted, so this test starts a private control plane
// (testenv/kube.ts). The resync period is long (10 min), so anything reconciled after the restart came through a
// resumed watch, not a periodic relist.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { type KubeHandle, startKube } from '../../../testenv/kube.ts';
import { repoRoot } from '../../support/packaging.ts';
import {
  type Any,
  type ControllerProcess,
  envOf,
  eventually,
  kubectl,
  startControllerProcess,
  trigger,
} from './harness.ts';

let k: KubeHandle;
let ctl: ControllerProcess | undefined;
const ns = 'kpt-restart';

const kc = (args: string[], input?: string) => kubectl(args, input, k.kubeconfig);
const getJson = async (args: string[]): Promise<Any> => {
  const out = await kc([...args, '-o', 'json', '--ignore-not-found']);
  return out.trim() === '' ? undefined : JSON.parse(out);
};
const dep = (name: string) => getJson(['get', 'deployment', name, '-n', ns]);
const watchStarts = async (c: ControllerProcess, resource: string) =>
  Number(
    new RegExp(`^kpt_controller_watches_total\\{resource="${resource}"\\} (\\d+)$`, 'm').exec(
      await c.metrics(),
    )?.[1] ?? 0,
  );

before(async () => {
  k = await startKube();
  await kc(['apply', '--server-side', '-f', join(repoRoot, 'deploy', 'crd.yaml')]);
  await kc(['wait', '--for=condition=Established', 'crd/pulsartriggers.kubeless.io', '--timeout=60s']);
  await kc(['create', 'namespace', ns]);
});

after(async () => {
  if (ctl) {
    const code = await ctl.stop();
    if (code !== 0) process.stderr.write(ctl.logs());
  }
  await k?.stop();
});

test('after an API server restart the watches resume and the controller keeps reconciling', async () => {
  ctl = await startControllerProcess({
    namespaces: [ns],
    leaseNamespace: ns,
    kubeconfig: k.kubeconfig,
    // The restart takes seconds: a Lease deadline longer than that keeps this replica the leader throughout.
    extraArgs: [
      '--resync-period',
      '600',
      '--lease-duration',
      '60',
      '--renew-deadline',
      '40',
      '--retry-period',
      '2',
    ],
  });
  await kc(['apply', '-f', '-'], trigger('before', ns));
  await eventually('Deployment before', () => dep('before'));
  const pid = ctl.child.pid;
  const triggerWatches = await watchStarts(ctl, 'pulsartriggers');
  const deploymentWatches = await watchStarts(ctl, 'deployments');

  await k.restartApiserver();

  // A new trigger and a changed one: only the trigger watch can bring them.
  await kc(['apply', '-f', '-'], trigger('after', ns));
  await kc(['apply', '-f', '-'], trigger('before', ns, { delivery: { concurrency: 7 } }));
  const created = await eventually('Deployment after', () => dep('after'));
  assert.equal(created.metadata.labels['kubeless.io/trigger-name'], 'after');
  await eventually('Deployment before updated', async () => {
    const d = await dep('before');
    return envOf(d).DISPATCH_CONCURRENCY === '7' ? d : undefined;
  });
  // A Deployment deleted by hand: only the Deployment watch can tell.
  const old = await dep('after');
  await kc(['delete', 'deployment', 'after', '-n', ns, '--wait=true']);
  const again = await eventually('Deployment after recreated', async () => {
    const d = await dep('after');
    return d && d.metadata.uid !== old.metadata.uid ? d : undefined;
  });
  assert.equal(again.metadata.name, 'after');

  // Same process, still the leader, and both watches were started again (resumed), not just once.
  assert.equal(ctl.child.exitCode, null);
  assert.equal(ctl.child.pid, pid);
  assert.match(await ctl.metrics(), /^kpt_controller_leader 1$/m);
  assert.ok((await watchStarts(ctl, 'pulsartriggers')) > triggerWatches);
  assert.ok((await watchStarts(ctl, 'deployments')) > deploymentWatches);
});
