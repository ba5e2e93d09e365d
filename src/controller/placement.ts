// Where a trigger's Deployment may go. A trigger's Deployment goes to the trigger's own namespace; another
// namespace (spec.deployment.metadata.namespace) only when that namespace agrees, because writing a trigger picks
// the image, service account and volumes of a pod: a trigger placed elsewhere is a Deployment written there.
//
// A target namespace agrees in one of two ways:
// - its owner annotates it: `kubeless.io/accept-triggers-from: "team-a,team-b"` (source namespaces, or `*`);
// - the controller's administrator grants it: `--allow-cross-namespace=team-a=shared,...` (`*` on either side).
// Pure: the Namespace comes from the informer cache, the grants from the configuration.

import type { KubeObject } from './reconcile.ts';

export const ANNOTATION_ACCEPT_FROM = 'kubeless.io/accept-triggers-from';
/** Accepts every source namespace, in the annotation and on either side of a grant. */
export const ANY_NAMESPACE = '*';

/** An administrator's grant: triggers in `from` may place their Deployment in `to`. */
export interface CrossNamespaceGrant {
  from: string;
  to: string;
}

const NAMESPACE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** The namespace names (or `*`) an accept-triggers-from value lists; malformed entries are left out. */
export function parseAcceptFrom(value: string | undefined): string[] {
  if (value === undefined) return [];
  return value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s === ANY_NAMESPACE || (s.length <= 63 && NAMESPACE.test(s)));
}

/**
 * Parses `SRC=DST,SRC=DST` (each side a namespace name or `*`). Returns the grants, or the entries that are not
 * such pairs.
 */
export function parseGrants(
  text: string,
): { ok: true; value: CrossNamespaceGrant[] } | { ok: false; bad: string[] } {
  const value: CrossNamespaceGrant[] = [];
  const bad: string[] = [];
  const side = (s: string) => s === ANY_NAMESPACE || (s.length <= 63 && NAMESPACE.test(s));
  for (const entry of text.split(',').map((s) => s.trim())) {
    if (entry === '') continue;
    const parts = entry.split('=').map((s) => s.trim());
    if (parts.length === 2 && side(parts[0]!) && side(parts[1]!))
      value.push({ from: parts[0]!, to: parts[1]! });
    else bad.push(entry);
  }
  return bad.length > 0 ? { ok: false, bad } : { ok: true, value };
}

/** The namespace a trigger asks for, read from its spec as render.ts reads it (for routing Namespace events). */
export function requestedNamespace(trigger: KubeObject): string | undefined {
  const asked = trigger.spec?.deployment?.metadata?.namespace;
  return typeof asked === 'string' && asked !== '' ? asked : trigger.metadata?.namespace;
}

export type Placement =
  | { allowed: true; by: 'same-namespace' | 'grant' | 'annotation' }
  | { allowed: false; message: string }
  /** The Namespace cache is not filled yet: nothing can be decided (and nothing may be deleted) now. */
  | { allowed: undefined };

export interface PlacementInput {
  /** The trigger's namespace. */
  source: string;
  /** Where its Deployment would go. */
  target: string;
  grants: readonly CrossNamespaceGrant[];
  /** The target Namespace as cached (undefined: no such Namespace). */
  targetNamespace: KubeObject | undefined;
  /** Whether the Namespace cache is filled; a missing Namespace means something only then. */
  namespacesSynced: boolean;
}

/** Whether a trigger in `source` may have its Deployment in `target`, and if not, what to tell its owner. */
export function decidePlacement(p: PlacementInput): Placement {
  if (p.source === p.target) return { allowed: true, by: 'same-namespace' };
  const matches = (rule: string, ns: string) => rule === ANY_NAMESPACE || rule === ns;
  if (p.grants.some((g) => matches(g.from, p.source) && matches(g.to, p.target)))
    return { allowed: true, by: 'grant' };
  if (!p.namespacesSynced) return { allowed: undefined };
  const accepted = parseAcceptFrom(p.targetNamespace?.metadata?.annotations?.[ANNOTATION_ACCEPT_FROM]);
  if (accepted.some((a) => matches(a, p.source))) return { allowed: true, by: 'annotation' };
  return { allowed: false, message: refusal(p.source, p.target, p.targetNamespace !== undefined, accepted) };
}

function refusal(source: string, target: string, exists: boolean, accepted: string[]): string {
  const value = [...accepted, source].join(',');
  const why = exists
    ? `namespace "${target}" does not accept PulsarTriggers from namespace "${source}"`
    : `namespace "${target}" does not exist (and, once it does, must accept PulsarTriggers from namespace "${source}")`;
  return (
    `spec.deployment.metadata.namespace: ${why}, so no Deployment of this trigger is placed there (one placed ` +
    `before is deleted). To opt in, the target's owner runs: kubectl annotate namespace ${target} --overwrite ` +
    `${ANNOTATION_ACCEPT_FROM}=${value} ; or the controller's administrator adds ` +
    `--allow-cross-namespace=${source}=${target}`
  );
}
