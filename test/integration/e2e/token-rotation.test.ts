// A token that rotates, end to end on the real node against the secure broker (token auth, authorization, and
// authenticationRefreshCheckSeconds 5: the broker challenges a connection whose token has expired and closes it
// unless the answer is a valid token). The trigger names the user's Secret (authTokenSecretRef); the kubelet
// mounts it into the dispatcher container (PULSAR_AUTH_TOKEN_FILE) and updates the file when the Secret changes;
// the dispatcher reads the file again for the broker's AUTH_CHALLENGE. So a short-lived token T1 replaced in the
// Secret by T2 keeps the dispatcher's one broker connection alive past T1's expiry: no restart, nothing lost.
// Pointing authTokenSecretRef at another Secret rolls the Deployment. No token ever shows in the controller's or
// the dispatchers' logs (at debug level), in Events, in the trigger's status or in the Deployment.

import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { request } from 'node:https';
import { after, before, describe, test } from 'node:test';
import type { FunctionServer } from '../../../examples/function.ts';
import { PulsarClient } from '../../../src/pulsar/index.ts';
import { tokenAuth } from '../../../src/pulsar/token.ts';
import { signToken } from '../../../testenv/lib/jwt.ts';
import { node, pulsarSecure } from '../../support/env.ts';
import {
  bodies,
  containerLog,
  containerPid,
  type E2E,
  type PodInfo,
  publish,
  startE2E,
  waitUntil,
} from './fixture.ts';

const TIMEOUT = 180_000;
/** T1's lifetime: long enough for the pod to start and the kubelet to bring T2 into the file before it ends. */
const T1_LIFETIME_SECONDS = 60;
const LATER_LIFETIME_SECONDS = 3600;
/** Where render.ts mounts the token Secret; PULSAR_AUTH_TOKEN_FILE names it. */
const TOKEN_FILE = '/etc/kubeless-pulsar-trigger/auth-token/token';
const TRIGGER = 'rotating';

/** The forms a leaked token could take: as is, base64 (a Secret's data), and its signature alone. */
function tokenForms(token: string): string[] {
  return [token, Buffer.from(token).toString('base64'), token.split('.')[2] ?? token];
}

/** GET on the secure broker's admin API, as the superuser. */
function adminGet(path: string): Promise<unknown> {
  const env = pulsarSecure();
  return new Promise((resolve, reject) => {
    const req = request(
      new URL(path, env.adminUrl),
      { ca: readFileSync(env.caFile), headers: { authorization: `Bearer ${env.adminToken}` } },
      (res) => {
        let body = '';
        res.on('data', (c: Buffer) => {
          body += c.toString();
        });
        res.on('end', () =>
          res.statusCode === 200
            ? resolve(JSON.parse(body))
            : reject(new Error(`GET ${path}: ${res.statusCode} ${body}`)),
        );
      },
    );
    req.on('error', reject);
    req.end();
  });
}

interface ConsumerStat {
  consumerName: string;
  address: string;
  connectedSince: string;
}

/** The subscription's consumers as the broker sees them; address and connectedSince identify a connection. */
async function consumers(topic: string, subscription: string): Promise<ConsumerStat[]> {
  const stats = (await adminGet(`/admin/v2/${topic.replace('://', '/')}/stats`)) as {
    subscriptions?: Record<string, { consumers?: ConsumerStat[] }>;
  };
  return stats.subscriptions?.[subscription]?.consumers ?? [];
}

/** Publishes one message at a time with the superuser's token until stopped; returns what it sent. */
function publishUntilStopped(topic: string, prefix: string): { stop(): Promise<string[]> } {
  const env = pulsarSecure();
  const client = new PulsarClient({
    serviceUrl: env.serviceUrl,
    auth: tokenAuth({ token: env.adminToken }),
    tls: { ca: readFileSync(env.caFile, 'utf8') },
  });
  const sent: string[] = [];
  let stopping = false;
  let wake: (() => void) | undefined;
  const done = (async () => {
    const producer = await client.createProducer({ topic, batchingMaxMessages: 1 });
    for (let i = 0; !stopping; i++) {
      const payload = `${prefix}-${i}`;
      await producer.send({ payload: Buffer.from(payload), key: payload });
      sent.push(payload);
      // A steady trickle rather than a flood: a few messages a second, across the whole window.
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 200);
        wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
    await producer.close();
  })();
  return {
    async stop() {
      stopping = true;
      wake?.();
      try {
        await done;
      } finally {
        await client.close();
      }
      return sent;
    },
  };
}

/** The token file as the dispatcher container sees it, read from this machine through its process's root. */
function tokenFileOf(pod: PodInfo): { path: string; text: string } {
  assert.ok(pod.containerId, 'the container runs');
  const path = `/proc/${containerPid(pod.containerId)}/root${TOKEN_FILE}`;
  return { path, text: readFileSync(path, 'utf8') };
}

interface LogLine {
  level?: string | number;
  msg?: string;
  for?: string;
  source?: string;
  time?: string;
}

function parseLog(text: string): LogLine[] {
  return text
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as LogLine);
}

describe('a token that rotates (secure profile)', { timeout: 900_000 }, () => {
  let fx: E2E;
  let fn: FunctionServer;
  let secretKey: Buffer;
  let topic: string;
  const subscription = () => `${TRIGGER}-${fx.ns}`;
  const tokens: string[] = [];
  /** Logs of dispatcher pods that are gone by the time the last test looks (kubectl logs needs the pod). */
  const earlierLogs: string[] = [];

  const trigger = (secret: { name: string; key: string }) => ({
    apiVersion: 'kubeless.io/v1',
    kind: 'PulsarTrigger',
    metadata: { name: TRIGGER, namespace: fx.ns },
    spec: {
      pulsar: {
        topic,
        broker: node().pulsarSecureServiceUrl,
        adminUrl: node().pulsarSecureAdminUrl,
        authTokenSecretRef: secret,
        tls: { caConfigMapRef: { name: 'pulsar-ca', key: 'ca.pem' } },
      },
      kubeless: { function: fn.url },
      // Debug logs, so that the search for the token below covers everything the dispatcher can say.
      deployment: {
        spec: { template: { spec: { containers: [{ env: [{ name: 'LOG_LEVEL', value: 'debug' }] }] } } },
      },
    },
  });
  const secret = (name: string, key: string, token: string) => ({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name, namespace: fx.ns },
    type: 'Opaque',
    data: { [key]: Buffer.from(token).toString('base64') },
  });
  const onePod = async (): Promise<PodInfo | undefined> => {
    const pods = await fx.dispatcherPods(TRIGGER);
    return pods.length === 1 && pods[0]?.ready && !pods[0].terminating ? pods[0] : undefined;
  };
  // What `kubectl logs` would show (fixture.ts containerLog says why it is read from the node).
  const podLog = async (pod: PodInfo) => {
    assert.ok(pod.containerId, 'the container started');
    return containerLog(pod.containerId);
  };
  const delivered = (sent: readonly string[]) => sent.every((p) => bodies(fn).includes(p));

  before(async () => {
    fx = await startE2E('token');
    await fx.installController();
    fn = await fx.startFunction('rotation');
    topic = `persistent://public/default/e2e-token-rotation-${fx.suffix}`;
    secretKey = readFileSync(pulsarSecure().secretKeyFile);
    await fx.apply({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'pulsar-ca', namespace: fx.ns },
      data: { 'ca.pem': readFileSync(pulsarSecure().caFile, 'utf8') },
    });
  });
  after(async () => {
    await fx?.close();
  });

  test('T1 replaced by T2 in the Secret: past T1’s expiry, the same container and broker connection deliver everything', async () => {
    // T1: the role `client` (produce and consume on public/default), short-lived.
    const t1 = signToken(secretKey, 'client', T1_LIFETIME_SECONDS);
    tokens.push(t1);
    await fx.apply(secret('pulsar-token', 'token', t1));
    await fx.apply(trigger({ name: 'pulsar-token', key: 'token' }));
    await waitUntil(
      'the dispatcher subscribed with T1 and is ready',
      async () => (await onePod()) !== undefined,
      TIMEOUT,
      fx,
    );
    const p0 = (await onePod())!;

    // The mounted file: T1, root's, group 65532, mode 0440 — and the dispatcher (uid 65532) read it to subscribe.
    const file = tokenFileOf(p0);
    assert.equal(file.text.trim(), t1);
    const st = statSync(file.path);
    assert.equal(st.mode & 0o777, 0o440, `mode ${(st.mode & 0o777).toString(8)}`);
    assert.equal(st.uid, 0);
    assert.equal(st.gid, 65532);
    const reads0 = parseLog(await podLog(p0)).filter((l) => l.msg === 'read the Pulsar token');
    assert.ok(reads0.length > 0, 'the dispatcher logged its token reads (debug level is on)');
    assert.ok(
      reads0.every((l) => l.source === `token file ${TOKEN_FILE}`),
      JSON.stringify(reads0),
    );

    const first = await publish(topic, 5, 'with-t1', true);
    await waitUntil('the messages published under T1 were delivered', () => delivered(first), TIMEOUT, fx);
    const [c0, ...others] = await consumers(topic, subscription());
    assert.ok(c0 && others.length === 0, 'one consumer on the subscription');

    // Rotation: the Secret now holds T2. The kubelet brings it into the mounted file; nothing restarts.
    const t2 = signToken(secretKey, 'client', LATER_LIFETIME_SECONDS);
    tokens.push(t2);
    const trickle = publishUntilStopped(topic, 'across-expiry');
    let during: string[] = [];
    try {
      await fx.apply(secret('pulsar-token', 'token', t2));
      await waitUntil(
        'the kubelet updated the mounted file to T2',
        () => tokenFileOf(p0).text.trim() === t2,
        TIMEOUT,
        fx,
      );
      // The broker challenges a connection only once its token has expired (it checks every 5 s); the dispatcher
      // answers from the file. Its log says so (by source and purpose, never the token).
      await waitUntil(
        'the dispatcher answered the AUTH_CHALLENGE that follows T1’s expiry',
        async () =>
          parseLog(await podLog(p0)).some(
            (l) => l.msg === 'read the Pulsar token' && l.for === 'AUTH_CHALLENGE',
          ),
        TIMEOUT,
        fx,
      );
    } finally {
      during = await trickle.stop();
    }
    const last = await publish(topic, 5, 'after-expiry', true);
    await waitUntil(
      'every message published across T1’s expiry was delivered',
      () => delivered([...during, ...last]),
      TIMEOUT,
      fx,
    );

    // Accepted, not merely answered: the broker closes a connection whose answer is not a valid token, and the
    // consumer would have come back on a new connection (another address or connectedSince).
    const [c1, ...more] = await consumers(topic, subscription());
    assert.ok(c1 && more.length === 0, 'still one consumer');
    assert.deepEqual(
      { address: c1.address, connectedSince: c1.connectedSince },
      { address: c0.address, connectedSince: c0.connectedSince },
      'the consumer kept its broker connection past T1’s expiry',
    );
    const p1 = (await onePod())!;
    assert.equal(p1.uid, p0.uid, 'the same pod');
    assert.equal(p1.restarts, 0, 'the container never restarted');
    assert.equal(p1.containerId, p0.containerId, 'the same container');
  });

  test('another Secret in authTokenSecretRef rolls the Deployment; messages keep flowing', async () => {
    const p0 = (await onePod())!;
    const hash0 = p0.pod.metadata?.labels?.['pod-template-hash'];
    assert.ok(hash0);
    earlierLogs.push(await podLog(p0));
    const t3 = signToken(secretKey, 'client', LATER_LIFETIME_SECONDS);
    tokens.push(t3);
    await fx.apply(secret('pulsar-token-2', 'jwt', t3));
    const trickle = publishUntilStopped(topic, 'during-rollout');
    let p1: PodInfo | undefined;
    let during: string[] = [];
    try {
      await fx.apply(trigger({ name: 'pulsar-token-2', key: 'jwt' }));
      await waitUntil(
        'a new pod from a new template replaced the old one',
        async () => {
          const p = await onePod();
          const d = await fx.deployment(TRIGGER);
          if (!p || p.uid === p0.uid || p.pod.metadata?.labels?.['pod-template-hash'] === hash0) return false;
          if (d?.status?.updatedReplicas !== 1 || d.status.readyReplicas !== 1) return false;
          p1 = p;
          return true;
        },
        TIMEOUT,
        fx,
      );
    } finally {
      during = await trickle.stop();
    }
    await waitUntil(
      'the messages published during the rollout were delivered',
      () => delivered(during),
      TIMEOUT,
      fx,
    );
    assert.ok(p1);
    assert.equal(tokenFileOf(p1).text.trim(), t3, 'the new pod mounts the other Secret’s key');
    const d = await fx.deployment(TRIGGER);
    const pod = d?.spec?.template.spec;
    assert.deepEqual(
      pod?.volumes?.find((v) => v.name === 'pulsar-auth-token')?.secret?.secretName,
      'pulsar-token-2',
    );
    const env = pod?.containers[0]?.env ?? [];
    const ref = env.find((e) => e.name === 'PULSAR_AUTH_TOKEN')?.valueFrom?.secretKeyRef;
    assert.deepEqual({ name: ref?.name, key: ref?.key }, { name: 'pulsar-token-2', key: 'jwt' });
    const sent = await publish(topic, 5, 'with-t3', true);
    await waitUntil(
      'the messages published after the rollout were delivered',
      () => delivered(sent),
      TIMEOUT,
      fx,
    );
  });

  test('no token anywhere: controller and dispatcher logs at debug level, Events, status, the Deployment', async () => {
    assert.equal(tokens.length, 3, 'the tests above ran');
    const controller = await fx.controllerPod();
    const controllerContainer = controller?.status?.containerStatuses?.[0]?.containerID?.replace(
      /^\w+:\/\//,
      '',
    );
    assert.ok(controllerContainer, 'the controller container runs');
    const controllerLog = containerLog(controllerContainer);
    // The fixture's chart values run the controller at debug level: its log has everything it says at that level.
    assert.ok(
      controller?.spec?.containers[0]?.args?.includes('--log-level=debug'),
      'the controller runs at debug level',
    );
    assert.ok(parseLog(controllerLog).length > 0, 'the controller logged');
    // The current pod's (the first one's was kept before the rollout replaced it).
    const dispatcherLogs = await Promise.all(
      (await fx.dispatcherPods(TRIGGER)).filter((p) => p.containerId).map((p) => podLog(p)),
    );
    assert.ok(dispatcherLogs.length > 0);
    const places: Record<string, string> = {
      'controller log': controllerLog,
      'dispatcher logs': [...earlierLogs, ...dispatcherLogs].join('\n'),
      'the PulsarTrigger (spec and status)': await fx.kubectl([
        'get',
        'pulsartriggers',
        '-n',
        fx.ns,
        '-o',
        'json',
      ]),
      'Events (trigger namespace)': await fx.kubectl(['get', 'events', '-n', fx.ns, '-o', 'json']),
      'Events (controller namespace)': await fx.kubectl(['get', 'events', '-n', fx.releaseNs, '-o', 'json']),
      'Deployments, ReplicaSets and Pods': await fx.kubectl([
        'get',
        'deployments,replicasets,pods',
        '-n',
        fx.ns,
        '-o',
        'json',
      ]),
    };
    for (const [where, text] of Object.entries(places)) {
      assert.ok(text.length > 0, `${where}: collected`);
      tokens.forEach((token, i) => {
        for (const form of tokenForms(token)) {
          assert.ok(!text.includes(form), `T${i + 1} (or its base64, or its signature) appears in ${where}`);
        }
      });
    }
    // The Deployment's env names the Secret and the file, never a value of the token.
    const env = (await fx.deployment(TRIGGER))?.spec?.template.spec?.containers[0]?.env ?? [];
    const byName = new Map(env.map((e) => [e.name, e]));
    assert.equal(byName.get('PULSAR_AUTH_TOKEN')?.value, undefined);
    assert.ok(byName.get('PULSAR_AUTH_TOKEN')?.valueFrom?.secretKeyRef);
    assert.equal(byName.get('PULSAR_AUTH_TOKEN_FILE')?.value, TOKEN_FILE);
  });
});
