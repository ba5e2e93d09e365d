import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Informer, type Verb } from '../../../src/controller/informer.ts';
import { trimDeployment, trimNamespace } from '../../../src/controller/kube.ts';
import { type KubeApi, KubeApiError, type Query } from '../../../src/controller/kubeapi.ts';
import { ANNOTATION_ACCEPT_FROM } from '../../../src/controller/placement.ts';
import type { KubeObject } from '../../../src/controller/reconcile.ts';

const dep = (name: string, rv: string, extra: Record<string, unknown> = {}): KubeObject =>
  ({
    metadata: {
      name,
      namespace: 'ns',
      resourceVersion: rv,
      labels: { 'kubeless.io/trigger-uid': `uid-${name}` },
      managedFields: [{ manager: 'x' }],
    },
    spec: { replicas: 1, template: { spec: { containers: [] } } },
    ...extra,
  }) as KubeObject;

type WatchScript = (emit: (type: string, object: unknown) => void, query: Query) => Promise<void>;

/** A scripted API: list pages in turn, then one watch script per watch call. */
function fakeApi(lists: { items: KubeObject[]; rv: string; cont?: string }[][], watches: WatchScript[]) {
  const calls: string[] = [];
  let listRound = 0;
  let page = 0;
  const api = {
    request: async (_method: string, _path: string, options: { query?: Query } = {}) => {
      const round = lists[Math.min(listRound, lists.length - 1)]!;
      const p = round[page]!;
      calls.push(`list continue=${options.query?.continue ?? ''}`);
      if (p.cont) page++;
      else {
        page = 0;
        listRound++;
      }
      return { metadata: { resourceVersion: p.rv, continue: p.cont }, items: structuredClone(p.items) };
    },
    watch: async (
      _path: string,
      query: Query,
      onEvent: (e: { type: string; object: unknown }) => void,
      signal: AbortSignal,
    ) => {
      calls.push(`watch rv=${query.resourceVersion} bookmarks=${query.allowWatchBookmarks}`);
      const script = watches.shift();
      // No script left: idle, as a quiet watch is, until stopped.
      if (!script)
        return new Promise<void>((_, reject) =>
          signal.addEventListener('abort', () => reject(new Error('aborted')), { once: true }),
        );
      await script((type, object) => onEvent({ type, object }), query);
    },
  };
  return { api: api as unknown as KubeApi, calls };
}

async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !check(); i++) await new Promise((r) => setTimeout(r, 5));
  assert.ok(check(), 'condition not reached');
}

test('lists in pages, resumes each watch from the last resourceVersion (bookmarks too), relists on 410', async () => {
  const events: string[] = [];
  const { api, calls } = fakeApi(
    [
      [
        { items: [dep('a', '5')], rv: '10', cont: 'next' },
        { items: [dep('b', '6')], rv: '10' },
      ],
      [{ items: [dep('a', '40'), dep('c', '41')], rv: '50' }],
    ],
    [
      async (emit) => {
        emit('ADDED', dep('d', '11'));
        // Only a status counter the cache does not keep: stored, not reported.
        emit('MODIFIED', dep('d', '12', { status: { observedGeneration: 2 } }));
        emit('MODIFIED', dep('d', '13', { status: { readyReplicas: 1 } }));
        emit('BOOKMARK', { metadata: { resourceVersion: '20' } });
      }, // ends: the server's timeout
      async () => {
        throw Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
      },
      async (emit) => {
        emit('ERROR', { kind: 'Status', code: 410, message: 'too old resource version' });
      },
    ],
  );
  const inf = new Informer(api, {
    path: '/apis/apps/v1/namespaces/ns/deployments',
    trim: trimDeployment,
    onChange: (o: KubeObject, verb: Verb) => events.push(`${verb} ${o.metadata?.name}`),
    onError: () => {},
  });
  inf.start();
  await until(() => calls.filter((c) => c.startsWith('watch')).length >= 4);
  await inf.stop();

  assert.deepEqual(calls, [
    'list continue=',
    'list continue=next',
    'watch rv=10 bookmarks=true',
    'watch rv=20 bookmarks=true', // resumed after a clean end, from the bookmark
    'watch rv=20 bookmarks=true', // resumed after a connection error, no relist
    'list continue=', // 410 Gone
    'watch rv=50 bookmarks=true',
  ]);
  assert.deepEqual(events, [
    'add a',
    'add b',
    'add d',
    'update d',
    // the relist reports what changed meanwhile: a's resourceVersion only (not reported), b and d gone, c new
    'add c',
    'delete b',
    'delete d',
  ]);
  assert.equal(inf.synced(), true);
  assert.equal(inf.get('a', 'ns')?.metadata?.resourceVersion, '40');
  assert.equal(
    (inf.get('a', 'ns')!.metadata as Record<string, unknown>).managedFields,
    undefined,
    'trimmed in the cache',
  );
  assert.deepEqual(
    inf.byTriggerUid('uid-c').map((o) => o.metadata?.name),
    ['c'],
  );
  assert.deepEqual(inf.byTriggerUid('uid-b'), []);
});

test('a watch refused with 410 relists; other API errors are reported and retried', async () => {
  const errors: string[] = [];
  const { api, calls } = fakeApi(
    [[{ items: [], rv: '1' }]],
    [
      async () => {
        throw new KubeApiError('GET', '/x', 500, { message: 'etcd unavailable' });
      },
      async () => {
        throw new KubeApiError('GET', '/x', 410, { message: 'gone', code: 410 });
      },
    ],
  );
  const inf = new Informer(api, {
    path: '/x',
    trim: (o) => o,
    onChange: () => {},
    onError: (what, e) => errors.push(`${what}: ${(e as Error).message}`),
  });
  inf.start();
  await until(() => calls.length >= 5);
  await inf.stop();
  assert.deepEqual(calls, [
    'list continue=',
    'watch rv=1 bookmarks=true',
    'watch rv=1 bookmarks=true',
    'list continue=',
    'watch rv=1 bookmarks=true',
  ]);
  assert.deepEqual(errors, ['watch /x: GET /x: 500 etcd unavailable']);
});

test('a Namespace informer: the field selector goes to list and watch; only the accept annotation is reported', async () => {
  const queries: Query[] = [];
  const ns = (rv: string, annotations: Record<string, string>, labels: Record<string, string> = {}) =>
    ({ metadata: { name: 'b', resourceVersion: rv, annotations, labels } }) as KubeObject;
  const changes: string[] = [];
  let step = 0;
  const api = {
    request: async (_m: string, _p: string, options: { query?: Query } = {}) => {
      queries.push(options.query ?? {});
      return { metadata: { resourceVersion: '1' }, items: [ns('1', { other: 'x' })] };
    },
    watch: async (
      _p: string,
      query: Query,
      onEvent: (e: { type: string; object: unknown }) => void,
      signal: AbortSignal,
    ) => {
      queries.push(query);
      if (step++ === 0) {
        onEvent({ type: 'MODIFIED', object: ns('2', { other: 'y' }, { team: 'z' }) }); // nothing of ours changed
        onEvent({ type: 'MODIFIED', object: ns('3', { other: 'y', [ANNOTATION_ACCEPT_FROM]: 'a' }) });
        onEvent({ type: 'MODIFIED', object: ns('4', { other: 'y' }) });
      }
      return new Promise<void>((_, reject) =>
        signal.addEventListener('abort', () => reject(new Error('aborted')), { once: true }),
      );
    },
  } as unknown as KubeApi;
  const inf = new Informer(api, {
    path: '/api/v1/namespaces',
    fieldSelector: 'metadata.name=b',
    trim: trimNamespace,
    onChange: (o, verb) =>
      changes.push(`${verb} ${o.metadata?.annotations?.[ANNOTATION_ACCEPT_FROM] ?? '-'}`),
    onError: () => {},
  });
  inf.start();
  await until(() => changes.length >= 3);
  await inf.stop();
  assert.deepEqual(
    queries.map((q) => q.fieldSelector),
    ['metadata.name=b', 'metadata.name=b'],
  );
  assert.deepEqual(changes, ['add -', 'update a', 'update -']);
  assert.deepEqual(inf.get('b'), { metadata: { name: 'b', resourceVersion: '4' } });
});
