// Reading the admin API's stats answers (pure: JSON in, figures out), for admin.ts. Shapes as Pulsar 4.0 sends them:
//  - GET .../stats: TopicStats, `subscriptions: { [name]: SubscriptionStats }`, each with msgBacklog, backlogSize,
//    msgRateOut, msgRateRedeliver, unackedMessages, type ('None' without consumers), consumers: [...] and, when
//    asked with getEarliestTimeInBacklog=true, earliestMsgPublishTimeInBacklog (ms; 0 when the backlog is empty).
//  - GET .../partitioned-stats: the same, summed over partitions by the broker, plus `metadata: { partitions }` and,
//    with perPartition=true, `partitions: { [partition topic]: TopicStats }`. The broker merges consumer lists by
//    position, so an aggregated list is as long as the longest partition's: the consumers of a subscription are
//    counted as the most seen on one partition (two dispatchers on four partitions: 2, not 8). Its aggregated
//    earliestMsgPublishTimeInBacklog is not usable (measured: -1 with one partition of four holding the backlog),
//    so the oldest publish time of a partitioned topic is the least over its partitions' own values.
//  - GET .../internalStats: ManagedLedgerInternalStats, numberOfEntries; .../partitioned-internalStats wraps one per
//    partition in `partitions`.

import { AdminBadResponseError } from './admin-errors.ts';

/** One subscription's figures (summed over partitions for a partitioned topic). */
export interface SubscriptionFigures {
  /** Messages not acknowledged yet (the broker's msgBacklog). */
  backlog: number;
  /** The same in bytes (backlogSize). */
  backlogBytes: number;
  /** Messages per second dispatched to the subscription (msgRateOut). */
  msgRateOut: number;
  /** Messages per second redelivered (msgRateRedeliver). */
  msgRateRedeliver: number;
  /** Consumers connected (the most on one partition for a partitioned topic). */
  consumers: number;
  /** Messages delivered and not acknowledged yet (unackedMessages). */
  unackedMessages: number;
  /** Exclusive, Shared, Failover or Key_Shared; undefined while no consumer is connected. */
  type: string | undefined;
  /**
   * Publish time (ms since the epoch) of the first message in the backlog: asked for with `oldestPublishTime`,
   * undefined when the backlog is empty, when not asked for, or when the broker does not report it (brokers before
   * Pulsar 2.10, apache/pulsar#12523).
   */
  oldestBacklogPublishTime: number | undefined;
}

/** A topic's stats as far as subscriptions go: every subscription of the topic from one call. */
export interface TopicSubscriptions {
  /** The full topic name. */
  topic: string;
  /** False when the broker knows no such topic (the namespace may be missing too): no subscriptions then. */
  exists: boolean;
  /** Partitions of a partitioned topic, 0 for a non-partitioned one (or a single partition). */
  partitions: number;
  /** Messages behind, summed over every subscription of the topic (as the broker's pulsar_msg_backlog metric). */
  backlog: number;
  subscriptions: Map<string, SubscriptionFigures>;
}

/** One subscription with where it stands: `exists` false when the topic or the subscription is missing. */
export interface SubscriptionStats extends SubscriptionFigures {
  topic: string;
  subscription: string;
  exists: boolean;
  topicExists: boolean;
  partitions: number;
  /** The topic's backlog over all its subscriptions (TopicSubscriptions.backlog). */
  topicBacklog: number;
}

type Json = Record<string, unknown>;

function bad(what: string, topic: string): AdminBadResponseError {
  return new AdminBadResponseError(`Pulsar admin: the ${what} of ${topic} is not what the API documents`, {
    topic,
  });
}

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A count or rate: a finite number ≥ 0; absent counts as 0 (older brokers lack some fields). */
function figure(v: unknown, field: string, topic: string): number {
  if (v === undefined || v === null) return 0;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw bad(`field ${field}`, topic);
  return Math.max(0, v);
}

function subscriptionFigures(s: unknown, name: string, topic: string): SubscriptionFigures {
  if (!isObject(s)) throw bad(`stats of subscription '${name}'`, topic);
  const backlog = figure(s.msgBacklog, 'msgBacklog', topic);
  const earliest = s.earliestMsgPublishTimeInBacklog;
  const type = typeof s.type === 'string' && s.type !== 'None' && s.type !== '' ? s.type : undefined;
  if (s.consumers !== undefined && !Array.isArray(s.consumers)) throw bad('consumers list', topic);
  return {
    backlog,
    backlogBytes: figure(s.backlogSize, 'backlogSize', topic),
    msgRateOut: figure(s.msgRateOut, 'msgRateOut', topic),
    msgRateRedeliver: figure(s.msgRateRedeliver, 'msgRateRedeliver', topic),
    consumers: Array.isArray(s.consumers) ? s.consumers.length : 0,
    unackedMessages: figure(s.unackedMessages, 'unackedMessages', topic),
    type,
    oldestBacklogPublishTime:
      backlog > 0 && typeof earliest === 'number' && Number.isFinite(earliest) && earliest > 0
        ? earliest
        : undefined,
  };
}

/** The least positive oldest publish time of `name` over the partitions of a partitioned-stats answer. */
function oldestOverPartitions(partitions: Json, name: string, topic: string): number | undefined {
  let oldest: number | undefined;
  for (const [partition, stats] of Object.entries(partitions)) {
    if (!isObject(stats)) throw bad(`stats of partition ${partition}`, topic);
    const subs = stats.subscriptions;
    if (subs === undefined) continue;
    if (!isObject(subs)) throw bad(`subscriptions of partition ${partition}`, topic);
    const s = subs[name];
    if (s === undefined) continue;
    const t = subscriptionFigures(s, name, partition).oldestBacklogPublishTime;
    if (t !== undefined && (oldest === undefined || t < oldest)) oldest = t;
  }
  return oldest;
}

/**
 * Figures from a `stats` answer (`partitioned` false) or a `partitioned-stats` answer (true). With the per-partition
 * stats in the answer, a subscription's oldest publish time is the least over partitions.
 */
export function parseTopicStats(body: unknown, partitioned: boolean, topic: string): TopicSubscriptions {
  if (!isObject(body)) throw bad('stats', topic);
  const subs = body.subscriptions ?? {};
  if (!isObject(subs)) throw bad('subscriptions map', topic);
  let partitions = 0;
  if (partitioned) {
    const meta = body.metadata;
    if (!isObject(meta) || typeof meta.partitions !== 'number') throw bad('partitioned metadata', topic);
    partitions = meta.partitions;
  }
  const perPartition = partitioned && isObject(body.partitions) ? body.partitions : undefined;
  const subscriptions = new Map<string, SubscriptionFigures>();
  let backlog = 0;
  for (const [name, s] of Object.entries(subs)) {
    const f = subscriptionFigures(s, name, topic);
    if (partitioned) {
      f.oldestBacklogPublishTime =
        perPartition && f.backlog > 0 ? oldestOverPartitions(perPartition, name, topic) : undefined;
    }
    subscriptions.set(name, f);
    backlog += f.backlog;
  }
  return { topic, exists: true, partitions, backlog, subscriptions };
}

/** What a topic the broker does not know looks like: no subscriptions, nothing behind. */
export function missingTopic(topic: string): TopicSubscriptions {
  return { topic, exists: false, partitions: 0, backlog: 0, subscriptions: new Map() };
}

/** One subscription out of a topic's stats (zeros and exists: false when it is not there). */
export function pickSubscription(t: TopicSubscriptions, subscription: string): SubscriptionStats {
  const f = t.subscriptions.get(subscription);
  return {
    backlog: 0,
    backlogBytes: 0,
    msgRateOut: 0,
    msgRateRedeliver: 0,
    consumers: 0,
    unackedMessages: 0,
    type: undefined,
    oldestBacklogPublishTime: undefined,
    ...f,
    topic: t.topic,
    subscription,
    exists: f !== undefined,
    topicExists: t.exists,
    partitions: t.partitions,
    topicBacklog: t.backlog,
  };
}

/**
 * Entries stored on a topic from an `internalStats` answer (`partitioned` false) or the sum over a
 * `partitioned-internalStats` answer (true): ManagedLedgerInternalStats.numberOfEntries.
 */
export function parseEntryCount(body: unknown, partitioned: boolean, topic: string): number {
  if (!isObject(body)) throw bad('internal stats', topic);
  if (!partitioned) {
    if (typeof body.numberOfEntries !== 'number') throw bad('field numberOfEntries', topic);
    return figure(body.numberOfEntries, 'numberOfEntries', topic);
  }
  const partitions = body.partitions ?? {};
  if (!isObject(partitions)) throw bad('partitions of the internal stats', topic);
  let total = 0;
  for (const [partition, stats] of Object.entries(partitions)) {
    if (!isObject(stats)) throw bad(`internal stats of ${partition}`, topic);
    total += figure(stats.numberOfEntries, 'numberOfEntries', partition);
  }
  return total;
}
