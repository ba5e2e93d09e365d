// Who may write PulsarTriggers, the Kubernetes way: the chart's aggregated ClusterRoles (templates/user-roles.yaml)
// applied to the real API server, whose kube-controller-manager runs the clusterrole-aggregation controller. Then a
// user bound to the built-in `edit` (or `admin`) ClusterRole in a namespace may write triggers there and nowhere
// else, and a `view` user may read them but not write them. Users are impersonated by the admin, so every check
// and every create below is a real request authorized as that user.

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { serverKubeVersion } from '../../support/chart-identity.ts';
import {
  chartDir,
  randomSuffix,
  run,
  runOk,
  seedCrd,
  type Tools,
  tempDir,
  tools,
} from '../../support/packaging.ts';

const suffix = randomSuffix();
const ns = `kpt-users-${suffix}`;
const elsewhere = `kpt-users-other-${suffix}`;
const release = `kpt-users-${suffix}`;
const users = { edit: `kpt-edit-${suffix}`, admin: `kpt-admin-${suffix}`, view: `kpt-view-${suffix}` };
const home = tempDir('user-roles');
let t: Tools;
let manifests = '';

const kubectl = (args: string[], input?: string) =>
  runOk(t.kubectl, args, input === undefined ? { env: t.env } : { env: t.env, input });

/** `kubectl auth can-i` as a user: true for yes. */
async function can(user: string, verb: string, resource: string, namespace = ns, subresource?: string) {
  const r = await run(
    t.kubectl,
    [
      'auth',
      'can-i',
      verb,
      resource,
      '--namespace',
      namespace,
      `--as=${user}`,
      ...(subresource ? [`--subresource=${subresource}`] : []),
    ],
    { env: t.env },
  );
  assert.ok(r.code === 0 || r.code === 1, r.stderr);
  return r.code === 0;
}

async function eventually(what: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

const triggerYaml = (name: string) =>
  JSON.stringify({
    apiVersion: 'kubeless.io/v1',
    kind: 'PulsarTrigger',
    metadata: { name, namespace: ns },
    spec: {
      pulsar: { topic: 'persistent://public/default/t', broker: 'pulsar://pulsar.addr:6650' },
      kubeless: { function: 'http://f.default:8080' },
    },
  });

before(async () => {
  t = tools(home.dir);
  await kubectl([
    'apply',
    '--server-side',
    '--force-conflicts',
    '--field-manager=kpt-packaging-tests',
    '-f',
    seedCrd,
  ]);
  const kubeVersion = await serverKubeVersion(t.kubectl, t.kubeconfig);
  const values = join(home.dir, 'values.json');
  writeFileSync(values, JSON.stringify({}));
  manifests = (
    await runOk(
      t.helm,
      [
        'template',
        release,
        chartDir,
        '--namespace',
        'kpt-system',
        '--kube-version',
        kubeVersion,
        '--values',
        values,
        '--show-only',
        'templates/user-roles.yaml',
      ],
      { env: t.env },
    )
  ).stdout;
  await kubectl(['apply', '--server-side', '--field-manager=kpt-packaging-tests', '-f', '-'], manifests);
  for (const n of [ns, elsewhere]) await kubectl(['create', 'namespace', n]);
  for (const [role, user] of Object.entries(users)) {
    await kubectl([
      'create',
      'rolebinding',
      `${role}-${suffix}`,
      `--clusterrole=${role}`,
      `--user=${user}`,
      '-n',
      ns,
    ]);
  }
});

after(async () => {
  try {
    if (manifests) await kubectl(['delete', '--ignore-not-found', '-f', '-'], manifests);
    await kubectl(['delete', 'namespace', ns, elsewhere, '--ignore-not-found', '--wait=false']);
  } finally {
    home.remove();
  }
});

test('the chart renders two aggregated ClusterRoles: edit (admin and edit) and view', () => {
  const roles = parseAllDocuments(manifests)
    .map(
      (d) => d.toJS() as { kind?: string; metadata: { name: string; labels: Record<string, string> } } | null,
    )
    .filter((d) => d?.kind === 'ClusterRole');
  assert.deepEqual(
    roles.map((r) => [
      r!.metadata.name,
      Object.keys(r!.metadata.labels)
        .filter((k) => k.startsWith('rbac.authorization.k8s.io/'))
        .sort(),
    ]),
    [
      [
        `${release}-kubeless-pulsar-trigger-kpt-system-edit`,
        ['rbac.authorization.k8s.io/aggregate-to-admin', 'rbac.authorization.k8s.io/aggregate-to-edit'],
      ],
      [`${release}-kubeless-pulsar-trigger-kpt-system-view`, ['rbac.authorization.k8s.io/aggregate-to-view']],
    ],
  );
});

test('an edit (or admin) user in a namespace may write triggers there, and only there', async () => {
  const TRIGGERS = 'pulsartriggers.kubeless.io';
  // Aggregation is the kube-controller-manager's: wait until it has added the rules.
  await eventually('edit aggregated', () => can(users.edit, 'create', TRIGGERS));
  await eventually('admin aggregated', () => can(users.admin, 'create', TRIGGERS));
  for (const user of [users.edit, users.admin]) {
    for (const verb of ['create', 'update', 'patch', 'delete', 'get', 'list', 'watch'])
      assert.equal(await can(user, verb, TRIGGERS), true, `${user} ${verb}`);
    assert.equal(
      await can(user, 'create', TRIGGERS, elsewhere),
      false,
      `${user} create in another namespace`,
    );
    // Status is the controller's to write.
    assert.equal(await can(user, 'update', TRIGGERS, ns, 'status'), false, `${user} update status`);
  }
  // A real create, get and delete as the edit user.
  await kubectl(['create', '-f', '-', `--as=${users.edit}`], triggerYaml('by-edit'));
  const got = await kubectl([
    'get',
    'pulsartrigger',
    'by-edit',
    '-n',
    ns,
    '-o',
    'name',
    `--as=${users.edit}`,
  ]);
  assert.equal(got.stdout.trim(), 'pulsartrigger.kubeless.io/by-edit');
  await kubectl(['delete', 'pulsartrigger', 'by-edit', '-n', ns, `--as=${users.edit}`, '--wait=false']);
});

test('a view user may read triggers but not write them', async () => {
  const TRIGGERS = 'pulsartriggers.kubeless.io';
  await eventually('view aggregated', () => can(users.view, 'list', TRIGGERS));
  for (const verb of ['get', 'list', 'watch'])
    assert.equal(await can(users.view, verb, TRIGGERS), true, `view ${verb}`);
  for (const verb of ['create', 'update', 'patch', 'delete'])
    assert.equal(await can(users.view, verb, TRIGGERS), false, `view ${verb}`);
  const listed = await kubectl(['get', 'pulsartriggers', '-n', ns, '-o', 'name', `--as=${users.view}`]);
  assert.equal(listed.code, 0);
  const refused = await run(t.kubectl, ['create', '-f', '-', `--as=${users.view}`], {
    env: t.env,
    input: triggerYaml('by-view'),
  });
  assert.notEqual(refused.code, 0);
  assert.match(refused.stderr, /forbidden/i);
});
