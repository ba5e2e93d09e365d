// reconcile(key): make the world match one PulsarTrigger. Level-based: it reads the trigger and what exists from
// the informer caches, never from the events that led here, so running it twice is the same as running it once.
// It writes only what differs (hash annotation for Deployments and Secrets, a value comparison for status), which
// is what makes a resync or a restart cost zero writes. The API is behind KubeWrites, so unit tests use a fake.

import type { Result, TriggerError } from '../trigger/errors.ts';
import {
  ANNOTATION_HASH,
  ANNOTATION_TRIGGER,
  CREATED_BY,
  CREATED_BY_VALUE,
  deploymentName,
  type JsonObject,
  LABEL_TRIGGER_UID,
  type RenderConfig,
  type Rendered,
  renderTrigger,
  tokenSecretName,
} from '../trigger/render.ts';
import type { Condition, PulsarTrigger, TriggerStatus } from '../trigger/spec.ts';
import { ControllerError, describe, httpStatus } from './errors.ts';

export const FINALIZER = 'kubeless.io/pulsartrigger-cleanup';

/** The longest a status write waits for Deployment creates in flight to end (statusAfterCreates). */
export const STATUS_WAIT_MAX_MS = 5000;

export interface Meta {
  name?: string;
  namespace?: string;
  uid?: string;
  generation?: number;
  resourceVersion?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
  deletionTimestamp?: unknown;
  ownerReferences?: { uid?: string; kind?: string }[];
}

export interface KubeObject {
  metadata?: Meta;
  // biome-ignore lint/suspicious/noExplicitAny: objects from the API are checked where they are read
  spec?: any;
  // biome-ignore lint/suspicious/noExplicitAny: as above
  status?: any;
}

export interface Store<T> {
  get(name: string, namespace?: string): T | undefined;
  list(namespace?: string): ReadonlyArray<T>;
  /**
   * Objects whose kubeless.io/trigger-uid label has this value, if the store keeps that index (the informers do:
   * scanning every Deployment for each reconcile made 1000 triggers cost a million comparisons).
   */
  byTriggerUid?(uid: string): ReadonlyArray<T>;
}

/** What a Secret write resolves with: the Secret as written, or nothing (then it is read when next needed). */
// biome-ignore lint/suspicious/noConfusingVoidType: lets a writer that returns nothing (Promise<void>) implement it
export type SecretWritten = KubeObject | undefined | void;

export interface KubeWrites {
  createDeployment(obj: JsonObject): Promise<void>;
  applyDeployment(obj: JsonObject): Promise<void>;
  deleteDeployment(namespace: string, name: string, uid: string): Promise<void>;
  /** Creates a Secret; may return it as created (remembered, so the next reconcile need not read it). */
  createSecret(obj: JsonObject): Promise<SecretWritten>;
  applySecret(obj: JsonObject): Promise<SecretWritten>;
  deleteSecret(namespace: string, name: string, uid: string): Promise<void>;
  patchTriggerStatus(namespace: string, name: string, status: TriggerStatus): Promise<void>;
  setTriggerFinalizers(
    namespace: string,
    name: string,
    finalizers: string[],
    resourceVersion: string,
  ): Promise<void>;
  event(trigger: KubeObject, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void>;
  /** Whether a referenced Secret or ConfigMap exists (a read). */
  exists(kind: 'Secret' | 'ConfigMap', namespace: string, name: string): Promise<boolean>;
  /**
   * Reads one Secret. Secrets are read one by one instead of watched: a list/watch permission on Secrets would
   * let the controller read every Secret in the cluster, labels or not.
   */
  getSecret(namespace: string, name: string): Promise<KubeObject | undefined>;
  /** Whether any Deployment of that name exists, ours or not (a read). */
  deploymentExists(namespace: string, name: string): Promise<boolean>;
}

export interface ReconcileDeps {
  triggers: Store<KubeObject>;
  deployments: Store<KubeObject>;
  kube: KubeWrites;
  render: RenderConfig;
  /** Watched namespaces; empty: all. */
  namespaces: readonly string[];
  now?: () => Date;
  /**
   * How long a Secret read (the owned token Secret, a referenced Secret or ConfigMap found to exist) is trusted
   * before it is read again. Secrets are not watched, so without this every reconcile (and every watch event that
   * brings one) would cost a GET. Default 60 s; drift is still noticed within this time of the next reconcile.
   */
  readCacheMs?: number;
  log?: (level: 'info' | 'warn' | 'debug', msg: string, ctx: Record<string, unknown>) => void;
}

export interface Outcome {
  /** Reconcile again after this long (waiting on something not watched, e.g. a user's Secret). */
  requeueAfterMs?: number;
  /** What happened, for logs and tests. */
  actions: string[];
}

export type Reason =
  | 'Ready'
  | 'ReplicasNotReady'
  | 'Applied'
  | 'InvalidSpec'
  | 'SecretNotFound'
  | 'ConfigMapNotFound'
  | 'NamespaceNotAllowed'
  | 'Forbidden'
  | 'DeploymentConflict'
  | 'SecretConflict'
  | 'ApplyFailed';

export function splitKey(key: string): { namespace: string; name: string } {
  const i = key.indexOf('/');
  return { namespace: key.slice(0, i), name: key.slice(i + 1) };
}

export function keyOf(obj: KubeObject): string {
  return `${obj.metadata?.namespace ?? ''}/${obj.metadata?.name ?? ''}`;
}

export function isOurs(obj: KubeObject): boolean {
  return (
    obj.metadata?.labels?.[CREATED_BY] === CREATED_BY_VALUE && !!obj.metadata?.labels?.[LABEL_TRIGGER_UID]
  );
}

/** A Deployment made by the seed (Python) controller: its label, and a selector on that label only. */
export function isSeedDeployment(obj: KubeObject): boolean {
  const labels = obj.metadata?.labels ?? {};
  const sel = obj.spec?.selector?.matchLabels as Record<string, string> | undefined;
  return (
    labels[CREATED_BY] === CREATED_BY_VALUE &&
    !labels[LABEL_TRIGGER_UID] &&
    sel !== undefined &&
    Object.keys(sel).length === 1 &&
    sel[CREATED_BY] === CREATED_BY_VALUE
  );
}

/** The trigger key an owned object belongs to (from its annotation), for routing informer events. */
export function ownerKey(obj: KubeObject): string | undefined {
  return obj.metadata?.annotations?.[ANNOTATION_TRIGGER];
}

function conditionsEqual(a: Condition[] | undefined, b: Condition[] | undefined): boolean {
  const norm = (cs: Condition[] | undefined) =>
    JSON.stringify(
      (cs ?? [])
        .map((c) => ({ t: c.type, s: c.status, r: c.reason, m: c.message, g: c.observedGeneration }))
        .sort((x, y) => x.t.localeCompare(y.t)),
    );
  return norm(a) === norm(b);
}

export function statusEqual(a: TriggerStatus | undefined, b: TriggerStatus): boolean {
  return (
    a !== undefined &&
    a.observedGeneration === b.observedGeneration &&
    a.replicas === b.replicas &&
    a.readyReplicas === b.readyReplicas &&
    a.deployment?.name === b.deployment?.name &&
    a.deployment?.namespace === b.deployment?.namespace &&
    conditionsEqual(a.conditions, b.conditions)
  );
}

/** Sets a condition, keeping lastTransitionTime when the status did not change (API conventions). */
export function setCondition(
  existing: Condition[] | undefined,
  next: Omit<Condition, 'lastTransitionTime'>,
  now: Date,
): Condition[] {
  const old = (existing ?? []).find((c) => c.type === next.type);
  const lastTransitionTime =
    old && old.status === next.status ? old.lastTransitionTime : now.toISOString().replace(/\.\d+Z$/, 'Z');
  return [...(existing ?? []).filter((c) => c.type !== next.type), { ...next, lastTransitionTime }];
}

function hasFinalizer(obj: KubeObject): boolean {
  return (obj.metadata?.finalizers ?? []).includes(FINALIZER);
}

interface Remembered {
  at: number;
  live: KubeObject | undefined;
}

/**
 * What a reconcile needs of a rendering to decide what to write. The objects themselves (objects()) are rendered
 * only when something is to be written: the plan of a trigger is remembered (Reconciler.plans) while its spec
 * does not change, and most reconciles write nothing.
 */
export interface Plan {
  name: string;
  namespace: string;
  sameNamespace: boolean;
  secretName: string;
  /** The Deployment's kubeless.io/spec-hash. */
  hash: string;
  /** The token Secret's kubeless.io/spec-hash, when the trigger has an inline token (and so a Secret). */
  secretHash: string | undefined;
  /** spec.replicas of the rendered Deployment. */
  replicas: number;
}

interface Planned extends Plan {
  objects(): Rendered;
}

function planOf(r: Rendered): Plan {
  const secretMeta = r.secret?.metadata as JsonObject | undefined;
  return {
    name: r.name,
    namespace: r.namespace,
    sameNamespace: r.sameNamespace,
    secretName: r.secretName,
    hash: r.hash,
    secretHash: (secretMeta?.annotations as Record<string, string> | undefined)?.[ANNOTATION_HASH],
    replicas: (r.deployment.spec as JsonObject).replicas as number,
  };
}

export class Reconciler {
  private readonly d: ReconcileDeps;
  /** Secrets (and referenced ConfigMaps) read or written lately, by kind/namespace/name. */
  private readonly seen = new Map<string, Remembered>();
  private calls = 0;
  /** Deployment creates in flight, and who waits for them to end (see statusAfterCreates). */
  private creating = 0;
  private createsDone: (() => void)[] = [];
  /**
   * Each trigger's plan, by key, for as long as its uid and metadata.generation stay the same. A render reads
   * only the trigger's name, namespace, uid and spec (and the fixed configuration), and the API server bumps the
   * generation on every change to the spec (the CRD has no defaults that could change the spec on read), so the
   * same uid and generation render the same objects. A status write does not bump it: the reconcile that the
   * status write's own watch event brings, the one brought by the Deployment's events, and a resync render
   * nothing. (Measured: with 1000 new triggers, rendering was a quarter of the controller's CPU while it created
   * their Deployments, and every trigger was rendered again for its status.)
   */
  private readonly plans = new Map<string, { uid: string; generation: number; plan: Plan }>();

  constructor(deps: ReconcileDeps) {
    this.d = deps;
  }

  /**
   * Resolves when no Deployment create is in flight. Status writes wait for it: when many triggers arrive at once,
   * the first Deployments' watch events bring their triggers back for status while the last creates are still
   * being made, and those status patches compete with the creates for the API server (measured: 10-57 of them in
   * the window of bench/controller.ts, whose 2 cores are full). Dispatchers first, reports after; but never more
   * than STATUS_WAIT_MAX_MS, so a steady stream of new triggers cannot hold statuses back for long.
   */
  private statusAfterCreates(): Promise<void> {
    if (this.creating === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, STATUS_WAIT_MAX_MS);
      this.createsDone.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  private async createDeployment(obj: JsonObject): Promise<void> {
    this.creating++;
    try {
      await this.d.kube.createDeployment(obj);
    } finally {
      if (--this.creating === 0) for (const wake of this.createsDone.splice(0)) wake();
    }
  }

  private remember(key: string, live: SecretWritten): void {
    if (live) this.seen.set(key, { at: Date.now(), live });
    else this.seen.delete(key);
  }

  private recall(key: string): Remembered | undefined {
    const r = this.seen.get(key);
    if (r && Date.now() - r.at < (this.d.readCacheMs ?? 60_000)) return r;
    if (r) this.seen.delete(key);
    return undefined;
  }

  /** The owned token Secret, from memory when read or written lately. */
  private async readSecret(namespace: string, name: string): Promise<KubeObject | undefined> {
    const key = `Secret/${namespace}/${name}`;
    const r = this.recall(key);
    if (r) return r.live;
    const live = await this.d.kube.getSecret(namespace, name);
    // Absence is remembered too (with a marker), so a trigger without a token reads once per period, not per event.
    this.seen.set(key, { at: Date.now(), live });
    return live;
  }

  private async referenceExists(kind: 'Secret' | 'ConfigMap', namespace: string, name: string) {
    const key = `ref/${kind}/${namespace}/${name}`;
    if (this.recall(key)) return true;
    // Only presence is remembered: a missing reference is looked for again at its next retry.
    const found = await this.d.kube.exists(kind, namespace, name);
    if (found) this.seen.set(key, { at: Date.now(), live: { metadata: { namespace, name } } });
    return found;
  }

  private now(): Date {
    return this.d.now ? this.d.now() : new Date();
  }

  private log(level: 'info' | 'warn' | 'debug', msg: string, ctx: Record<string, unknown>): void {
    this.d.log?.(level, msg, ctx);
  }

  /** Our Deployments of one trigger UID, wherever they are. */
  private ownedBy(uid: string): KubeObject[] {
    const s = this.d.deployments;
    return (s.byTriggerUid ? s.byTriggerUid(uid) : s.list()).filter(
      (o) => o.metadata?.labels?.[LABEL_TRIGGER_UID] === uid && isOurs(o),
    );
  }

  /** Deletes the token Secret that goes with a Deployment, if it is ours (and, given a UID, that trigger's). */
  private async deleteTokenSecret(
    namespace: string,
    deployment: string,
    uid: string | undefined,
    actions: string[],
  ): Promise<void> {
    const name = tokenSecretName(deployment);
    const live = await this.readSecret(namespace, name);
    if (!live || !isOurs(live) || live.metadata?.deletionTimestamp) return;
    if (uid !== undefined && live.metadata?.labels?.[LABEL_TRIGGER_UID] !== uid) return;
    await this.d.kube.deleteSecret(namespace, name, live.metadata!.uid!);
    this.seen.set(`Secret/${namespace}/${name}`, { at: Date.now(), live: undefined });
    actions.push(`delete secret ${namespace}/${name}`);
  }

  /** Deletes one of our Deployments and the token Secret beside it. */
  private async deleteOwned(dep: KubeObject, actions: string[], what = 'delete deployment'): Promise<void> {
    const m = dep.metadata!;
    if (!m.deletionTimestamp) {
      await this.d.kube.deleteDeployment(m.namespace!, m.name!, m.uid!);
      actions.push(`${what} ${m.namespace}/${m.name}`);
    }
    await this.deleteTokenSecret(m.namespace!, m.name!, m.labels?.[LABEL_TRIGGER_UID], actions);
  }

  async reconcile(key: string): Promise<Outcome> {
    // Forget expired reads now and then, so deleted triggers' entries do not pile up.
    if (++this.calls % 1024 === 0) for (const k of [...this.seen.keys()]) this.recall(k);
    const { namespace, name } = splitKey(key);
    const trigger = this.d.triggers.get(name, namespace);
    if (!trigger) {
      this.plans.delete(key);
      return this.cleanupMissing(key);
    }
    if (trigger.metadata?.deletionTimestamp) return this.finalize(trigger);
    return this.sync(trigger);
  }

  /**
   * The trigger is gone. Objects with ownerReferences go by garbage collection; this removes the rest: ours
   * (created-by and a trigger UID label), annotated with this key, whose UID is no live trigger's.
   */
  private async cleanupMissing(key: string): Promise<Outcome> {
    const actions: string[] = [];
    const live = new Set(this.d.triggers.list().map((t) => t.metadata?.uid));
    const orphan = (o: KubeObject) =>
      isOurs(o) &&
      ownerKey(o) === key &&
      !live.has(o.metadata?.labels?.[LABEL_TRIGGER_UID]) &&
      !o.metadata?.deletionTimestamp;
    for (const dep of this.d.deployments.list().filter(orphan)) await this.deleteOwned(dep, actions);
    return { actions };
  }

  /** Deletion with a finalizer (Deployment in another namespace): delete what we made, then let go. */
  private async finalize(trigger: KubeObject): Promise<Outcome> {
    const actions: string[] = [];
    if (!hasFinalizer(trigger)) return { actions };
    const uid = trigger.metadata!.uid!;
    for (const dep of this.ownedBy(uid)) await this.deleteOwned(dep, actions);
    // A Secret may exist without its Deployment (creation failed half-way): look where the spec puts it.
    const target =
      (trigger.spec?.deployment?.metadata?.namespace as string | undefined) ?? trigger.metadata!.namespace!;
    await this.deleteTokenSecret(target, deploymentName(trigger.metadata!.name!), uid, actions);
    const rest = (trigger.metadata?.finalizers ?? []).filter((f) => f !== FINALIZER);
    await this.d.kube.setTriggerFinalizers(
      trigger.metadata!.namespace!,
      trigger.metadata!.name!,
      rest,
      trigger.metadata!.resourceVersion!,
    );
    actions.push('remove finalizer');
    return { actions };
  }

  /** The trigger's plan: remembered, or rendered now (then the objects just rendered come with it). */
  private plan(trigger: KubeObject): Result<Planned, TriggerError> {
    const meta = trigger.metadata!;
    const key = keyOf(trigger);
    const known = this.plans.get(key);
    let made: Rendered | undefined;
    const objects = () => {
      if (made) return made;
      const again = renderTrigger(trigger as unknown as PulsarTrigger, this.d.render);
      // The same input rendered before: it cannot fail now.
      if (!again.ok) throw again.error;
      made = again.value;
      return made;
    };
    if (known && known.uid === meta.uid && known.generation === meta.generation)
      return { ok: true, value: { ...known.plan, objects } };
    const rendered = renderTrigger(trigger as unknown as PulsarTrigger, this.d.render);
    if (!rendered.ok) {
      this.plans.delete(key);
      return rendered;
    }
    made = rendered.value;
    const plan = planOf(made);
    if (meta.uid !== undefined && meta.generation !== undefined)
      this.plans.set(key, { uid: meta.uid, generation: meta.generation, plan });
    else this.plans.delete(key);
    return { ok: true, value: { ...plan, objects } };
  }

  private async sync(trigger: KubeObject): Promise<Outcome> {
    const actions: string[] = [];
    const meta = trigger.metadata!;
    const planned = this.plan(trigger);
    if (!planned.ok) return this.fail(trigger, 'InvalidSpec', describeTriggerError(planned.error), actions);
    const r = planned.value;

    if (this.d.namespaces.length > 0 && !this.d.namespaces.includes(r.namespace)) {
      return this.fail(
        trigger,
        'NamespaceNotAllowed',
        `spec.deployment.metadata.namespace: "${r.namespace}" is not watched by this controller (${this.d.namespaces.join(', ')})`,
        actions,
      );
    }

    // A Deployment elsewhere has no ownerReference to the trigger, so a finalizer cleans it up.
    if (!r.sameNamespace && !hasFinalizer(trigger)) {
      await this.d.kube.setTriggerFinalizers(
        meta.namespace!,
        meta.name!,
        [...(meta.finalizers ?? []), FINALIZER],
        meta.resourceVersion!,
      );
      actions.push('add finalizer');
      // The update comes back through the informer and reconciles again with the new resourceVersion.
      return { actions };
    }

    const missing = await this.missingReference(trigger, r);
    if (missing) return this.fail(trigger, missing.reason, missing.message, actions, 30_000);

    try {
      await this.syncSecret(trigger, r, actions);
      const conflict = await this.syncDeployment(trigger, r, actions);
      if (conflict) return this.fail(trigger, 'DeploymentConflict', conflict, actions);
      await this.removeStrays(meta.uid!, r, actions);
    } catch (e) {
      if (e instanceof ControllerError && e.code === 'E_CONFLICT')
        return this.fail(trigger, 'SecretConflict', e.message, actions);
      const status = httpStatus(e);
      if (status === 403) return this.fail(trigger, 'Forbidden', describe(e), actions, 60_000);
      if (status === 422 || status === 400) return this.fail(trigger, 'ApplyFailed', describe(e), actions);
      throw e;
    }

    if (r.sameNamespace && hasFinalizer(trigger)) {
      await this.d.kube.setTriggerFinalizers(
        meta.namespace!,
        meta.name!,
        (meta.finalizers ?? []).filter((f) => f !== FINALIZER),
        meta.resourceVersion!,
      );
      actions.push('remove finalizer');
    }

    // Status waits for the Deployment's own watch event, which brings this key back: with many triggers at once,
    // every Deployment gets created before any status is written (the queue is first in, first out).
    if (actions.some((a) => a.startsWith('create deployment') || a.startsWith('apply deployment')))
      return { actions };

    const live = this.d.deployments.get(r.name, r.namespace);
    const replicas = typeof live?.spec?.replicas === 'number' ? live.spec.replicas : r.replicas;
    const readyReplicas = typeof live?.status?.readyReplicas === 'number' ? live.status.readyReplicas : 0;
    const ready = readyReplicas >= replicas;
    await this.writeStatus(
      trigger,
      {
        type: 'Ready',
        status: ready ? 'True' : 'False',
        reason: ready ? 'Ready' : 'ReplicasNotReady',
        message: `${readyReplicas}/${replicas} dispatcher replicas ready`,
      },
      { deployment: { name: r.name, namespace: r.namespace }, replicas, readyReplicas },
      actions,
    );
    return { actions };
  }

  private async missingReference(
    trigger: KubeObject,
    r: Planned,
  ): Promise<{ reason: Reason; message: string } | undefined> {
    const p = (trigger.spec as { pulsar?: import('../trigger/spec.ts').PulsarSpec }).pulsar;
    const refs: { kind: 'Secret' | 'ConfigMap'; name: string; field: string }[] = [];
    if (p?.authTokenSecretRef)
      refs.push({ kind: 'Secret', name: p.authTokenSecretRef.name, field: 'spec.pulsar.authTokenSecretRef' });
    if (p?.tls?.caSecretRef)
      refs.push({ kind: 'Secret', name: p.tls.caSecretRef.name, field: 'spec.pulsar.tls.caSecretRef' });
    if (p?.tls?.caConfigMapRef)
      refs.push({
        kind: 'ConfigMap',
        name: p.tls.caConfigMapRef.name,
        field: 'spec.pulsar.tls.caConfigMapRef',
      });
    if (p?.tls?.clientCertSecretRef)
      refs.push({
        kind: 'Secret',
        name: p.tls.clientCertSecretRef.name,
        field: 'spec.pulsar.tls.clientCertSecretRef',
      });
    for (const ref of refs) {
      if (!(await this.referenceExists(ref.kind, r.namespace, ref.name))) {
        return {
          reason: ref.kind === 'Secret' ? 'SecretNotFound' : 'ConfigMapNotFound',
          message: `${ref.field}: ${ref.kind} ${r.namespace}/${ref.name} not found`,
        };
      }
    }
    return undefined;
  }

  private async syncSecret(trigger: KubeObject, r: Planned, actions: string[]): Promise<void> {
    const uid = trigger.metadata!.uid!;
    // A trigger never reconciled (no status) and without a Deployment is new: reads that can wait do, so creating
    // many triggers at once costs one write per object; the Deployment's watch event brings the trigger back.
    // Any other trigger reads first, so a restart or a resync never tries a create that would fail.
    const fresh = trigger.status === undefined && this.d.deployments.get(r.name, r.namespace) === undefined;
    if (r.secretHash === undefined) {
      // No inline token (any more): a token Secret of this trigger left from before goes (on the next pass when
      // the Deployment is only being created).
      if (!fresh) await this.deleteTokenSecret(r.namespace, r.name, uid, actions);
      // A new trigger without a token has no token Secret: remembered as absent for the read-cache period, so its
      // status pass right after does not GET it (a 404 per trigger, 1000 of them when 1000 triggers arrive).
      // One left by a crash between the Secret and the Deployment is found when the memory expires.
      else this.seen.set(`Secret/${r.namespace}/${r.secretName}`, { at: Date.now(), live: undefined });
      return;
    }
    const key = `Secret/${r.namespace}/${r.secretName}`;
    const hash = r.secretHash;
    const conflict = () =>
      new ControllerError(
        'E_CONFLICT',
        `Secret ${r.namespace}/${r.secretName} exists and is not this trigger's`,
      );
    const create = async () => {
      this.remember(key, await this.d.kube.createSecret(r.objects().secret!));
      actions.push(`create secret ${r.namespace}/${r.secretName}`);
    };
    if (fresh && !this.recall(key)) {
      // Create first; a 409 (a Secret of that name exists) falls back to reading it.
      try {
        return await create();
      } catch (e) {
        if (httpStatus(e) !== 409) throw e;
      }
      this.seen.delete(key);
    }
    const live = await this.readSecret(r.namespace, r.secretName);
    if (!live) {
      try {
        await create();
      } catch (e) {
        this.seen.delete(key);
        if (httpStatus(e) === 409) throw conflict();
        throw e;
      }
      return;
    }
    const owner = live.metadata?.labels?.[LABEL_TRIGGER_UID];
    // Ours but left by a deleted trigger of the same name can be taken; anything else is not touched.
    if (!isOurs(live) || (owner !== uid && this.d.triggers.list().some((t) => t.metadata?.uid === owner))) {
      throw conflict();
    }
    if (live.metadata?.annotations?.[ANNOTATION_HASH] !== hash) {
      this.seen.delete(key);
      this.remember(key, await this.d.kube.applySecret(r.objects().secret!));
      actions.push(`apply secret ${r.namespace}/${r.secretName}`);
    }
  }

  /** Returns a conflict message when the Deployment's name is taken by something that is not this trigger's. */
  private async syncDeployment(
    trigger: KubeObject,
    r: Planned,
    actions: string[],
  ): Promise<string | undefined> {
    const uid = trigger.metadata!.uid!;
    let live = this.d.deployments.get(r.name, r.namespace);
    if (live && isSeedDeployment(live)) {
      // Adoption of the seed's Deployment: its selector cannot change, so it is replaced.
      await this.d.kube.deleteDeployment(r.namespace, r.name, live.metadata!.uid!);
      actions.push(`replace seed deployment ${r.namespace}/${r.name}`);
      live = undefined;
    } else if (live && live.metadata?.labels?.[LABEL_TRIGGER_UID] !== uid) {
      const otherUid = live.metadata?.labels?.[LABEL_TRIGGER_UID];
      const otherAlive = this.d.triggers.list().some((t) => t.metadata?.uid === otherUid);
      if (otherAlive || !isOurs(live)) {
        return `Deployment ${r.namespace}/${r.name} belongs to another trigger (${ownerKey(live) ?? 'unknown'})`;
      }
      // Left by a deleted trigger of the same name: remove it; its deletion event brings us back here.
      if (!live.metadata?.deletionTimestamp) {
        await this.d.kube.deleteDeployment(r.namespace, r.name, live.metadata!.uid!);
        actions.push(`delete orphan deployment ${r.namespace}/${r.name}`);
      }
      return undefined;
    }
    if (live?.metadata?.deletionTimestamp) return undefined; // wait for it to go; its delete event requeues
    if (!live) {
      // Already reported as taken by a foreign Deployment: check with a read instead of failing a create again.
      const reported = (trigger.status as TriggerStatus | undefined)?.conditions?.find(
        (c) => c.type === 'Ready',
      );
      if (
        reported?.reason === 'DeploymentConflict' &&
        (await this.d.kube.deploymentExists(r.namespace, r.name))
      ) {
        return reported.message;
      }
      try {
        await this.createDeployment(r.objects().deployment);
        actions.push(`create deployment ${r.namespace}/${r.name}`);
      } catch (e) {
        if (httpStatus(e) === 409)
          return `Deployment ${r.namespace}/${r.name} already exists and was not created by this controller`;
        throw e;
      }
    } else if (live.metadata?.annotations?.[ANNOTATION_HASH] !== r.hash) {
      await this.d.kube.applyDeployment(r.objects().deployment);
      actions.push(`apply deployment ${r.namespace}/${r.name}`);
    }
    // The seed put Deployments in "default" whatever the trigger's namespace: adopt means removing that copy too.
    if (r.namespace !== 'default') {
      const misplaced = this.d.deployments.get(r.name, 'default');
      if (misplaced && isSeedDeployment(misplaced) && !misplaced.metadata?.deletionTimestamp) {
        await this.d.kube.deleteDeployment('default', r.name, misplaced.metadata!.uid!);
        actions.push(`delete seed deployment default/${r.name}`);
      }
    }
    return undefined;
  }

  /** Our Deployments of this trigger that are not where the trigger now puts them (namespace moved). */
  private async removeStrays(uid: string, r: Plan, actions: string[]): Promise<void> {
    for (const dep of this.ownedBy(uid)) {
      const m = dep.metadata!;
      if (m.namespace === r.namespace && m.name === r.name) continue;
      await this.deleteOwned(dep, actions, 'delete stray deployment');
    }
  }

  private async fail(
    trigger: KubeObject,
    reason: Reason,
    message: string,
    actions: string[],
    requeueAfterMs?: number,
  ): Promise<Outcome> {
    this.log('warn', 'trigger not ready', { trigger: keyOf(trigger), reason, message });
    await this.writeStatus(trigger, { type: 'Ready', status: 'False', reason, message }, {}, actions, true);
    return requeueAfterMs === undefined ? { actions } : { actions, requeueAfterMs };
  }

  private async writeStatus(
    trigger: KubeObject,
    ready: Omit<Condition, 'lastTransitionTime' | 'observedGeneration'>,
    rest: Omit<TriggerStatus, 'conditions' | 'observedGeneration'>,
    actions: string[],
    warn = false,
  ): Promise<void> {
    const old = trigger.status as TriggerStatus | undefined;
    const generation = trigger.metadata?.generation;
    const condition = { ...ready, ...(generation !== undefined ? { observedGeneration: generation } : {}) };
    const next: TriggerStatus = {
      ...(generation !== undefined ? { observedGeneration: generation } : {}),
      conditions: setCondition(old?.conditions, condition, this.now()),
      ...(rest.deployment
        ? { deployment: rest.deployment }
        : old?.deployment
          ? { deployment: old.deployment }
          : {}),
      ...(rest.replicas !== undefined ? { replicas: rest.replicas } : {}),
      ...(rest.readyReplicas !== undefined ? { readyReplicas: rest.readyReplicas } : {}),
    };
    if (statusEqual(old, next)) return;
    await this.statusAfterCreates();
    await this.d.kube.patchTriggerStatus(trigger.metadata!.namespace!, trigger.metadata!.name!, next);
    actions.push('status');
    const oldReady = old?.conditions?.find((c) => c.type === 'Ready');
    if (warn && (oldReady?.reason !== ready.reason || oldReady?.message !== ready.message)) {
      await this.d.kube.event(trigger, 'Warning', ready.reason, ready.message);
      actions.push(`event ${ready.reason}`);
    }
  }
}

function describeTriggerError(e: TriggerError): string {
  return e.issues.map((i) => `${i.path}: ${i.message}`).join('; ');
}
