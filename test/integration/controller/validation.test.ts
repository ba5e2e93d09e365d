// Inputs checked at the door, against the real API server and the controller run as a process:
// - the broker and function URL port rules (CEL in the CRD) refuse what the zod side refuses, with the same message
//   on the same field, and accept what it accepts;
// - spec.deployment values of the wrong type (stored by the API server, free-form there) are reported as
//   Ready=False InvalidSpec naming each field, and nothing is written for the trigger, new or updated.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { validateSpec } from '../../../src/trigger/spec.ts';
import {
  type Any,
  applyCrd,
  type ControllerProcess,
  eventually,
  getJson,
  kubectl,
  kubectlTry,
  namespace,
  startControllerProcess,
  trigger,
} from './harness.ts';

let ns: string;
let ctl: ControllerProcess;

const dep = (name: string) => getJson<Any>(['get', 'deployment', name, '-n', ns]);
const pt = (name: string) => getJson<Any>(['get', 'pulsartrigger', name, '-n', ns]);
const ready = (t: Any) => t?.status?.conditions?.find((c: Any) => c.type === 'Ready');

/** The controller's answered writes of one kind (Deployment, Secret), from its /metrics. */
async function writesOf(kind: string): Promise<number> {
  let sum = 0;
  for (const line of (await ctl.metrics()).split('\n')) {
    if (line.startsWith('kpt_controller_writes_total{') && line.includes(`kind="${kind}"`))
      sum += Number(line.split(' ').pop());
  }
  return sum;
}

/** Waits for the trigger's Ready condition to report this generation with this reason. */
function reported(name: string, reason: string, generation: number) {
  return eventually(`${name}: ${reason} at generation ${generation}`, async () => {
    const t = await pt(name);
    const c = ready(t);
    return c?.reason === reason && c.observedGeneration === generation ? t : undefined;
  });
}

before(async () => {
  await applyCrd();
  ns = await namespace('kpt-validate');
  ctl = await startControllerProcess({ namespaces: [ns], leaseNamespace: ns });
});

after(async () => {
  const code = await ctl?.stop();
  if (code !== 0) process.stderr.write(ctl.logs());
  await kubectl(['delete', 'namespace', ns, '--wait=false', '--ignore-not-found']);
});

// Each value goes to both sides: the API server (CEL) and validateSpec (zod) must agree on refusing it, and on the
// message for the field.
const urls: { field: 'broker' | 'function'; value: string; refused: boolean }[] = [
  { field: 'broker', value: 'pulsar://pulsar.addr:6650', refused: false },
  { field: 'broker', value: 'pulsar+ssl://pulsar.addr:6651', refused: false },
  { field: 'broker', value: 'pulsar://pulsar.addr', refused: false },
  { field: 'broker', value: 'pulsar://a:6650,b:6651/', refused: false },
  { field: 'broker', value: 'pulsar://[::1]:6650', refused: false },
  { field: 'broker', value: 'pulsar://b:0', refused: true },
  { field: 'broker', value: 'pulsar://b:65536', refused: true },
  { field: 'broker', value: 'pulsar://b:99999999999', refused: true },
  { field: 'broker', value: 'pulsar://b:x', refused: true },
  { field: 'broker', value: 'pulsar://b:', refused: true },
  { field: 'broker', value: 'pulsar://a:6650,b:70000', refused: true },
  { field: 'broker', value: 'pulsar://[::1]:0', refused: true },
  { field: 'broker', value: 'http://b:6650', refused: true },
  { field: 'function', value: 'http://myfunction.default:8080', refused: false },
  { field: 'function', value: 'https://f.d', refused: false },
  { field: 'function', value: 'http://f.d:65535/path?q=1', refused: false },
  { field: 'function', value: 'http://u:p@f.d:1/', refused: false },
  { field: 'function', value: 'http://[::1]:8080', refused: false },
  { field: 'function', value: 'http://f.d:0', refused: true },
  { field: 'function', value: 'http://f.d:65536', refused: true },
  { field: 'function', value: 'https://f.d:99999999999/x', refused: true },
  { field: 'function', value: 'http://[::1]:70000', refused: true },
  { field: 'function', value: 'http://u:p@f.d:70000/x', refused: true },
  { field: 'function', value: 'http://f.d:abc', refused: true },
  { field: 'function', value: 'ftp://f.d:99999', refused: true },
];

test(`${urls.length} broker and function URLs: the API server and validateSpec agree, naming the field`, async () => {
  for (const [i, u] of urls.entries()) {
    const body = JSON.parse(trigger(`url-${i}`, ns)) as Any;
    if (u.field === 'broker') body.spec.pulsar.broker = u.value;
    else body.spec.kubeless.function = u.value;
    const path = u.field === 'broker' ? 'spec.pulsar.broker' : 'spec.kubeless.function';
    const zod = validateSpec(body.spec);
    const zodMessages = zod.ok ? [] : zod.error.issues.map((x) => `${x.path}: ${x.message}`);
    assert.equal(!zod.ok, u.refused, `${u.value}: zod ${zodMessages.join('; ')}`);
    // Accepted values are checked with a server-side dry run, so nothing is created for them.
    const args = ['apply', '--server-side', ...(u.refused ? [] : ['--dry-run=server']), '-f', '-'];
    const r = await kubectlTry(args, JSON.stringify(body));
    assert.equal(r.code !== 0, u.refused, `${u.value}: API server ${r.stderr}`);
    if (!zod.ok) {
      assert.equal(zod.error.issues.length, 1, zodMessages.join('; '));
      const issue = zod.error.issues[0]!;
      assert.equal(issue.path, path);
      assert.ok(
        r.stderr.includes(`${path}: Invalid value: ${JSON.stringify(u.value)}: ${issue.message}`),
        `${u.value}: the API server's message is zod's\n${r.stderr}`,
      );
    }
  }
});

test('a new trigger whose spec.deployment has values of the wrong type: InvalidSpec per field, nothing written', async () => {
  await kubectl(
    ['apply', '-f', '-'],
    trigger('bad-types', ns, {
      deployment: {
        metadata: { labels: { team: 7 } },
        spec: {
          replicas: '2',
          template: {
            spec: {
              containers: [
                {
                  env: { EXTRA: 'x' },
                  ports: [{ containerPort: 'x' }],
                  resources: { limits: { cpu: true } },
                },
              ],
              volumes: { name: 'data' },
            },
          },
        },
      },
    }),
  );
  const t = await reported('bad-types', 'InvalidSpec', 1);
  assert.equal(ready(t).status, 'False');
  const message: string = ready(t).message;
  for (const expected of [
    'spec.deployment.metadata.labels.team: expected a string, got a number',
    'spec.deployment.spec.replicas: expected an integer, got a string',
    'spec.deployment.spec.template.spec.containers[0].env: expected a list, got an object',
    'spec.deployment.spec.template.spec.containers[0].ports[0].containerPort: expected an integer, got a string',
    'spec.deployment.spec.template.spec.containers[0].resources.limits.cpu: expected a quantity (a number, or a string like 500m or 1Gi), got a boolean',
    'spec.deployment.spec.template.spec.volumes: expected a list, got an object',
  ])
    assert.ok(message.includes(expected), `${expected}\nin: ${message}`);
  // The pass that reported it is the only one there has been for this, the first trigger here: no Deployment and
  // no token Secret were written, and none exists.
  assert.equal(await writesOf('Deployment'), 0);
  assert.equal(await writesOf('Secret'), 0);
  assert.equal(await dep('bad-types'), undefined);
  const events = await kubectl([
    'get',
    'events',
    '-n',
    ns,
    '--field-selector',
    'reason=InvalidSpec',
    '-o',
    'json',
  ]);
  assert.ok(
    (JSON.parse(events).items as Any[]).some(
      (e) => e.involvedObject.name === 'bad-types' && e.type === 'Warning',
    ),
  );
});

test('a null where the Deployment is built (spec.template.spec) is reported, not a failed render', async () => {
  // Created, not applied: client-side `kubectl apply` drops nulls from what it sends; the API server keeps them.
  await kubectl(
    ['create', '-f', '-'],
    trigger('null-pod', ns, { deployment: { spec: { template: { spec: null } } } }),
  );
  const t = await reported('null-pod', 'InvalidSpec', 1);
  assert.equal(ready(t).message, 'spec.deployment.spec.template.spec: expected an object, got null');
  assert.equal(await dep('null-pod'), undefined);
});

test('an update with values of the wrong type leaves the running Deployment as it was; the fix applies', async () => {
  await kubectl(['apply', '-f', '-'], trigger('update', ns, { deployment: { spec: { replicas: 2 } } }));
  const before = await eventually('Deployment update', async () => {
    const d = await dep('update');
    return d?.spec?.replicas === 2 ? d : undefined;
  });
  const deploymentWrites = await writesOf('Deployment');
  await kubectl(
    ['apply', '-f', '-'],
    trigger('update', ns, {
      deployment: { spec: { replicas: 3, template: { spec: { containers: { image: 'other:1' } } } } },
    }),
  );
  const t = await reported('update', 'InvalidSpec', 2);
  assert.equal(
    ready(t).message,
    'spec.deployment.spec.template.spec.containers: expected a list, got an object',
  );
  // Not half-applied: the valid part (replicas: 3) is not written either.
  assert.equal(await writesOf('Deployment'), deploymentWrites);
  const still = await dep('update');
  assert.equal(still.metadata.generation, before.metadata.generation);
  assert.equal(still.spec.replicas, 2);
  assert.equal(
    still.metadata.annotations['kubeless.io/spec-hash'],
    before.metadata.annotations['kubeless.io/spec-hash'],
  );
  // Fixed: the Deployment follows and the condition no longer says InvalidSpec.
  await kubectl(
    ['apply', '-f', '-'],
    trigger('update', ns, {
      deployment: { spec: { replicas: 3, template: { spec: { containers: [{}] } } } },
    }),
  );
  await eventually(
    'Deployment update with 3 replicas',
    async () => (await dep('update'))?.spec?.replicas === 3,
  );
  await eventually('update no longer InvalidSpec', async () => {
    const c = ready(await pt('update'));
    return c?.observedGeneration === 3 && c.reason !== 'InvalidSpec';
  });
});
