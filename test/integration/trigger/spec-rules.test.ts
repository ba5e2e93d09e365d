// The rules of spec.pulsar.adminUrl, spec.delivery.deleteSubscription and spec.autoscaling, on the real API server
// with the generated CRD: each value goes to both sides, the API server (schema and CEL) and validateSpec (zod),
// which must agree on refusing it; where the API server's refusal is a CEL rule, it says what zod says, on the same
// field. Accepted values are sent as a server-side dry run, so nothing is created; no controller runs here.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { validateSpec } from '../../../src/trigger/spec.ts';
import { type Any, applyCrd, kubectl, kubectlTry, namespace, trigger } from '../controller/harness.ts';

let ns: string;

before(async () => {
  await applyCrd();
  ns = await namespace('kpt-spec-rules');
});

after(async () => {
  await kubectl(['delete', 'namespace', ns, '--wait=false', '--ignore-not-found']);
});

interface Case {
  what: string;
  /** Changes a seed-style trigger's spec. */
  edit: (spec: Any) => void;
  refused: boolean;
  /** For a CEL rule: the field the API server names (zod names the same one, with the same message). */
  cel?: string;
}

const autoscaling = (a: Any) => (spec: Any) => {
  spec.autoscaling = a;
};
const admin = (url: string) => (spec: Any) => {
  spec.pulsar.adminUrl = url;
};

const cases: Case[] = [
  { what: 'a seed trigger', edit: () => {}, refused: false },
  {
    what: "the seed's second manifest",
    edit: (s) => {
      s.deployment = {
        metadata: { namespace: 'another-namespace' },
        spec: { template: { spec: { containers: [{ resources: { limits: { cpu: 4, memory: '1Gi' } } }] } } },
      };
    },
    refused: false,
  },
  {
    what: 'replicas without autoscaling',
    edit: (s) => {
      s.deployment = { spec: { replicas: 2 } };
    },
    refused: false,
  },
  { what: 'adminUrl http', edit: admin('http://pulsar.addr:8080'), refused: false },
  { what: 'adminUrl https with a path', edit: admin('https://proxy.example/pulsar/'), refused: false },
  { what: 'adminUrl IPv6', edit: admin('http://[::1]:8080'), refused: false },
  {
    what: 'adminUrl pulsar://',
    edit: admin('pulsar://pulsar.addr:6650'),
    refused: true,
    cel: 'spec.pulsar.adminUrl',
  },
  {
    what: 'adminUrl port 0',
    edit: admin('http://pulsar.addr:0'),
    refused: true,
    cel: 'spec.pulsar.adminUrl',
  },
  {
    what: 'adminUrl port 65536',
    edit: admin('http://pulsar.addr:65536'),
    refused: true,
    cel: 'spec.pulsar.adminUrl',
  },
  {
    what: 'adminUrl query',
    edit: admin('http://pulsar.addr:8080/?x=1'),
    refused: true,
    cel: 'spec.pulsar.adminUrl',
  },
  {
    what: 'adminUrl fragment',
    edit: admin('http://pulsar.addr:8080#x'),
    refused: true,
    cel: 'spec.pulsar.adminUrl',
  },
  {
    what: 'adminUrl host and fragment',
    edit: admin('http://pulsar.addr#x'),
    refused: true,
    cel: 'spec.pulsar.adminUrl',
  },
  {
    what: 'adminUrl path and fragment',
    edit: admin('http://pulsar.addr/a#x'),
    refused: true,
    cel: 'spec.pulsar.adminUrl',
  },
  {
    what: 'adminUrl query without a path',
    edit: admin('http://pulsar.addr?x'),
    refused: true,
    cel: 'spec.pulsar.adminUrl',
  },
  {
    what: 'adminUrl user info',
    edit: admin('https://u:p@pulsar.addr'),
    refused: true,
    cel: 'spec.pulsar.adminUrl',
  },
  { what: 'adminUrl empty', edit: admin(''), refused: true, cel: 'spec.pulsar.adminUrl' },
  {
    what: 'deleteSubscription true',
    edit: (s) => {
      s.delivery = { deleteSubscription: true };
    },
    refused: false,
  },
  {
    what: 'deleteSubscription "yes"',
    edit: (s) => {
      s.delivery = { deleteSubscription: 'yes' };
    },
    refused: true,
  },
  { what: 'autoscaling {}', edit: autoscaling({}), refused: false },
  {
    what: 'autoscaling, every field',
    edit: autoscaling({
      minReplicas: 0,
      maxReplicas: 5,
      backlogPerReplica: 100,
      activationBacklog: 2,
      pollingInterval: '15s',
      cooldownPeriod: '2m',
    }),
    refused: false,
  },
  { what: 'minReplicas -1', edit: autoscaling({ minReplicas: -1 }), refused: true },
  { what: 'maxReplicas 0', edit: autoscaling({ maxReplicas: 0 }), refused: true },
  { what: 'maxReplicas 10001', edit: autoscaling({ maxReplicas: 10_001 }), refused: true },
  { what: 'backlogPerReplica 0', edit: autoscaling({ backlogPerReplica: 0 }), refused: true },
  { what: 'activationBacklog -1', edit: autoscaling({ activationBacklog: -1 }), refused: true },
  {
    what: 'maxReplicas < minReplicas',
    edit: autoscaling({ minReplicas: 3, maxReplicas: 2 }),
    refused: true,
    cel: 'spec.autoscaling.maxReplicas',
  },
  {
    what: 'minReplicas above the default maxReplicas',
    edit: autoscaling({ minReplicas: 101 }),
    refused: true,
    cel: 'spec.autoscaling.maxReplicas',
  },
  { what: 'minReplicas 100 alone', edit: autoscaling({ minReplicas: 100 }), refused: false },
  {
    what: 'pollingInterval 0s',
    edit: autoscaling({ pollingInterval: '0s' }),
    refused: true,
    cel: 'spec.autoscaling.pollingInterval',
  },
  { what: 'pollingInterval 500ms', edit: autoscaling({ pollingInterval: '500ms' }), refused: true },
  { what: 'cooldownPeriod 1.5s', edit: autoscaling({ cooldownPeriod: '1.5s' }), refused: true },
  { what: 'cooldownPeriod 0s', edit: autoscaling({ cooldownPeriod: '0s' }), refused: false },
  { what: 'pollingInterval 1h30m', edit: autoscaling({ pollingInterval: '1h30m' }), refused: false },
  {
    what: 'autoscaling with spec.deployment.spec.replicas',
    edit: (s) => {
      s.autoscaling = {};
      s.deployment = { spec: { replicas: 2 } };
    },
    refused: true,
    cel: 'spec.deployment.spec.replicas',
  },
  {
    what: 'autoscaling with the rest of spec.deployment',
    edit: (s) => {
      s.autoscaling = {};
      s.deployment = {
        metadata: { labels: { a: 'b' } },
        spec: { template: { spec: { priorityClassName: 'x' } } },
      };
    },
    refused: false,
  },
  {
    what: 'autoscaling on a non-persistent topic',
    edit: (s) => {
      s.autoscaling = {};
      s.pulsar.topic = 'non-persistent://public/default/t';
    },
    refused: true,
    cel: 'spec.autoscaling',
  },
  {
    what: 'autoscaling on an Exclusive subscription',
    edit: (s) => {
      s.autoscaling = { maxReplicas: 2 };
      s.delivery = { subscriptionType: 'Exclusive' };
    },
    refused: true,
    cel: 'spec.autoscaling.maxReplicas',
  },
  {
    what: 'autoscaling on an Exclusive subscription, maxReplicas 1',
    edit: (s) => {
      s.autoscaling = { maxReplicas: 1 };
      s.delivery = { subscriptionType: 'Exclusive' };
    },
    refused: false,
  },
];

test(`${cases.length} values of the new fields: the API server and validateSpec agree, naming the field`, async () => {
  for (const [i, c] of cases.entries()) {
    const body = JSON.parse(trigger(`rules-${i}`, ns)) as Any;
    c.edit(body.spec);
    const zod = validateSpec(body.spec);
    const zodMessages = zod.ok ? [] : zod.error.issues.map((x) => `${x.path}: ${x.message}`);
    assert.equal(!zod.ok, c.refused, `${c.what}: zod ${zodMessages.join('; ')}`);
    const args = ['apply', '--server-side', ...(c.refused ? [] : ['--dry-run=server']), '-f', '-'];
    const r = await kubectlTry(args, JSON.stringify(body));
    assert.equal(r.code !== 0, c.refused, `${c.what}: API server ${r.stderr}`);
    if (c.cel && !zod.ok) {
      assert.equal(zod.error.issues.length, 1, zodMessages.join('; '));
      const issue = zod.error.issues[0]!;
      assert.equal(issue.path, c.cel, c.what);
      assert.ok(
        r.stderr.includes(`${c.cel}: Invalid value: `),
        `${c.what}: the API server names ${c.cel}\n${r.stderr}`,
      );
      assert.ok(
        r.stderr.includes(issue.message),
        `${c.what}: the API server's message is zod's\n${r.stderr}`,
      );
    }
  }
});
