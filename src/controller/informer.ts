// A list+watch informer over KubeApi: a paginated list fills the cache, a watch from the list's resourceVersion
// keeps it current, bookmarks keep that resourceVersion fresh while nothing changes, and a dropped watch (server
// timeout, API server restart, network) resumes from the last resourceVersion seen. Only 410 Gone (that version
// has left the server's window) relists, and a relist reports the differences as add/update/delete.
//
// The cache holds trimmed objects: what reconcile reads, without managedFields and the rest. An update whose
// trimmed form did not change (a Deployment's status counters moving) is stored but not reported, so it costs no
// reconcile.

import { LABEL_TRIGGER_UID } from '../trigger/render.ts';
import type { KubeApi, KubeStatus } from './kubeapi.ts';
import type { KubeObject, Store } from './reconcile.ts';

export type Verb = 'add' | 'update' | 'delete';

export interface InformerOptions {
  /** The collection path, e.g. /apis/apps/v1/namespaces/x/deployments. */
  path: string;
  labelSelector?: string;
  /**
   * E.g. metadata.name=x: one object. RBAC authorizes a list or watch with that selector against the rule's
   * resourceNames, so a controller allowed to read only some Namespaces can still watch them.
   */
  fieldSelector?: string;
  /** What to keep of each object. */
  trim: (o: KubeObject) => KubeObject;
  /**
   * The part of a trimmed object whose change is reported (default: all of it but the resourceVersion). Triggers
   * leave out their status: the controller's own status write must not bring the trigger back for nothing.
   */
  fingerprint?: (o: KubeObject) => string;
  onChange: (obj: KubeObject, verb: Verb) => void;
  onError: (what: string, e: unknown) => void;
  /** Items per list page (bounds the size of one response in memory). Default 500. */
  pageSize?: number;
  /** The server ends each watch after this many seconds (randomised up to twice that). Default 300. */
  watchTimeoutSeconds?: number;
  /**
   * Watch in protobuf, decoding each object with this (built-in kinds only; the list stays JSON). The object it
   * returns goes through `trim` like a JSON one, so it must be shaped like the JSON (kubeproto.ts).
   */
  protobuf?: (buf: Buffer, start: number, end: number) => KubeObject;
  /** Called each time a watch (re)connects, for metrics and tests. */
  onWatchStart?: (resourceVersion: string) => void;
}

interface ListBody {
  metadata?: { resourceVersion?: string; continue?: string };
  items?: KubeObject[];
}

function keyOf(o: KubeObject): string {
  return `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;
}

/** The trimmed object without its resourceVersion, to tell a real change from a bump. */
export function withoutResourceVersion(o: KubeObject): string {
  const rv = o.metadata?.resourceVersion;
  if (o.metadata) o.metadata.resourceVersion = undefined;
  const s = JSON.stringify(o);
  if (o.metadata) o.metadata.resourceVersion = rv;
  return s;
}

class Gone extends Error {}

export class Informer implements Store<KubeObject> {
  private readonly api: KubeApi;
  private readonly o: InformerOptions;
  private readonly fingerprint: (o: KubeObject) => string;
  private items = new Map<string, KubeObject>();
  private listCache: KubeObject[] | undefined;
  /** Keys by kubeless.io/trigger-uid label (reconcile looks a trigger's Deployments up by it). */
  private byUid = new Map<string, Set<string>>();
  private resourceVersion: string | undefined;
  private isSynced = false;
  private stopped = true;
  private abort: AbortController | undefined;
  private loop: Promise<void> | undefined;

  constructor(api: KubeApi, options: InformerOptions) {
    this.api = api;
    this.o = options;
    this.fingerprint = options.fingerprint ?? withoutResourceVersion;
  }

  synced(): boolean {
    return this.isSynced;
  }

  /**
   * Whether an update changed nothing that matters (the fingerprint). Both sides are fingerprinted when compared,
   * rather than each object once as it arrives: most events add an object (1000 new Deployments: 1000 adds, a
   * few dozen updates), and keeping a fingerprint per cached object held a second copy of the cache as text.
   */
  private same(before: KubeObject, after: KubeObject): boolean {
    return this.fingerprint(before) === this.fingerprint(after);
  }

  get(name: string, namespace?: string): KubeObject | undefined {
    return this.items.get(`${namespace ?? ''}/${name}`);
  }

  byTriggerUid(uid: string): ReadonlyArray<KubeObject> {
    const keys = this.byUid.get(uid);
    if (!keys) return [];
    const out: KubeObject[] = [];
    for (const k of keys) {
      const o = this.items.get(k);
      if (o) out.push(o);
    }
    return out;
  }

  private index(k: string, old: KubeObject | undefined, next: KubeObject | undefined): void {
    const before = old?.metadata?.labels?.[LABEL_TRIGGER_UID];
    const after = next?.metadata?.labels?.[LABEL_TRIGGER_UID];
    if (before === after) return;
    if (before !== undefined) {
      const set = this.byUid.get(before);
      set?.delete(k);
      if (set?.size === 0) this.byUid.delete(before);
    }
    if (after !== undefined) {
      const set = this.byUid.get(after);
      if (set) set.add(k);
      else this.byUid.set(after, new Set([k]));
    }
  }

  list(namespace?: string): ReadonlyArray<KubeObject> {
    this.listCache ??= [...this.items.values()];
    return namespace === undefined
      ? this.listCache
      : this.listCache.filter((o) => o.metadata?.namespace === namespace);
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.abort?.abort();
    await this.loop;
  }

  private async run(): Promise<void> {
    let backoffMs = 250;
    while (!this.stopped) {
      this.abort = new AbortController();
      try {
        if (this.resourceVersion === undefined) await this.relist();
        await this.watchOnce(this.abort.signal);
        backoffMs = 250;
      } catch (e) {
        if (this.stopped) break;
        if (e instanceof Gone || (e as { statusCode?: number }).statusCode === 410) {
          this.resourceVersion = undefined; // too old: list again, at once
          continue;
        }
        this.o.onError(`watch ${this.o.path}`, e);
        await sleep(backoffMs, this.abort.signal);
        // Capped low: an API server restart takes seconds, and each attempt is one cheap connection.
        backoffMs = Math.min(backoffMs * 2, 8000);
      }
    }
  }

  private async relist(): Promise<void> {
    const next = new Map<string, KubeObject>();
    let cont: string | undefined;
    let rv: string | undefined;
    do {
      const page = await this.api.request<ListBody>('GET', this.o.path, {
        query: {
          labelSelector: this.o.labelSelector,
          fieldSelector: this.o.fieldSelector,
          limit: this.o.pageSize ?? 500,
          continue: cont,
        },
      });
      for (const item of page.items ?? []) {
        const t = this.o.trim(item);
        next.set(keyOf(t), t);
      }
      cont = page.metadata?.continue || undefined;
      rv = page.metadata?.resourceVersion;
    } while (cont);
    const old = this.items;
    this.items = next;
    this.listCache = undefined;
    this.byUid = new Map();
    for (const [k, obj] of next) this.index(k, undefined, obj);
    const changed: [KubeObject, Verb][] = [];
    for (const [k, obj] of next) {
      const before = old.get(k);
      if (!before) changed.push([obj, 'add']);
      else if (!this.same(before, obj)) changed.push([obj, 'update']);
    }
    for (const [k, obj] of old) if (!next.has(k)) changed.push([obj, 'delete']);
    this.resourceVersion = rv;
    this.isSynced = true;
    for (const [obj, verb] of changed) this.o.onChange(obj, verb);
  }

  private async watchOnce(signal: AbortSignal): Promise<void> {
    const base = this.o.watchTimeoutSeconds ?? 300;
    const rv = this.resourceVersion ?? '';
    this.o.onWatchStart?.(rv);
    await this.api.watch(
      this.o.path,
      {
        labelSelector: this.o.labelSelector,
        fieldSelector: this.o.fieldSelector,
        resourceVersion: rv,
        allowWatchBookmarks: true,
        timeoutSeconds: base + Math.floor(Math.random() * base),
      },
      (event) => this.apply(event.type, event.object as KubeObject),
      signal,
      this.o.protobuf,
    );
  }

  private apply(type: string, object: KubeObject): void {
    if (type === 'ERROR') {
      const status = object as KubeStatus;
      if (status.code === 410) throw new Gone(status.message ?? 'resourceVersion too old');
      throw Object.assign(new Error(`watch ${this.o.path}: ${status.message ?? 'error event'}`), {
        statusCode: status.code,
      });
    }
    const rv = object.metadata?.resourceVersion;
    if (type === 'BOOKMARK') {
      if (rv) this.resourceVersion = rv;
      return;
    }
    const t = this.o.trim(object);
    const k = keyOf(t);
    if (type === 'DELETED') {
      this.index(k, this.items.get(k), undefined);
      this.items.delete(k);
      this.listCache = undefined;
      if (rv) this.resourceVersion = rv;
      this.o.onChange(t, 'delete');
      return;
    }
    const before = this.items.get(k);
    const same = before !== undefined && this.same(before, t);
    // Stored even when unchanged: writes that compare-and-swap need the latest resourceVersion.
    this.index(k, before, t);
    this.items.set(k, t);
    this.listCache = undefined;
    if (rv) this.resourceVersion = rv;
    if (!same) this.o.onChange(t, before ? 'update' : 'add');
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener(
      'abort',
      () => {
        clearTimeout(t);
        resolve();
      },
      { once: true },
    );
  });
}

/** Several informers (one per watched namespace) read as one store. */
export class MergedStore implements Store<KubeObject> {
  readonly parts: Informer[];

  constructor(parts: Informer[]) {
    this.parts = parts;
  }

  get(name: string, namespace?: string): KubeObject | undefined {
    for (const p of this.parts) {
      const o = p.get(name, namespace);
      if (o) return o;
    }
    return undefined;
  }

  byTriggerUid(uid: string): ReadonlyArray<KubeObject> {
    return this.parts.length === 1
      ? this.parts[0]!.byTriggerUid(uid)
      : this.parts.flatMap((p) => p.byTriggerUid(uid));
  }

  list(namespace?: string): ReadonlyArray<KubeObject> {
    return this.parts.length === 1
      ? this.parts[0]!.list(namespace)
      : this.parts.flatMap((p) => p.list(namespace));
  }

  synced(): boolean {
    return this.parts.every((p) => p.synced());
  }

  start(): void {
    for (const p of this.parts) p.start();
  }

  async stop(): Promise<void> {
    await Promise.all(this.parts.map((p) => p.stop()));
  }
}
