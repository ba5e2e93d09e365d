// A trigger whose dispatcher pods are not ready is Ready=False ReplicasNotReady and gets a Warning Event with that
// reason on the real API server, as every other Ready=False reason does (docs/troubleshooting.md). Its dispatcher
// image is one no node has, so its pod never becomes ready.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
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
let ctl: ControllerProcess;

before(async () => {
  await applyCrd();
  ns = await namespace('kpt-replicas-event');
  ctl = await startControllerProcess({
    namespaces: [ns],
    leaseNamespace: ns,
    image: 'kpt/no-such-dispatcher:never',
  });
});

after(async () => {
  const code = await ctl?.stop();
  if (code !== 0) process.stderr.write(ctl.logs());
  await kubectl(['delete', 'namespace', ns, '--wait=false', '--ignore-not-found']);
});

test('ReplicasNotReady: the Ready condition and a Warning Event on the trigger', async () => {
  await kubectl(['apply', '-f', '-'], trigger('stuck', ns));
  const t = await eventually('Ready=False ReplicasNotReady', async () => {
    const x = await getJson<Any>(['get', 'pulsartrigger', 'stuck', '-n', ns]);
    const ready = x?.status?.conditions?.find((c: Any) => c.type === 'Ready');
    return ready?.reason === 'ReplicasNotReady' ? ready : undefined;
  });
  assert.equal(t.status, 'False');
  assert.equal(t.message, '0/1 dispatcher replicas ready');
  const events = await eventually('the Event', async () => {
    const list = await getJson<Any>([
      'get',
      'events',
      '-n',
      ns,
      '--field-selector',
      'involvedObject.name=stuck,reason=ReplicasNotReady',
    ]);
    return list?.items?.length > 0 ? (list.items as Any[]) : undefined;
  });
  assert.equal(events[0].type, 'Warning');
  assert.equal(events[0].involvedObject.kind, 'PulsarTrigger');
  assert.equal(events[0].message, '0/1 dispatcher replicas ready');
});
