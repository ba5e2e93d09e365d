import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  FINALIZER,
  type KubeObject,
  type KubeWrites,
  Reconciler,
  type Store,
} from '../../../src/controller/reconcile.ts';
import { DEFAULT_RESOURCES, type JsonObject, type RenderConfig } from '../../../src/trigger/render.ts';
import type { TriggerStatus } from '../../../src/trigger/spec.ts';

/** An in-memory API: writes land in the stores the reconciler reads, as informers would deliver them. */
class FakeStore implements Store<KubeObject> {
  readonly items = new Map<string, KubeObject>();
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
) {
  const triggers = new FakeStore();
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
  });
  return { triggers, deployments, secrets, writes, existing, r, kube };
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
  assert.deepEqual(w.writes, ['create deployment', 'create deployment', 'status']);
  assert.equal(reads, 0, 'no token Secret read for new triggers without a token');
});

test('first reconcile creates Secret and Deployment, the next writes status, then nothing', async () => {
  const w = world();
  w.triggers.put(trigger('a'));
  await w.r.reconcile('ns1/a');
  assert.deepEqual(w.writes, ['create secret', 'create deployment']);
  w.writes.length = 0;
  await w.r.reconcile('ns1/a'); // brought back by the Deployment's watch event
  assert.deepEqual(w.writes, ['status']);
  w.writes.length = 0;
  await w.r.reconcile('ns1/a');
  assert.deepEqual(w.writes, []);
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
  assert.deepEqual(w.writes, ['create secret', 'create deployment', 'status']);
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
