import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { Informer, type Verb } from '../../../src/controller/informer.ts';
import { trimDeployment } from '../../../src/controller/kube.ts';
import { KubeApi } from '../../../src/controller/kubeapi.ts';
import {
  decodeDeployment,
  decodeStatus,
  decodeWatchEvent,
  forEachFrame,
  PROTOBUF,
} from '../../../src/controller/kubeproto.ts';
import type { KubeObject } from '../../../src/controller/reconcile.ts';

const http = createRequire(import.meta.url)('node:http') as typeof import('node:http');

// --- a minimal protobuf writer, to build frames by hand ---------------------------------------------------------

function varint(n: number | bigint): number[] {
  let v = BigInt.asUintN(64, BigInt(n));
  const out: number[] = [];
  while (v >= 0x80n) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  out.push(Number(v));
  return out;
}
type Field = number[];
const vint = (field: number, n: number | bigint): Field => [...varint(field << 3), ...varint(n)];
const bytesField = (field: number, b: Uint8Array | number[]): Field => [
  ...varint((field << 3) | 2),
  ...varint(b.length),
  ...b,
];
const str = (field: number, s: string): Field => bytesField(field, [...Buffer.from(s, 'utf8')]);
const msg = (field: number, ...fields: Field[]): Field => bytesField(field, fields.flat());
const fixed64 = (field: number): Field => [...varint((field << 3) | 1), 1, 2, 3, 4, 5, 6, 7, 8];
const fixed32 = (field: number): Field => [...varint((field << 3) | 5), 1, 2, 3, 4];
const entry = (field: number, k: string, v: string): Field => msg(field, str(1, k), str(2, v));

/** `k8s\0` + runtime.Unknown {1 typeMeta {1 apiVersion, 2 kind}, 2 raw}. */
const envelope = (apiVersion: string, kind: string, raw: Field): number[] => [
  0x6b,
  0x38,
  0x73,
  0,
  ...msg(1, str(1, apiVersion), str(2, kind)),
  ...bytesField(2, raw),
  ...str(4, PROTOBUF),
];
/** A watch frame's payload: WatchEvent {1 type, 2 RawExtension {1 raw}} (raw serializer: no envelope). */
const watchEvent = (type: string, object: number[]): number[] => [
  ...str(1, type),
  ...msg(2, bytesField(1, object)),
];
const frame = (payload: number[]): Buffer => {
  const b = Buffer.alloc(4 + payload.length);
  b.writeUInt32BE(payload.length, 0);
  Buffer.from(payload).copy(b, 4);
  return b;
};

/** A Deployment with every field the controller keeps, zero values Go's protobuf writes anyway, and noise. */
function deploymentProto(o: { rv: string; ready: number; deleting?: boolean; generation?: number }): Field {
  const meta = [
    str(1, 'fn-a'),
    str(2, ''), // generateName, empty
    str(3, 'ns1'),
    str(4, ''),
    str(5, 'uid-1'),
    str(6, o.rv),
    vint(7, o.generation ?? 3),
    msg(8, vint(1, 1764000000)), // creationTimestamp: not kept
    ...(o.deleting ? [msg(9, vint(1, 1764069087), vint(2, 123456789))] : []),
    vint(10, 30),
    // labels and annotations, sorted as the API server writes them
    entry(11, 'created-by', 'kubeless-pulsar-trigger'),
    entry(11, 'kubeless.io/trigger-uid', 'tuid'),
    entry(12, 'deployment.kubernetes.io/revision', '1'),
    entry(12, 'kubeless.io/spec-hash', 'abc'),
    entry(12, 'kubeless.io/trigger', 'ns1/t'),
    msg(
      13,
      str(5, 'kubeless.io/v1beta1'),
      str(1, 'PulsarTrigger'),
      str(3, 't'),
      str(4, 'owner-uid'),
      vint(6, 1),
      vint(7, 1),
    ),
    str(14, 'example.com/hold'),
    msg(17, str(1, 'kube-controller-manager'), str(2, 'Update')), // managedFields: skipped
    vint(99, 7), // unknown fields of every wire type
    fixed64(98),
    fixed32(97),
    str(96, 'future'),
  ];
  const spec = [
    vint(1, 2),
    msg(
      2,
      entry(1, 'created-by', 'kubeless-pulsar-trigger'),
      entry(1, 'function', 'fn-a'),
      msg(2, str(1, 'tier'), str(2, 'In'), str(3, 'a'), str(3, 'b')),
      msg(2, str(1, 'gone'), str(2, 'DoesNotExist')),
    ),
    msg(3, msg(1, entry(11, 'function', 'fn-a')), msg(2, msg(2, str(1, 'c'), str(2, 'img')))), // template: skipped
    vint(6, 10),
    vint(9, 600),
  ];
  const status = [
    vint(1, 3),
    vint(2, 2),
    vint(3, 2),
    vint(7, o.ready),
    vint(4, 1),
    msg(6, str(1, 'Available')),
  ];
  return [...msg(1, ...meta), ...msg(2, ...spec), ...msg(3, ...status)];
}

/** The same object as the API server's JSON says it (omitempty: zero scalars and empty strings left out). */
function deploymentJson(o: {
  rv: string;
  ready: number;
  deleting?: boolean;
  generation?: number;
}): KubeObject {
  return {
    metadata: {
      name: 'fn-a',
      namespace: 'ns1',
      uid: 'uid-1',
      resourceVersion: o.rv,
      ...(o.generation === 0 ? {} : { generation: o.generation ?? 3 }),
      creationTimestamp: '2025-11-24T16:00:00Z',
      ...(o.deleting ? { deletionTimestamp: '2025-11-25T11:11:27Z' } : {}),
      deletionGracePeriodSeconds: 30,
      labels: { 'created-by': 'kubeless-pulsar-trigger', 'kubeless.io/trigger-uid': 'tuid' },
      annotations: {
        'deployment.kubernetes.io/revision': '1',
        'kubeless.io/spec-hash': 'abc',
        'kubeless.io/trigger': 'ns1/t',
      },
      ownerReferences: [
        {
          apiVersion: 'kubeless.io/v1beta1',
          kind: 'PulsarTrigger',
          name: 't',
          uid: 'owner-uid',
          controller: true,
          blockOwnerDeletion: true,
        },
      ],
      finalizers: ['example.com/hold'],
      managedFields: [{ manager: 'kube-controller-manager' }],
    } as unknown as KubeObject['metadata'],
    spec: {
      replicas: 2,
      selector: {
        matchLabels: { 'created-by': 'kubeless-pulsar-trigger', function: 'fn-a' },
        matchExpressions: [
          { key: 'tier', operator: 'In', values: ['a', 'b'] },
          { key: 'gone', operator: 'DoesNotExist' },
        ],
      },
      template: { metadata: { labels: { function: 'fn-a' } } },
      revisionHistoryLimit: 10,
    },
    status: {
      observedGeneration: 3,
      replicas: 2,
      ...(o.ready ? { readyReplicas: o.ready } : {}),
      conditions: [{ type: 'Available' }],
    },
  };
}

const same = (a: KubeObject, b: KubeObject) =>
  assert.equal(JSON.stringify(trimDeployment(a)), JSON.stringify(trimDeployment(b)));

test('a Deployment decodes to what trimDeployment keeps of its JSON, key order included; unknown fields skipped', () => {
  for (const o of [
    { rv: '10', ready: 2 },
    { rv: '11', ready: 0 }, // readyReplicas 0: written in protobuf, absent from JSON
    { rv: '12', ready: 1, deleting: true }, // deletionTimestamp: whole seconds, UTC
    { rv: '13', ready: 1, generation: 0 },
  ]) {
    const buf = Buffer.from(deploymentProto(o));
    same(decodeDeployment(buf), deploymentJson(o));
  }
  const t = trimDeployment(decodeDeployment(Buffer.from(deploymentProto({ rv: '1', ready: 2 }))));
  assert.deepEqual(t.metadata?.annotations, {
    'kubeless.io/spec-hash': 'abc',
    'kubeless.io/trigger': 'ns1/t',
  });
  assert.deepEqual(t.metadata?.ownerReferences, [{ uid: 'owner-uid', kind: 'PulsarTrigger' }]);
  assert.deepEqual(t.status, { readyReplicas: 2 });
  // Map entries out of order are sorted as Go's JSON sorts them; an explicit replicas 0 stays (a pointer in Go).
  const unsorted = Buffer.from([
    ...msg(1, str(1, 'x'), entry(11, 'b', '2'), entry(11, 'a', '1')),
    ...msg(2, vint(1, 0), msg(2)),
  ]);
  assert.equal(
    JSON.stringify(trimDeployment(decodeDeployment(unsorted))),
    JSON.stringify({
      metadata: { name: 'x', labels: { a: '1', b: '2' } },
      spec: { replicas: 0, selector: {} },
    }),
  );
});

test('watch events: ADDED, BOOKMARK, and ERROR 410 as a Status; an enveloped frame is unwrapped too', () => {
  const dep = envelope('apps/v1', 'Deployment', deploymentProto({ rv: '10', ready: 2 }));
  const added = decodeWatchEvent(Buffer.from(watchEvent('ADDED', dep)), decodeDeployment);
  assert.equal(added.type, 'ADDED');
  same(added.object as KubeObject, deploymentJson({ rv: '10', ready: 2 }));

  const bookmark = envelope('apps/v1', 'Deployment', [
    ...msg(1, str(6, '77'), entry(12, 'k8s.io/initial-events-end', 'true')),
    ...msg(2, vint(1, 0)),
    ...msg(3),
  ]);
  const b = decodeWatchEvent(Buffer.from(watchEvent('BOOKMARK', bookmark)), decodeDeployment);
  assert.equal(b.type, 'BOOKMARK');
  assert.equal((b.object as KubeObject).metadata?.resourceVersion, '77');

  const gone = envelope('v1', 'Status', [
    ...msg(1),
    ...str(2, 'Failure'),
    ...str(3, 'too old resource version: 5 (120)'),
    ...str(4, 'Expired'),
    ...vint(6, 410),
  ]);
  const e = decodeWatchEvent(Buffer.from(watchEvent('ERROR', gone)), decodeDeployment);
  assert.deepEqual(e, {
    type: 'ERROR',
    object: {
      kind: 'Status',
      status: 'Failure',
      message: 'too old resource version: 5 (120)',
      reason: 'Expired',
      code: 410,
    },
  });
  // The event itself in an envelope (the non-raw serializer) reads the same.
  const wrapped = envelope('v1', 'WatchEvent', watchEvent('ADDED', dep));
  same(
    decodeWatchEvent(Buffer.from(wrapped), decodeDeployment).object as KubeObject,
    deploymentJson({ rv: '10', ready: 2 }),
  );
  // A truncated message is an error, not a silent partial object.
  const cut = Buffer.from(watchEvent('ADDED', dep)).subarray(0, 40);
  assert.throws(() => decodeWatchEvent(cut, decodeDeployment), { code: 'E_KUBE_API' });
  assert.deepEqual(decodeStatus(Buffer.from(vint(6, 2 ** 32 - 1))), { kind: 'Status', code: -1 });
});

test('forEachFrame: frames several per chunk and split at every byte boundary; a cut-off last frame is dropped', async () => {
  const payloads = [
    watchEvent('ADDED', envelope('apps/v1', 'Deployment', deploymentProto({ rv: '1', ready: 0 }))),
    [],
    [7],
    watchEvent('MODIFIED', envelope('apps/v1', 'Deployment', deploymentProto({ rv: '2', ready: 1 }))),
    [1, 2, 3],
  ];
  const whole = Buffer.concat([...payloads.map(frame), frame([9, 9, 9, 9, 9]).subarray(0, 6)]);
  const run = async (chunks: Buffer[]) => {
    const got: number[][] = [];
    await forEachFrame(
      (async function* () {
        yield* chunks;
      })(),
      (f) => got.push([...f]),
    );
    return got;
  };
  // One cut anywhere, two cuts anywhere (pairs on a stride), and fixed-size chunks.
  for (let i = 0; i <= whole.length; i++)
    assert.deepEqual(await run([whole.subarray(0, i), whole.subarray(i)]), payloads, `cut at ${i}`);
  for (let i = 0; i <= whole.length; i += 7)
    for (let j = i; j <= whole.length; j += 11)
      assert.deepEqual(
        await run([whole.subarray(0, i), whole.subarray(i, j), whole.subarray(j)]),
        payloads,
        `cuts at ${i}, ${j}`,
      );
  for (const size of [1, 2, 3, 4, 5, 7, 64]) {
    const chunks: Buffer[] = [];
    for (let i = 0; i < whole.length; i += size) chunks.push(whole.subarray(i, i + size));
    assert.deepEqual(await run(chunks), payloads, `chunks of ${size}`);
  }
});

/** A local HTTP server playing the API server's watch: protobuf frames, JSON lines, or a 410 reply. */
async function withServer(
  handler: (url: string, accept: string, res: import('node:http').ServerResponse) => void,
  fn: (api: KubeApi) => Promise<void>,
) {
  const server = http.createServer((req, res) => handler(req.url ?? '', String(req.headers.accept), res));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const api = new KubeApi({
    server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    token: () => undefined,
    namespace: 'default',
  });
  try {
    await fn(api);
  } finally {
    await api.close();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
}

test('KubeApi.watch: protobuf when asked and answered, JSON when the server answers JSON, 410 reply decoded', async () => {
  const dep = envelope('apps/v1', 'Deployment', deploymentProto({ rv: '10', ready: 2 }));
  const body = Buffer.concat([
    frame(watchEvent('ADDED', dep)),
    frame(watchEvent('BOOKMARK', envelope('apps/v1', 'Deployment', msg(1, str(6, '20'))))),
  ]);
  const accepts: string[] = [];
  await withServer(
    (url, accept, res) => {
      accepts.push(accept);
      if (url.includes('gone')) {
        const status = envelope('v1', 'Status', [...str(3, 'too old resource version'), ...vint(6, 410)]);
        res.writeHead(410, { 'content-type': PROTOBUF });
        res.end(Buffer.from(status));
      } else if (accept.startsWith(PROTOBUF) && !url.includes('json')) {
        res.writeHead(200, { 'content-type': `${PROTOBUF};stream=watch` });
        // Written in pieces that cut frames, as TCP may deliver them.
        res.write(body.subarray(0, 10));
        res.write(body.subarray(10, body.length - 3));
        res.end(body.subarray(body.length - 3));
      } else {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(`${JSON.stringify({ type: 'ADDED', object: deploymentJson({ rv: '10', ready: 2 }) })}\n`);
      }
    },
    async (api) => {
      const signal = new AbortController().signal;
      const pb: { type: string; object: unknown }[] = [];
      await api.watch('/pb', {}, (e) => pb.push(e), signal, decodeDeployment);
      assert.deepEqual(
        pb.map((e) => e.type),
        ['ADDED', 'BOOKMARK'],
      );
      same(pb[0]!.object as KubeObject, deploymentJson({ rv: '10', ready: 2 }));

      const fallback: { type: string; object: unknown }[] = [];
      await api.watch('/json', {}, (e) => fallback.push(e), signal, decodeDeployment);
      same(fallback[0]!.object as KubeObject, deploymentJson({ rv: '10', ready: 2 }));

      await api.watch('/plain', {}, () => {}, signal);
      await assert.rejects(
        api.watch('/gone', {}, () => {}, signal, decodeDeployment),
        (e: unknown) => {
          const err = e as { statusCode: number; message: string };
          assert.equal(err.statusCode, 410);
          assert.match(err.message, /too old resource version/);
          return true;
        },
      );
    },
  );
  assert.deepEqual(accepts.slice(0, 3), [
    `${PROTOBUF};stream=watch, application/json`,
    `${PROTOBUF};stream=watch, application/json`,
    'application/json',
  ]);
});

test('an Informer watching in protobuf: events applied, an ERROR 410 event relists', async () => {
  let lists = 0;
  let watches = 0;
  await withServer(
    (url, _accept, res) => {
      if (!url.includes('watch=true')) {
        lists++;
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ metadata: { resourceVersion: lists === 1 ? '5' : '50' }, items: [] }));
        return;
      }
      watches++;
      res.writeHead(200, { 'content-type': `${PROTOBUF};stream=watch` });
      if (watches === 1) {
        const gone = envelope('v1', 'Status', [...str(2, 'Failure'), ...vint(6, 410)]);
        res.end(
          Buffer.concat([
            frame(
              watchEvent('ADDED', envelope('apps/v1', 'Deployment', deploymentProto({ rv: '6', ready: 0 }))),
            ),
            frame(
              watchEvent(
                'MODIFIED',
                envelope('apps/v1', 'Deployment', deploymentProto({ rv: '7', ready: 1 })),
              ),
            ),
            frame(watchEvent('ERROR', gone)),
          ]),
        );
      } else
        res.write(frame(watchEvent('BOOKMARK', envelope('apps/v1', 'Deployment', msg(1, str(6, '60'))))));
    },
    async (api) => {
      const events: string[] = [];
      const inf = new Informer(api, {
        path: '/apis/apps/v1/namespaces/ns1/deployments',
        trim: trimDeployment,
        protobuf: decodeDeployment,
        onChange: (o: KubeObject, verb: Verb) =>
          events.push(`${verb} ${o.metadata?.name} ${o.status?.readyReplicas}`),
        onError: () => {},
      });
      inf.start();
      for (let i = 0; i < 400 && watches < 2; i++) await new Promise((r) => setTimeout(r, 5));
      await new Promise((r) => setTimeout(r, 50));
      await inf.stop();
      assert.equal(lists, 2, '410 relisted');
      // The relist (empty) reports the Deployment the watch had added as deleted.
      assert.deepEqual(events, ['add fn-a undefined', 'update fn-a 1', 'delete fn-a 1']);
    },
  );
});
