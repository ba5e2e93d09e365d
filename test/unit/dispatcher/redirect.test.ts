// The redirect rule of the function client (src/dispatcher/http.ts): which Location is followed, where it leads,
// and the stable code of each refusal. Pure; the integration tests follow real redirects.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MAX_REDIRECTS, redirectTarget } from '../../../src/dispatcher/http.ts';
import { DispatcherMetrics } from '../../../src/dispatcher/metrics.ts';
import {
  DEFAULT_RETRY,
  decide,
  describeOutcome,
  type Outcome,
  statusActionsFromRules,
} from '../../../src/dispatcher/policy.ts';

const from = new URL('http://fn.default.svc:8080/api/fn?x=1');

function target(location: string, hops = 1, base = from): string {
  const r = redirectTarget(base, location, hops);
  assert.ok(r.ok, `followed: ${r.ok ? '' : r.message}`);
  return r.url.href;
}

function refusal(location: string, hops = 1, base = from): { error: string; message: string } {
  const r = redirectTarget(base, location, hops);
  assert.ok(!r.ok, `refused: ${location}`);
  return { error: r.error, message: r.message };
}

describe('redirectTarget', () => {
  test('a relative Location is resolved against the request URL', () => {
    assert.equal(target('/other'), 'http://fn.default.svc:8080/other');
    assert.equal(target('next?y=2'), 'http://fn.default.svc:8080/api/next?y=2');
    assert.equal(target('../up'), 'http://fn.default.svc:8080/up');
    assert.equal(target('?z=3'), 'http://fn.default.svc:8080/api/fn?z=3');
    assert.equal(target('//other.host:81/p'), 'http://other.host:81/p');
    assert.equal(target('  /padded  '), 'http://fn.default.svc:8080/padded');
  });

  test('the fragment is not part of the request', () => {
    assert.equal(target('/p#frag'), 'http://fn.default.svc:8080/p');
  });

  test('http → http and http → https are followed; https → https too', () => {
    assert.equal(target('http://127.0.0.1:9/a'), 'http://127.0.0.1:9/a');
    assert.equal(target('https://secure.example/a'), 'https://secure.example/a');
    assert.equal(target('https://b.example/x', 1, new URL('https://a.example/')), 'https://b.example/x');
    assert.equal(target('/rel', 1, new URL('https://a.example/p')), 'https://a.example/rel');
  });

  test('https → http is refused (the event would leave TLS), as is any other scheme', () => {
    const down = refusal('http://a.example/', 1, new URL('https://a.example/'));
    assert.equal(down.error, 'redirect_refused');
    assert.match(down.message, /https to http/);
    assert.equal(refusal('ftp://files.example/x').error, 'redirect_refused');
    assert.equal(refusal('javascript:alert(1)').error, 'redirect_refused');
    assert.equal(refusal('file:///etc/passwd').error, 'redirect_refused');
  });

  test('an unreadable Location is refused', () => {
    const r = refusal('http://[::1');
    assert.equal(r.error, 'redirect_refused');
    assert.match(r.message, /unreadable Location/);
  });

  test(`up to ${MAX_REDIRECTS} hops are followed; the next one is redirect_limit`, () => {
    for (let hops = 1; hops <= MAX_REDIRECTS; hops++)
      assert.equal(target('/again', hops), 'http://fn.default.svc:8080/again');
    const r = refusal('/again', MAX_REDIRECTS + 1);
    assert.equal(r.error, 'redirect_limit');
    assert.match(r.message, new RegExp(`more than ${MAX_REDIRECTS} redirects`));
  });

  test('a long Location is cut in the message', () => {
    const r = refusal(`ftp://x/${'a'.repeat(5000)}`);
    assert.ok(r.message.length < 300, `message of ${r.message.length} characters`);
  });
});

describe('a redirect that is not followed, to the policy', () => {
  const limit: Outcome = { kind: 'network', error: 'redirect_limit', message: 'more than 5 redirects (…)' };
  const refused: Outcome = {
    kind: 'network',
    error: 'redirect_refused',
    message: 'redirect from https to http',
  };
  const actions = statusActionsFromRules([{ status: '3xx', action: 'drop' }]);
  const random = () => 0;

  test('is retried like a network failure (status rules do not apply: it has no final status)', () => {
    for (const outcome of [limit, refused]) {
      const d = decide(
        { outcome, localAttempts: 1, redeliveryCount: 0, discount: 0 },
        actions,
        DEFAULT_RETRY,
        random,
      );
      assert.equal(d.kind, 'retry');
    }
  });

  test('is dead-lettered once the budget is spent, its outcome leading the error', () => {
    const d = decide(
      { outcome: refused, localAttempts: 3, redeliveryCount: 0, discount: 0 },
      actions,
      { ...DEFAULT_RETRY, maxAttempts: 3 },
      random,
    );
    assert.deepEqual(d, { kind: 'dead-letter', attempts: 3, reason: 'budget' });
    assert.equal(describeOutcome(refused), 'redirect_refused: redirect from https to http');
  });

  test('has its own series of the attempts metric', async () => {
    const m = new DispatcherMetrics({ defaultMetrics: false });
    const t = m.forTrigger('default/t');
    t.attempt(limit, 5);
    t.attempt(limit, 5);
    t.attempt(refused, 5);
    const all = await m.registry.getMetricsAsJSON();
    const values = all.find((x) => x.name === 'kpt_dispatcher_delivery_attempts_total')?.values ?? [];
    const count = (outcome: string) =>
      values.filter((v) => v.labels.outcome === outcome).reduce((n, v) => n + v.value, 0);
    assert.equal(count('redirect_limit'), 2);
    assert.equal(count('redirect_refused'), 1);
  });
});
