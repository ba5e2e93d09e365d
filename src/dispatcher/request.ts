// What the function receives for a message: the payload bytes unchanged and the headers. Pure, built once per
// message (retries send the same request, with the same event id).

import type { ContentType, EventFormat } from '../trigger/settings.ts';

/** A message as the dispatcher sees it: the subset of the Pulsar client's Message it needs (see ports.ts). */
export interface SourceMessage {
  /** The message id's stable string form (ledger:entry:partition:batchIndex). */
  id: string;
  payload: Uint8Array;
  key: string | undefined;
  properties: Readonly<Record<string, string>>;
  eventTime: number | undefined;
  publishTime: number;
  redeliveryCount: number;
  topic: string;
}

export interface RequestContext {
  triggerName: string;
  triggerNamespace: string;
  /** IANA zone for event-time, as the seed's TZ. */
  timezone: string;
  contentType: ContentType;
  eventFormat: EventFormat;
}

/** The CloudEvents type of every event we send. */
export const CLOUDEVENTS_TYPE = 'io.kubeless.pulsar.message';

const JSON_START = new Set([
  0x7b, 0x5b, 0x22, 0x2d, 0x74, 0x66, 0x6e, 0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39,
]);
const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

/**
 * The seed's rule: a payload that parses as JSON (any JSON value, as Python's json.loads) is application/json.
 * The first byte is checked before decoding, so binary payloads cost nothing.
 */
export function looksLikeJson(payload: Uint8Array): boolean {
  let i = 0;
  while (
    i < payload.length &&
    (payload[i] === 0x20 || payload[i] === 0x0a || payload[i] === 0x0d || payload[i] === 0x09)
  )
    i++;
  const first = payload[i];
  if (first === undefined || !JSON_START.has(first)) return false;
  try {
    JSON.parse(decoder.decode(payload));
    return true;
  } catch {
    return false;
  }
}

/** The producer's content-type property wins; then a fixed type from the settings; then the seed's JSON rule. */
export function contentTypeFor(msg: SourceMessage, setting: ContentType): string {
  const own = msg.properties['content-type'] ?? msg.properties['Content-Type'];
  if (own !== undefined && own.trim() !== '') return own.trim();
  if (setting.kind === 'fixed') return setting.value;
  return looksLikeJson(msg.payload) ? 'application/json' : 'application/x-www-form-urlencoded';
}

// RFC 9110 token characters: anything else in a property name is percent-encoded ('%' itself is a token char, so
// the encoding is reversible and the header name stays valid).
const TCHAR = /^[!#$%&'*+.^_`|~0-9A-Za-z-]$/;
const encoder = new TextEncoder();
export function headerName(name: string): string {
  let out = '';
  for (const ch of name) {
    if (ch !== '%' && TCHAR.test(ch)) out += ch.toLowerCase();
    else for (const b of encoder.encode(ch)) out += `%${b.toString(16).padStart(2, '0')}`;
  }
  return out;
}

/** Visible ASCII, space and tab go as they are; any other value is sent percent-encoded (UTF-8). */
export function headerValue(value: string): string {
  return /^[\x20-\x7e\t]*$/.test(value) ? value : encodeURIComponent(value);
}

const zoneFormats = new Map<string, Intl.DateTimeFormat>();

/** RFC 3339 in the trigger's zone (the seed formatted event-time in TZ), with milliseconds. */
export function formatTime(ms: number, timezone: string): string {
  if (timezone === 'UTC' || timezone === 'Etc/UTC') return new Date(ms).toISOString();
  let f = zoneFormats.get(timezone);
  if (!f) {
    try {
      f = new Intl.DateTimeFormat('en-US', {
        timeZone: timezone,
        hourCycle: 'h23',
        year: 'numeric',
        month: '2-digit',
        day: '2-digit',
        hour: '2-digit',
        minute: '2-digit',
        second: '2-digit',
        timeZoneName: 'longOffset',
      });
    } catch {
      return new Date(ms).toISOString();
    }
    zoneFormats.set(timezone, f);
  }
  const p: Record<string, string> = {};
  for (const part of f.formatToParts(ms)) p[part.type] = part.value;
  const offset = (p.timeZoneName ?? 'GMT').replace('GMT', '') || '+00:00';
  const millis = String(((ms % 1000) + 1000) % 1000).padStart(3, '0');
  return `${p.year}-${p.month}-${p.day}T${p.hour}:${p.minute}:${p.second}.${millis}${offset === '+00:00' ? 'Z' : offset}`;
}

/** The headers for a message; the same on every attempt. */
export function buildHeaders(msg: SourceMessage, ctx: RequestContext): Record<string, string> {
  const contentType = contentTypeFor(msg, ctx.contentType);
  const publishIso = new Date(msg.publishTime).toISOString();
  const eventIso = msg.eventTime === undefined ? publishIso : new Date(msg.eventTime).toISOString();
  const utc = ctx.timezone === 'UTC' || ctx.timezone === 'Etc/UTC';
  const time = utc ? eventIso : formatTime(msg.eventTime ?? msg.publishTime, ctx.timezone);
  const h: Record<string, string> = { 'content-type': contentType };
  if (ctx.eventFormat === 'cloudevents') {
    h['ce-specversion'] = '1.0';
    h['ce-id'] = msg.id;
    h['ce-source'] = msg.topic;
    h['ce-type'] = CLOUDEVENTS_TYPE;
    h['ce-time'] = eventIso;
    if (msg.key !== undefined) h['ce-partitionkey'] = headerValue(msg.key);
  } else {
    // Kubeless: the seed's four headers, plus event-type and event-topic as Kubeless' Kafka and NATS triggers send.
    h['event-id'] = msg.id;
    h['event-time'] = time;
    h['event-namespace'] = ctx.triggerNamespace;
    h['event-name'] = ctx.triggerName;
    h['event-type'] = contentType;
    h['event-topic'] = msg.topic;
  }
  h['pulsar-message-id'] = msg.id;
  if (msg.key !== undefined) h['pulsar-key'] = headerValue(msg.key);
  h['pulsar-redelivery-count'] = String(msg.redeliveryCount);
  h['pulsar-publish-time'] = publishIso;
  if (msg.eventTime !== undefined) h['pulsar-event-time'] = eventIso;
  const props = msg.properties;
  // for...in, not Object.entries: no array per message when, as usual, there are none.
  for (const name in props) {
    if (Object.hasOwn(props, name)) h[`pulsar-property-${headerName(name)}`] = headerValue(props[name]!);
  }
  return h;
}
