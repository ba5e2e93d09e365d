// Topic names: persistent://tenant/namespace/topic, non-persistent://..., and the short forms
// `my-topic` (→ persistent://public/default/my-topic) and `tenant/namespace/topic`.

import { PulsarError, PulsarErrorCode } from './errors.ts';

export type TopicDomain = 'persistent' | 'non-persistent';

export interface TopicName {
  domain: TopicDomain;
  tenant: string;
  /** Namespace, including the legacy cluster segment (`cluster/ns`) when the name has one. */
  namespace: string;
  localName: string;
  /** -1 unless the local name ends in `-partition-N`. */
  partitionIndex: number;
  /** The full name: `persistent://tenant/namespace/localName`. */
  full: string;
}

const PARTITION_SUFFIX = /-partition-(\d+)$/;

function invalid(name: string, why: string): PulsarError {
  return new PulsarError(PulsarErrorCode.InvalidTopicName, `invalid topic name '${name}': ${why}`, {
    topic: name,
  });
}

export function parseTopicName(name: string): TopicName {
  if (typeof name !== 'string' || name.length === 0) throw invalid(String(name), 'empty');
  let domain: TopicDomain = 'persistent';
  let rest = name;
  const scheme = name.indexOf('://');
  if (scheme >= 0) {
    const d = name.slice(0, scheme);
    if (d !== 'persistent' && d !== 'non-persistent') throw invalid(name, `unknown domain '${d}'`);
    domain = d;
    rest = name.slice(scheme + 3);
  } else if (!name.includes('/')) {
    rest = `public/default/${name}`;
  }
  const parts = rest.split('/');
  let tenant: string;
  let namespace: string;
  let localName: string;
  if (parts.length === 3) {
    [tenant, namespace, localName] = parts as [string, string, string];
  } else if (parts.length >= 4 && scheme >= 0) {
    // Legacy names with a cluster: persistent://tenant/cluster/namespace/topic (the topic may contain '/').
    tenant = parts[0] as string;
    namespace = `${parts[1]}/${parts[2]}`;
    localName = parts.slice(3).join('/');
  } else if (scheme < 0) {
    throw invalid(name, 'short names are `topic` or `tenant/namespace/topic`');
  } else {
    throw invalid(name, 'expected domain://tenant/namespace/topic');
  }
  if (!tenant || !namespace || !localName || namespace.split('/').some((s) => s === '')) {
    throw invalid(name, 'empty tenant, namespace or topic');
  }
  const m = PARTITION_SUFFIX.exec(localName);
  const partitionIndex = m ? Number(m[1]) : -1;
  return {
    domain,
    tenant,
    namespace,
    localName,
    partitionIndex,
    full: `${domain}://${tenant}/${namespace}/${localName}`,
  };
}

/** The full topic name of a partition of a partitioned topic. */
export function partitionTopicName(topic: string, partition: number): string {
  return `${parseTopicName(topic).full}-partition-${partition}`;
}
