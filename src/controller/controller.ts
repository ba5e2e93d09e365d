// Wiring: leader election → informers → work queue → reconcile, plus /healthz, /readyz and /metrics. A standby
// only campaigns; informers start when it leads, so two replicas never reconcile at once.

import type { Server } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
// prom-client's classes from their own files (its index loads node:cluster and the Pushgateway's http clients).
import Counter from 'prom-client/lib/counter.js';
import Gauge from 'prom-client/lib/gauge.js';
import Histogram from 'prom-client/lib/histogram.js';
import Registry from 'prom-client/lib/registry.js';
import { renderTrigger } from '../trigger/render.ts';
import type { PulsarTrigger } from '../trigger/spec.ts';
import { BacklogPoller } from './backlog.ts';
import type { ControllerConfig } from './config.ts';
import { describe } from './errors.ts';
import { Informer, type InformerOptions, MergedStore, type Verb } from './informer.ts';
import {
  KubeClient,
  OWNED_SELECTOR,
  paths,
  triggerFingerprint,
  trimDeployment,
  trimNamespace,
  trimTrigger,
} from './kube.ts';
import { KubeApi, type KubeConnection } from './kubeapi.ts';
import { decodeDeployment } from './kubeproto.ts';
import { LeaderElector, leaseApi } from './leader.ts';
import { ANNOTATION_ACCEPT_FROM, requestedNamespace } from './placement.ts';
import { isSeedDeployment, type KubeObject, keyOf, ownerKey, Reconciler, splitKey } from './reconcile.ts';
import { TriggerSubscriptions } from './subscriptions.ts';
import { type Timers, WorkQueue } from './workqueue.ts';

/** Timers that do not keep the process alive (the work queue's default ones, for the backlog poller). */
const controllerTimers: Timers = {
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

// node:http through require(): an ES import would load Node's internal undici through http's lazy getters.
const { createServer } = createRequire(import.meta.url)('node:http') as typeof import('node:http');

export interface Metrics {
  registry: Registry;
  reconciles: Counter<'result'>;
  errors: Counter;
  duration: Histogram;
  queueDepth: Gauge;
  writes: Counter<'kind' | 'verb' | 'result'>;
  leader: Gauge;
  watches: Counter<'resource'>;
  adminCalls: Counter<'call' | 'result'>;
}

export function makeMetrics(): Metrics {
  const registry = new Registry();
  return {
    registry,
    reconciles: new Counter({
      name: 'kpt_controller_reconciles_total',
      help: 'Reconciles by result (success, error).',
      labelNames: ['result'],
      registers: [registry],
    }),
    errors: new Counter({
      name: 'kpt_controller_reconcile_errors_total',
      help: 'Reconciles that failed and were retried.',
      registers: [registry],
    }),
    duration: new Histogram({
      name: 'kpt_controller_reconcile_duration_seconds',
      help: 'Time to reconcile one trigger.',
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
      registers: [registry],
    }),
    queueDepth: new Gauge({
      name: 'kpt_controller_queue_depth',
      help: 'Keys waiting.',
      registers: [registry],
    }),
    writes: new Counter({
      name: 'kpt_controller_writes_total',
      help: 'Writes to the API server by kind, verb and result (ok, error), counted when answered.',
      labelNames: ['kind', 'verb', 'result'],
      registers: [registry],
    }),
    leader: new Gauge({
      name: 'kpt_controller_leader',
      help: '1 while this replica leads.',
      registers: [registry],
    }),
    watches: new Counter({
      name: 'kpt_controller_watches_total',
      help: 'Watches started (the first, and each resumed one) by resource.',
      labelNames: ['resource'],
      registers: [registry],
    }),
    adminCalls: new Counter({
      name: 'kpt_controller_pulsar_admin_calls_total',
      help: 'Calls to the Pulsar admin API by call (ensure, consumers, remove, figures) and result (ok, error).',
      labelNames: ['call', 'result'],
      registers: [registry],
    }),
  };
}

export interface Controller {
  readonly metrics: Metrics;
  /** The bound HTTP port. */
  port(): number;
  isLeader(): boolean;
  stop(): Promise<void>;
}

export async function startController(
  config: ControllerConfig,
  conn: KubeConnection,
  log: Logger,
  onFatal: (reason: string) => void,
): Promise<Controller> {
  const metrics = makeMetrics();
  // One connection per worker, plus a few for the Lease and events, so a full queue never waits for a socket.
  const api = new KubeApi(conn, { connections: config.workers + 4 });
  const kube = new KubeClient(
    api,
    (kind, verb, result) => metrics.writes.inc({ kind, verb, result }),
    config.identity,
  );
  const queue = new WorkQueue();
  const renderConfig = {
    dispatcherImage: config.dispatcherImage,
    timezone: config.timezone,
    resources: config.resources,
  };
  const nsParts = config.namespaces.length > 0 ? config.namespaces : [undefined];

  const onError = (what: string, e: unknown) =>
    log.warn({ what, error: describe(e) }, 'watch failed, retrying');
  const informers = (
    resource: string,
    path: (ns: string | undefined) => string,
    trim: (o: KubeObject) => KubeObject,
    onChange: (o: KubeObject) => void,
    extra: Pick<InformerOptions, 'labelSelector' | 'fingerprint' | 'protobuf' | 'fieldSelector'> = {},
  ) =>
    new MergedStore(
      nsParts.map(
        (ns) =>
          new Informer(api, {
            path: path(ns),
            ...extra,
            trim,
            onChange,
            onError,
            onWatchStart: () => metrics.watches.inc({ resource }),
          }),
      ),
    );
  const triggers = informers('pulsartriggers', paths.triggers, trimTrigger, (o) => queue.add(keyOf(o)), {
    fingerprint: triggerFingerprint,
  });
  // Owned objects route to their trigger through the kubeless.io/trigger annotation; the seed's Deployments
  // have none, so they route to any trigger of the same name.
  const routeOwned = (o: KubeObject) => {
    const key = ownerKey(o);
    if (key) queue.add(key);
    else if (isSeedDeployment(o)) {
      for (const t of triggers.list()) if (t.metadata?.name === o.metadata?.name) queue.add(keyOf(t));
    }
  };
  // Deployments are watched in protobuf (kubeproto.ts: the API server encodes each event in protobuf for
  // kube-controller-manager anyway, and our JSON watch cost it +5-8 % wall time creating 1000 Deployments).
  const deployments = informers('deployments', paths.deployments, trimDeployment, routeOwned, {
    labelSelector: OWNED_SELECTOR,
    protobuf: decodeDeployment,
  });
  // Namespaces, for the accept-triggers-from annotation of a trigger's target (placement.ts). Watched rather than
  // read on each reconcile or resync: a withdrawn opt-in takes effect at once, and reconcile reads only caches. All
  // of them when every namespace is watched; else each watched one alone (a field selector on its name), which
  // RBAC allows with `resourceNames`, so the chart grants nothing on other Namespaces. An annotation change (or an
  // annotated Namespace coming or going) brings back the triggers that ask for that namespace and those whose
  // Deployment is there.
  const onNamespace = (o: KubeObject, verb: Verb) => {
    if (verb !== 'update' && o.metadata?.annotations?.[ANNOTATION_ACCEPT_FROM] === undefined) return;
    const name = o.metadata?.name;
    if (name === undefined) return;
    for (const t of triggers.list()) {
      if (t.metadata?.namespace !== name && requestedNamespace(t) === name) queue.add(keyOf(t));
    }
    for (const d of deployments.list(name)) {
      const key = ownerKey(d);
      if (key && !key.startsWith(`${name}/`)) queue.add(key);
    }
  };
  const namespaceObjects = new MergedStore(
    nsParts.map(
      (ns) =>
        new Informer(api, {
          path: paths.namespaces(),
          ...(ns === undefined ? {} : { fieldSelector: `metadata.name=${ns}` }),
          trim: trimNamespace,
          onChange: onNamespace,
          onError,
          onWatchStart: () => metrics.watches.inc({ resource: 'namespaces' }),
        }),
    ),
  );
  const stores = [triggers, deployments];
  // Work starts when triggers and Deployments are cached. Namespaces are not waited for: without them (not cached
  // yet, or not readable) only triggers placed in another namespace wait, and same-namespace ones are served.
  const synced = () => stores.every((s) => s.synced());

  // The Pulsar admin API (subscriptions.ts): each trigger's subscription, and its backlog read into the status at a
  // bounded rate (backlog.ts), which queues a trigger only when its figures changed.
  const subscriptions = config.pulsarAdmin
    ? new TriggerSubscriptions({
        reads: kube,
        onCall: (call, ok) => metrics.adminCalls.inc({ call, result: ok ? 'ok' : 'error' }),
      })
    : undefined;
  const poller =
    subscriptions && config.backlogIntervalMs > 0
      ? new BacklogPoller({
          intervalMs: config.backlogIntervalMs,
          timers: controllerTimers,
          now: Date.now,
          onChange: (key) => queue.add(key),
          onError: (key, e) => log.debug({ trigger: key, error: describe(e) }, 'backlog not read'),
          read: async (key) => {
            const { namespace, name } = splitKey(key);
            const t = triggers.get(name, namespace);
            if (!t) throw new Error(`trigger ${key} is gone`);
            const rendered = renderTrigger(t as unknown as PulsarTrigger, renderConfig);
            if (!rendered.ok) throw rendered.error;
            return subscriptions.figures(t, rendered.value);
          },
        })
      : undefined;

  const reconciler = new Reconciler({
    triggers,
    deployments,
    kube,
    render: renderConfig,
    namespaces: config.namespaces,
    namespaceObjects,
    crossNamespaceGrants: config.allowCrossNamespace,
    log: (level, msg, ctx) => log[level](ctx, msg),
    ...(subscriptions ? { subscriptions } : {}),
    ...(poller ? { backlog: poller } : {}),
    wake: (key) => queue.add(key),
  });

  let running = false;
  let resyncTimer: NodeJS.Timeout | undefined;
  const workers: Promise<void>[] = [];

  const worker = async (): Promise<void> => {
    for (;;) {
      const key = await queue.get();
      if (key === undefined) return;
      metrics.queueDepth.set(queue.depth());
      const end = metrics.duration.startTimer();
      try {
        const outcome = await reconciler.reconcile(key);
        queue.forget(key);
        metrics.reconciles.inc({ result: 'success' });
        if (outcome.actions.length > 0) log.info({ trigger: key, actions: outcome.actions }, 'reconciled');
        if (outcome.requeueAfterMs !== undefined) queue.addAfter(key, outcome.requeueAfterMs);
      } catch (e) {
        // Never fatal: the key is retried with backoff and the other keys carry on.
        const delay = queue.addRateLimited(key);
        metrics.errors.inc();
        metrics.reconciles.inc({ result: 'error' });
        log.warn({ trigger: key, error: describe(e), retryInMs: delay }, 'reconcile failed');
      } finally {
        end();
        queue.done(key);
        metrics.queueDepth.set(queue.depth());
      }
    }
  };

  const enqueueAll = () => {
    for (const t of triggers.list()) queue.add(keyOf(t));
    // Orphans: our objects whose trigger UID no longer exists route to their (missing) trigger's key.
    const uids = new Set(triggers.list().map((t) => t.metadata?.uid));
    for (const o of deployments.list()) {
      const key = ownerKey(o);
      const uid = o.metadata?.labels?.['kubeless.io/trigger-uid'];
      if (key && uid && !uids.has(uid)) queue.add(key);
    }
  };

  const startWorking = async () => {
    running = true;
    metrics.leader.set(1);
    for (const s of stores) s.start();
    namespaceObjects.start();
    // Reconciling before every cache is filled would mistake everything for missing or orphaned.
    while (!synced() && running) await new Promise((r) => setTimeout(r, 50));
    if (!running) return;
    log.info({ triggers: triggers.list().length, deployments: deployments.list().length }, 'caches synced');
    enqueueAll();
    for (let i = 0; i < config.workers; i++) workers.push(worker());
    resyncTimer = setInterval(enqueueAll, config.resyncMs);
    resyncTimer.unref();
    poller?.start();
  };

  const elector = config.leaderElect
    ? new LeaderElector(leaseApi(api), {
        name: config.leaseName,
        namespace: config.leaseNamespace,
        identity: config.identity,
        leaseDurationMs: config.leaseDurationMs,
        renewDeadlineMs: config.renewDeadlineMs,
        retryPeriodMs: config.retryPeriodMs,
        onStartedLeading: () => {
          startWorking().catch((e) => onFatal(`cannot start: ${describe(e)}`));
        },
        // Like client-go: a replica that lost the Lease exits, and its restart joins as a standby.
        onStoppedLeading: () => onFatal('lost leadership'),
        log: (level, msg, ctx) => log[level](ctx ?? {}, msg),
      })
    : undefined;

  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    } else if (path === '/readyz') {
      // A standby is ready (healthy, waiting); a leader once its caches are filled.
      const leader = elector ? elector.isLeader() : true;
      const ok = !leader || (running && synced());
      res
        .writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' })
        .end(`${ok ? 'ok' : 'syncing'} ${leader ? 'leader' : 'standby'}\n`);
    } else if (path === '/metrics') {
      metrics.queueDepth.set(queue.depth());
      metrics.registry
        .metrics()
        .then((body) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(body))
        .catch((e) => res.writeHead(500).end(String(e)));
    } else res.writeHead(404).end();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.httpPort, config.httpHost, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  log.info({ port, identity: config.identity }, 'listening');

  if (elector) elector.start();
  else await startWorking();

  return {
    metrics,
    port: () => port,
    isLeader: () => (elector ? elector.isLeader() : running),
    stop: async () => {
      running = false;
      clearInterval(resyncTimer);
      poller?.stop();
      subscriptions?.close();
      queue.shutdown();
      await Promise.race([Promise.all(workers), new Promise((r) => setTimeout(r, 5000).unref())]);
      for (const s of stores) await s.stop();
      await namespaceObjects.stop();
      if (elector) await elector.stop();
      metrics.leader.set(0);
      await new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections?.();
      await api.close();
    },
  };
}
