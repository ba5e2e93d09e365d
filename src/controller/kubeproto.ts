// A protobuf reader for the one thing the controller reads in protobuf: its watch on Deployments.
//
// Why (bench/controller.ts --private-kube --diagnose, 1000 triggers → 1000 Deployments on 2 cores): kube-apiserver is
// the main CPU consumer, and it encodes every watch event once per encoding and caches it. kube-controller-manager
// watches Deployments in protobuf, so a protobuf watcher costs the API server about nothing, while our JSON watch made
// it JSON-encode every Deployment event (≈2000 events, 14.5 MB in the window) for us alone: +5–8 % wall time on a
// goal figure (controller rate ≥ 0.8 of direct creation) that sits at 0.65–0.83.
//
// Only the fields trimDeployment keeps are decoded; every other field is skipped by its wire type. The decoders build
// the object the API server's JSON would parse into (the same omitempty rules: Go's protobuf always writes non-pointer
// scalars, JSON leaves their zero values out), so trimDeployment gives the same result for both and a relist (JSON)
// and a watch (protobuf) fingerprint the same object identically.
//
// Wire format (k8s.io/apimachinery v0.35.4 runtime/serializer/protobuf, meta/v1 and apps/v1 generated.proto):
//  - the watch body (Content-Type application/vnd.kubernetes.protobuf;stream=watch) is a sequence of frames, each a
//    4-byte big-endian length and that many bytes;
//  - a frame is a meta.v1.WatchEvent {1 type, 2 object RawExtension {1 raw}} written by the "raw" serializer (no
//    envelope); an envelope `k8s\0` + runtime.Unknown is unwrapped too if present;
//  - the event's raw object is `k8s\0` + runtime.Unknown {1 typeMeta {1 apiVersion, 2 kind}, 2 raw, 3
//    contentEncoding, 4 contentType}, whose raw is the object itself.

import { ControllerError } from './errors.ts';
import type { KubeStatus } from './kubeapi.ts';
import type { KubeObject, Meta } from './reconcile.ts';

export const PROTOBUF = 'application/vnd.kubernetes.protobuf';

function protoError(message: string, context: Record<string, unknown> = {}): ControllerError {
  return new ControllerError('E_KUBE_API', message, context);
}

const VARINT = 0;
const I64 = 1;
const LEN = 2;
const I32 = 5;

/** A cursor over one protobuf message: buf[pos, end). */
export class ProtoReader {
  readonly buf: Buffer;
  pos: number;
  readonly end: number;

  constructor(buf: Buffer, pos = 0, end = buf.length) {
    this.buf = buf;
    this.pos = pos;
    this.end = end;
  }

  more(): boolean {
    return this.pos < this.end;
  }

  /** An unsigned varint as a number (exact up to 2^53; field numbers, lengths, counters). */
  varint(): number {
    let result = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw protoError('protobuf: varint runs past the end of its message');
      const b = this.buf[this.pos++]!;
      result += (b & 0x7f) * mul;
      if (b < 0x80) return result;
      mul *= 128;
    }
    throw protoError('protobuf: varint longer than 10 bytes');
  }

  /** An int32 field (negative values are written as 10-byte sign-extended varints). */
  int32(): number {
    const v = this.varint();
    return v >= 2 ** 31 ? Number(BigInt.asIntN(32, BigInt(v) & 0xffffffffn)) : v;
  }

  /** The [start, end) of a length-delimited field's bytes; the cursor moves past them. */
  len(): [number, number] {
    const n = this.varint();
    const start = this.pos;
    if (n > this.end - start) throw protoError('protobuf: length-delimited field runs past its message');
    this.pos = start + n;
    return [start, this.pos];
  }

  string(): string {
    const [s, e] = this.len();
    return this.buf.toString('utf8', s, e);
  }

  /** A nested message as a reader of its own. */
  sub(): ProtoReader {
    const [s, e] = this.len();
    return new ProtoReader(this.buf, s, e);
  }

  skip(wireType: number): void {
    switch (wireType) {
      case VARINT:
        this.varint();
        return;
      case I64:
        this.pos += 8;
        break;
      case LEN:
        this.len();
        return;
      case I32:
        this.pos += 4;
        break;
      default:
        throw protoError(`protobuf: unsupported wire type ${wireType}`, { wireType });
    }
    if (this.pos > this.end) throw protoError('protobuf: fixed-size field runs past its message');
  }
}

function append<T>(list: T[] | undefined, item: T): T[] {
  if (!list) return [item];
  list.push(item);
  return list;
}

/** An array the cache keeps, at its exact size (push grows an array's backing store by half plus 16 slots). */
const exact = <T>(list: T[]): T[] => (list.length > 1 ? list.slice() : list);

// Memory (node --expose-gc, 2000 synthetic Deployments kept as trimDeployment keeps them): decoded naively, the cache
// held 1704 bytes per Deployment against 990 for JSON.parse's objects (which share repeated strings; V8 internalizes
// what it parses). Sharing repeated strings (namespace, map keys and values, which the selector repeats within one
// Deployment too) through a small table took it to 1412, exact-size arrays (`exact`) to 1134, maps built with
// Object.fromEntries to 1067. The table is bounded, emptied when full: unique values (trigger names and uids in
// labels) pass through it too.
const INTERN_MAX = 4096;
let interned = new Map<string, string>();

function intern(s: string): string {
  const known = interned.get(s);
  if (known !== undefined) return known;
  if (interned.size >= INTERN_MAX) interned = new Map();
  interned.set(s, s);
  return s;
}

/** A map<string, string> entry {1 key, 2 value}. */
function mapEntry(r: ProtoReader): [string, string] {
  let k = '';
  let v = '';
  while (r.more()) {
    const tag = r.varint();
    if (tag === 0x0a) k = intern(r.string());
    else if (tag === 0x12) v = intern(r.string());
    else r.skip(tag & 7);
  }
  return [k, v];
}

/** Map entries as the object JSON.parse makes of Go's JSON (keys sorted: the API server writes them sorted). */
function toMap(entries: [string, string][]): Record<string, string> {
  let sorted = true;
  for (let i = 1; i < entries.length; i++) if (entries[i - 1]![0] > entries[i]![0]) sorted = false;
  if (!sorted) entries.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return Object.fromEntries(entries);
}

/** metav1.Time {1 seconds, 2 nanos} as its JSON form (RFC 3339, UTC, whole seconds). */
function time(r: ProtoReader): string {
  let seconds = 0;
  while (r.more()) {
    const tag = r.varint();
    if (tag === 0x08) seconds = r.varint();
    else r.skip(tag & 7);
  }
  return new Date(seconds * 1000).toISOString().replace(/\.\d+Z$/, 'Z');
}

interface OwnerRef {
  apiVersion?: string;
  kind?: string;
  name?: string;
  uid?: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

/** OwnerReference {5 apiVersion, 1 kind, 3 name, 4 uid, 6 controller, 7 blockOwnerDeletion}. */
function ownerReference(r: ProtoReader): OwnerRef {
  let apiVersion = '';
  let kind = '';
  let name = '';
  let uid = '';
  let controller: boolean | undefined;
  let blockOwnerDeletion: boolean | undefined;
  while (r.more()) {
    const tag = r.varint();
    if (tag === 0x0a) kind = intern(r.string());
    else if (tag === 0x1a) name = r.string();
    else if (tag === 0x22) uid = r.string();
    else if (tag === 0x2a) apiVersion = r.string();
    else if (tag === 0x30) controller = r.varint() !== 0;
    else if (tag === 0x38) blockOwnerDeletion = r.varint() !== 0;
    else r.skip(tag & 7);
  }
  // JSON: apiVersion, kind, name and uid are always written; the two booleans are pointers (omitempty).
  const out: OwnerRef = { apiVersion, kind, name, uid };
  if (controller !== undefined) out.controller = controller;
  if (blockOwnerDeletion !== undefined) out.blockOwnerDeletion = blockOwnerDeletion;
  return out;
}

/** ObjectMeta: the fields trimMeta reads, with JSON's omitempty (empty strings, 0, empty maps and lists left out). */
export function decodeObjectMeta(r: ProtoReader): Meta {
  let name = '';
  let namespace = '';
  let uid = '';
  let resourceVersion = '';
  let generation = 0;
  let deletionTimestamp: string | undefined;
  let labels: [string, string][] | undefined;
  let annotations: [string, string][] | undefined;
  let owners: OwnerRef[] | undefined;
  let finalizers: string[] | undefined;
  while (r.more()) {
    const tag = r.varint();
    switch (tag) {
      case 0x0a: // 1 name
        name = r.string();
        break;
      case 0x1a: // 3 namespace
        namespace = intern(r.string());
        break;
      case 0x2a: // 5 uid
        uid = r.string();
        break;
      case 0x32: // 6 resourceVersion
        resourceVersion = r.string();
        break;
      case 0x38: // 7 generation
        generation = r.varint();
        break;
      case 0x4a: // 9 deletionTimestamp
        deletionTimestamp = time(r.sub());
        break;
      case 0x5a: // 11 labels
        labels = append(labels, mapEntry(r.sub()));
        break;
      case 0x62: // 12 annotations
        annotations = append(annotations, mapEntry(r.sub()));
        break;
      case 0x6a: // 13 ownerReferences
        owners = append(owners, ownerReference(r.sub()));
        break;
      case 0x72: // 14 finalizers
        finalizers = append(finalizers, intern(r.string()));
        break;
      default:
        r.skip(tag & 7);
    }
  }
  const m: Meta = {};
  if (name !== '') m.name = name;
  if (namespace !== '') m.namespace = namespace;
  if (uid !== '') m.uid = uid;
  if (resourceVersion !== '') m.resourceVersion = resourceVersion;
  if (generation !== 0) m.generation = generation;
  if (deletionTimestamp !== undefined) m.deletionTimestamp = deletionTimestamp;
  if (labels) m.labels = toMap(labels);
  if (annotations) m.annotations = toMap(annotations);
  if (owners) m.ownerReferences = owners;
  if (finalizers) m.finalizers = exact(finalizers);
  return m;
}

interface Requirement {
  key: string;
  operator: string;
  values?: string[];
}

/** LabelSelectorRequirement {1 key, 2 operator, 3 values}: key and operator are always in the JSON. */
function requirement(r: ProtoReader): Requirement {
  let key = '';
  let operator = '';
  let values: string[] | undefined;
  while (r.more()) {
    const tag = r.varint();
    if (tag === 0x0a) key = intern(r.string());
    else if (tag === 0x12) operator = intern(r.string());
    else if (tag === 0x1a) values = append(values, intern(r.string()));
    else r.skip(tag & 7);
  }
  const out: Requirement = { key, operator };
  if (values) out.values = exact(values);
  return out;
}

/** LabelSelector {1 matchLabels, 2 matchExpressions}. */
function labelSelector(r: ProtoReader): Record<string, unknown> {
  let labels: [string, string][] | undefined;
  let exprs: Requirement[] | undefined;
  while (r.more()) {
    const tag = r.varint();
    if (tag === 0x0a) labels = append(labels, mapEntry(r.sub()));
    else if (tag === 0x12) exprs = append(exprs, requirement(r.sub()));
    else r.skip(tag & 7);
  }
  const out: Record<string, unknown> = {};
  if (labels) out.matchLabels = toMap(labels);
  if (exprs) out.matchExpressions = exact(exprs);
  return out;
}

/**
 * An apps/v1 Deployment {1 metadata, 2 spec {1 replicas, 2 selector}, 3 status {7 readyReplicas}}, as much of it as
 * trimDeployment reads, shaped like its JSON. The pod template, strategy, conditions and managedFields are skipped.
 */
export function decodeDeployment(buf: Buffer, start = 0, end = buf.length): KubeObject {
  const r = new ProtoReader(buf, start, end);
  const out: KubeObject = {};
  while (r.more()) {
    const tag = r.varint();
    if (tag === 0x0a) out.metadata = decodeObjectMeta(r.sub());
    else if (tag === 0x12) {
      const s = r.sub();
      const spec: Record<string, unknown> = {};
      while (s.more()) {
        const t = s.varint();
        if (t === 0x08)
          spec.replicas = s.int32(); // *int32: written only when set, 0 included (as in JSON)
        else if (t === 0x12) spec.selector = labelSelector(s.sub());
        else s.skip(t & 7);
      }
      out.spec = spec;
    } else if (tag === 0x1a) {
      const s = r.sub();
      const status: Record<string, unknown> = {};
      while (s.more()) {
        const t = s.varint();
        if (t === 0x38) {
          const ready = s.int32();
          if (ready !== 0) status.readyReplicas = ready; // int32 omitempty in JSON
        } else s.skip(t & 7);
      }
      out.status = status;
    } else r.skip(tag & 7);
  }
  return out;
}

/** meta/v1 Status {2 status, 3 message, 4 reason, 6 code}, as a watch ERROR event or an error reply carries it. */
export function decodeStatus(buf: Buffer, start = 0, end = buf.length): KubeStatus {
  const r = new ProtoReader(buf, start, end);
  const out: KubeStatus = { kind: 'Status' };
  while (r.more()) {
    const tag = r.varint();
    if (tag === 0x12) out.status = r.string();
    else if (tag === 0x1a) out.message = r.string();
    else if (tag === 0x22) out.reason = r.string();
    else if (tag === 0x30) out.code = r.int32();
    else r.skip(tag & 7);
  }
  return out;
}

/** runtime.Unknown's type and the [start, end) of its raw bytes. */
export interface Envelope {
  apiVersion: string;
  kind: string;
  start: number;
  end: number;
}

const MAGIC = [0x6b, 0x38, 0x73, 0x00]; // "k8s\0"

export function hasMagic(buf: Buffer, start = 0, end = buf.length): boolean {
  return (
    end - start >= 4 &&
    buf[start] === MAGIC[0] &&
    buf[start + 1] === MAGIC[1] &&
    buf[start + 2] === MAGIC[2] &&
    buf[start + 3] === MAGIC[3]
  );
}

/** `k8s\0` + runtime.Unknown {1 typeMeta {1 apiVersion, 2 kind}, 2 raw, 3 contentEncoding, 4 contentType}. */
export function decodeEnvelope(buf: Buffer, start = 0, end = buf.length): Envelope {
  if (!hasMagic(buf, start, end)) throw protoError('protobuf: object does not start with k8s\\0');
  const r = new ProtoReader(buf, start + 4, end);
  const out: Envelope = { apiVersion: '', kind: '', start: r.pos, end: r.pos };
  let encoding = '';
  while (r.more()) {
    const tag = r.varint();
    if (tag === 0x0a) {
      const t = r.sub();
      while (t.more()) {
        const tt = t.varint();
        if (tt === 0x0a) out.apiVersion = t.string();
        else if (tt === 0x12) out.kind = t.string();
        else t.skip(tt & 7);
      }
    } else if (tag === 0x12) [out.start, out.end] = r.len();
    else if (tag === 0x1a) encoding = r.string();
    else r.skip(tag & 7);
  }
  if (encoding !== '') throw protoError(`protobuf: unsupported contentEncoding ${encoding}`, { encoding });
  return out;
}

/** A decoded watch event, the same shape as a JSON watch line parses into. */
export interface WatchEvent {
  type: string;
  object: unknown;
}

/**
 * One frame of a protobuf watch: meta.v1.WatchEvent {1 type, 2 object {1 raw}}, raw being the enveloped object.
 * ERROR events hold a Status; every other event's object goes to decodeObject (BOOKMARKs are the watched kind with
 * little more than a resourceVersion).
 */
export function decodeWatchEvent(
  buf: Buffer,
  decodeObject: (buf: Buffer, start: number, end: number) => unknown,
  start = 0,
  end = buf.length,
): WatchEvent {
  if (hasMagic(buf, start, end)) ({ start, end } = decodeEnvelope(buf, start, end));
  const r = new ProtoReader(buf, start, end);
  let type = '';
  let raw: [number, number] | undefined;
  while (r.more()) {
    const tag = r.varint();
    if (tag === 0x0a) type = r.string();
    else if (tag === 0x12) {
      const o = r.sub();
      while (o.more()) {
        const t = o.varint();
        if (t === 0x0a) raw = o.len();
        else o.skip(t & 7);
      }
    } else r.skip(tag & 7);
  }
  if (!raw) return { type, object: {} };
  const env = decodeEnvelope(buf, raw[0], raw[1]);
  const object =
    type === 'ERROR' || env.kind === 'Status'
      ? decodeStatus(buf, env.start, env.end)
      : decodeObject(buf, env.start, env.end);
  return { type, object };
}

/**
 * Calls onFrame with each length-prefixed frame (4-byte big-endian length) of a byte stream, whatever the chunk
 * boundaries. A frame inside one chunk is passed as a view of it (no copy); a frame split across chunks is joined
 * once. An unfinished last frame (a reply cut short) is dropped, as the JSON reader drops an unfinished line.
 */
export async function forEachFrame(
  source: AsyncIterable<Buffer>,
  onFrame: (frame: Buffer) => void,
): Promise<void> {
  let pending: Buffer[] = []; // the start of a frame (header included) that began in an earlier chunk
  let pendingLength = 0;
  let need = -1; // that frame's length, once its 4-byte header is whole
  for await (const chunk of source) {
    let pos = 0;
    while (pos < chunk.length) {
      if (pendingLength === 0) {
        if (chunk.length - pos >= 4) {
          const n = chunk.readUInt32BE(pos);
          if (chunk.length - pos - 4 >= n) {
            onFrame(chunk.subarray(pos + 4, pos + 4 + n));
            pos += 4 + n;
            continue;
          }
          need = n;
        }
        // The rest of the chunk is less than one frame: keep it.
        pending.push(chunk.subarray(pos));
        pendingLength = chunk.length - pos;
        break;
      }
      if (need === -1) {
        const take = Math.min(4 - pendingLength, chunk.length - pos);
        pending.push(chunk.subarray(pos, pos + take));
        pendingLength += take;
        pos += take;
        if (pendingLength < 4) continue;
        const head = Buffer.concat(pending, pendingLength);
        pending = [head];
        need = head.readUInt32BE(0);
      }
      const take = Math.min(4 + need - pendingLength, chunk.length - pos);
      pending.push(chunk.subarray(pos, pos + take));
      pendingLength += take;
      pos += take;
      if (pendingLength === 4 + need) {
        const frame = Buffer.concat(pending, pendingLength).subarray(4);
        pending = [];
        pendingLength = 0;
        need = -1;
        onFrame(frame);
      }
    }
  }
}
