import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { classifyError } from '../../../src/dispatcher/http.ts';
import {
  buildHeaders,
  CLOUDEVENTS_TYPE,
  contentTypeFor,
  formatTime,
  headerName,
  headerValue,
  looksLikeJson,
  type RequestContext,
} from '../../../src/dispatcher/request.ts';
import { message } from './fakes.ts';

const enc = (s: string) => new TextEncoder().encode(s);
const ctx: RequestContext = {
  triggerName: 'mytrigger',
  triggerNamespace: 'default',
  timezone: 'UTC',
  contentType: { kind: 'auto' },
  eventFormat: 'kubeless',
};

describe('content type', () => {
  test("the seed's rule: JSON values are application/json, anything else form-urlencoded", () => {
    for (const s of ['{"a":1}', ' [1,2]', '"x"', '42', 'true', 'null', '\n{"nested":{"b":[]}}\n']) {
      assert.equal(looksLikeJson(enc(s)), true, s);
    }
    for (const s of ['', 'hello', '{broken', 'a=1&b=2', '42abc'])
      assert.equal(looksLikeJson(enc(s)), false, s);
    assert.equal(looksLikeJson(new Uint8Array([0x7b, 0xff, 0xfe, 0x7d])), false, 'invalid UTF-8');
    assert.equal(
      contentTypeFor(message(1, { payload: enc('{"a":1}') }), { kind: 'auto' }),
      'application/json',
    );
    assert.equal(
      contentTypeFor(message(1, { payload: enc('a=1') }), { kind: 'auto' }),
      'application/x-www-form-urlencoded',
    );
  });

  test("the producer's content-type property wins, then the fixed setting", () => {
    const m = message(1, { payload: enc('{"a":1}'), properties: { 'content-type': 'application/avro' } });
    assert.equal(contentTypeFor(m, { kind: 'fixed', value: 'text/plain' }), 'application/avro');
    assert.equal(
      contentTypeFor(message(1, { payload: enc('{}') }), { kind: 'fixed', value: 'text/plain' }),
      'text/plain',
    );
  });
});

describe('headers', () => {
  test('kubeless event headers, pulsar headers and properties', () => {
    const m = message(3, {
      payload: enc('{"x":1}'),
      key: 'user-1',
      properties: { tenant: 'acme', 'weird name/é': 'ünïcode\nline' },
      eventTime: Date.parse('2024-01-02T03:04:05.678Z'),
      redeliveryCount: 2,
    });
    const h = buildHeaders(m, ctx);
    assert.equal(h['content-type'], 'application/json');
    assert.equal(h['event-id'], m.id);
    assert.equal(h['event-time'], '2024-01-02T03:04:05.678Z', 'event time wins over publish time');
    assert.equal(h['event-namespace'], 'default');
    assert.equal(h['event-name'], 'mytrigger');
    assert.equal(h['event-type'], 'application/json');
    assert.equal(h['event-topic'], 'persistent://public/default/t');
    assert.equal(h['pulsar-message-id'], m.id);
    assert.equal(h['pulsar-key'], 'user-1');
    assert.equal(h['pulsar-redelivery-count'], '2');
    assert.equal(h['pulsar-publish-time'], new Date(m.publishTime).toISOString());
    assert.equal(h['pulsar-property-tenant'], 'acme');
    assert.equal(h['pulsar-property-weird%20name%2f%c3%a9'], encodeURIComponent('ünïcode\nline'));
    for (const [name, value] of Object.entries(h)) {
      assert.match(name, /^[!#$%&'*+.^_`|~0-9a-z-]+$/, name);
      assert.match(value, /^[\x20-\x7e\t]*$/, name);
    }
    assert.equal(ctx.triggerName, 'mytrigger');
  });

  test('event time falls back to the publish time; the trigger timezone is honoured', () => {
    const m = message(1, { publishTime: Date.parse('2024-06-01T12:00:00.005Z') });
    assert.equal(buildHeaders(m, ctx)['event-time'], '2024-06-01T12:00:00.005Z');
    assert.equal(
      formatTime(Date.parse('2024-06-01T12:00:00.005Z'), 'Europe/Paris'),
      '2024-06-01T14:00:00.005+02:00',
    );
    assert.equal(
      formatTime(Date.parse('2024-01-01T00:00:00Z'), 'America/Sao_Paulo'),
      '2023-12-31T21:00:00.000-03:00',
    );
    assert.equal(formatTime(0, 'Not/AZone'), '1970-01-01T00:00:00.000Z');
  });

  test('CloudEvents binary mode', () => {
    const m = message(5, { key: 'k', payload: enc('hi') });
    const h = buildHeaders(m, { ...ctx, eventFormat: 'cloudevents' });
    assert.equal(h['ce-specversion'], '1.0');
    assert.equal(h['ce-id'], m.id);
    assert.equal(h['ce-source'], m.topic);
    assert.equal(h['ce-type'], CLOUDEVENTS_TYPE);
    assert.equal(h['ce-time'], new Date(m.publishTime).toISOString());
    assert.equal(h['ce-partitionkey'], 'k');
    assert.equal(h['content-type'], 'application/x-www-form-urlencoded');
    assert.equal(h['event-id'], undefined);
  });

  test('header name and value encoding is reversible', () => {
    for (const s of ['plain', 'with space', 'per%cent', 'ümlaut', 'a:b']) {
      assert.equal(decodeURIComponent(headerName(s)), s.toLowerCase());
    }
    assert.equal(headerValue('ok value\t1'), 'ok value\t1');
    assert.equal(decodeURIComponent(headerValue('x\r\ny')), 'x\r\ny');
  });
});

describe('network errors are told apart', () => {
  const e = (code: string, message = 'x') => Object.assign(new Error(message), { code });
  test('by code, through causes and aggregate errors', () => {
    assert.equal(classifyError(e('ECONNREFUSED')).kind, 'refused');
    assert.equal(classifyError(new AggregateError([e('ECONNREFUSED')], 'all failed')).kind, 'refused');
    assert.equal(
      classifyError(Object.assign(new Error('fetch failed'), { cause: e('ECONNRESET') })).kind,
      'reset',
    );
    assert.equal(classifyError(e('UND_ERR_SOCKET', 'other side closed')).kind, 'reset');
    assert.equal(classifyError(e('UND_ERR_HEADERS_TIMEOUT')).kind, 'timeout');
    assert.equal(classifyError(e('UND_ERR_CONNECT_TIMEOUT')).kind, 'timeout');
    assert.equal(classifyError(e('ENOTFOUND')).kind, 'dns');
    assert.equal(classifyError(e('ERR_TLS_CERT_ALTNAME_INVALID')).kind, 'tls');
    assert.equal(classifyError(e('EWHATEVER')).kind, 'other');
    assert.match(classifyError(e('ECONNREFUSED', 'connect failed')).message, /ECONNREFUSED/);
  });
});
