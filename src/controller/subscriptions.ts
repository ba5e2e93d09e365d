// The edge between reconcile and the Pulsar admin REST API (src/pulsar/admin.ts): each trigger's subscription is
// made, counted and deleted at the trigger's admin URL with the trigger's own credentials (its token, inline or
// from its Secret, and its TLS material from its Secret or ConfigMap, read where the Deployment lives), and its
// figures are read for the status (backlog.ts). Admin clients are kept per URL and credentials (keep-alive
// connections shared by the triggers of one broker); a credential read is cached briefly, so a rotated token
// reaches the next calls within that time. Failures come back as the Ready=False reasons reconcile reports.

import { hash as digest } from 'node:crypto';
import { PulsarAdmin } from '../pulsar/admin.ts';
import { PulsarAdminError } from '../pulsar/admin-errors.ts';
import { PulsarErrorCode } from '../pulsar/errors.ts';
import { tokenAuth } from '../pulsar/token.ts';
import type { PulsarSpec } from '../trigger/spec.ts';
import type { BacklogFigures } from './backlog.ts';
import type { AdminOutcome, KubeObject, SubscriptionPort, SubscriptionTarget } from './reconcile.ts';

/** The reads the adapter needs from the Kubernetes API (kube.ts KubeClient.readData). */
export interface CredentialReads {
  readData(
    kind: 'Secret' | 'ConfigMap',
    namespace: string,
    name: string,
  ): Promise<Record<string, string> | undefined>;
}

export interface SubscriptionsOptions {
  reads: CredentialReads;
  /** Deadline of one admin call. */
  timeoutMs?: number;
  /** How long a credential read is trusted (a rotated Secret is seen after this at most). */
  credentialCacheMs?: number;
  now?: () => number;
  /** Clients kept at most (one per admin URL and credentials); the least recently used is closed beyond. */
  maxClients?: number;
  /** Each admin call, when answered (for kpt_controller_pulsar_admin_calls_total). */
  onCall?: (call: 'ensure' | 'consumers' | 'remove' | 'figures', ok: boolean) => void;
}

/** What a trigger's admin calls need of its rendering. */
export type AdminTarget = SubscriptionTarget;

class CredentialError extends Error {}

export class TriggerSubscriptions implements SubscriptionPort {
  private readonly o: SubscriptionsOptions;
  private readonly clients = new Map<string, PulsarAdmin>();
  private readonly data = new Map<string, { at: number; value: Record<string, string> | undefined }>();

  constructor(options: SubscriptionsOptions) {
    this.o = options;
  }

  async ensure(trigger: KubeObject, r: AdminTarget): Promise<AdminOutcome & { partitions?: number }> {
    return this.call('ensure', trigger, r, async (admin) => {
      await admin.createSubscription(r.settings.topic, r.settings.subscription, r.settings.initialPosition);
      // Whether the topic is partitioned (KEDA's scaler needs to be told); the figures keep it current after.
      return { ok: true, partitions: await admin.partitions(r.settings.topic) };
    });
  }

  async consumers(trigger: KubeObject, r: AdminTarget): Promise<AdminOutcome & { consumers?: number }> {
    return this.call('consumers', trigger, r, async (admin) => {
      const s = await admin.subscriptionStats(r.settings.topic, r.settings.subscription);
      return { ok: true, consumers: s.exists ? s.consumers : 0 };
    });
  }

  async remove(trigger: KubeObject, r: AdminTarget): Promise<AdminOutcome> {
    return this.call('remove', trigger, r, async (admin) => {
      await admin.deleteSubscription(r.settings.topic, r.settings.subscription, { force: true });
      return { ok: true };
    });
  }

  /** The figures of the trigger's subscription; throws what the admin call threw. */
  async figures(trigger: KubeObject, r: AdminTarget): Promise<BacklogFigures> {
    try {
      const f = await this.readFigures(trigger, r);
      this.o.onCall?.('figures', true);
      return f;
    } catch (e) {
      this.o.onCall?.('figures', false);
      throw e;
    }
  }

  private async readFigures(trigger: KubeObject, r: AdminTarget): Promise<BacklogFigures> {
    const admin = await this.client(trigger, r);
    const s = await admin.subscriptionStats(r.settings.topic, r.settings.subscription, {
      oldestPublishTime: true,
    });
    const canDeadLetter =
      r.settings.maxAttempts !== undefined || r.settings.statusRules.some((a) => a.action === 'deadLetter');
    const deadLettered = canDeadLetter
      ? await admin.topicMessageCount(r.settings.deadLetterTopic)
      : undefined;
    return {
      backlog: s.exists ? s.backlog : 0,
      // Tenths: the broker's rate moves in its last digits on every read, which would be a status write each time.
      msgRateOut: Math.round((s.exists ? s.msgRateOut : 0) * 10) / 10,
      consumers: s.exists ? s.consumers : 0,
      partitions: s.partitions,
      oldestPublishTime:
        s.oldestBacklogPublishTime === undefined
          ? undefined
          : new Date(s.oldestBacklogPublishTime).toISOString().replace(/\.\d+Z$/, 'Z'),
      deadLettered,
    };
  }

  close(): void {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }

  private async call<T extends AdminOutcome>(
    name: 'ensure' | 'consumers' | 'remove',
    trigger: KubeObject,
    r: AdminTarget,
    fn: (admin: PulsarAdmin) => Promise<T>,
  ): Promise<T | AdminOutcome> {
    try {
      const out = await fn(await this.client(trigger, r));
      this.o.onCall?.(name, true);
      return out;
    } catch (e) {
      this.o.onCall?.(name, false);
      return adminFailure(e, r.adminUrl);
    }
  }

  private async read(kind: 'Secret' | 'ConfigMap', namespace: string, name: string) {
    const key = `${kind}/${namespace}/${name}`;
    const now = this.o.now?.() ?? Date.now();
    const hit = this.data.get(key);
    if (hit && now - hit.at < (this.o.credentialCacheMs ?? 30_000)) return hit.value;
    const value = await this.o.reads.readData(kind, namespace, name);
    this.data.set(key, { at: now, value });
    return value;
  }

  private async keyOf(
    kind: 'Secret' | 'ConfigMap',
    namespace: string,
    ref: { name: string; key: string },
    field: string,
  ): Promise<string> {
    const data = await this.read(kind, namespace, ref.name);
    const v = data?.[ref.key];
    if (v === undefined)
      throw new CredentialError(`${field}: ${kind} ${namespace}/${ref.name} has no key "${ref.key}"`);
    return v;
  }

  private async client(trigger: KubeObject, r: AdminTarget): Promise<PulsarAdmin> {
    const p = (trigger.spec as { pulsar?: PulsarSpec } | undefined)?.pulsar;
    const ns = r.namespace;
    const inline = p?.['auth-token'];
    const ref = p?.authTokenSecretRef;
    const token = inline
      ? inline
      : ref
        ? await this.keyOf('Secret', ns, ref, 'spec.pulsar.authTokenSecretRef')
        : undefined;
    const tls = p?.tls;
    const ca = tls?.caSecretRef
      ? await this.keyOf('Secret', ns, tls.caSecretRef, 'spec.pulsar.tls.caSecretRef')
      : tls?.caConfigMapRef
        ? await this.keyOf('ConfigMap', ns, tls.caConfigMapRef, 'spec.pulsar.tls.caConfigMapRef')
        : undefined;
    let cert: string | undefined;
    let key: string | undefined;
    if (tls?.clientCertSecretRef) {
      const ref2 = { name: tls.clientCertSecretRef.name };
      cert = await this.keyOf(
        'Secret',
        ns,
        { ...ref2, key: 'tls.crt' },
        'spec.pulsar.tls.clientCertSecretRef',
      );
      key = await this.keyOf(
        'Secret',
        ns,
        { ...ref2, key: 'tls.key' },
        'spec.pulsar.tls.clientCertSecretRef',
      );
    }
    const verify = tls?.verifyHostname ?? true;
    // The key names the client: the same URL with the same credentials shares one (hashed, never kept in clear).
    const id = digest(
      'sha256',
      JSON.stringify([r.adminUrl, token ?? '', ca ?? '', cert ?? '', key ?? '', verify]),
    );
    let admin = this.clients.get(id);
    if (admin) {
      this.clients.delete(id);
      this.clients.set(id, admin);
      return admin;
    }
    admin = new PulsarAdmin({
      adminUrl: r.adminUrl,
      ...(token !== undefined ? { auth: tokenAuth({ token: token.trim() }) } : {}),
      tls: { ca, cert, key, hostnameVerification: verify },
      timeoutMs: this.o.timeoutMs ?? 10_000,
    });
    this.clients.set(id, admin);
    const max = this.o.maxClients ?? 64;
    while (this.clients.size > max) {
      const [oldest, c] = this.clients.entries().next().value as [string, PulsarAdmin];
      c.close();
      this.clients.delete(oldest);
    }
    return admin;
  }
}

/** An admin call's failure as reconcile reports it. */
export function adminFailure(e: unknown, adminUrl: string): AdminOutcome {
  if (e instanceof CredentialError) return { ok: false, reason: 'PulsarAdminForbidden', message: e.message };
  if (e instanceof PulsarAdminError && e.code === PulsarErrorCode.AdminForbidden) {
    return {
      ok: false,
      reason: 'PulsarAdminForbidden',
      message: `Pulsar admin API ${adminUrl}: ${e.message}`,
    };
  }
  const message = e instanceof Error ? e.message : String(e);
  return { ok: false, reason: 'PulsarAdminUnavailable', message: `Pulsar admin API ${adminUrl}: ${message}` };
}
