// The Kubernetes side of the controller: the writes and reads reconcile asks for, the informers' paths, and what
// the caches keep of each object. This is the only file that calls the API for triggers, Deployments and Secrets;
// every write is counted, which is how the tests prove "no change, no write".

import {
  ANNOTATION_HASH,
  ANNOTATION_SUBSCRIPTION_TYPE,
  ANNOTATION_TRIGGER,
  CREATED_BY,
  CREATED_BY_VALUE,
  type JsonObject,
} from '../trigger/render.ts';
import { GROUP, KIND, PLURAL, type TriggerStatus, VERSION } from '../trigger/spec.ts';
import { describe, httpStatus } from './errors.ts';
import type { KubeApi } from './kubeapi.ts';
import { ANNOTATION_ACCEPT_FROM } from './placement.ts';
import type { KubeObject, KubeWrites, Meta } from './reconcile.ts';

export const FIELD_MANAGER = 'kubeless-pulsar-trigger';
export const OWNED_SELECTOR = `${CREATED_BY}=${CREATED_BY_VALUE}`;
const APPLY = 'application/apply-patch+yaml'; // JSON is YAML: server-side apply takes it as it is
const MERGE = 'application/merge-patch+json';

/** Counts a write once it is answered: result "ok" (2xx, or a 404 that a delete or status write accepts), else "error". */
export type WriteCounter = (kind: string, verb: string, result: 'ok' | 'error') => void;

const enc = encodeURIComponent;
const ns = (namespace: string) => `namespaces/${enc(namespace)}`;
export const paths = {
  deployments: (namespace?: string) =>
    namespace ? `/apis/apps/v1/${ns(namespace)}/deployments` : '/apis/apps/v1/deployments',
  secrets: (namespace: string) => `/api/v1/${ns(namespace)}/secrets`,
  configmaps: (namespace: string) => `/api/v1/${ns(namespace)}/configmaps`,
  events: (namespace: string) => `/api/v1/${ns(namespace)}/events`,
  namespaces: () => '/api/v1/namespaces',
  /** KEDA's objects (keda.sh/v1alpha1), by plural: scaledobjects, triggerauthentications. */
  keda: (namespace: string, plural: 'scaledobjects' | 'triggerauthentications') =>
    `/apis/keda.sh/v1alpha1/${ns(namespace)}/${plural}`,
  triggers: (namespace?: string) =>
    namespace
      ? `/apis/${GROUP}/${VERSION}/${ns(namespace)}/${PLURAL}`
      : `/apis/${GROUP}/${VERSION}/${PLURAL}`,
};

// --- trimming: what the caches keep ---------------------------------------------------------------------------

function trimMeta(
  m: Meta | undefined,
  annotations: (a: Record<string, string>) => Record<string, string>,
): Meta {
  const out: Meta = {};
  if (!m) return out;
  if (m.name !== undefined) out.name = m.name;
  if (m.namespace !== undefined) out.namespace = m.namespace;
  if (m.uid !== undefined) out.uid = m.uid;
  if (m.generation !== undefined) out.generation = m.generation;
  if (m.resourceVersion !== undefined) out.resourceVersion = m.resourceVersion;
  if (m.labels) out.labels = m.labels;
  if (m.annotations) {
    const a = annotations(m.annotations);
    if (Object.keys(a).length > 0) out.annotations = a;
  }
  if (m.finalizers) out.finalizers = m.finalizers;
  if (m.deletionTimestamp) out.deletionTimestamp = m.deletionTimestamp;
  if (m.ownerReferences) out.ownerReferences = m.ownerReferences.map((r) => ({ uid: r.uid, kind: r.kind }));
  return out;
}

const ours = (a: Record<string, string>) =>
  Object.fromEntries(
    Object.entries(a).filter(
      ([k]) => k === ANNOTATION_HASH || k === ANNOTATION_TRIGGER || k === ANNOTATION_SUBSCRIPTION_TYPE,
    ),
  );
const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration';
const notLastApplied = (a: Record<string, string>) =>
  LAST_APPLIED in a ? Object.fromEntries(Object.entries(a).filter(([k]) => k !== LAST_APPLIED)) : a;

/** A trigger: spec and status are what reconcile renders and compares; managedFields and kubectl's copy go. */
export function trimTrigger(o: KubeObject): KubeObject {
  return { metadata: trimMeta(o.metadata, notLastApplied), spec: o.spec, status: o.status };
}

/** What of a trigger is a change worth reconciling: all but status (ours to write) and the resourceVersion. */
export function triggerFingerprint(o: KubeObject): string {
  const { resourceVersion: _rv, ...meta } = o.metadata ?? {};
  return JSON.stringify([meta, o.spec]);
}

/**
 * A Deployment: reconcile compares the spec-hash annotation, not the spec, so of the spec only the selector (seed
 * Deployments are told by it) and replicas (for status) are kept, and of the status only readyReplicas.
 */
export function trimDeployment(o: KubeObject): KubeObject {
  const spec: Record<string, unknown> = {};
  if (o.spec?.replicas !== undefined) spec.replicas = o.spec.replicas;
  if (o.spec?.selector !== undefined) spec.selector = o.spec.selector;
  const out: KubeObject = { metadata: trimMeta(o.metadata, ours), spec };
  if (typeof o.status?.readyReplicas === 'number') out.status = { readyReplicas: o.status.readyReplicas };
  return out;
}

/**
 * A Namespace: its name and the accept-triggers-from annotation (placement.ts), nothing else, so only a change of
 * that annotation (or the Namespace coming or going) is reported.
 */
export function trimNamespace(o: KubeObject): KubeObject {
  const m = o.metadata ?? {};
  const meta: Meta = {};
  if (m.name !== undefined) meta.name = m.name;
  if (m.resourceVersion !== undefined) meta.resourceVersion = m.resourceVersion;
  const accept = m.annotations?.[ANNOTATION_ACCEPT_FROM];
  if (accept !== undefined) meta.annotations = { [ANNOTATION_ACCEPT_FROM]: accept };
  return { metadata: meta };
}

/** A Secret as reconcile sees it: identity, labels and our annotations; never the data. */
export function trimSecret(o: KubeObject): KubeObject {
  return { metadata: trimMeta(o.metadata, ours) };
}

// --- writes and reads ------------------------------------------------------------------------------------------

export class KubeClient implements KubeWrites {
  readonly api: KubeApi;
  private readonly count: WriteCounter;
  private readonly identity: string;

  constructor(api: KubeApi, count: WriteCounter, identity: string) {
    this.api = api;
    this.count = count;
    this.identity = identity;
  }

  /** Runs one write and counts it with its result. */
  private async counted<T>(kind: string, verb: string, write: () => Promise<T>): Promise<T> {
    try {
      const value = await write();
      this.count(kind, verb, 'ok');
      return value;
    } catch (e) {
      this.count(kind, verb, 'error');
      throw e;
    }
  }

  async createDeployment(obj: JsonObject): Promise<void> {
    const namespace = (obj.metadata as JsonObject).namespace as string;
    await this.counted('Deployment', 'create', () =>
      this.api.request('POST', paths.deployments(namespace), {
        body: obj,
        query: { fieldManager: FIELD_MANAGER },
        discard: true,
      }),
    );
  }

  async applyDeployment(obj: JsonObject): Promise<void> {
    const m = obj.metadata as JsonObject;
    await this.counted('Deployment', 'apply', () =>
      this.api.request('PATCH', `${paths.deployments(m.namespace as string)}/${enc(m.name as string)}`, {
        body: obj,
        contentType: APPLY,
        query: { fieldManager: FIELD_MANAGER, force: true },
        discard: true,
      }),
    );
  }

  /** Server-side apply of a KEDA ScaledObject or TriggerAuthentication (a 404 means KEDA's CRDs are missing). */
  async applyKedaObject(obj: JsonObject): Promise<void> {
    const m = obj.metadata as JsonObject;
    const plural = obj.kind === 'ScaledObject' ? 'scaledobjects' : 'triggerauthentications';
    await this.counted(obj.kind as string, 'apply', () =>
      this.api.request('PATCH', `${paths.keda(m.namespace as string, plural)}/${enc(m.name as string)}`, {
        body: obj,
        contentType: APPLY,
        query: { fieldManager: FIELD_MANAGER, force: true },
        discard: true,
      }),
    );
  }

  /** Deletes a KEDA object by name; gone already (or KEDA not installed) is success. */
  async deleteKedaObject(
    kind: 'ScaledObject' | 'TriggerAuthentication',
    namespace: string,
    name: string,
  ): Promise<void> {
    const plural = kind === 'ScaledObject' ? 'scaledobjects' : 'triggerauthentications';
    await this.counted(kind, 'delete', async () => {
      try {
        await this.api.request('DELETE', `${paths.keda(namespace, plural)}/${enc(name)}`, { discard: true });
      } catch (e) {
        if (httpStatus(e) !== 404) throw e;
      }
    });
  }

  private async deleteWithUid(path: string, uid: string, background: boolean): Promise<void> {
    try {
      await this.api.request('DELETE', path, {
        body: {
          apiVersion: 'v1',
          kind: 'DeleteOptions',
          preconditions: { uid },
          ...(background ? { propagationPolicy: 'Background' } : {}),
        },
        discard: true,
      });
    } catch (e) {
      if (httpStatus(e) !== 404) throw e;
    }
  }

  async deleteDeployment(namespace: string, name: string, uid: string): Promise<void> {
    await this.counted('Deployment', 'delete', () =>
      this.deleteWithUid(`${paths.deployments(namespace)}/${enc(name)}`, uid, true),
    );
  }

  async createSecret(obj: JsonObject): Promise<KubeObject> {
    const namespace = (obj.metadata as JsonObject).namespace as string;
    const created = await this.counted('Secret', 'create', () =>
      this.api.request<KubeObject>('POST', paths.secrets(namespace), {
        body: obj,
        query: { fieldManager: FIELD_MANAGER },
      }),
    );
    return trimSecret(created);
  }

  async applySecret(obj: JsonObject): Promise<KubeObject> {
    const m = obj.metadata as JsonObject;
    const applied = await this.counted('Secret', 'apply', () =>
      this.api.request<KubeObject>(
        'PATCH',
        `${paths.secrets(m.namespace as string)}/${enc(m.name as string)}`,
        {
          body: obj,
          contentType: APPLY,
          query: { fieldManager: FIELD_MANAGER, force: true },
        },
      ),
    );
    return trimSecret(applied);
  }

  async deleteSecret(namespace: string, name: string, uid: string): Promise<void> {
    await this.counted('Secret', 'delete', () =>
      this.deleteWithUid(`${paths.secrets(namespace)}/${enc(name)}`, uid, false),
    );
  }

  async patchTriggerStatus(namespace: string, name: string, status: TriggerStatus): Promise<void> {
    // A merge patch keeps what it does not mention: a field the status no longer has is sent as null, so the
    // trigger's status is what reconcile computed (a failure drops the replica counts, a refused placement the
    // Deployment it deleted) and the next comparison finds nothing to write.
    const body = {
      status: {
        ...status,
        deployment: status.deployment ?? null,
        replicas: status.replicas ?? null,
        readyReplicas: status.readyReplicas ?? null,
        // With the subscription's figures, an empty backlog has no oldest message any more.
        ...(status.backlog !== undefined
          ? {
              oldestBacklogPublishTime: status.oldestBacklogPublishTime ?? null,
              deadLettered: status.deadLettered ?? null,
            }
          : {}),
      },
    };
    await this.counted(KIND, 'status', async () => {
      try {
        await this.api.request('PATCH', `${paths.triggers(namespace)}/${enc(name)}/status`, {
          body,
          contentType: MERGE,
          query: { fieldManager: FIELD_MANAGER },
          discard: true,
        });
      } catch (e) {
        if (httpStatus(e) !== 404) throw e; // deleted meanwhile: nothing to report on
      }
    });
  }

  async setTriggerFinalizers(
    namespace: string,
    name: string,
    finalizers: string[],
    resourceVersion: string,
  ): Promise<void> {
    // The resourceVersion makes this a compare-and-swap: a 409 means our view was stale and the key is retried.
    await this.counted(KIND, 'finalizers', () =>
      this.api.request('PATCH', `${paths.triggers(namespace)}/${enc(name)}`, {
        body: { metadata: { finalizers, resourceVersion } },
        contentType: MERGE,
        query: { fieldManager: FIELD_MANAGER },
        discard: true,
      }),
    );
  }

  async event(
    trigger: KubeObject,
    type: 'Normal' | 'Warning',
    reason: string,
    message: string,
  ): Promise<void> {
    const m = trigger.metadata ?? {};
    const namespace = m.namespace ?? 'default';
    const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    try {
      await this.api.request('POST', paths.events(namespace), {
        body: {
          apiVersion: 'v1',
          kind: 'Event',
          metadata: { generateName: `${m.name ?? 'trigger'}.`, namespace },
          involvedObject: {
            apiVersion: `${GROUP}/${VERSION}`,
            kind: KIND,
            name: m.name ?? '',
            namespace,
            uid: m.uid ?? '',
            resourceVersion: m.resourceVersion ?? '',
          },
          type,
          reason,
          message: message.slice(0, 1024),
          firstTimestamp: now,
          lastTimestamp: now,
          count: 1,
          source: { component: 'kubeless-pulsar-trigger' },
          reportingComponent: 'kubeless.io/pulsar-trigger-controller',
          reportingInstance: this.identity.slice(0, 128),
        },
        discard: true,
      });
      this.count('Event', 'create', 'ok');
    } catch {
      this.count('Event', 'create', 'error');
      // Events are best effort: a missing permission or a deleted namespace must not fail the reconcile.
    }
  }

  private async read(path: string): Promise<KubeObject | undefined> {
    try {
      return await this.api.request<KubeObject>('GET', path);
    } catch (e) {
      if (httpStatus(e) === 404) return undefined;
      throw e;
    }
  }

  async getSecret(namespace: string, name: string): Promise<KubeObject | undefined> {
    const s = await this.read(`${paths.secrets(namespace)}/${enc(name)}`);
    return s && trimSecret(s);
  }

  async deploymentExists(namespace: string, name: string): Promise<boolean> {
    return (await this.read(`${paths.deployments(namespace)}/${enc(name)}`)) !== undefined;
  }

  /**
   * The data of a Secret (decoded) or a ConfigMap, by name: credentials the controller itself uses (the Pulsar
   * admin API's token and CA). Never cached as an object, never logged.
   */
  async readData(
    kind: 'Secret' | 'ConfigMap',
    namespace: string,
    name: string,
  ): Promise<Record<string, string> | undefined> {
    const base = kind === 'Secret' ? paths.secrets(namespace) : paths.configmaps(namespace);
    const o = (await this.read(`${base}/${enc(name)}`)) as { data?: Record<string, string> } | undefined;
    if (!o) return undefined;
    const data = o.data ?? {};
    if (kind === 'ConfigMap') return { ...data };
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(data)) out[k] = Buffer.from(v, 'base64').toString('utf8');
    return out;
  }

  async exists(kind: 'Secret' | 'ConfigMap', namespace: string, name: string): Promise<boolean> {
    const base = kind === 'Secret' ? paths.secrets(namespace) : paths.configmaps(namespace);
    return (await this.read(`${base}/${enc(name)}`)) !== undefined;
  }
}

export function describeError(e: unknown): string {
  return describe(e);
}
