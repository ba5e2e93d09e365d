// The broker token on its way from a trigger to the dispatcher: the env codec's PULSAR_AUTH_TOKEN_FILE, the
// precedence of the file over PULSAR_AUTH_TOKEN, and the rendered Deployment (the token Secret mounted read-only
// and named by PULSAR_AUTH_TOKEN_FILE, the variable from a secretKeyRef, the token's value nowhere).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  AUTH_TOKEN_FILE,
  DEFAULT_RESOURCES,
  type JsonObject,
  type RenderConfig,
  renderTrigger,
} from '../../../src/trigger/render.ts';
import {
  type DispatcherSettings,
  decodeSettingsEnv,
  encodeSettingsEnv,
  envRecord,
  tokenSource,
} from '../../../src/trigger/settings.ts';
import type { PulsarTrigger } from '../../../src/trigger/spec.ts';

const config: RenderConfig = {
  dispatcherImage: 'kpt/dispatcher:1',
  timezone: 'UTC',
  resources: DEFAULT_RESOURCES,
};
const TOKEN = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJjbGllbnQifQ.c2lnbmF0dXJlLW9mLXRoZS10b2tlbg';

function trigger(pulsar: Record<string, unknown>, deployment?: Record<string, unknown>): PulsarTrigger {
  return {
    apiVersion: 'kubeless.io/v1',
    kind: 'PulsarTrigger',
    metadata: { name: 'tok', namespace: 'default', uid: '6f1d1c4e-2f4b-4bb1-9d55-0d7b9f0f2a11' },
    spec: {
      pulsar: { topic: 'persistent://public/default/t', broker: 'pulsar://b:6650', ...pulsar },
      kubeless: { function: 'http://f.default:8080' },
      ...(deployment ? { deployment } : {}),
    },
  } as PulsarTrigger;
}

function render(t: PulsarTrigger) {
  const r = renderTrigger(t, config);
  assert.ok(r.ok, r.ok ? '' : r.error.message);
  return r.value;
}

// biome-ignore lint/suspicious/noExplicitAny: walking rendered JSON in assertions
const podOf = (d: JsonObject): any => (d.spec as any).template.spec;
// biome-ignore lint/suspicious/noExplicitAny: walking rendered JSON in assertions
const envEntries = (d: JsonObject): any[] => podOf(d).containers[0].env;
const envVar = (d: JsonObject, name: string) => envEntries(d).find((e) => e.name === name);

const base: DispatcherSettings = (() => {
  const r = decodeSettingsEnv({
    TRIGGER_NAME: 't',
    TRIGGER_NAMESPACE: 'ns',
    PULSAR_TOPIC: 'events',
    PULSAR_BROKER: 'pulsar://b:6650',
    KUBELESS_FUNCTION: 'http://f.ns:8080',
  });
  assert.ok(r.ok);
  return r.value;
})();

test('settings codec: PULSAR_AUTH_TOKEN_FILE round-trips alone, with the token, and blank means unset', () => {
  for (const auth of [
    { authToken: undefined, authTokenFile: '/etc/kubeless-pulsar-trigger/auth-token/token' },
    { authToken: TOKEN, authTokenFile: '/run/secrets/pulsar/token' },
    { authToken: TOKEN, authTokenFile: undefined },
    { authToken: undefined, authTokenFile: undefined },
  ]) {
    const settings = { ...base, ...auth };
    const env = encodeSettingsEnv(settings);
    assert.equal(
      env.find((e) => e.name === 'PULSAR_AUTH_TOKEN_FILE')?.value,
      auth.authTokenFile,
      'written only when set',
    );
    const decoded = decodeSettingsEnv(envRecord(env));
    assert.ok(decoded.ok, decoded.ok ? '' : decoded.error.message);
    assert.deepEqual(decoded.value, settings);
  }
  const blank = decodeSettingsEnv({ ...envRecord(encodeSettingsEnv(base)), PULSAR_AUTH_TOKEN_FILE: '  ' });
  assert.ok(blank.ok);
  assert.equal(blank.value.authTokenFile, undefined);
});

test('precedence: the file wins over PULSAR_AUTH_TOKEN; either alone is used; neither is no authentication', () => {
  assert.deepEqual(tokenSource({ authToken: TOKEN, authTokenFile: '/f' }), { file: '/f' });
  assert.deepEqual(tokenSource({ authToken: undefined, authTokenFile: '/f' }), { file: '/f' });
  assert.deepEqual(tokenSource({ authToken: TOKEN, authTokenFile: undefined }), { token: TOKEN });
  assert.equal(tokenSource({ authToken: undefined, authTokenFile: undefined }), undefined);
  // As the dispatcher decodes a rendered Deployment's env (the kubelet resolves the secretKeyRef to the token).
  const env = {
    ...envRecord(encodeSettingsEnv({ ...base, authTokenFile: AUTH_TOKEN_FILE })),
    PULSAR_AUTH_TOKEN: TOKEN,
  };
  const decoded = decodeSettingsEnv(env);
  assert.ok(decoded.ok);
  assert.deepEqual(tokenSource(decoded.value), { file: AUTH_TOKEN_FILE });
});

test('an inline token: the owned Secret mounted read-only (0440, group 65532), the file and the variable', () => {
  const r = render(trigger({ 'auth-token': TOKEN }));
  const d = r.deployment;
  const pod = podOf(d);
  assert.deepEqual(pod.volumes, [
    {
      name: 'pulsar-auth-token',
      secret: {
        secretName: 'tok-pulsar-auth-token',
        items: [{ key: 'token', path: 'token' }],
        defaultMode: 0o440,
      },
    },
  ]);
  assert.deepEqual(pod.containers[0].volumeMounts, [
    { name: 'pulsar-auth-token', mountPath: '/etc/kubeless-pulsar-trigger/auth-token', readOnly: true },
  ]);
  assert.equal(
    pod.containers[0].volumeMounts[0].subPath,
    undefined,
    'no subPath: the kubelet updates the file',
  );
  assert.equal(pod.securityContext.fsGroup, 65532);
  assert.equal(pod.securityContext.runAsGroup, 65532);
  assert.deepEqual(envVar(d, 'PULSAR_AUTH_TOKEN_FILE'), {
    name: 'PULSAR_AUTH_TOKEN_FILE',
    value: '/etc/kubeless-pulsar-trigger/auth-token/token',
  });
  assert.deepEqual(envVar(d, 'PULSAR_AUTH_TOKEN'), {
    name: 'PULSAR_AUTH_TOKEN',
    valueFrom: { secretKeyRef: { name: 'tok-pulsar-auth-token', key: 'token' } },
  });
  assert.equal(r.settings.authTokenFile, AUTH_TOKEN_FILE);
  assert.equal(r.settings.authToken, undefined);
  // The token is in the Secret only: not in the Deployment, as text or base64.
  const text = JSON.stringify(d);
  for (const form of [TOKEN, Buffer.from(TOKEN).toString('base64'), TOKEN.split('.')[2] as string]) {
    assert.ok(!text.includes(form), 'the token is not in the Deployment');
  }
  assert.equal((r.secret?.data as JsonObject | undefined)?.token, Buffer.from(TOKEN).toString('base64'));
});

test("authTokenSecretRef: the user's Secret, only its key, under the same file name; nothing owned", () => {
  const r = render(trigger({ authTokenSecretRef: { name: 'pulsar-client', key: 'jwt' } }));
  const d = r.deployment;
  const pod = podOf(d);
  assert.equal(r.secret, undefined);
  assert.deepEqual(pod.volumes, [
    {
      name: 'pulsar-auth-token',
      secret: { secretName: 'pulsar-client', items: [{ key: 'jwt', path: 'token' }], defaultMode: 0o440 },
    },
  ]);
  assert.equal(envVar(d, 'PULSAR_AUTH_TOKEN_FILE').value, AUTH_TOKEN_FILE);
  assert.deepEqual(envVar(d, 'PULSAR_AUTH_TOKEN').valueFrom, {
    secretKeyRef: { name: 'pulsar-client', key: 'jwt' },
  });
  assert.equal(pod.securityContext.fsGroup, 65532);
  // No token hash on the pod template: the Secret is rotated in place and the file follows without a restart.
  // biome-ignore lint/suspicious/noExplicitAny: walking rendered JSON in assertions
  assert.equal((d.spec as any).template.metadata.annotations?.['kubeless.io/auth-token-hash'], undefined);
});

test('another Secret or another key changes the pod template (the Deployment rolls); the same ref does not', () => {
  const template = (pulsar: Record<string, unknown>) =>
    JSON.stringify((render(trigger(pulsar)).deployment.spec as JsonObject).template);
  const a = template({ authTokenSecretRef: { name: 's1', key: 'token' } });
  assert.equal(template({ authTokenSecretRef: { name: 's1', key: 'token' } }), a);
  const otherSecret = template({ authTokenSecretRef: { name: 's2', key: 'token' } });
  const otherKey = template({ authTokenSecretRef: { name: 's1', key: 'jwt' } });
  assert.notEqual(otherSecret, a);
  assert.notEqual(otherKey, a);
  assert.notEqual(otherKey, otherSecret);
});

test('no token: no volume, no fsGroup, neither variable; a user-mounted file of their own is kept', () => {
  const d = render(trigger({})).deployment;
  const pod = podOf(d);
  assert.equal(pod.volumes, undefined);
  assert.equal(pod.containers[0].volumeMounts, undefined);
  assert.equal(pod.securityContext.fsGroup, undefined);
  assert.equal(envVar(d, 'PULSAR_AUTH_TOKEN_FILE'), undefined);
  assert.equal(envVar(d, 'PULSAR_AUTH_TOKEN'), undefined);
  const own = render(
    trigger(
      {},
      {
        spec: {
          template: {
            spec: {
              containers: [{ env: [{ name: 'PULSAR_AUTH_TOKEN_FILE', value: '/vault/token' }] }],
            },
          },
        },
      },
    ),
  ).deployment;
  assert.equal(envVar(own, 'PULSAR_AUTH_TOKEN_FILE').value, '/vault/token');
});

test("the token volume and mount survive a user's lists; the trigger's file variable wins over the user's", () => {
  const d = render(
    trigger(
      { authTokenSecretRef: { name: 'pulsar-client', key: 'token' } },
      {
        spec: {
          template: {
            spec: {
              volumes: [{ name: 'scratch', emptyDir: {} }],
              containers: [
                {
                  volumeMounts: [{ name: 'scratch', mountPath: '/scratch' }],
                  env: [{ name: 'PULSAR_AUTH_TOKEN_FILE', value: '/elsewhere' }],
                },
              ],
            },
          },
        },
      },
    ),
  ).deployment;
  const pod = podOf(d);
  assert.deepEqual(
    pod.volumes.map((v: { name: string }) => v.name),
    ['scratch', 'pulsar-auth-token'],
  );
  assert.deepEqual(
    pod.containers[0].volumeMounts.map((m: { name: string }) => m.name),
    ['scratch', 'pulsar-auth-token'],
  );
  assert.deepEqual(
    envEntries(d).filter((e) => e.name === 'PULSAR_AUTH_TOKEN_FILE'),
    [{ name: 'PULSAR_AUTH_TOKEN_FILE', value: AUTH_TOKEN_FILE }],
  );
});

test("LOG_LEVEL: the user's entry replaces the default in place; other trigger variables still win", () => {
  const d = render(
    trigger(
      { authTokenSecretRef: { name: 'pulsar-client', key: 'token' } },
      {
        spec: {
          template: {
            spec: {
              containers: [
                {
                  env: [
                    { name: 'LOG_LEVEL', value: 'debug' },
                    { name: 'PULSAR_AUTH_TOKEN', value: 'plain-text' },
                  ],
                },
              ],
            },
          },
        },
      },
    ),
  ).deployment;
  const env = envEntries(d);
  assert.deepEqual(
    env.filter((e) => e.name === 'LOG_LEVEL'),
    [{ name: 'LOG_LEVEL', value: 'debug' }],
  );
  const names = env.map((e) => e.name);
  assert.ok(names.indexOf('LOG_LEVEL') < names.indexOf('NODE_OPTIONS'), 'in the default one’s place');
  assert.deepEqual(
    env.filter((e) => e.name === 'PULSAR_AUTH_TOKEN'),
    [{ name: 'PULSAR_AUTH_TOKEN', valueFrom: { secretKeyRef: { name: 'pulsar-client', key: 'token' } } }],
  );
  assert.equal(envVar(render(trigger({})).deployment, 'LOG_LEVEL').value, 'info');
});
