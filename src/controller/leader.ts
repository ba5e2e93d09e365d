// Leader election on a coordination.k8s.io/v1 Lease, as client-go does it. Expiry is judged
// by this process's own clock: a standby takes over when the Lease record has not changed for leaseDuration since
// it last saw it change, so clock skew between nodes does not matter. Updates carry the resourceVersion, so two
// candidates racing for an expired Lease cannot both win.

import { describe, httpStatus } from './errors.ts';
import type { KubeApi } from './kubeapi.ts';

/** The part of a coordination.k8s.io/v1 Lease this uses; times are MicroTime strings. */
export interface Lease {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; namespace?: string; resourceVersion?: string; [k: string]: unknown };
  spec?: {
    holderIdentity?: string;
    leaseDurationSeconds?: number;
    acquireTime?: string;
    renewTime?: string;
    leaseTransitions?: number;
  };
}

export interface LeaderElectionOptions {
  name: string;
  namespace: string;
  identity: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  onStartedLeading: () => void;
  /** Called once when leadership is lost (renewal failed past the deadline). */
  onStoppedLeading: () => void;
  log: (level: 'info' | 'warn' | 'debug', msg: string, ctx?: Record<string, unknown>) => void;
}

/** What a Lease API needs to offer; tests may fake it. */
export interface LeaseApi {
  get(namespace: string, name: string): Promise<Lease | undefined>;
  create(namespace: string, lease: Lease): Promise<Lease>;
  replace(namespace: string, name: string, lease: Lease): Promise<Lease>;
}

export function leaseApi(api: KubeApi): LeaseApi {
  const base = (namespace: string) =>
    `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(namespace)}/leases`;
  return {
    get: async (namespace, name) => {
      try {
        return await api.request<Lease>('GET', `${base(namespace)}/${encodeURIComponent(name)}`);
      } catch (e) {
        if (httpStatus(e) === 404) return undefined;
        throw e;
      }
    },
    create: (namespace, lease) => api.request<Lease>('POST', base(namespace), { body: lease }),
    replace: (namespace, name, lease) =>
      api.request<Lease>('PUT', `${base(namespace)}/${encodeURIComponent(name)}`, { body: lease }),
  };
}

/** Lease times are MicroTime: the API server insists on six fractional digits. */
export function microTime(d: Date | string | undefined): string {
  const date = d === undefined ? new Date() : new Date(d);
  return date.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

export class LeaderElector {
  private readonly o: LeaderElectionOptions;
  private readonly api: LeaseApi;
  private leading = false;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private lastRenew = 0;
  /** The last Lease record seen and when (by our clock) it was seen to change. */
  private observed: { key: string; at: number } | undefined;

  constructor(api: LeaseApi, options: LeaderElectionOptions) {
    this.api = api;
    this.o = options;
  }

  isLeader(): boolean {
    return this.leading;
  }

  start(): void {
    void this.tick();
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.tick(), this.o.retryPeriodMs);
  }

  private async tick(): Promise<void> {
    try {
      const ok = await this.tryAcquireOrRenew();
      if (ok) {
        this.lastRenew = Date.now();
        if (!this.leading && !this.stopped) {
          this.leading = true;
          this.o.log('info', 'became leader', {
            lease: `${this.o.namespace}/${this.o.name}`,
            identity: this.o.identity,
          });
          this.o.onStartedLeading();
        }
      } else if (this.leading) this.checkDeadline();
    } catch (e) {
      this.o.log('warn', 'lease update failed', { error: describe(e) });
      if (this.leading) this.checkDeadline();
    }
    this.schedule();
  }

  private checkDeadline(): void {
    if (Date.now() - this.lastRenew > this.o.renewDeadlineMs) {
      this.leading = false;
      this.o.log('warn', 'lost leadership', { identity: this.o.identity });
      this.o.onStoppedLeading();
    }
  }

  private spec(transitions: number, acquireTime: string | undefined): Lease['spec'] {
    const now = new Date();
    return {
      holderIdentity: this.o.identity,
      leaseDurationSeconds: Math.ceil(this.o.leaseDurationMs / 1000),
      acquireTime: microTime(acquireTime ?? now),
      renewTime: microTime(now),
      leaseTransitions: transitions,
    };
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const lease = await this.api.get(this.o.namespace, this.o.name);
    if (!lease) {
      await this.api.create(this.o.namespace, {
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: { name: this.o.name, namespace: this.o.namespace },
        spec: this.spec(0, undefined),
      });
      return true;
    }
    const s = lease.spec ?? {};
    const key = `${s.holderIdentity ?? ''}|${String(s.renewTime ?? '')}|${s.leaseTransitions ?? 0}`;
    const now = Date.now();
    if (!this.observed || this.observed.key !== key) this.observed = { key, at: now };
    const holder = s.holderIdentity ?? '';
    const durationMs = (s.leaseDurationSeconds ?? Math.ceil(this.o.leaseDurationMs / 1000)) * 1000;
    const mine = holder === this.o.identity;
    const expired = holder === '' || now - this.observed.at > durationMs;
    if (!mine && !expired) return false;
    const transitions = (s.leaseTransitions ?? 0) + (mine ? 0 : 1);
    await this.api.replace(this.o.namespace, this.o.name, {
      ...lease,
      spec: this.spec(transitions, mine ? s.acquireTime : undefined),
    });
    return true;
  }

  /** Stops campaigning; a leader gives the Lease up so a standby need not wait for it to expire. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    if (!this.leading) return;
    this.leading = false;
    try {
      const lease = await this.api.get(this.o.namespace, this.o.name);
      if (lease?.spec?.holderIdentity === this.o.identity) {
        await this.api.replace(this.o.namespace, this.o.name, {
          ...lease,
          spec: {
            ...lease.spec,
            holderIdentity: '',
            leaseDurationSeconds: 1,
            acquireTime: microTime(lease.spec.acquireTime),
            renewTime: microTime(new Date()),
          },
        });
        this.o.log('info', 'released lease', { lease: `${this.o.namespace}/${this.o.name}` });
      }
    } catch (e) {
      this.o.log('warn', 'could not release lease', { error: describe(e) });
    }
  }
}
