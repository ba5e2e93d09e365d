// The Kubernetes side of the controller: informers (list + watch, resumed from the last resourceVersion, relisted
// on 410 Gone) and the writes reconcile asks for. This is the only file that calls the API for triggers,
// Deployments and Secrets; every write is counted, which is how the tests prove "no change, no write".

import {
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  type Informer,
  KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
  makeInformer,
  type ObjectCache,
  PatchStrategy,
  setHeaderOptions,
} from '@kubernetes/client-node';
import { CREATED_BY, CREATED_BY_VALUE, type JsonObject } from '../trigger/render.ts';
import { GROUP, KIND, PLURAL, type TriggerStatus, VERSION } from '../trigger/spec.ts';
import { ControllerError, describe, httpStatus } from './errors.ts';
import type { KubeObject, KubeWrites, Store } from './reconcile.ts';

export const FIELD_MANAGER = 'kubeless-pulsar-trigger';
export const OWNED_SELECTOR = `${CREATED_BY}=${CREATED_BY_VALUE}`;

export function loadKubeConfig(path: string | undefined): KubeConfig {
  const kc = new KubeConfig();
  try {
    if (path) kc.loadFromFile(path);
    else kc.loadFromCluster();
  } catch (e) {
    throw new ControllerError(
      'E_KUBECONFIG',
      `cannot load ${path ? `kubeconfig ${path}` : 'in-cluster configuration'}`,
      { path },
      e,
    );
  }
  if (!kc.getCurrentCluster()) {
    throw new ControllerError('E_KUBECONFIG', `no cluster in ${path ?? 'in-cluster configuration'}`, {
      path,
    });
  }
  return kc;
}

export type WriteCounter = (kind: string, verb: string) => void;

export class KubeClient implements KubeWrites {
  readonly kc: KubeConfig;
  readonly apps: AppsV1Api;
  readonly core: CoreV1Api;
  readonly custom: CustomObjectsApi;
  private readonly count: WriteCounter;
  private readonly identity: string;

  constructor(kc: KubeConfig, count: WriteCounter, identity: string) {
    this.kc = kc;
    this.apps = kc.makeApiClient(AppsV1Api);
    this.core = kc.makeApiClient(CoreV1Api);
    this.custom = kc.makeApiClient(CustomObjectsApi);
    this.count = count;
    this.identity = identity;
  }

  async createDeployment(obj: JsonObject): Promise<void> {
    this.count('Deployment', 'create');
    const namespace = (obj.metadata as JsonObject).namespace as string;
    // biome-ignore lint/suspicious/noExplicitAny: a rendered Deployment is plain JSON of the V1Deployment shape
    await this.apps.createNamespacedDeployment({ namespace, body: obj as any, fieldManager: FIELD_MANAGER });
  }

  async applyDeployment(obj: JsonObject): Promise<void> {
    this.count('Deployment', 'apply');
    const m = obj.metadata as JsonObject;
    await this.apps.patchNamespacedDeployment(
      {
        name: m.name as string,
        namespace: m.namespace as string,
        body: obj,
        fieldManager: FIELD_MANAGER,
        force: true,
      },
      setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply),
    );
  }

  async deleteDeployment(namespace: string, name: string, uid: string): Promise<void> {
    this.count('Deployment', 'delete');
    try {
      await this.apps.deleteNamespacedDeployment({
        name,
        namespace,
        propagationPolicy: 'Background',
        body: { preconditions: { uid } },
      });
    } catch (e) {
      if (httpStatus(e) !== 404) throw e;
    }
  }

  async createSecret(obj: JsonObject): Promise<void> {
    this.count('Secret', 'create');
    const namespace = (obj.metadata as JsonObject).namespace as string;
    // biome-ignore lint/suspicious/noExplicitAny: plain JSON of the V1Secret shape
    await this.core.createNamespacedSecret({ namespace, body: obj as any, fieldManager: FIELD_MANAGER });
  }

  async applySecret(obj: JsonObject): Promise<void> {
    this.count('Secret', 'apply');
    const m = obj.metadata as JsonObject;
    await this.core.patchNamespacedSecret(
      {
        name: m.name as string,
        namespace: m.namespace as string,
        body: obj,
        fieldManager: FIELD_MANAGER,
        force: true,
      },
      setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply),
    );
  }

  async deleteSecret(namespace: string, name: string, uid: string): Promise<void> {
    this.count('Secret', 'delete');
    try {
      await this.core.deleteNamespacedSecret({ name, namespace, body: { preconditions: { uid } } });
    } catch (e) {
      if (httpStatus(e) !== 404) throw e;
    }
  }

  async patchTriggerStatus(namespace: string, name: string, status: TriggerStatus): Promise<void> {
    this.count(KIND, 'status');
    try {
      await this.custom.patchNamespacedCustomObjectStatus(
        {
          group: GROUP,
          version: VERSION,
          namespace,
          plural: PLURAL,
          name,
          body: { status },
          fieldManager: FIELD_MANAGER,
        },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
    } catch (e) {
      if (httpStatus(e) !== 404) throw e; // deleted meanwhile: nothing to report on
    }
  }

  async setTriggerFinalizers(
    namespace: string,
    name: string,
    finalizers: string[],
    resourceVersion: string,
  ): Promise<void> {
    this.count(KIND, 'finalizers');
    // The resourceVersion makes this a compare-and-swap: a 409 means our view was stale and the key is retried.
    await this.custom.patchNamespacedCustomObject(
      {
        group: GROUP,
        version: VERSION,
        namespace,
        plural: PLURAL,
        name,
        body: { metadata: { finalizers, resourceVersion } },
        fieldManager: FIELD_MANAGER,
      },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
  }

  async event(
    trigger: KubeObject,
    type: 'Normal' | 'Warning',
    reason: string,
    message: string,
  ): Promise<void> {
    this.count('Event', 'create');
    const m = trigger.metadata ?? {};
    const now = new Date();
    try {
      await this.core.createNamespacedEvent({
        namespace: m.namespace ?? 'default',
        body: {
          metadata: { generateName: `${m.name ?? 'trigger'}.`, namespace: m.namespace ?? 'default' },
          involvedObject: {
            apiVersion: `${GROUP}/${VERSION}`,
            kind: KIND,
            name: m.name ?? '',
            namespace: m.namespace ?? 'default',
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
      });
    } catch {
      // Events are best effort: a missing permission or a deleted namespace must not fail the reconcile.
    }
  }

  async getSecret(namespace: string, name: string): Promise<KubeObject | undefined> {
    try {
      return (await this.core.readNamespacedSecret({ name, namespace })) as KubeObject;
    } catch (e) {
      if (httpStatus(e) === 404) return undefined;
      throw e;
    }
  }

  async deploymentExists(namespace: string, name: string): Promise<boolean> {
    try {
      await this.apps.readNamespacedDeployment({ name, namespace });
      return true;
    } catch (e) {
      if (httpStatus(e) === 404) return false;
      throw e;
    }
  }

  async exists(kind: 'Secret' | 'ConfigMap', namespace: string, name: string): Promise<boolean> {
    try {
      if (kind === 'Secret') await this.core.readNamespacedSecret({ name, namespace });
      else await this.core.readNamespacedConfigMap({ name, namespace });
      return true;
    } catch (e) {
      if (httpStatus(e) === 404) return false;
      throw e;
    }
  }
}

// --- informers ---------------------------------------------------------------------------------------------------

export interface WatchedStore<T extends KubernetesObject> extends Store<T> {
  synced(): boolean;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export interface InformerHandlers<T> {
  onChange: (obj: T, verb: 'add' | 'update' | 'delete') => void;
  onError: (what: string, e: unknown) => void;
}

interface Part<T extends KubernetesObject> {
  informer: Informer<T> & ObjectCache<T>;
  synced: boolean;
  stopped: boolean;
  retryMs: number;
  timer: NodeJS.Timeout | undefined;
}

/**
 * One list+watch per namespace (or one for all), merged into one store. client-node's ListWatch resumes from its
 * last resourceVersion and relists on 410 Gone, but stops on any other error; this restarts it with backoff.
 */
export function watchedStore<T extends KubernetesObject>(
  kc: KubeConfig,
  what: string,
  parts: { path: string; list: () => Promise<KubernetesListObject<T>>; labelSelector?: string }[],
  handlers: InformerHandlers<T>,
): WatchedStore<T> {
  const all: Part<T>[] = parts.map((p) => {
    const part: Part<T> = {
      informer: undefined as unknown as Informer<T> & ObjectCache<T>,
      synced: false,
      stopped: false,
      retryMs: 500,
      timer: undefined,
    };
    const list = async () => {
      const result = await p.list();
      // ListWatch fills its cache synchronously right after this promise resolves; mark synced after that.
      setImmediate(() => {
        part.synced = true;
        part.retryMs = 500;
      });
      return result;
    };
    part.informer = makeInformer<T>(kc, p.path, list, p.labelSelector);
    part.informer.on('add', (o) => handlers.onChange(o, 'add'));
    part.informer.on('update', (o) => handlers.onChange(o, 'update'));
    part.informer.on('delete', (o) => handlers.onChange(o, 'delete'));
    part.informer.on('connect', () => {
      part.retryMs = Math.max(500, part.retryMs);
    });
    part.informer.on('error', (e) => {
      if (part.stopped) return; // our own stop() aborts the watch
      handlers.onError(`${what} ${p.path}`, e);
      const delay = part.retryMs;
      part.retryMs = Math.min(part.retryMs * 2, 30_000);
      clearTimeout(part.timer);
      part.timer = setTimeout(() => {
        if (!part.stopped) part.informer.start().catch((err) => handlers.onError(`${what} restart`, err));
      }, delay);
      part.timer.unref();
    });
    return part;
  });
  return {
    get: (name, namespace) => {
      for (const p of all) {
        const o = p.informer.get(name, namespace);
        if (o) return o;
      }
      return undefined;
    },
    list: (namespace) => all.flatMap((p) => p.informer.list(namespace)),
    synced: () => all.every((p) => p.synced),
    start: async () => {
      for (const p of all) {
        p.stopped = false;
        p.informer.start().catch((e) => handlers.onError(`${what} start`, e));
      }
    },
    stop: async () => {
      for (const p of all) {
        p.stopped = true;
        clearTimeout(p.timer);
        await p.informer.stop();
      }
    },
  };
}

export function describeError(e: unknown): string {
  return describe(e);
}
