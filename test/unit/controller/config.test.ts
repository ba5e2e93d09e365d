import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseConfig } from '../../../src/controller/config.ts';

test("defaults keep the seed's options: in-cluster config, UTC, README resources", () => {
  const r = parseConfig([], {});
  assert.ok(r.ok);
  assert.equal(r.value.kubeconfig, undefined);
  assert.equal(r.value.timezone, 'UTC');
  assert.deepEqual(r.value.resources, {
    limits: { cpu: '1', memory: '1Gi' },
    requests: { cpu: '500m', memory: '512Mi' },
  });
  assert.deepEqual(r.value.namespaces, []);
  assert.equal(r.value.leaderElect, true);
});

test('flags win over env, env over defaults', () => {
  const r = parseConfig(['--dispatcher-image', 'img:2', '--timezone=Europe/Lisbon', '--leader-elect=false'], {
    KPT_DISPATCHER_IMAGE: 'img:1',
    KPT_NAMESPACES: 'a, b',
  });
  assert.ok(r.ok);
  assert.equal(r.value.dispatcherImage, 'img:2');
  assert.equal(r.value.timezone, 'Europe/Lisbon');
  assert.deepEqual(r.value.namespaces, ['a', 'b']);
  assert.equal(r.value.leaderElect, false);
});

test('every bad option is named in one error', () => {
  const r = parseConfig(
    ['--timezone', 'Mars/Base', '--workers', '0', '--bogus', '--dispatcher-cpu-limit', 'lots'],
    {
      KPT_LOG_LEVEL: 'loud',
    },
  );
  assert.equal(r.ok, false);
  if (r.ok) return;
  assert.equal(r.error.code, 'E_CONFIG_INVALID');
  for (const s of ['--timezone', '--workers', '--bogus', '--dispatcher-cpu-limit', 'KPT_LOG_LEVEL']) {
    assert.ok(r.error.message.includes(s), `${s} missing from: ${r.error.message}`);
  }
});

test('--allow-cross-namespace: SOURCE=TARGET pairs, from the flag or KPT_ALLOW_CROSS_NAMESPACE', () => {
  const none = parseConfig([], {});
  assert.ok(none.ok);
  assert.deepEqual(none.value.allowCrossNamespace, []);
  const flag = parseConfig(['--allow-cross-namespace=team-a=shared,*=public'], {});
  assert.ok(flag.ok);
  assert.deepEqual(flag.value.allowCrossNamespace, [
    { from: 'team-a', to: 'shared' },
    { from: '*', to: 'public' },
  ]);
  const env = parseConfig([], { KPT_ALLOW_CROSS_NAMESPACE: 'ci=shared' });
  assert.ok(env.ok);
  assert.deepEqual(env.value.allowCrossNamespace, [{ from: 'ci', to: 'shared' }]);
  const bad = parseConfig(['--allow-cross-namespace', 'team-a:shared'], {});
  assert.equal(bad.ok, false);
  if (bad.ok) return;
  assert.equal(bad.error.code, 'E_CONFIG_INVALID');
  assert.match(
    bad.error.message,
    /--allow-cross-namespace \(KPT_ALLOW_CROSS_NAMESPACE\): must be SOURCE=TARGET/,
  );
  assert.match(bad.error.message, /team-a:shared/);
});
