import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { BacklogFigures } from '../../../src/controller/backlog.ts';
import { ANNOTATION_ACCEPT_FROM, type CrossNamespaceGrant } from '../../../src/controller/placement.ts';
import {
  ADMIN_RETRY_MIN_MS,
  type AdminOutcome,
  FINALIZER,
  type KubeObject,
  type KubeWrites,
  type ReconcileDeps,
  Reconciler,
  type Store,
  type SubscriptionPort,
} from '../../../src/controller/reconcile.ts';
import { DEFAULT_RESOURCES, type JsonObject, type RenderConfig } from '../../../src/trigger/render.ts';
import type { TriggerStatus } from '../../../src/trigger/spec.ts';

/** An in-memory API: writes land in the stores the reconciler reads, as informers would deliver them. */
class FakeStore implements Store<KubeObject> {
  readonly items = new Map<string, KubeObject>();
  /** For the Namespace store: whether its informer has listed. */
  isSynced = true;
  synced() {
    return this.isSynced;
  }
  get(name: string, namespace?: string) {
    return this.items.get(`${namespace}/${name}`);
  }
  list(namespace?: string) {
    return [...this.items.values()].filter((o) => !namespace || o.metadata?.namespace === namespace);
  }
  put(o: KubeObject) {
    this.items.set(`${o.metadata?.namespace}/${o.metadata?.name}`, o);
  }
}

let uidSeq = 0;
function world(
  render: RenderConfig = { dispatcherImage: 'img:1', timezone: 'UTC', resources: DEFAULT_RESOURCES },
  grants: CrossNamespaceGrant[] = [],
  extra: Partial<ReconcileDeps> = {},
) {
  const triggers = new FakeStore();
  // Cluster-scoped: stored and read without a namespace.
  const namespaces = new FakeStore();
  for (const name of ['ns1', 'other', 'default']) namespaces.put({ metadata: { name } });
  const deployments = new FakeStore();
  const secrets = new FakeStore();
  const writes: string[] = [];
  const existing = new Set<string>();
  const withUid = (o: JsonObject): KubeObject => {
    const copy = structuredClone(o) as KubeObject;
    copy.metadata!.uid = `uid-${++uidSeq}`;
    return copy;
  };
  const kube: KubeWrites = {
    createDeployment: async (o) => {
      writes.push('create deployment');
      if (
        deployments.get(
          (o.metadata as JsonObject).name as string,
          (o.metadata as JsonObject).namespace as string,
        )
      )
        throw Object.assign(new Error('exists'), { code: 409 });
      deployments.put(withUid(o));
    },
    applyDeployment: async (o) => {
      writes.push('apply deployment');
      deployments.put(withUid(o));
    },
    deleteDeployment: async (ns, name) => {
      writes.push(`delete deployment ${ns}/${name}`);
      deployments.items.delete(`${ns}/${name}`);
    },
    createSecret: async (o) => {
      writes.push('create secret');
      secrets.put(withUid(o));
    },
    applySecret: async (o) => {
      writes.push('apply secret');
      secrets.put(withUid(o));
    },
    deleteSecret: async (ns, name) => {
      writes.push(`delete secret ${ns}/${name}`);
      secrets.items.delete(`${ns}/${name}`);
    },
    patchTriggerStatus: async (ns, name, status: TriggerStatus) => {
      writes.push('status');
      const t = triggers.get(name, ns);
      if (t) t.status = structuredClone(status);
    },
    setTriggerFinalizers: async (ns, name, finalizers) => {
      writes.push(`finalizers ${finalizers.join(',')}`);
      const t = triggers.get(name, ns);
      if (t) t.metadata!.finalizers = finalizers;
    },
    event: async (_t, type, reason) => {
      writes.push(`event ${type} ${reason}`);
    },
    exists: async (kind, ns, name) => existing.has(`${kind}/${ns}/${name}`),
    getSecret: async (ns, name) => secrets.get(name, ns),
    deploymentExists: async (ns, name) => deployments.get(name, ns) !== undefined,
  };
  const r = new Reconciler({
    triggers,
    deployments,
    kube,
    render,
    namespaces: [],
    namespaceObjects: namespaces,
    crossNamespaceGrants: grants,
    ...extra,
  });
  return { triggers, deployments, secrets, namespaces, writes, existing, r, kube };
}

/** The target namespace's owner opts in (or, with undefined, withdraws): the annotation on the Namespace. */
function acceptFrom(w: ReturnType<typeof world>, target: string, value: string | undefined): void {
  w.namespaces.put({
    metadata: {
      name: target,
      ...(value === undefined ? {} : { annotations: { [ANNOTATION_ACCEPT_FROM]: value } }),
    },
  });
}

/** A spec change as the API server makes it: the generation goes up. */
function editSpec(t: KubeObject, edit: (spec: Record<string, unknown>) => void): void {
  edit(t.spec);
  t.metadata!.generation = (t.metadata!.generation ?? 0) + 1;
}

function trigger(name: string, spec: Record<string, unknown> = {}): KubeObject {
  return {
    metadata: { name, namespace: 'ns1', uid: `t-${name}`, generation: 1, resourceVersion: '1' },
    spec: {
      pulsar: { topic: 'events', broker: 'pulsar://b:6650', 'auth-token': 'tok' },
      kubeless: { function: 'http://f.ns1:8080' },
      ...spec,
    },
  };
}

test('a status write waits for the Deployment creates in flight; a new trigger without a token reads no Secret', async () => {
  const w = world();
  const noToken = { pulsar: { topic: 'events', broker: 'pulsar://b:6650' } };
  w.triggers.put(trigger('a', noToken));
  w.triggers.put(trigger('b', noToken));
  let reads = 0;
  const getSecret = w.kube.getSecret;
  w.kube.getSecret = async (ns, name) => {
    reads++;
    return getSecret(ns, name);
  };
  await w.r.reconcile('ns1/a');
  assert.deepEqual(w.writes, ['create deployment']);
  // b's create hangs until released; meanwhile a comes back for its status.
  let release: (() => void) | undefined;
  const create = w.kube.createDeployment;
  w.kube.createDeployment = async (o) => {
    await new Promise<void>((resolve) => {
      release = resolve;
    });
    return create(o);
  };
  const b = w.r.reconcile('ns1/b');
  await new Promise((resolve) => setImmediate(resolve));
  const a = w.r.reconcile('ns1/a');
  await new Promise((resolve) => setTimeout(resolve, 30));
  assert.deepEqual(w.writes, ['create deployment'], 'no status write while a Deployment is being created');
  assert.ok(release, "b's create started");
  release();
  await Promise.all([a, b]);
  assert.deepEqual(w.writes, [
    'create deployment',
    'create deployment',
    'status',
    'event Warning ReplicasNotReady',
  ]);
  assert.equal(reads, 0, 'no token Secret read for new triggers without a token');
});

test('first reconcile creates Secret and Deployment, the next writes status, then nothing', async () => {
  const w = world();
  w.triggers.put(trigger('a'));
  await w.r.reconcile('ns1/a');
  assert.deepEqual(w.writes, ['create secret', 'create deployment']);
  w.writes.length = 0;
  await w.r.reconcile('ns1/a'); // brought back by the Deployment's watch event
  assert.deepEqual(w.writes, ['status', 'event Warning ReplicasNotReady']);
  w.writes.length = 0;
  await w.r.reconcile('ns1/a');
  assert.deepEqual(w.writes, []);
});

test('ReplicasNotReady raises one Warning Event when the trigger enters it, not one per ready count', async () => {
  const w = world();
  w.triggers.put(trigger('r', { deployment: { spec: { replicas: 2 } } }));
  await w.r.reconcile('ns1/r');
  w.writes.length = 0;
  const readyNow = async (n: number) => {
    w.deployments.get('r', 'ns1')!.status = { readyReplicas: n };
    await w.r.reconcile('ns1/r');
    const ready = w.triggers.get('r', 'ns1')!.status.conditions[0];
    return [ready.reason, ready.message];
  };
  assert.deepEqual(await readyNow(0), ['ReplicasNotReady', '0/2 dispatcher replicas ready']);
  assert.deepEqual(w.writes, ['status', 'event Warning ReplicasNotReady']);
  w.writes.length = 0;
  assert.deepEqual(await readyNow(1), ['ReplicasNotReady', '1/2 dispatcher replicas ready']);
  assert.deepEqual(w.writes, ['status'], 'a new count alone raises no Event');
  w.writes.length = 0;
  assert.deepEqual(await readyNow(2), ['Ready', '2/2 dispatcher replicas ready']);
  assert.deepEqual(w.writes, ['status'], 'Ready raises none');
  w.writes.length = 0;
  assert.deepEqual(await readyNow(1), ['ReplicasNotReady', '1/2 dispatcher replicas ready']);
  assert.deepEqual(w.writes, ['status', 'event Warning ReplicasNotReady'], 'a pod lost: the Event again');
  w.writes.length = 0;
  await w.r.reconcile('ns1/r');
  assert.deepEqual(w.writes, [], 'nothing changed: nothing written');
});

test('a changed spec is applied; a Deployment deleted by hand is created again', async () => {
  const w = world();
  w.triggers.put(trigger('a'));
  await w.r.reconcile('ns1/a');
  w.writes.length = 0;
  editSpec(w.triggers.get('a', 'ns1')!, (spec) => {
    spec.delivery = { concurrency: 3 };
  });
  await w.r.reconcile('ns1/a');
  assert.deepEqual(w.writes, ['apply deployment']);
  w.writes.length = 0;
  w.deployments.items.clear();
  await w.r.reconcile('ns1/a');
  assert.ok(w.writes.includes('create deployment'));
});

test('a trigger is rendered again only when its generation changes, or to write its objects', async () => {
  // Renders are counted by the configuration's dispatcherImage, which every render reads once.
  let renders = 0;
  const w = world({
    get dispatcherImage() {
      renders++;
      return 'img:1';
    },
    timezone: 'UTC',
    resources: DEFAULT_RESOURCES,
  });
  w.triggers.put(trigger('a'));
  await w.r.reconcile('ns1/a'); // renders; creates the Secret and the Deployment from that one rendering
  assert.equal(renders, 1);
  await w.r.reconcile('ns1/a'); // status, from the remembered plan
  await w.r.reconcile('ns1/a'); // nothing to do (a resync)
  assert.deepEqual(w.writes, [
    'create secret',
    'create deployment',
    'status',
    'event Warning ReplicasNotReady',
  ]);
  assert.equal(renders, 1);
  // A status write changes the resourceVersion, not the generation: still nothing to render.
  w.triggers.get('a', 'ns1')!.metadata!.resourceVersion = '2';
  await w.r.reconcile('ns1/a');
  assert.equal(renders, 1);
  // The Deployment deleted by hand: rendered once more, to write it.
  w.deployments.items.clear();
  await w.r.reconcile('ns1/a');
  assert.equal(w.writes.at(-1), 'create deployment');
  assert.equal(renders, 2);
  // A new generation is rendered, and applied.
  editSpec(w.triggers.get('a', 'ns1')!, (spec) => {
    spec.delivery = { concurrency: 2 };
  });
  await w.r.reconcile('ns1/a');
  assert.equal(renders, 3);
  assert.equal(w.writes.at(-1), 'apply deployment');
  // A trigger deleted and created again under the same name (a new uid) is not taken for the old one.
  w.triggers.put({ ...trigger('a'), metadata: { ...trigger('a').metadata, uid: 'other' } });
  w.writes.length = 0;
  await w.r.reconcile('ns1/a');
  assert.equal(renders, 4);
});

test('an unrenderable trigger gets Ready=False with a reason and one Warning event', async () => {
  const w = world();
  w.triggers.put(trigger('bad', { kubeless: { function: 'not a url' } }));
  await w.r.reconcile('ns1/bad');
  const ready = w.triggers.get('bad', 'ns1')!.status.conditions[0];
  assert.equal(ready.status, 'False');
  assert.equal(ready.reason, 'InvalidSpec');
  assert.match(ready.message, /spec\.kubeless\.function/);
  assert.deepEqual(w.writes, ['status', 'event Warning InvalidSpec']);
  w.writes.length = 0;
  await w.r.reconcile('ns1/bad');
  assert.deepEqual(w.writes, []);
});

test('a missing referenced Secret is reported on status and retried later', async () => {
  const w = world();
  w.triggers.put(
    trigger('ref', {
      pulsar: { topic: 'e', broker: 'pulsar://b:6650', authTokenSecretRef: { name: 'tok', key: 't' } },
    }),
  );
  const outcome = await w.r.reconcile('ns1/ref');
  assert.equal(w.triggers.get('ref', 'ns1')!.status.conditions[0].reason, 'SecretNotFound');
  assert.ok(outcome.requeueAfterMs);
  w.existing.add('Secret/ns1/tok');
  await w.r.reconcile('ns1/ref');
  assert.ok(w.deployments.get('ref', 'ns1'));
});

test('another namespace: finalizer first, then the Deployment; deletion cleans up and lets go', async () => {
  const w = world();
  acceptFrom(w, 'other', 'ns1');
  w.triggers.put(trigger('x', { deployment: { metadata: { namespace: 'other' } } }));
  await w.r.reconcile('ns1/x');
  assert.deepEqual(w.triggers.get('x', 'ns1')!.metadata!.finalizers, [FINALIZER]);
  await w.r.reconcile('ns1/x');
  assert.ok(w.deployments.get('x', 'other'));
  assert.ok(w.secrets.get('x-pulsar-auth-token', 'other'));
  w.triggers.get('x', 'ns1')!.metadata!.deletionTimestamp = '2026-01-01T00:00:00Z';
  await w.r.reconcile('ns1/x');
  assert.equal(w.deployments.list().length, 0);
  assert.equal(w.secrets.list().length, 0);
  assert.deepEqual(w.triggers.get('x', 'ns1')!.metadata!.finalizers, []);
});

test('moving the namespace removes the old Deployment (found by trigger UID)', async () => {
  const w = world();
  acceptFrom(w, 'other', 'ns1');
  w.triggers.put(trigger('m'));
  await w.r.reconcile('ns1/m');
  editSpec(w.triggers.get('m', 'ns1')!, (spec) => {
    spec.deployment = { metadata: { namespace: 'other' } };
  });
  await w.r.reconcile('ns1/m'); // finalizer
  await w.r.reconcile('ns1/m');
  assert.ok(w.deployments.get('m', 'other'));
  assert.equal(w.deployments.get('m', 'ns1'), undefined);
});

test("the seed's Deployment is replaced (selector change), in its namespace and in default", async () => {
  const w = world();
  const seed = (ns: string): KubeObject => ({
    metadata: {
      name: 's',
      namespace: ns,
      uid: `seed-${ns}`,
      labels: { 'created-by': 'kubeless-pulsar-trigger' },
    },
    spec: { selector: { matchLabels: { 'created-by': 'kubeless-pulsar-trigger' } } },
  });
  w.deployments.put(seed('ns1'));
  w.deployments.put(seed('default'));
  w.triggers.put(trigger('s'));
  await w.r.reconcile('ns1/s');
  assert.ok(w.writes.includes('delete deployment ns1/s'));
  assert.ok(w.writes.includes('delete deployment default/s'));
  assert.equal(w.deployments.get('s', 'ns1')?.metadata?.labels?.['kubeless.io/trigger-uid'], 't-s');
});

test('a Deployment the controller did not create is never touched: the trigger reports a conflict', async () => {
  const w = world();
  w.deployments.put({ metadata: { name: 'c', namespace: 'ns1', uid: 'foreign' }, spec: {} });
  w.triggers.put(trigger('c'));
  await w.r.reconcile('ns1/c');
  assert.ok(!w.writes.some((x) => x.startsWith('delete deployment') || x === 'apply deployment'));
  assert.equal(w.triggers.get('c', 'ns1')!.status.conditions[0].reason, 'DeploymentConflict');
  w.writes.length = 0;
  await w.r.reconcile('ns1/c');
  assert.deepEqual(w.writes, []);
});

test('orphans of a deleted trigger go; objects of a live trigger stay', async () => {
  const w = world();
  w.triggers.put(trigger('o'));
  w.triggers.put(trigger('keep'));
  await w.r.reconcile('ns1/o');
  await w.r.reconcile('ns1/keep');
  w.triggers.items.delete('ns1/o');
  w.writes.length = 0;
  await w.r.reconcile('ns1/o');
  assert.deepEqual(w.writes.sort(), ['delete deployment ns1/o', 'delete secret ns1/o-pulsar-auth-token']);
  assert.ok(w.deployments.get('keep', 'ns1'));
});

// --- placement in another namespace (placement.ts) -------------------------------------------------------------

const elsewhere = (name: string, target = 'other') =>
  trigger(name, { deployment: { metadata: { namespace: target } } });
const readyOf = (w: ReturnType<typeof world>, name: string) =>
  (w.triggers.get(name, 'ns1')!.status as TriggerStatus).conditions!.find((c) => c.type === 'Ready')!;

test('a namespace that did not opt in gets nothing: Ready=False CrossNamespaceNotAllowed, one Event', async () => {
  const w = world();
  w.triggers.put(elsewhere('x'));
  await w.r.reconcile('ns1/x');
  assert.deepEqual(w.writes, ['status', 'event Warning CrossNamespaceNotAllowed']);
  assert.equal(w.deployments.list().length, 0);
  assert.equal(w.secrets.list().length, 0);
  assert.equal(
    w.triggers.get('x', 'ns1')!.metadata!.finalizers,
    undefined,
    'no finalizer for nothing placed',
  );
  const ready = readyOf(w, 'x');
  assert.equal(ready.status, 'False');
  assert.equal(ready.reason, 'CrossNamespaceNotAllowed');
  assert.match(ready.message, /namespace "other" does not accept PulsarTriggers from namespace "ns1"/);
  assert.match(
    ready.message,
    /kubectl annotate namespace other --overwrite kubeless\.io\/accept-triggers-from=ns1/,
  );
  assert.match(ready.message, /--allow-cross-namespace=ns1=other/);
  w.writes.length = 0;
  await w.r.reconcile('ns1/x'); // a resync
  assert.deepEqual(w.writes, []);
});

test('a referenced Secret in a namespace that did not opt in is not even looked for', async () => {
  const w = world();
  let reads = 0;
  w.kube.exists = async () => {
    reads++;
    return true;
  };
  w.triggers.put(
    trigger('probe', {
      pulsar: { topic: 'e', broker: 'pulsar://b:6650', authTokenSecretRef: { name: 'theirs', key: 't' } },
      deployment: { metadata: { namespace: 'other' } },
    }),
  );
  await w.r.reconcile('ns1/probe');
  assert.equal(readyOf(w, 'probe').reason, 'CrossNamespaceNotAllowed');
  assert.equal(reads, 0);
});

test('opt-in, then withdrawn: the Deployment appears, then goes with its Secret and the finalizer', async () => {
  const w = world();
  w.triggers.put(elsewhere('x'));
  await w.r.reconcile('ns1/x');
  acceptFrom(w, 'other', 'team-b, ns1');
  await w.r.reconcile('ns1/x'); // finalizer
  await w.r.reconcile('ns1/x'); // Secret and Deployment
  assert.ok(w.deployments.get('x', 'other'));
  assert.ok(w.secrets.get('x-pulsar-auth-token', 'other'));
  await w.r.reconcile('ns1/x'); // status
  assert.equal(readyOf(w, 'x').reason, 'ReplicasNotReady');
  assert.deepEqual(w.triggers.get('x', 'ns1')!.status.deployment, { name: 'x', namespace: 'other' });

  acceptFrom(w, 'other', 'team-b');
  w.writes.length = 0;
  await w.r.reconcile('ns1/x');
  assert.deepEqual(w.writes, [
    'delete deployment other/x',
    'delete secret other/x-pulsar-auth-token',
    'finalizers ',
    'status',
    'event Warning CrossNamespaceNotAllowed',
  ]);
  const status = w.triggers.get('x', 'ns1')!.status as TriggerStatus;
  assert.equal(status.deployment, undefined, 'status no longer names the deleted Deployment');
  assert.equal(status.replicas, undefined);
  assert.match(readyOf(w, 'x').message, /accept-triggers-from=team-b,ns1 /);
  w.writes.length = 0;
  await w.r.reconcile('ns1/x');
  assert.deepEqual(w.writes, []);
});

test('opt-in by * and by the administrator: either one is enough', async () => {
  const w = world();
  acceptFrom(w, 'other', '*');
  w.triggers.put(elsewhere('star'));
  await w.r.reconcile('ns1/star');
  await w.r.reconcile('ns1/star');
  assert.ok(w.deployments.get('star', 'other'));

  const g = world(undefined, [{ from: 'ns1', to: 'shared' }]);
  g.triggers.put(elsewhere('granted', 'shared')); // no Namespace "shared" cached: the grant alone decides
  g.triggers.put(elsewhere('not-granted', 'other'));
  await g.r.reconcile('ns1/granted');
  await g.r.reconcile('ns1/granted');
  assert.ok(g.deployments.get('granted', 'shared'));
  await g.r.reconcile('ns1/not-granted');
  assert.equal(readyOf(g, 'not-granted').reason, 'CrossNamespaceNotAllowed');
});

test('before the Namespaces are cached nothing is decided: no write, tried again soon', async () => {
  const w = world();
  acceptFrom(w, 'other', 'ns1');
  w.triggers.put(elsewhere('x'));
  await w.r.reconcile('ns1/x');
  await w.r.reconcile('ns1/x');
  await w.r.reconcile('ns1/x');
  w.namespaces.isSynced = false;
  w.namespaces.items.clear(); // as after a relist that has not answered yet
  w.writes.length = 0;
  const outcome = await w.r.reconcile('ns1/x');
  assert.deepEqual(w.writes, [], 'nothing deleted, no status flip');
  assert.ok(outcome.requeueAfterMs !== undefined && outcome.requeueAfterMs > 0);
  assert.ok(w.deployments.get('x', 'other'));
  // Same-namespace triggers do not wait for Namespaces.
  w.triggers.put(trigger('own'));
  await w.r.reconcile('ns1/own');
  assert.ok(w.deployments.get('own', 'ns1'));
});

test('the watched-namespaces rule still comes first', async () => {
  const w = world();
  const r = new Reconciler({
    triggers: w.triggers,
    deployments: w.deployments,
    kube: w.kube,
    render: { dispatcherImage: 'img:1', timezone: 'UTC', resources: DEFAULT_RESOURCES },
    namespaces: ['ns1'],
    namespaceObjects: w.namespaces,
  });
  acceptFrom(w, 'other', 'ns1');
  w.triggers.put(elsewhere('x'));
  await r.reconcile('ns1/x');
  assert.equal(readyOf(w, 'x').reason, 'NamespaceNotAllowed');
});

test('a withdrawn opt-in takes effect whatever the spec says now: broken, or pointing at a third namespace', async () => {
  const placed = async () => {
    const w = world();
    for (const ns of ['b', 'c']) acceptFrom(w, ns, ns === 'b' ? 'ns1' : undefined);
    w.triggers.put(elsewhere('x', 'b'));
    for (let i = 0; i < 3; i++) await w.r.reconcile('ns1/x');
    assert.ok(w.deployments.get('x', 'b'));
    assert.deepEqual(w.triggers.get('x', 'ns1')!.status.deployment, { name: 'x', namespace: 'b' });
    return w;
  };
  // Broken spec, then b withdraws: the Deployment in b goes, the status says InvalidSpec and names none.
  const broken = await placed();
  editSpec(broken.triggers.get('x', 'ns1')!, (spec) => {
    spec.kubeless = { function: 'not a url' };
  });
  await broken.r.reconcile('ns1/x');
  assert.ok(broken.deployments.get('x', 'b'), 'still accepted: a broken spec keeps what runs');
  acceptFrom(broken, 'b', undefined);
  await broken.r.reconcile('ns1/x');
  assert.equal(broken.deployments.get('x', 'b'), undefined);
  assert.equal(readyOf(broken, 'x').reason, 'InvalidSpec');
  assert.equal(broken.triggers.get('x', 'ns1')!.status.deployment, undefined);

  // Moved to c, which refuses; then b withdraws too: nothing is left outside ns1, nor the finalizer.
  const moved = await placed();
  editSpec(moved.triggers.get('x', 'ns1')!, (spec) => {
    spec.deployment = { metadata: { namespace: 'c' } };
  });
  await moved.r.reconcile('ns1/x');
  assert.equal(readyOf(moved, 'x').reason, 'CrossNamespaceNotAllowed');
  assert.ok(moved.deployments.get('x', 'b'), 'b still accepts: left as any failure leaves it');
  assert.deepEqual(moved.triggers.get('x', 'ns1')!.metadata!.finalizers, [FINALIZER]);
  acceptFrom(moved, 'b', 'someone-else');
  await moved.r.reconcile('ns1/x');
  assert.equal(moved.deployments.list().length, 0);
  assert.equal(moved.secrets.list().length, 0);
  assert.deepEqual(moved.triggers.get('x', 'ns1')!.metadata!.finalizers, []);
  assert.equal(moved.triggers.get('x', 'ns1')!.status.deployment, undefined);
});

test("moved from its own namespace to one that refuses: the own namespace's Deployment stays, and is reported", async () => {
  const w = world();
  w.triggers.put(trigger('m'));
  for (let i = 0; i < 2; i++) await w.r.reconcile('ns1/m');
  editSpec(w.triggers.get('m', 'ns1')!, (spec) => {
    spec.deployment = { metadata: { namespace: 'other' } };
  });
  await w.r.reconcile('ns1/m');
  assert.equal(readyOf(w, 'm').reason, 'CrossNamespaceNotAllowed');
  assert.ok(w.deployments.get('m', 'ns1'));
  assert.deepEqual(w.triggers.get('m', 'ns1')!.status.deployment, { name: 'm', namespace: 'ns1' });
});

/** A Pulsar admin port that records its calls and answers as told. */
function fakeAdmin() {
  const calls: string[] = [];
  let answer: AdminOutcome = { ok: true };
  let consumers = 0;
  let partitions = 0;
  const port: SubscriptionPort = {
    ensure: async (_t, { settings: s }) => {
      calls.push(`ensure ${s.topic} ${s.subscription} ${s.initialPosition}`);
      return answer.ok ? { ok: true, partitions } : answer;
    },
    consumers: async () => {
      calls.push('consumers');
      return answer.ok ? { ok: true, consumers } : answer;
    },
    remove: async (_t, { settings: s }) => {
      calls.push(`remove ${s.subscription}`);
      return answer;
    },
  };
  return {
    port,
    calls,
    fail(reason: 'PulsarAdminUnavailable' | 'PulsarAdminForbidden', message: string) {
      answer = { ok: false, reason, message };
    },
    heal() {
      answer = { ok: true };
    },
    setConsumers(n: number) {
      consumers = n;
    },
    setPartitions(n: number) {
      partitions = n;
    },
  };
}

test('the subscription is made with the trigger, once per generation, at its initial position', async () => {
  const admin = fakeAdmin();
  const w = world(undefined, [], { subscriptions: admin.port });
  const t = trigger('a', { delivery: { initialPosition: 'Earliest' } });
  w.triggers.put(t);
  await w.r.reconcile('ns1/a');
  assert.deepEqual(admin.calls, ['ensure persistent://public/default/events a-ns1 Earliest']);
  assert.ok(w.writes.includes('create deployment'));
  await w.r.reconcile('ns1/a');
  await w.r.reconcile('ns1/a');
  assert.equal(admin.calls.length, 1, 'known to exist: not asked again');
  t.metadata!.generation = 2;
  await w.r.reconcile('ns1/a');
  assert.equal(admin.calls.length, 2, 'a new generation (topic or position may have changed) asks again');
});

test('an admin API that fails: Ready=False with its reason, the Deployment still made, retried with a doubling delay', async () => {
  const admin = fakeAdmin();
  const w = world(undefined, [], { subscriptions: admin.port });
  w.triggers.put(trigger('a'));
  admin.fail('PulsarAdminUnavailable', 'http://b:8080: connection refused');
  const first = await w.r.reconcile('ns1/a');
  assert.ok(w.writes.includes('create deployment'), 'dispatchers still run (they subscribe by themselves)');
  assert.equal(first.requeueAfterMs, ADMIN_RETRY_MIN_MS);
  const ready = () =>
    (w.triggers.get('a', 'ns1')?.status as TriggerStatus | undefined)?.conditions?.find(
      (c) => c.type === 'Ready',
    );
  assert.equal(ready()?.status, 'False');
  assert.equal(ready()?.reason, 'PulsarAdminUnavailable');
  assert.ok(w.writes.includes('event Warning PulsarAdminUnavailable'));
  const second = await w.r.reconcile('ns1/a');
  assert.equal(second.requeueAfterMs, ADMIN_RETRY_MIN_MS * 2);
  admin.fail('PulsarAdminForbidden', 'HTTP 401');
  await w.r.reconcile('ns1/a');
  assert.equal(ready()?.reason, 'PulsarAdminForbidden');
  admin.heal();
  const healed = await w.r.reconcile('ns1/a');
  assert.equal(healed.requeueAfterMs, undefined);
  assert.notEqual(ready()?.reason, 'PulsarAdminForbidden');
});

test('with wake: the Deployment does not wait for the broker; the subscription outcome comes with the reconcile it wakes', async () => {
  const calls: string[] = [];
  const pending: ((o: AdminOutcome & { partitions?: number }) => void)[] = [];
  const port: SubscriptionPort = {
    ensure: () => {
      calls.push('ensure');
      return new Promise((resolve) => pending.push(resolve));
    },
    consumers: async () => ({ ok: true, consumers: 0 }),
    remove: async () => ({ ok: true }),
  };
  const woken: string[] = [];
  const tracked = new Set<string>();
  const backlog = {
    track: (k: string) => tracked.add(k),
    untrack: (k: string) => tracked.delete(k),
    figures: () => undefined,
  };
  const w = world(undefined, [], { subscriptions: port, backlog, wake: (k) => woken.push(k) });
  w.triggers.put(trigger('a'));
  const ready = () =>
    (w.triggers.get('a', 'ns1')?.status as TriggerStatus | undefined)?.conditions?.find(
      (c) => c.type === 'Ready',
    );
  // The creation hangs at the broker; the Deployment is made all the same, and a second reconcile starts nothing.
  await w.r.reconcile('ns1/a');
  assert.ok(w.writes.includes('create deployment'));
  await w.r.reconcile('ns1/a');
  assert.deepEqual(calls, ['ensure'], 'one creation under way, not two');
  assert.ok(!tracked.has('ns1/a'), 'no figures before the subscription exists');
  // It fails: the trigger is woken, and that reconcile reports it and asks to come back after the retry delay.
  pending.shift()!({ ok: false, reason: 'PulsarAdminUnavailable', message: 'connection refused' });
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(woken, ['ns1/a']);
  const failed = await w.r.reconcile('ns1/a');
  assert.equal(ready()?.reason, 'PulsarAdminUnavailable');
  assert.equal(failed.requeueAfterMs, ADMIN_RETRY_MIN_MS);
  // At the retry delay: tried again; made this time, woken again, and then tracked with no further call.
  await w.r.reconcile('ns1/a');
  assert.equal(calls.length, 2);
  pending.shift()!({ ok: true, partitions: 0 });
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(woken, ['ns1/a', 'ns1/a']);
  const healed = await w.r.reconcile('ns1/a');
  assert.equal(healed.requeueAfterMs, undefined);
  assert.ok(tracked.has('ns1/a'));
  assert.notEqual(ready()?.reason, 'PulsarAdminUnavailable');
  assert.equal(calls.length, 2);
});

test('deleteSubscription: a finalizer, and the subscription goes once no dispatcher holds it', async () => {
  const admin = fakeAdmin();
  const w = world(undefined, [], { subscriptions: admin.port });
  const t = trigger('a', { delivery: { deleteSubscription: true } });
  w.triggers.put(t);
  await w.r.reconcile('ns1/a');
  assert.deepEqual(t.metadata!.finalizers, [FINALIZER], 'same namespace, still a finalizer');
  await w.r.reconcile('ns1/a');
  t.metadata!.deletionTimestamp = '2026-01-01T00:00:00Z';
  admin.setConsumers(1);
  const waiting = await w.r.reconcile('ns1/a');
  assert.ok(waiting.requeueAfterMs !== undefined, 'a dispatcher still attached: wait');
  assert.ok(!admin.calls.some((c) => c.startsWith('remove')));
  assert.deepEqual(t.metadata!.finalizers, [FINALIZER]);
  admin.setConsumers(0);
  await w.r.reconcile('ns1/a');
  assert.ok(admin.calls.includes('remove a-ns1'));
  assert.deepEqual(t.metadata!.finalizers, []);
});

test('without deleteSubscription the subscription is kept and a same-namespace trigger has no finalizer', async () => {
  const admin = fakeAdmin();
  const w = world(undefined, [], { subscriptions: admin.port });
  const t = trigger('a');
  w.triggers.put(t);
  await w.r.reconcile('ns1/a');
  await w.r.reconcile('ns1/a');
  assert.equal(t.metadata!.finalizers, undefined);
  w.triggers.items.delete('ns1/a');
  await w.r.reconcile('ns1/a');
  assert.ok(!admin.calls.some((c) => c.startsWith('remove')));
});

test('the subscription figures go into the status; the same figures write nothing', async () => {
  const admin = fakeAdmin();
  const tracked = new Set<string>();
  let figures = { backlog: 42, msgRateOut: 3.5, consumers: 1, oldestPublishTime: '2026-12-04T10:00:00Z' };
  const backlog = {
    track: (k: string) => tracked.add(k),
    untrack: (k: string) => tracked.delete(k),
    figures: (k: string) =>
      tracked.has(k) ? { figures, at: Date.parse('2026-12-04T10:00:05Z') } : undefined,
  };
  const w = world(undefined, [], { subscriptions: admin.port, backlog });
  w.triggers.put(trigger('a'));
  await w.r.reconcile('ns1/a');
  assert.ok(tracked.has('ns1/a'), 'tracked once its Deployment is synced');
  await w.r.reconcile('ns1/a');
  const status = () => w.triggers.get('a', 'ns1')!.status!;
  assert.equal(status().backlog, 42);
  assert.equal(status().oldestBacklogPublishTime, '2026-12-04T10:00:00Z');
  assert.equal(status().consumers, 1);
  assert.equal(status().backlogObservedAt, '2026-12-04T10:00:05Z');
  const before = w.writes.length;
  await w.r.reconcile('ns1/a');
  assert.equal(w.writes.length, before, 'nothing changed, nothing written');
  figures = { backlog: 0, msgRateOut: 0, consumers: 1, oldestPublishTime: undefined as unknown as string };
  await w.r.reconcile('ns1/a');
  assert.equal(status().backlog, 0);
  assert.equal(status().oldestBacklogPublishTime, undefined, 'an empty backlog has no oldest message');
  w.triggers.items.delete('ns1/a');
  await w.r.reconcile('ns1/a');
  assert.ok(!tracked.has('ns1/a'), 'a deleted trigger is not read any more');
});

/** The world's API with KEDA's objects: applies land in `keda`, or fail with 404 when KEDA is "not installed". */
function withKeda(w: ReturnType<typeof world>, installed = true) {
  const keda = new Map<string, JsonObject>();
  w.kube.applyKedaObject = async (o) => {
    const m = o.metadata as JsonObject;
    w.writes.push(`apply ${o.kind}`);
    if (!installed)
      throw Object.assign(new Error('the server could not find the requested resource'), { code: 404 });
    keda.set(`${o.kind}/${m.namespace}/${m.name}`, o);
  };
  w.kube.deleteKedaObject = async (kind, ns, name) => {
    w.writes.push(`delete ${kind}`);
    keda.delete(`${kind}/${ns}/${name}`);
  };
  return keda;
}

test('autoscaling: the ScaledObject and TriggerAuthentication are applied once per generation; the Deployment starts at minReplicas or 1', async () => {
  const w = world();
  const keda = withKeda(w);
  const t = trigger('a', { autoscaling: { minReplicas: 0, maxReplicas: 5 } });
  w.triggers.put(t);
  await w.r.reconcile('ns1/a');
  const d = w.deployments.get('a', 'ns1')!;
  assert.equal(d.spec.replicas, 1, 'created running, KEDA scales it from there');
  assert.deepEqual([...keda.keys()].sort(), ['ScaledObject/ns1/a', 'TriggerAuthentication/ns1/a-keda-auth']);
  const so = keda.get('ScaledObject/ns1/a')!;
  assert.equal((so.spec as JsonObject).maxReplicaCount, 5);
  const before = w.writes.length;
  await w.r.reconcile('ns1/a');
  await w.r.reconcile('ns1/a');
  assert.deepEqual(
    w.writes.slice(before).filter((x) => x.startsWith('apply')),
    [],
    'the same generation applies nothing again',
  );
  // Autoscaling off: KEDA's objects go, and the Deployment's replicas are the controller's again.
  t.spec.autoscaling = undefined;
  t.metadata!.generation = 2;
  await w.r.reconcile('ns1/a');
  assert.deepEqual([...keda.keys()], []);
  assert.equal(w.deployments.get('a', 'ns1')!.spec.replicas, 1);
});

test('autoscaling on a partitioned topic: the ScaledObject says so, from the subscription made and then from the figures', async () => {
  const admin = fakeAdmin();
  admin.setPartitions(3);
  let figures: BacklogFigures | undefined;
  const backlog = {
    track: () => {},
    untrack: () => {},
    figures: () => (figures ? { figures, at: 0 } : undefined),
  };
  const w = world(undefined, [], { subscriptions: admin.port, backlog });
  const keda = withKeda(w);
  w.triggers.put(trigger('a', { autoscaling: { minReplicas: 0 } }));
  const partitionedFlag = () =>
    (keda.get('ScaledObject/ns1/a')!.spec as { triggers: { metadata: JsonObject }[] }).triggers[0]!.metadata
      .isPartitionedTopic;
  await w.r.reconcile('ns1/a');
  assert.equal(partitionedFlag(), 'true', 'known when the subscription was made');
  // The topic re-created without partitions: the figures say so, and the ScaledObject follows.
  figures = { backlog: 0, msgRateOut: 0, consumers: 0, partitions: 0 };
  const before = w.writes.length;
  await w.r.reconcile('ns1/a');
  assert.equal(partitionedFlag(), 'false');
  assert.ok(w.writes.slice(before).includes('apply ScaledObject'));
  const after = w.writes.length;
  await w.r.reconcile('ns1/a');
  assert.ok(!w.writes.slice(after).includes('apply ScaledObject'), 'unchanged: not applied again');
});

test('autoscaling without KEDA: Ready=False AutoscalerNotInstalled, the Deployment runs at minReplicas', async () => {
  const w = world();
  withKeda(w, false);
  w.triggers.put(trigger('a', { autoscaling: { minReplicas: 2, maxReplicas: 4 } }));
  const out = await w.r.reconcile('ns1/a');
  assert.equal(w.deployments.get('a', 'ns1')!.spec.replicas, 2);
  const ready = (w.triggers.get('a', 'ns1')!.status as TriggerStatus).conditions!.find(
    (c) => c.type === 'Ready',
  )!;
  assert.equal(ready.status, 'False');
  assert.equal(ready.reason, 'AutoscalerNotInstalled');
  assert.match(ready.message, /KEDA is not installed/);
  assert.ok(out.requeueAfterMs !== undefined, 'looked for again later');
  assert.ok(w.writes.includes('event Warning AutoscalerNotInstalled'));
});

test('a change of subscription type replaces the Deployment instead of rolling it (the broker refuses mixed types)', async () => {
  const w = world();
  const t = trigger('a', { delivery: { ordering: 'none' } });
  w.triggers.put(t);
  await w.r.reconcile('ns1/a');
  const first = w.deployments.get('a', 'ns1')!;
  assert.equal(first.metadata!.annotations!['kubeless.io/subscription-type'], 'Shared');
  // ordering key: Key_Shared now.
  t.spec.delivery = { ordering: 'key' };
  t.metadata!.generation = 2;
  w.writes.length = 0;
  await w.r.reconcile('ns1/a');
  assert.deepEqual(w.writes, ['delete deployment ns1/a'], 'replaced, not applied');
  await w.r.reconcile('ns1/a');
  assert.ok(w.writes.includes('create deployment'));
  assert.equal(
    w.deployments.get('a', 'ns1')!.metadata!.annotations!['kubeless.io/subscription-type'],
    'Key_Shared',
  );
  // Another change of the same type rolls as usual.
  t.spec.delivery = { ordering: 'key', concurrency: 4 };
  t.metadata!.generation = 3;
  w.writes.length = 0;
  await w.r.reconcile('ns1/a');
  assert.deepEqual(w.writes, ['apply deployment']);
});

test('a Deployment written before the annotation: its type is the one the trigger names, else Shared', async () => {
  const w = world();
  const named = trigger('a', { delivery: { subscriptionType: 'Shared', ordering: 'key' } });
  w.triggers.put(named);
  await w.r.reconcile('ns1/a');
  const d = w.deployments.get('a', 'ns1')!;
  delete d.metadata!.annotations!['kubeless.io/subscription-type'];
  d.metadata!.annotations!['kubeless.io/spec-hash'] = 'from-before';
  w.writes.length = 0;
  await w.r.reconcile('ns1/a');
  assert.deepEqual(w.writes, ['apply deployment'], 'Shared named and kept: rolled');
  const unnamed = trigger('b');
  w.triggers.put(unnamed);
  await w.r.reconcile('ns1/b');
  const e = w.deployments.get('b', 'ns1')!;
  delete e.metadata!.annotations!['kubeless.io/subscription-type'];
  e.metadata!.annotations!['kubeless.io/spec-hash'] = 'from-before';
  w.writes.length = 0;
  await w.r.reconcile('ns1/b');
  assert.deepEqual(w.writes, ['delete deployment ns1/b'], 'was Shared by default, Key_Shared now: replaced');
});
