// A trigger's Deployment in another namespace, against the real API server, with the controller running under the
// chart's RBAC (watched-namespaces mode: a Role per namespace and only the watched Namespaces readable, by name), so
// a grant the chart forgot shows up as a 403. The trigger is written by an unprivileged user who may write
// PulsarTriggers in namespace A and nothing else: pointing spec.deployment.metadata.namespace at B must not get it
// a Deployment there until B's owner opts in. The resync period is long (600 s): every re-evaluation seen here comes
// from the controller's watch on Namespaces.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { type ChartIdentity, installChartIdentity } from '../../support/chart-identity.ts';
import { kube } from '../../support/env.ts';
import { randomSuffix, run } from '../../support/packaging.ts';
import {
  type Any,
  applyCrd,
  type ControllerProcess,
  eventually,
  getJson,
  kubectl,
  startControllerProcess,
  trigger,
} from './harness.ts';

const ACCEPT = 'kubeless.io/accept-triggers-from';
const suffix = randomSuffix();
/** The trigger writer's namespace. */
const A = `kpt-xns-a-${suffix}`;
/** A namespace the writer has no rights in. */
const B = `kpt-xns-b-${suffix}`;
/** Stands for the seed README's `another-namespace` (names are unique on the shared API server). */
const ANOTHER = `kpt-xns-another-${suffix}`;

let id: ChartIdentity;
let ctl: ControllerProcess;

const dep = (name: string, ns: string) => getJson<Any>(['get', 'deployment', name, '-n', ns]);
const secret = (name: string, ns: string) => getJson<Any>(['get', 'secret', name, '-n', ns]);
const pt = (name: string) => getJson<Any>(['get', 'pulsartrigger', name, '-n', A]);
const ready = (t: Any) => t?.status?.conditions?.find((c: Any) => c.type === 'Ready');
const asUser = (args: string[], input?: string) => kubectl(args, input, kube().unprivilegedKubeconfig);

/** Waits for the trigger's Ready condition to have this reason; returns the trigger. */
const reasonIs = (name: string, reason: string) =>
  eventually<Any>(`${name} Ready reason ${reason}`, async () => {
    const t = await pt(name);
    return ready(t)?.reason === reason ? t : undefined;
  });

/** Our objects in a namespace (Deployments and Secrets carrying the controller's label). */
const ours = async (ns: string) =>
  (
    await kubectl([
      'get',
      'deployments,secrets',
      '-n',
      ns,
      '-l',
      'created-by=kubeless-pulsar-trigger',
      '-o',
      'name',
    ])
  ).trim();

const events = async (name: string, reason: string) =>
  ((
    await getJson<Any>([
      'get',
      'events',
      '-n',
      A,
      '--field-selector',
      `involvedObject.name=${name},reason=${reason}`,
    ])
  )?.items ?? []) as Any[];

/** `kubectl auth can-i` as the unprivileged user: true for yes. */
async function userCan(verb: string, resource: string, ns: string): Promise<boolean> {
  const r = await run(join(kube().binDir, 'kubectl'), [
    'auth',
    'can-i',
    verb,
    resource,
    '-n',
    ns,
    '--kubeconfig',
    kube().unprivilegedKubeconfig,
  ]);
  assert.ok(r.code === 0 || r.code === 1, r.stderr);
  return r.code === 0;
}

before(async () => {
  await applyCrd();
  id = await installChartIdentity({ watchNamespaces: [A, B, ANOTHER] });
  // The unprivileged user may write PulsarTriggers in A, and nothing else anywhere.
  await kubectl(
    ['apply', '-f', '-'],
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'List',
      items: [
        {
          apiVersion: 'rbac.authorization.k8s.io/v1',
          kind: 'Role',
          metadata: { name: 'trigger-writer', namespace: A },
          rules: [
            {
              apiGroups: ['kubeless.io'],
              resources: ['pulsartriggers'],
              verbs: ['create', 'update', 'patch', 'delete', 'get', 'list', 'watch'],
            },
          ],
        },
        {
          apiVersion: 'rbac.authorization.k8s.io/v1',
          kind: 'RoleBinding',
          metadata: { name: 'trigger-writer', namespace: A },
          roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'trigger-writer' },
          subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: 'kpt-unprivileged' }],
        },
      ],
    }),
  );
  await eventually('the user may create triggers in A', () =>
    userCan('create', 'pulsartriggers.kubeless.io', A),
  );
  ctl = await startControllerProcess({
    namespaces: [A, B, ANOTHER],
    leaseNamespace: id.namespace,
    leaseName: id.leaseName,
    kubeconfig: id.kubeconfig,
    extraArgs: ['--resync-period', '600'],
  });
});

after(async () => {
  // Triggers first, while the controller runs: one with the finalizer would hold its namespace's deletion.
  await kubectl(['delete', 'pulsartriggers', '--all', '-n', A, '--wait=true', '--timeout=60s']).catch(
    () => {},
  );
  const code = await ctl?.stop();
  if (code !== 0 || process.exitCode) process.stderr.write(ctl?.logs() ?? '');
  await id?.remove();
});

test('the user can write triggers in A but no Deployment in B: the premise of the escalation', async () => {
  assert.equal(await userCan('create', 'pulsartriggers.kubeless.io', A), true);
  assert.equal(await userCan('create', 'pulsartriggers.kubeless.io', B), false);
  assert.equal(await userCan('create', 'deployments.apps', B), false);
  assert.equal(await userCan('create', 'deployments.apps', A), false);
});

test('a trigger in A pointing at B gets nothing in B: Ready=False CrossNamespaceNotAllowed and an Event', async () => {
  await asUser(
    ['create', '-f', '-'],
    trigger('esc', A, {
      deployment: {
        metadata: { namespace: B },
        spec: { template: { spec: { containers: [{ image: 'attacker/image:1' }] } } },
      },
    }),
  );
  const t = await reasonIs('esc', 'CrossNamespaceNotAllowed');
  const r = ready(t);
  assert.equal(r.status, 'False');
  assert.match(
    r.message,
    new RegExp(`namespace "${B}" does not accept PulsarTriggers from namespace "${A}"`),
  );
  assert.ok(r.message.includes(`kubectl annotate namespace ${B} --overwrite ${ACCEPT}=${A} `), r.message);
  assert.ok(r.message.includes(`--allow-cross-namespace=${A}=${B}`), r.message);
  const ev = await eventually('the Warning Event', async () => {
    const list = await events('esc', 'CrossNamespaceNotAllowed');
    return list.length > 0 ? list : undefined;
  });
  assert.equal(ev[0].type, 'Warning');
  assert.equal(ev[0].message, r.message);
  // Decided before anything is written: nothing in B, no finalizer on the trigger, no status naming a Deployment.
  assert.equal(await ours(B), '');
  assert.equal(await dep('esc', B), undefined);
  assert.equal(await secret('esc-pulsar-auth-token', B), undefined);
  assert.equal(t.metadata.finalizers, undefined);
  assert.equal(t.status.deployment, undefined);
  assert.equal(await dep('esc', A), undefined);
  assert.doesNotMatch(ctl.logs(), /forbidden/i);
});

test("B's owner opts in by annotating B: the Deployment appears there", async () => {
  await kubectl(['annotate', 'namespace', B, `${ACCEPT}=${A}`]);
  const d = await eventually('Deployment esc in B', () => dep('esc', B));
  assert.equal(d.spec.template.spec.containers[0].image, 'attacker/image:1');
  assert.equal(
    d.metadata.ownerReferences,
    undefined,
    'another namespace: a finalizer, not an ownerReference',
  );
  assert.ok(await secret('esc-pulsar-auth-token', B));
  const t = await eventually<Any>('status naming the Deployment in B', async () => {
    const x = await pt('esc');
    return x?.status?.deployment?.namespace === B ? x : undefined;
  });
  assert.notEqual(ready(t).reason, 'CrossNamespaceNotAllowed');
  assert.deepEqual(t.metadata.finalizers, ['kubeless.io/pulsartrigger-cleanup']);
});

test('the annotation removed: the Deployment in B is deleted and the status says why', async () => {
  await kubectl(['annotate', 'namespace', B, `${ACCEPT}-`]);
  const t = await reasonIs('esc', 'CrossNamespaceNotAllowed');
  assert.match(ready(t).message, new RegExp(`does not accept PulsarTriggers from namespace "${A}"`));
  assert.match(ready(t).message, /one placed before is deleted/);
  // The controller deleted them before it wrote that status; deletion itself finishes on the API server's time.
  await eventually('Deployment and Secret gone from B', async () => (await ours(B)) === '');
  const now = await eventually<Any>('finalizer removed and status without a Deployment', async () => {
    const x = await pt('esc');
    return x && !x.metadata.finalizers && !x.status?.deployment ? x : undefined;
  });
  assert.equal(ready(now).reason, 'CrossNamespaceNotAllowed');
  assert.ok((await events('esc', 'CrossNamespaceNotAllowed')).length >= 2, 'an Event for the refusal again');
  assert.doesNotMatch(ctl.logs(), /forbidden/i);
});

// The seed README's second manifest, as documented (its namespaces stand in: `default` is A, `another-namespace`
// is ANOTHER), written by the user who may write triggers in A.
const seedManifest = `apiVersion: kubeless.io/v1
kind: PulsarTrigger
metadata:
  name: mytrigger
  namespace: ${A}
spec:
  pulsar:
    topic: persistent://public/default/mytopic
    broker: pulsar://pulsar.addr:6650
    auth-token: nnn

  kubeless:
    function: http://myfunction.default:8080

  ## Override any deployment spec from the default template
  deployment:
    metadata:
      namespace: ${ANOTHER}
    spec:
      template:
        spec:
          containers:
            - resources:
                limits:
                  cpu: 4
                  memory: 1Gi
                requests:
                  cpu: 1
                  memory: 512Mi
`;

test("the seed README's manifest with a Deployment in another-namespace applies, and works once that opts in", async () => {
  await asUser(['apply', '-f', '-'], seedManifest);
  await reasonIs('mytrigger', 'CrossNamespaceNotAllowed');
  assert.equal(await dep('mytrigger', ANOTHER), undefined);
  // The command the README and the status message give.
  await kubectl(['annotate', 'namespace', ANOTHER, '--overwrite', `${ACCEPT}=${A}`]);
  const d = await eventually('Deployment mytrigger in another-namespace', () => dep('mytrigger', ANOTHER));
  assert.deepEqual(d.spec.template.spec.containers[0].resources, {
    limits: { cpu: '4', memory: '1Gi' },
    requests: { cpu: '1', memory: '512Mi' },
  });
  assert.ok(await secret('mytrigger-pulsar-auth-token', ANOTHER));
  // Deleting the trigger takes its Deployment in the other namespace with it (the finalizer).
  await asUser(['delete', 'pulsartrigger', 'mytrigger', '-n', A, '--wait=true', '--timeout=60s']);
  assert.equal(await dep('mytrigger', ANOTHER), undefined);
  assert.equal(await secret('mytrigger-pulsar-auth-token', ANOTHER), undefined);
});
