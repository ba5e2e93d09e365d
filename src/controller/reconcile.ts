// reconcile(key): make the world match one PulsarTrigger. Level-based: it reads the trigger and what exists from
// the informer caches, never from the events that led here, so running it twice is the same as running it once.
// It writes only what differs (hash annotation for Deployments and Secrets, a value comparison for status), which
// is what makes a resync or a restart cost zero writes. The API is behind KubeWrites, so unit tests use a fake.

import type { Result, TriggerError } from '../trigger/errors.ts';
import {
  ANNOTATION_HASH,
  ANNOTATION_SUBSCRIPTION_TYPE,
  ANNOTATION_TRIGGER,
  CREATED_BY,
  CREATED_BY_VALUE,
  deploymentName,
  type JsonObject,
  LABEL_TRIGGER_UID,
  type RenderConfig,
  type Rendered,
  type RenderFacts,
  renderTrigger,
  tokenSecretName,
} from '../trigger/render.ts';
import type { Condition, PulsarTrigger, TriggerStatus } from '../trigger/spec.ts';
import type { BacklogFigures, Observed } from './backlog.ts';
import { ControllerError, describe, httpStatus } from './errors.ts';
import { type CrossNamespaceGrant, decidePlacement, type Placement } from './placement.ts';

export const FINALIZER = 'kubeless.io/pulsartrigger-cleanup';

/** The longest a status write waits for Deployment creates in flight to end (statusAfterCreates). */
export const STATUS_WAIT_MAX_MS = 5000;

/** How soon a trigger placed in another namespace is tried again while the Namespace cache is not filled. */
export const NAMESPACES_WAIT_MS = 2000;

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
  /** Server-side apply of a KEDA ScaledObject or TriggerAuthentication; a 404 means KEDA is not installed. */
  applyKedaObject?(obj: JsonObject): Promise<void>;
  deleteKedaObject?(
    kind: 'ScaledObject' | 'TriggerAuthentication',
    namespace: string,
    name: string,
  ): Promise<void>;
}

export interface ReconcileDeps {
  triggers: Store<KubeObject>;
  deployments: Store<KubeObject>;
  kube: KubeWrites;
  render: RenderConfig;
  /** Watched namespaces; empty: all. */
  namespaces: readonly string[];
  /**
   * Namespace objects (cluster-scoped: get(name)), for the kubeless.io/accept-triggers-from annotation of a
   * trigger's target namespace (placement.ts). Absent: no namespace accepts triggers from another.
   */
  namespaceObjects?: Store<KubeObject> & { synced?(): boolean };
  /** The administrator's grants (--allow-cross-namespace). */
  crossNamespaceGrants?: readonly CrossNamespaceGrant[];
  now?: () => Date;
  /**
   * How long a Secret read (the owned token Secret, a referenced Secret or ConfigMap found to exist) is trusted
   * before it is read again. Secrets are not watched, so without this every reconcile (and every watch event that
   * brings one) would cost a GET. Default 60 s; drift is still noticed within this time of the next reconcile.
   */
  readCacheMs?: number;
  log?: (level: 'info' | 'warn' | 'debug', msg: string, ctx: Record<string, unknown>) => void;
  /** The trigger's subscription through the Pulsar admin API. Absent: the first dispatcher creates it (as before). */
  subscriptions?: SubscriptionPort;
  /** Each trigger's subscription figures (backlog.ts), written into its status. */
  backlog?: BacklogSource;
  /**
   * Queues a trigger for reconcile. Given, a subscription is made beside the reconcile, which does not wait for the
   * broker (its topic creation paces 1000 new triggers far below the API server's rate) and is woken when it is
   * made or failed. Absent, reconcile waits for it.
   */
  wake?: (key: string) => void;
}

/** What a Pulsar admin call came to, as reconcile needs it: a Ready=False reason when it failed. */
export type AdminOutcome =
  | { ok: true }
  | { ok: false; reason: 'PulsarAdminUnavailable' | 'PulsarAdminForbidden'; message: string };

/** What a subscription call needs of a trigger's rendering: where the admin API is, what to name, where it lives. */
export type SubscriptionTarget = Pick<Rendered, 'adminUrl' | 'settings' | 'namespace'>;

/** The trigger's subscription, owned by the trigger: created with it, and removed with it when asked to. */
export interface SubscriptionPort {
  /** Creates the subscription at the trigger's initial position when it does not exist; an existing one stays. */
  ensure(trigger: KubeObject, target: SubscriptionTarget): Promise<AdminOutcome & { partitions?: number }>;
  /** Consumers attached now (dispatchers still running keep it in use). */
  consumers(trigger: KubeObject, target: SubscriptionTarget): Promise<AdminOutcome & { consumers?: number }>;
  /** Deletes the subscription (gone already is success). */
  remove(trigger: KubeObject, target: SubscriptionTarget): Promise<AdminOutcome>;
}

export interface BacklogSource {
  track(key: string): void;
  untrack(key: string): void;
  figures(key: string): Observed | undefined;
}

/** First and longest wait before a failed Pulsar admin call is tried again (doubling in between). */
export const ADMIN_RETRY_MIN_MS = 2000;
export const ADMIN_RETRY_MAX_MS = 300_000;
/** How long a deletion waits for a subscription creation still under way. */
const ENSURE_WAIT_MS = 1000;
/**
 * Subscription creations in flight at most (with `wake`); the others wait their turn in order. Unbounded, 1000 new
 * triggers put 1000 requests in the admin client's queue at once (measured: +40 MiB of controller RSS).
 */
const ENSURE_CONCURRENCY = 8;

/** Status fields besides the conditions; a failure keeps the reported Deployment unless told to drop it. */
type StatusRest = Omit<TriggerStatus, 'conditions' | 'observedGeneration'> & { dropDeployment?: boolean };

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
  | 'CrossNamespaceNotAllowed'
  | 'Forbidden'
  | 'DeploymentConflict'
  | 'SecretConflict'
  | 'ApplyFailed'
  | 'PulsarAdminUnavailable'
  | 'PulsarAdminForbidden'
  | 'AutoscalerNotInstalled';

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
    a.backlog === b.backlog &&
    a.oldestBacklogPublishTime === b.oldestBacklogPublishTime &&
    a.msgRateOut === b.msgRateOut &&
    a.consumers === b.consumers &&
    a.deadLettered === b.deadLettered &&
    conditionsEqual(a.conditions, b.conditions)
  );
}

/** The status fields of a trigger's subscription figures (backlogObservedAt is written with them, not compared). */
export function figuresStatus(o: Observed | undefined): Partial<TriggerStatus> {
  if (!o) return {};
  const f: BacklogFigures = o.figures;
  return {
    backlog: f.backlog,
    ...(f.oldestPublishTime !== undefined ? { oldestBacklogPublishTime: f.oldestPublishTime } : {}),
    msgRateOut: f.msgRateOut,
    consumers: f.consumers,
    ...(f.deadLettered !== undefined ? { deadLettered: f.deadLettered } : {}),
    backlogObservedAt: new Date(o.at).toISOString().replace(/\.\d+Z$/, 'Z'),
  };
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
  /** spec.replicas of the rendered Deployment; undefined with spec.autoscaling (KEDA's HPA sets it). */
  replicas: number | undefined;
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
    replicas: (r.deployment.spec as JsonObject).replicas as number | undefined,
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
  /** Subscriptions known to exist, by trigger key: `uid generation` of the spec they were made for. */
  private readonly ensured = new Map<string, string>();
  /** Subscriptions being made beside reconcile (with `wake`), by trigger key: the stamp they are made for. */
  private readonly ensuring = new Map<string, string>();
  /** Creations started beside reconcile and not finished, and those waiting for one of them to finish. */
  private ensureRunning = 0;
  private readonly ensureWaiting: (() => void)[] = [];
  /** A failure of such a creation, for the next reconcile of the same stamp to report (then tried again). */
  private readonly ensureFailed = new Map<string, { stamp: string; outcome: AdminOutcome }>();
  /** Partitions of each trigger's topic as its subscription was made (the backlog figures keep it current). */
  private readonly partitions = new Map<string, number>();
  /** KEDA objects applied, by trigger key: `uid generation partitioned` they were applied for. */
  private readonly kedaApplied = new Map<string, { stamp: string; autoscaled: boolean }>();
  /** Failed Pulsar admin calls in a row, by trigger key (the retry doubles with each). */
  private readonly adminFailures = new Map<string, number>();

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
      this.forgetSubscription(key);
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
    const key = keyOf(trigger);
    this.d.backlog?.untrack(key);
    for (const dep of this.ownedBy(uid)) await this.deleteOwned(dep, actions);
    // A Secret may exist without its Deployment (creation failed half-way): look where the spec puts it.
    const target =
      (trigger.spec?.deployment?.metadata?.namespace as string | undefined) ?? trigger.metadata!.namespace!;
    await this.deleteTokenSecret(target, deploymentName(trigger.metadata!.name!), uid, actions);
    if (wantsSubscriptionDeleted(trigger)) {
      const waiting = await this.removeSubscription(trigger, actions);
      if (waiting !== undefined) return { actions, requeueAfterMs: waiting };
    }
    this.forgetSubscription(key);
    await this.removeFinalizer(trigger, actions);
    return { actions };
  }

  /** Lets go of the trigger: our finalizer off its list (the others stay). */
  private async removeFinalizer(trigger: KubeObject, actions: string[]): Promise<void> {
    const meta = trigger.metadata!;
    await this.d.kube.setTriggerFinalizers(
      meta.namespace!,
      meta.name!,
      (meta.finalizers ?? []).filter((f) => f !== FINALIZER),
      meta.resourceVersion!,
    );
    actions.push('remove finalizer');
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

  /** The trigger's objects rendered with facts beyond the spec (its plan's own objects when none apply). */
  private renderWith(trigger: KubeObject, facts: RenderFacts, r: Planned): Rendered {
    const out = renderTrigger(trigger as unknown as PulsarTrigger, this.d.render, facts);
    // The plan rendered the same spec without error; facts change only the KEDA objects.
    return out.ok ? out.value : r.objects();
  }

  private async sync(trigger: KubeObject): Promise<Outcome> {
    const actions: string[] = [];
    const meta = trigger.metadata!;
    // First, whatever the spec says now (broken, or pointing elsewhere): no Deployment of this trigger stays in a
    // namespace that no longer accepts it.
    const { left, deleted } = await this.removeRefused(trigger, actions);
    const reported = (trigger.status as TriggerStatus | undefined)?.deployment;
    // A failure keeps reporting the Deployment it had, unless that was just deleted.
    const failRest: StatusRest = {
      dropDeployment: reported !== undefined && deleted.has(`${reported.namespace}/${reported.name}`),
    };
    const failed = (reason: Reason, message: string, requeueAfterMs?: number) =>
      this.fail(trigger, reason, message, actions, requeueAfterMs, failRest);
    const planned = this.plan(trigger);
    if (!planned.ok) return failed('InvalidSpec', describeTriggerError(planned.error));
    const r = planned.value;

    if (this.d.namespaces.length > 0 && !this.d.namespaces.includes(r.namespace)) {
      return failed(
        'NamespaceNotAllowed',
        `spec.deployment.metadata.namespace: "${r.namespace}" is not watched by this controller (${this.d.namespaces.join(', ')})`,
      );
    }

    // Another namespace only where it agrees (placement.ts), checked before anything is read or written there.
    if (!r.sameNamespace) {
      const placement = this.placement(meta.namespace!, r.namespace);
      if (placement.allowed === undefined) {
        // Namespaces not cached yet: decide later, writing nothing meanwhile (a status flip on every start
        // would cost writes and Events, and a refusal would delete what the target did accept).
        this.log('debug', 'namespaces not cached yet', { trigger: keyOf(trigger), target: r.namespace });
        return { actions, requeueAfterMs: NAMESPACES_WAIT_MS };
      }
      if (!placement.allowed) return this.refusePlacement(trigger, r, placement.message, left, actions);
    }

    // A Deployment elsewhere has no ownerReference to the trigger, and a subscription to delete is not a Kubernetes
    // object at all: a finalizer cleans them up.
    const finalizerNeeded = !r.sameNamespace || wantsSubscriptionDeleted(trigger);
    if (finalizerNeeded && !hasFinalizer(trigger)) {
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
    if (missing) return failed(missing.reason, missing.message, 30_000);

    // The subscription belongs to the trigger: made whether or not a dispatcher runs, so what is published
    // meanwhile waits in it. With `wake` it is made beside this reconcile (milliseconds, where a pod takes seconds to
    // start; a dispatcher that subscribes first makes it at the same position). A failure is reported (after the
    // Deployment is synced: dispatchers still subscribe by themselves) and tried again with a doubling delay.
    const admin = await this.ensureSubscription(trigger, r, actions);

    try {
      await this.syncSecret(trigger, r, actions);
      const conflict = await this.syncDeployment(trigger, r, actions);
      if (conflict) return failed('DeploymentConflict', conflict);
      await this.removeStrays(meta.uid!, r, actions);
      const noKeda = await this.syncKeda(trigger, r, actions);
      if (noKeda) return failed('AutoscalerNotInstalled', noKeda, KEDA_RETRY_MS);
    } catch (e) {
      if (e instanceof ControllerError && e.code === 'E_CONFLICT') return failed('SecretConflict', e.message);
      const status = httpStatus(e);
      if (status === 403) return failed('Forbidden', describe(e), 60_000);
      if (status === 422 || status === 400) return failed('ApplyFailed', describe(e));
      throw e;
    }

    if (!finalizerNeeded && hasFinalizer(trigger)) await this.removeFinalizer(trigger, actions);

    if (admin && admin !== 'pending' && !admin.ok)
      return failed(admin.reason, admin.message, this.adminRetryMs(keyOf(trigger)));
    if (this.d.subscriptions && admin !== 'pending') this.d.backlog?.track(keyOf(trigger));

    // Status waits for the Deployment's own watch event, which brings this key back: with many triggers at once,
    // every Deployment gets created before any status is written (the queue is first in, first out).
    if (
      actions.some(
        (a) =>
          a.startsWith('create deployment') ||
          a.startsWith('apply deployment') ||
          a.startsWith('replace deployment'),
      )
    )
      return { actions };

    const live = this.d.deployments.get(r.name, r.namespace);
    const replicas = typeof live?.spec?.replicas === 'number' ? live.spec.replicas : (r.replicas ?? 1);
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
      {
        deployment: { name: r.name, namespace: r.namespace },
        replicas,
        readyReplicas,
        ...figuresStatus(this.d.backlog?.figures(keyOf(trigger))),
      },
      actions,
      !ready,
    );
    return { actions };
  }

  /**
   * Applies the trigger's KEDA objects (once per uid and generation), or removes those an earlier generation made.
   * Returns why autoscaling cannot work (KEDA's CRDs are missing), or undefined.
   */
  private async syncKeda(trigger: KubeObject, r: Planned, actions: string[]): Promise<string | undefined> {
    const kube = this.d.kube;
    if (!kube.applyKedaObject || !kube.deleteKedaObject) return undefined;
    const key = keyOf(trigger);
    // KEDA's scaler reads another endpoint for a partitioned topic and cannot tell on its own: the latest figures
    // say, else what the subscription's creation found.
    const partitions = this.d.backlog?.figures(key)?.figures.partitions ?? this.partitions.get(key) ?? 0;
    const partitioned = partitions > 0;
    const stamp = `${trigger.metadata?.uid} ${trigger.metadata?.generation} ${partitioned}`;
    const known = this.kedaApplied.get(key);
    if (known?.stamp === stamp) return undefined;
    const o = partitioned ? this.renderWith(trigger, { partitionedTopic: true }, r) : r.objects();
    if (o.scaledObject) {
      try {
        if (o.triggerAuthentication) await kube.applyKedaObject(o.triggerAuthentication);
        await kube.applyKedaObject(o.scaledObject);
      } catch (e) {
        if (httpStatus(e) === 404) {
          return `spec.autoscaling: KEDA is not installed in the cluster (no keda.sh/v1alpha1 ScaledObject); the Deployment runs at ${initialReplicas(o)} replica(s) meanwhile`;
        }
        throw e;
      }
      actions.push(`apply scaledobject ${o.namespace}/${o.scaledObjectName}`);
      if (!o.triggerAuthentication && known?.autoscaled) {
        await kube.deleteKedaObject('TriggerAuthentication', o.namespace, o.triggerAuthenticationName);
      }
    } else if (known?.autoscaled) {
      // Autoscaling turned off: the Deployment's replicas are the controller's again (applied above).
      await kube.deleteKedaObject('ScaledObject', o.namespace, o.scaledObjectName);
      await kube.deleteKedaObject('TriggerAuthentication', o.namespace, o.triggerAuthenticationName);
      actions.push(`delete scaledobject ${o.namespace}/${o.scaledObjectName}`);
    }
    this.kedaApplied.set(key, { stamp, autoscaled: o.scaledObject !== undefined });
    return undefined;
  }

  /**
   * Makes sure the trigger's subscription exists (once per uid and generation). Undefined: no admin port. With
   * `wake`, a creation not made yet is started beside reconcile ('pending'); its outcome comes with the reconcile
   * it wakes.
   */
  private async ensureSubscription(
    trigger: KubeObject,
    r: Planned,
    actions: string[],
  ): Promise<AdminOutcome | 'pending' | undefined> {
    const port = this.d.subscriptions;
    if (!port) return undefined;
    const key = keyOf(trigger);
    const stamp = `${trigger.metadata?.uid} ${trigger.metadata?.generation}`;
    if (this.ensured.get(key) === stamp) return { ok: true };
    const failedBefore = this.ensureFailed.get(key);
    if (failedBefore) {
      // Reported once; the reconcile after it (at the retry delay) tries again.
      this.ensureFailed.delete(key);
      if (failedBefore.stamp === stamp) return failedBefore.outcome;
    }
    if (this.ensuring.get(key) === stamp) return 'pending';
    const target = r.objects();
    const made = async (): Promise<AdminOutcome> => {
      const outcome = await port.ensure(trigger, target);
      if (outcome.ok) {
        this.ensured.set(key, stamp);
        if (outcome.partitions !== undefined) this.partitions.set(key, outcome.partitions);
        this.adminFailures.delete(key);
      }
      return outcome;
    };
    actions.push(`ensure subscription ${target.settings.subscription}`);
    const wake = this.d.wake;
    if (!wake) return made();
    this.ensuring.set(key, stamp);
    void this.ensureTurn()
      .then(() => (this.ensuring.get(key) === stamp ? made() : { ok: true as const }))
      .finally(() => this.ensureDone())
      .catch(
        (e: unknown): AdminOutcome => ({
          ok: false,
          reason: 'PulsarAdminUnavailable',
          message: `Pulsar admin API ${target.adminUrl}: ${describe(e)}`,
        }),
      )
      .then((outcome) => {
        // Forgotten (the trigger went) or superseded by a newer generation's creation: nothing to report.
        if (this.ensuring.get(key) !== stamp) return;
        this.ensuring.delete(key);
        if (!outcome.ok) this.ensureFailed.set(key, { stamp, outcome });
        wake(key);
      });
    return 'pending';
  }

  /** Resolves when a creation may start (at most ENSURE_CONCURRENCY at once). */
  private ensureTurn(): Promise<void> {
    if (this.ensureRunning < ENSURE_CONCURRENCY) {
      this.ensureRunning++;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.ensureWaiting.push(resolve));
  }

  /** A creation finished: its turn goes to the next one waiting. */
  private ensureDone(): void {
    const next = this.ensureWaiting.shift();
    if (next) next();
    else this.ensureRunning--;
  }

  /**
   * Deletes the subscription once no dispatcher holds it (a dispatcher still draining would create it again).
   * Returns how long to wait before trying again, or undefined when it is gone.
   */
  private async removeSubscription(trigger: KubeObject, actions: string[]): Promise<number | undefined> {
    const port = this.d.subscriptions;
    if (!port) return undefined;
    const rendered = renderTrigger(trigger as unknown as PulsarTrigger, this.d.render);
    if (!rendered.ok) {
      // No valid spec, no subscription name to delete: let the trigger go.
      this.log('warn', 'subscription not deleted: the spec does not render', { trigger: keyOf(trigger) });
      return undefined;
    }
    const target = rendered.value;
    const settings = target.settings;
    const key = keyOf(trigger);
    // A creation still under way would bring the subscription back after its deletion: wait for it.
    if (this.ensuring.has(key)) return ENSURE_WAIT_MS;
    const inUse = await port.consumers(trigger, target);
    if (!inUse.ok) return this.adminRetryMs(key);
    if ((inUse.consumers ?? 0) > 0) return NAMESPACES_WAIT_MS;
    const removed = await port.remove(trigger, target);
    if (!removed.ok) {
      this.log('warn', 'subscription not deleted', {
        trigger: key,
        reason: removed.reason,
        message: removed.message,
      });
      return this.adminRetryMs(key);
    }
    actions.push(`delete subscription ${settings.subscription}`);
    return undefined;
  }

  private forgetSubscription(key: string): void {
    this.ensured.delete(key);
    this.ensuring.delete(key);
    this.ensureFailed.delete(key);
    this.partitions.delete(key);
    this.kedaApplied.delete(key);
    this.adminFailures.delete(key);
    this.d.backlog?.untrack(key);
  }

  /** The delay before a failed admin call is tried again: doubling per failure in a row, capped. */
  private adminRetryMs(key: string): number {
    const n = (this.adminFailures.get(key) ?? 0) + 1;
    this.adminFailures.set(key, n);
    return Math.min(ADMIN_RETRY_MAX_MS, ADMIN_RETRY_MIN_MS * 2 ** (n - 1));
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
        await this.createDeployment(initialDeployment(r.objects()));
        actions.push(`create deployment ${r.namespace}/${r.name}`);
      } catch (e) {
        if (httpStatus(e) === 409)
          return `Deployment ${r.namespace}/${r.name} already exists and was not created by this controller`;
        throw e;
      }
    } else if (live.metadata?.annotations?.[ANNOTATION_HASH] !== r.hash) {
      const before = liveSubscriptionType(live, trigger);
      const after = r.objects().settings.subscriptionType;
      if (before !== after) {
        // The broker refuses a consumer of another subscription type while one is attached: in a rolling update
        // the new pods could never subscribe, so the old ones would never go. The Deployment is replaced instead
        // (its pods stop, then the new ones subscribe: a short gap); its deletion event brings the trigger back.
        await this.d.kube.deleteDeployment(r.namespace, r.name, live.metadata!.uid!);
        actions.push(`replace deployment ${r.namespace}/${r.name} (subscription type ${before} → ${after})`);
        return undefined;
      }
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

  /** Whether a trigger in `source` may have its Deployment in `target` now (placement.ts). */
  private placement(source: string, target: string): Placement {
    const namespaces = this.d.namespaceObjects;
    return decidePlacement({
      source,
      target,
      grants: this.d.crossNamespaceGrants ?? [],
      targetNamespace: namespaces?.get(target),
      namespacesSynced: namespaces ? (namespaces.synced?.() ?? true) : true,
    });
  }

  /**
   * Deletes this trigger's Deployments (with their token Secrets) in other namespaces that do not accept it now.
   * Returns the ones left outside the trigger's namespace, and the namespace/name of those deleted.
   */
  private async removeRefused(
    trigger: KubeObject,
    actions: string[],
  ): Promise<{ left: KubeObject[]; deleted: Set<string> }> {
    const source = trigger.metadata!.namespace!;
    const left: KubeObject[] = [];
    const deleted = new Set<string>();
    for (const dep of this.ownedBy(trigger.metadata!.uid!)) {
      const m = dep.metadata!;
      if (m.namespace === source) continue;
      // Unknown (Namespaces not cached yet) keeps it: only a refusal deletes.
      if (this.placement(source, m.namespace!).allowed !== false) {
        left.push(dep);
        continue;
      }
      await this.deleteOwned(dep, actions, 'delete refused deployment');
      deleted.add(`${m.namespace}/${m.name}`);
    }
    return { left, deleted };
  }

  /**
   * The target namespace does not accept this trigger: nothing is created there (what the trigger placed there
   * while it did is gone already: removeRefused). Once nothing of it is left outside its namespace, the finalizer
   * goes too. Its Deployments in namespaces that still accept it stay, as any failure leaves them.
   */
  private async refusePlacement(
    trigger: KubeObject,
    r: Plan,
    message: string,
    left: readonly KubeObject[],
    actions: string[],
  ): Promise<Outcome> {
    const meta = trigger.metadata!;
    // The finalizer is set before anything is placed in another namespace: without it, nothing is there to remove.
    if (hasFinalizer(trigger)) {
      // A token Secret may be there without its Deployment (creation failed half-way).
      await this.deleteTokenSecret(r.namespace, r.name, meta.uid!, actions);
      if (left.length === 0) await this.removeFinalizer(trigger, actions);
    }
    // Status names a Deployment only while it is there: in the trigger's namespace, or left where it is accepted.
    const reported = (trigger.status as TriggerStatus | undefined)?.deployment;
    const stays = (d: { namespace: string; name: string }) =>
      d.namespace === meta.namespace ||
      left.some((o) => o.metadata?.namespace === d.namespace && o.metadata?.name === d.name);
    return this.fail(trigger, 'CrossNamespaceNotAllowed', message, actions, undefined, {
      dropDeployment: reported !== undefined && !stays(reported),
    });
  }

  private async fail(
    trigger: KubeObject,
    reason: Reason,
    message: string,
    actions: string[],
    requeueAfterMs?: number,
    rest: StatusRest = {},
  ): Promise<Outcome> {
    this.log('warn', 'trigger not ready', { trigger: keyOf(trigger), reason, message });
    await this.writeStatus(trigger, { type: 'Ready', status: 'False', reason, message }, rest, actions, true);
    return requeueAfterMs === undefined ? { actions } : { actions, requeueAfterMs };
  }

  private async writeStatus(
    trigger: KubeObject,
    ready: Omit<Condition, 'lastTransitionTime' | 'observedGeneration'>,
    rest: StatusRest,
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
        : old?.deployment && !rest.dropDeployment
          ? { deployment: old.deployment }
          : {}),
      ...(rest.replicas !== undefined ? { replicas: rest.replicas } : {}),
      ...(rest.readyReplicas !== undefined ? { readyReplicas: rest.readyReplicas } : {}),
      // The subscription's figures: new ones when given, else the ones reported (a failure does not drop them).
      ...pickFigures(rest.backlog !== undefined ? rest : (old ?? {})),
    };
    if (statusEqual(old, next)) return;
    await this.statusAfterCreates();
    await this.d.kube.patchTriggerStatus(trigger.metadata!.namespace!, trigger.metadata!.name!, next);
    actions.push('status');
    const oldReady = old?.conditions?.find((c) => c.type === 'Ready');
    // ReplicasNotReady's message is a count that moves while pods start and stop: its Event comes when the trigger
    // enters that reason, not again for each count. Every other reason's message names the problem.
    const changed =
      oldReady?.reason !== ready.reason ||
      (ready.reason !== 'ReplicasNotReady' && oldReady?.message !== ready.message);
    if (warn && changed) {
      await this.d.kube.event(trigger, 'Warning', ready.reason, ready.message);
      actions.push(`event ${ready.reason}`);
    }
  }
}

const FIGURE_FIELDS = [
  'backlog',
  'oldestBacklogPublishTime',
  'msgRateOut',
  'consumers',
  'deadLettered',
  'backlogObservedAt',
] as const;

function pickFigures(from: Partial<TriggerStatus>): Partial<TriggerStatus> {
  const out: Record<string, unknown> = {};
  for (const f of FIGURE_FIELDS) if (from[f] !== undefined) out[f] = from[f];
  return out as Partial<TriggerStatus>;
}

/** How soon a trigger with spec.autoscaling looks for KEDA again while it is not installed. */
export const KEDA_RETRY_MS = 60_000;

/**
 * Replicas a Deployment is created with when KEDA sets them later: minReplicas, at least 1, so it runs until KEDA
 * takes over (and without KEDA). Later applies leave the field out, so KEDA's HPA owns it.
 */
function initialReplicas(o: Rendered): number {
  const min = (o.scaledObject?.spec as JsonObject | undefined)?.minReplicaCount;
  return Math.max(1, typeof min === 'number' ? min : 1);
}

function initialDeployment(o: Rendered): JsonObject {
  if (!o.scaledObject) return o.deployment;
  return { ...o.deployment, spec: { ...(o.deployment.spec as JsonObject), replicas: initialReplicas(o) } };
}

/**
 * The subscription type a live Deployment's dispatchers use: its annotation, or, for one written before the
 * annotation existed, the type the trigger names, else what was the default then (Shared).
 */
function liveSubscriptionType(live: KubeObject, trigger: KubeObject): string {
  return (
    live.metadata?.annotations?.[ANNOTATION_SUBSCRIPTION_TYPE] ??
    (trigger.spec?.delivery?.subscriptionType as string | undefined) ??
    'Shared'
  );
}

/** spec.delivery.deleteSubscription: the subscription goes with the trigger (default: it is kept). */
function wantsSubscriptionDeleted(trigger: KubeObject): boolean {
  return trigger.spec?.delivery?.deleteSubscription === true;
}

function describeTriggerError(e: TriggerError): string {
  return e.issues.map((i) => `${i.path}: ${i.message}`).join('; ');
}
