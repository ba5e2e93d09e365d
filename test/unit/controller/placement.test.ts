import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  ANNOTATION_ACCEPT_FROM,
  type CrossNamespaceGrant,
  decidePlacement,
  parseAcceptFrom,
  parseGrants,
  requestedNamespace,
} from '../../../src/controller/placement.ts';
import type { KubeObject } from '../../../src/controller/reconcile.ts';

const ns = (name: string, accept?: string): KubeObject => ({
  metadata: { name, ...(accept === undefined ? {} : { annotations: { [ANNOTATION_ACCEPT_FROM]: accept } }) },
});

function decide(
  source: string,
  target: string,
  targetNamespace?: KubeObject,
  grants: CrossNamespaceGrant[] = [],
) {
  return decidePlacement({ source, target, grants, targetNamespace, namespacesSynced: true });
}

test('the own namespace is always allowed, whatever else', () => {
  assert.deepEqual(decide('a', 'a'), { allowed: true, by: 'same-namespace' });
  assert.deepEqual(
    decidePlacement({
      source: 'a',
      target: 'a',
      grants: [],
      targetNamespace: undefined,
      namespacesSynced: false,
    }),
    { allowed: true, by: 'same-namespace' },
  );
});

test('the annotation: a list of sources, * for any; other sources are refused', () => {
  assert.deepEqual(decide('team-a', 'b', ns('b', 'team-a,team-b')), { allowed: true, by: 'annotation' });
  assert.deepEqual(decide('team-b', 'b', ns('b', ' team-a , team-b ')), { allowed: true, by: 'annotation' });
  assert.deepEqual(decide('anyone', 'b', ns('b', '*')), { allowed: true, by: 'annotation' });
  assert.equal(decide('team-c', 'b', ns('b', 'team-a,team-b')).allowed, false);
  assert.equal(decide('team-a', 'b', ns('b')).allowed, false);
  assert.equal(decide('team-a', 'b', ns('b', '')).allowed, false);
  // Not a prefix, a pattern or a label selector: names only.
  assert.equal(decide('team-a', 'b', ns('b', 'team-*')).allowed, false);
  assert.equal(decide('team-a', 'b', ns('b', 'team')).allowed, false);
});

test("the administrator's grants: exact or * on either side", () => {
  const grants = [
    { from: 'ci', to: 'shared' },
    { from: '*', to: 'public-dispatchers' },
    { from: 'platform', to: '*' },
  ];
  assert.deepEqual(decide('ci', 'shared', undefined, grants), { allowed: true, by: 'grant' });
  assert.deepEqual(decide('x', 'public-dispatchers', undefined, grants), { allowed: true, by: 'grant' });
  assert.deepEqual(decide('platform', 'anywhere', undefined, grants), { allowed: true, by: 'grant' });
  assert.equal(decide('ci', 'other', ns('other'), grants).allowed, false);
  assert.equal(decide('shared', 'ci', ns('ci'), grants).allowed, false, 'a grant has a direction');
});

test('unknown until the Namespaces are cached, unless a grant decides without them', () => {
  const unsynced = { source: 'a', target: 'b', targetNamespace: undefined, namespacesSynced: false };
  assert.deepEqual(decidePlacement({ ...unsynced, grants: [] }), { allowed: undefined });
  assert.deepEqual(decidePlacement({ ...unsynced, grants: [{ from: 'a', to: 'b' }] }), {
    allowed: true,
    by: 'grant',
  });
});

test('the refusal names source and target and the exact commands that opt in', () => {
  const refused = decide('team-c', 'b', ns('b', 'team-a,team-b'));
  assert.equal(refused.allowed, false);
  if (refused.allowed !== false) return;
  assert.match(
    refused.message,
    /^spec\.deployment\.metadata\.namespace: namespace "b" does not accept PulsarTriggers from namespace "team-c"/,
  );
  // The annotation keeps the namespaces already accepted.
  assert.ok(
    refused.message.includes(
      'kubectl annotate namespace b --overwrite kubeless.io/accept-triggers-from=team-a,team-b,team-c ',
    ),
    refused.message,
  );
  assert.ok(refused.message.includes('--allow-cross-namespace=team-c=b'), refused.message);
  const missing = decide('a', 'nowhere', undefined);
  assert.equal(missing.allowed, false);
  if (missing.allowed !== false) return;
  assert.match(missing.message, /namespace "nowhere" does not exist/);
});

test('annotation values: names and * kept, anything else left out', () => {
  assert.deepEqual(parseAcceptFrom(undefined), []);
  assert.deepEqual(parseAcceptFrom('a, b,,*, Not_A_Namespace, c'), ['a', 'b', '*', 'c']);
});

test('grants: SOURCE=TARGET pairs; anything else is named', () => {
  assert.deepEqual(parseGrants(''), { ok: true, value: [] });
  assert.deepEqual(parseGrants('a=b, *=c ,d=*'), {
    ok: true,
    value: [
      { from: 'a', to: 'b' },
      { from: '*', to: 'c' },
      { from: 'd', to: '*' },
    ],
  });
  assert.deepEqual(parseGrants('a=b,c,d=e=f,G=h'), { ok: false, bad: ['c', 'd=e=f', 'G=h'] });
});

test('the namespace a trigger asks for, read as the renderer reads it', () => {
  const t = (deployment?: unknown): KubeObject => ({
    metadata: { name: 't', namespace: 'src' },
    spec: deployment === undefined ? {} : { deployment },
  });
  assert.equal(requestedNamespace(t()), 'src');
  assert.equal(requestedNamespace(t({ metadata: { namespace: 'dst' } })), 'dst');
  assert.equal(requestedNamespace(t({ metadata: { namespace: '' } })), 'src');
  assert.equal(requestedNamespace(t({ metadata: { namespace: 7 } })), 'src');
});
