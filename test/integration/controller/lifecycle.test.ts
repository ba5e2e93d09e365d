// The controller against the real API server and controller-manager: the seed README's manifests, overrides,
// updates, deletion in both namespace cases, a Deployment deleted by hand, restart with zero writes, adoption of
// the seed's Deployments, and malformed triggers refused or reported while valid ones keep being served.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  type Any,
  applyCrd,
  type ControllerProcess,
  envOf,
  eventually,
  getJson,
  kubectl,
  kubectlTry,
  namespace,
  startControllerProcess,
  trigger,
} from './harness.ts';

let ns: string;
let other: string;
let ctl: ControllerProcess;

const dep = (name: string, n = ns) => getJson<Any>(['get', 'deployment', name, '-n', n]);
const secret = (name: string, n = ns) => getJson<Any>(['get', 'secret', name, '-n', n]);
const pt = (name: string) => getJson<Any>(['get', 'pulsartrigger', name, '-n', ns]);
const apply = (json: string) => kubectl(['apply', '-f', '-'], json);
const ready = (t: Any) => t?.status?.conditions?.find((c: Any) => c.type === 'Ready');

before(async () => {
  await applyCrd();
  ns = await namespace('kpt-ctl');
  other = await namespace('kpt-ctl-other');
  ctl = await startControllerProcess({
    namespaces: [ns, other],
    leaseNamespace: ns,
    extraArgs: ['--resync-period', '2'],
  });
});

after(async () => {
  const code = await ctl?.stop();
  if (code !== 0) process.stderr.write(ctl.logs());
  await kubectl(['delete', 'namespace', ns, other, '--wait=false', '--ignore-not-found']);
});

test("the seed README's first manifest gives the documented Deployment", async () => {
  await apply(trigger('mytrigger', ns));
  const d = await eventually('Deployment mytrigger', () => dep('mytrigger'));
  const c = d.spec.template.spec.containers[0];
  assert.equal(c.name, 'dispatcher');
  assert.equal(c.image, 'kpt/dispatcher:test');
  assert.deepEqual(c.resources, {
    limits: { cpu: '1', memory: '1Gi' },
    requests: { cpu: '500m', memory: '512Mi' },
  });
  assert.equal(d.spec.replicas, 1);
  assert.equal(d.metadata.labels['created-by'], 'kubeless-pulsar-trigger');
  const env = envOf(d);
  assert.equal(env.PULSAR_TOPIC_NAME, 'mytopic');
  assert.equal(env.PULSAR_TOPIC_NAMESPACE, 'public/default');
  assert.equal(env.KUBELESS_FUNCTION, 'http://myfunction.default:8080');
  assert.equal(env.TZ, 'UTC');
  assert.deepEqual(env.PULSAR_AUTH_TOKEN, {
    secretKeyRef: { name: 'mytrigger-pulsar-auth-token', key: 'token' },
  });
  assert.ok(!JSON.stringify(d).includes('"nnn"'));
  const s = await secret('mytrigger-pulsar-auth-token');
  assert.equal(Buffer.from(s.data.token, 'base64').toString(), 'nnn');
  assert.equal(d.metadata.ownerReferences[0].kind, 'PulsarTrigger');
  const t = await eventually('status', async () =>
    (await pt('mytrigger'))?.status?.deployment ? pt('mytrigger') : undefined,
  );
  assert.equal(t.status.observedGeneration, 1);
  assert.deepEqual(t.status.deployment, { name: 'mytrigger', namespace: ns });
  assert.equal(t.status.replicas, 1);
  assert.equal(ready(t).reason, 'ReplicasNotReady'); // no kubelet here: pods stay Pending
});

test("the seed README's second manifest: resources overridden, Deployment in another namespace", async () => {
  // The other namespace accepts triggers from this one (cross-namespace.test.ts: what happens when it does not).
  await kubectl(['annotate', 'namespace', other, `kubeless.io/accept-triggers-from=${ns}`]);
  await apply(
    trigger('moved', ns, {
      deployment: {
        metadata: { namespace: other },
        spec: {
          template: {
            spec: {
              containers: [
                { resources: { limits: { cpu: 4, memory: '1Gi' }, requests: { cpu: 1, memory: '512Mi' } } },
              ],
            },
          },
        },
      },
    }),
  );
  const d = await eventually('Deployment moved', () => dep('moved', other));
  const c = d.spec.template.spec.containers[0];
  assert.equal(c.image, 'kpt/dispatcher:test');
  assert.deepEqual(c.resources, {
    limits: { cpu: '4', memory: '1Gi' },
    requests: { cpu: '1', memory: '512Mi' },
  });
  assert.equal(d.metadata.ownerReferences, undefined);
  assert.ok(await secret('moved-pulsar-auth-token', other));
  assert.deepEqual((await pt('moved')).metadata.finalizers, ['kubeless.io/pulsartrigger-cleanup']);
  assert.equal(await dep('moved', ns), undefined);
});

test('no spec.deployment and no token; a full override with replicas, env and a sidecar', async () => {
  await apply(trigger('plain', ns, {}, {}));
  const p = await eventually('Deployment plain', () => dep('plain'));
  assert.equal(envOf(p).PULSAR_AUTH_TOKEN, undefined);
  assert.equal(await secret('plain-pulsar-auth-token'), undefined);
  await apply(
    trigger('full', ns, {
      deployment: {
        metadata: { labels: { team: 'a' } },
        spec: {
          replicas: 2,
          template: {
            spec: {
              containers: [
                {
                  image: 'custom:1',
                  env: [
                    { name: 'EXTRA', value: 'x' },
                    { name: 'PULSAR_BROKER', value: 'no' },
                  ],
                },
                { name: 'sidecar', image: 'side:1' },
              ],
            },
          },
        },
      },
    }),
  );
  const f = await eventually('Deployment full', () => dep('full'));
  assert.equal(f.spec.replicas, 2);
  assert.equal(f.metadata.labels.team, 'a');
  assert.equal(f.spec.template.spec.containers[0].image, 'custom:1');
  assert.equal(f.spec.template.spec.containers[1].name, 'sidecar');
  assert.equal(envOf(f).EXTRA, 'x');
  assert.equal(envOf(f).PULSAR_BROKER, 'pulsar://pulsar.addr:6650');
  assert.notDeepEqual(f.spec.selector, p.spec.selector);
});

test('an updated trigger: the Deployment follows', async () => {
  await apply(trigger('mytrigger', ns, { delivery: { concurrency: 5, ordering: 'strict' } }));
  const d = await eventually('updated Deployment', async () => {
    const x = await dep('mytrigger');
    return envOf(x).DISPATCH_CONCURRENCY === '5' ? x : undefined;
  });
  assert.equal(envOf(d).DISPATCH_ORDERING, 'strict');
});

test('a Deployment deleted by hand comes back', async () => {
  const before = await dep('plain');
  await kubectl(['delete', 'deployment', 'plain', '-n', ns, '--wait=true']);
  const again = await eventually('Deployment plain again', async () => {
    const x = await dep('plain');
    return x && x.metadata.uid !== before.metadata.uid ? x : undefined;
  });
  assert.equal(again.metadata.name, 'plain');
});

test("the seed's Deployment (selector on created-by only) is adopted by replacing it", async () => {
  await kubectl(
    ['apply', '-f', '-'],
    JSON.stringify({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'legacy', namespace: ns, labels: { 'created-by': 'kubeless-pulsar-trigger' } },
      spec: {
        selector: { matchLabels: { 'created-by': 'kubeless-pulsar-trigger' } },
        template: {
          metadata: { labels: { 'created-by': 'kubeless-pulsar-trigger' } },
          spec: { containers: [{ name: 'dispatcher', image: 'seed:1' }] },
        },
      },
    }),
  );
  const seedUid = (await dep('legacy')).metadata.uid;
  await apply(trigger('legacy', ns));
  const d = await eventually('adopted Deployment', async () => {
    const x = await dep('legacy');
    return x && x.metadata.uid !== seedUid ? x : undefined;
  });
  assert.equal(d.spec.selector.matchLabels['kubeless.io/trigger-name'], 'legacy');
  assert.equal(d.spec.template.spec.containers[0].image, 'kpt/dispatcher:test');
});

test('a Deployment the controller did not create is not touched', async () => {
  await kubectl(['create', 'deployment', 'foreign', '--image=foreign:1', '-n', ns]);
  const uid = (await dep('foreign')).metadata.uid;
  await apply(trigger('foreign', ns));
  const t = await eventually('conflict status', async () => {
    const x = await pt('foreign');
    return ready(x)?.reason === 'DeploymentConflict' ? x : undefined;
  });
  assert.match(ready(t).message, /not created by this controller|another trigger/);
  const d = await dep('foreign');
  assert.equal(d.metadata.uid, uid);
  assert.equal(d.spec.template.spec.containers[0].image, 'foreign:1');
});

test('a restarted controller with nothing changed writes nothing', async () => {
  // Let the current controller settle (all statuses written), then restart it.
  await eventually('settled', async () => {
    const list = (await getJson<Any>(['get', 'pulsartriggers', '-n', ns]))!.items as Any[];
    return list.every((t) => t.status?.observedGeneration === t.metadata.generation);
  });
  const versions = async () =>
    JSON.stringify(
      ((await getJson<Any>(['get', 'deployments,secrets,pulsartriggers', '-n', ns]))!.items as Any[])
        .map((o) => `${o.kind}/${o.metadata.name}@${o.metadata.resourceVersion}`)
        .sort(),
    );
  assert.equal(await ctl.stop(), 0);
  const snapshot = await versions();
  ctl = await startControllerProcess({
    namespaces: [ns, other],
    leaseNamespace: ns,
    extraArgs: ['--resync-period', '1'],
  });
  // Synced, and at least two resyncs (1 s apart) have gone through every trigger.
  await eventually('caches synced and resynced', async () => {
    const m = await ctl.metrics();
    const success = Number(/kpt_controller_reconciles_total\{result="success"\} (\d+)/.exec(m)?.[1] ?? 0);
    return success >= 3 * 7;
  });
  assert.equal(await ctl.writes(), 0, await ctl.metrics());
  assert.equal(await versions(), snapshot);
});

test('a deleted trigger takes its Deployment and Secret with it, in both namespace cases', async () => {
  await kubectl(['delete', 'pulsartrigger', 'mytrigger', 'moved', '-n', ns, '--wait=true', '--timeout=60s']);
  await eventually(
    'same-namespace Deployment gone (ownerReference, garbage collector)',
    async () =>
      (await dep('mytrigger')) === undefined && (await secret('mytrigger-pulsar-auth-token')) === undefined,
  );
  await eventually(
    'other-namespace Deployment gone (finalizer)',
    async () =>
      (await dep('moved', other)) === undefined &&
      (await secret('moved-pulsar-auth-token', other)) === undefined,
  );
});

// Each is refused by the API server with a message naming the field.
const refused: [string, Record<string, unknown>, RegExp][] = [
  ['no spec', { spec: undefined }, /spec: Required value/],
  ['no pulsar', { spec: { kubeless: { function: 'http://f.d:8080' } } }, /spec.pulsar: Required value/],
  [
    'no kubeless',
    { spec: { pulsar: { topic: 't', broker: 'pulsar://b:6650' } } },
    /spec.kubeless: Required value/,
  ],
  ['no topic', { pulsar: { broker: 'pulsar://b:6650' } }, /spec.pulsar.topic: Required value/],
  ['no broker', { pulsar: { topic: 't' } }, /spec.pulsar.broker: Required value/],
  ['no function', { kubeless: {} }, /spec.kubeless.function: Required value/],
  ['topic with spaces', { pulsar: { topic: 'a b', broker: 'pulsar://b:6650' } }, /spec.pulsar.topic/],
  [
    'topic too deep',
    { pulsar: { topic: 'persistent://a/b/c/d', broker: 'pulsar://b:6650' } },
    /spec.pulsar.topic/,
  ],
  [
    'topic bad scheme',
    { pulsar: { topic: 'kafka://a/b/c', broker: 'pulsar://b:6650' } },
    /spec.pulsar.topic/,
  ],
  ['broker http', { pulsar: { topic: 't', broker: 'http://b:6650' } }, /spec.pulsar.broker/],
  ['broker number', { pulsar: { topic: 't', broker: 6650 } }, /spec.pulsar.broker/],
  ['function ftp', { kubeless: { function: 'ftp://f.d:21' } }, /spec.kubeless.function/],
  ['function no scheme', { kubeless: { function: 'myfunction.default:8080' } }, /spec.kubeless.function/],
  ['empty token', { pulsar: { topic: 't', broker: 'pulsar://b:6650', 'auth-token': '' } }, /auth-token/],
  [
    'token twice',
    {
      pulsar: {
        topic: 't',
        broker: 'pulsar://b:6650',
        'auth-token': 'x',
        authTokenSecretRef: { name: 's', key: 'k' },
      },
    },
    /spec.pulsar.authTokenSecretRef/,
  ],
  [
    'secret ref without key',
    { pulsar: { topic: 't', broker: 'pulsar://b:6650', authTokenSecretRef: { name: 's' } } },
    /spec.pulsar.authTokenSecretRef.key/,
  ],
  [
    'two CAs',
    {
      pulsar: {
        topic: 't',
        broker: 'pulsar+ssl://b:6651',
        tls: { caSecretRef: { name: 'a', key: 'c' }, caConfigMapRef: { name: 'a', key: 'c' } },
      },
    },
    /spec.pulsar.tls.caConfigMapRef/,
  ],
  ['subscription type', { delivery: { subscriptionType: 'Sharded' } }, /spec.delivery.subscriptionType/],
  ['initial position', { delivery: { initialPosition: 'Middle' } }, /spec.delivery.initialPosition/],
  ['concurrency 0', { delivery: { concurrency: 0 } }, /spec.delivery.concurrency/],
  ['concurrency text', { delivery: { concurrency: 'lots' } }, /spec.delivery.concurrency/],
  ['ordering', { delivery: { ordering: 'random' } }, /spec.delivery.ordering/],
  ['timeout', { delivery: { timeout: '3 minutes' } }, /spec.delivery.timeout/],
  [
    'backoff reversed',
    { delivery: { retry: { initialBackoff: '10s', maxBackoff: '1s' } } },
    /spec.delivery.retry.maxBackoff/,
  ],
  ['factor below 1', { delivery: { retry: { factor: 0.5 } } }, /spec.delivery.retry.factor/],
  [
    'status 2xx',
    { delivery: { statusActions: [{ status: '2xx', action: 'drop' }] } },
    /spec.delivery.statusActions\[0\].status/,
  ],
  [
    'status action',
    { delivery: { statusActions: [{ status: '404', action: 'ignore' }] } },
    /spec.delivery.statusActions\[0\].action/,
  ],
  ['event format', { delivery: { eventFormat: 'xml' } }, /spec.delivery.eventFormat/],
  ['content type', { delivery: { contentType: 'json' } }, /spec.delivery.contentType/],
  ['dead-letter topic', { delivery: { deadLetterTopic: 'a/b/c/d/e' } }, /spec.delivery.deadLetterTopic/],
  [
    'deployment namespace',
    { deployment: { metadata: { namespace: 'Not_A_Namespace' } } },
    /spec.deployment.metadata.namespace/,
  ],
];

test(`${refused.length} malformed triggers are refused by the API server, naming the field`, async () => {
  for (const [i, [what, change, message]] of refused.entries()) {
    const base = JSON.parse(trigger(`bad-${i}`, ns)) as Any;
    const body =
      'spec' in change ? { ...base, spec: change.spec } : { ...base, spec: { ...base.spec, ...change } };
    const r = await kubectlTry(['apply', '-f', '-'], JSON.stringify(body));
    assert.notEqual(r.code, 0, `${what}: accepted`);
    assert.match(r.stderr, message, `${what}: ${r.stderr}`);
  }
});

test('triggers the API server accepts but that cannot run are reported on status, and others still work', async () => {
  await apply(
    trigger('missing-secret', ns, {}, { authTokenSecretRef: { name: 'does-not-exist', key: 'token' } }),
  );
  await apply(trigger('outside', ns, { deployment: { metadata: { namespace: 'not-watched-by-it' } } }));
  const a = await eventually('SecretNotFound', async () => {
    const x = await pt('missing-secret');
    return ready(x)?.reason === 'SecretNotFound' ? x : undefined;
  });
  assert.match(ready(a).message, /spec.pulsar.authTokenSecretRef/);
  const b = await eventually('NamespaceNotAllowed', async () => {
    const x = await pt('outside');
    return ready(x)?.reason === 'NamespaceNotAllowed' ? x : undefined;
  });
  assert.match(ready(b).message, /spec.deployment.metadata.namespace/);
  const events = await kubectl([
    'get',
    'events',
    '-n',
    ns,
    '--field-selector',
    'reason=SecretNotFound',
    '-o',
    'name',
  ]);
  assert.notEqual(events.trim(), '');
  // The valid ones are still served: a new one gets its Deployment.
  await apply(trigger('after-bad', ns));
  await eventually('Deployment after-bad', () => dep('after-bad'));
  // And fixing the reference makes the broken one work.
  await kubectl(['create', 'secret', 'generic', 'does-not-exist', '--from-literal=token=t', '-n', ns]);
  const fixed = await eventually('missing-secret deployed', () => dep('missing-secret'), 90_000);
  assert.deepEqual(envOf(fixed).PULSAR_AUTH_TOKEN, {
    secretKeyRef: { name: 'does-not-exist', key: 'token' },
  });
});
