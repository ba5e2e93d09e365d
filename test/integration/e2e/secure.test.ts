// End to end against the secure broker (TLS with its own CA, token authentication and authorization): the token
// given inline (the controller moves it into a Secret it owns) and by reference to a Secret of the user's; the
// broker's CA from a Secret and from a ConfigMap, mounted into the dispatcher containers by the kubelet.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import type { FunctionServer } from '../../../examples/function.ts';
import { node, pulsarSecure } from '../../support/env.ts';
import { bodies, type E2E, publish, startE2E, waitUntil } from './fixture.ts';

const TIMEOUT = 120_000;

describe('token-protected topics (secure profile)', { timeout: 600_000 }, () => {
  let fx: E2E;
  before(async () => {
    fx = await startE2E('secure');
    await fx.installController();
    const ca = readFileSync(pulsarSecure().caFile, 'utf8');
    await fx.apply({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'pulsar-ca', namespace: fx.ns },
      stringData: { 'ca.pem': ca },
    });
    await fx.apply({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'pulsar-ca', namespace: fx.ns },
      data: { 'ca.pem': ca },
    });
    await fx.apply({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'pulsar-client', namespace: fx.ns },
      stringData: { token: pulsarSecure().clientToken },
    });
  });
  after(async () => {
    await fx?.close();
  });

  async function deliver(name: string, pulsar: Record<string, unknown>, fn: FunctionServer): Promise<void> {
    const topic = `persistent://public/default/e2e-${name}-${fx.suffix}`;
    await fx.apply({
      apiVersion: 'kubeless.io/v1',
      kind: 'PulsarTrigger',
      metadata: { name, namespace: fx.ns },
      spec: {
        pulsar: {
          topic,
          broker: node().pulsarSecureServiceUrl,
          adminUrl: node().pulsarSecureAdminUrl,
          ...pulsar,
        },
        kubeless: { function: fn.url },
      },
    });
    await waitUntil(
      `${name}: the dispatcher is ready (subscribed with the token over TLS)`,
      async () => (await fx.deployment(name))?.status?.readyReplicas === 1,
      TIMEOUT,
      fx,
    );
    const sent = await publish(topic, 5, name, true);
    await waitUntil(
      `${name}: the function got every message`,
      () => sent.every((p) => bodies(fn).includes(p)),
      TIMEOUT,
      fx,
    );
    assert.deepEqual(bodies(fn).sort(), [...sent].sort());
  }

  test('the token inline, the CA from a Secret', async () => {
    const fn = await fx.startFunction('inline');
    await deliver(
      'inline-token',
      {
        'auth-token': pulsarSecure().clientToken,
        tls: { caSecretRef: { name: 'pulsar-ca', key: 'ca.pem' } },
      },
      fn,
    );
    const d = await fx.deployment('inline-token');
    const env = d?.spec?.template.spec?.containers[0]?.env ?? [];
    const tokenVar = env.find((e) => e.name === 'PULSAR_AUTH_TOKEN');
    assert.equal(tokenVar?.value, undefined, 'the token is not written into the Deployment');
    assert.ok(tokenVar?.valueFrom?.secretKeyRef?.name, 'it comes from a Secret');
  });

  test('the token by Secret reference, the CA from a ConfigMap', async () => {
    const fn = await fx.startFunction('by-ref');
    await deliver(
      'token-ref',
      {
        authTokenSecretRef: { name: 'pulsar-client', key: 'token' },
        tls: { caConfigMapRef: { name: 'pulsar-ca', key: 'ca.pem' } },
      },
      fn,
    );
    const d = await fx.deployment('token-ref');
    const env = d?.spec?.template.spec?.containers[0]?.env ?? [];
    const ref = env.find((e) => e.name === 'PULSAR_AUTH_TOKEN')?.valueFrom?.secretKeyRef;
    assert.deepEqual({ name: ref?.name, key: ref?.key }, { name: 'pulsar-client', key: 'token' });
  });
});
