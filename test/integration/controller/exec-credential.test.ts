// A kubeconfig whose user is an exec credential plugin (as EKS, GKE and AKS kubeconfigs are), against the real API
// server: the controller runs the plugin, its first token is refused (401), the plugin is run again and the
// controller goes on with the new token: it leads, and it creates a trigger's Deployment. The token never reaches
// its logs.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { kube } from '../../support/env.ts';
import {
  type Any,
  applyCrd,
  type ControllerProcess,
  eventually,
  getJson,
  kubectl,
  namespace,
  startControllerProcess,
  trigger,
} from './harness.ts';

let ctl: ControllerProcess | undefined;
let ns: string;
const dir = mkdtempSync(join(tmpdir(), 'kpt-exec-'));
const runsFile = join(dir, 'runs');

before(async () => {
  await applyCrd();
  ns = await namespace('kpt-exec');
});

after(async () => {
  await ctl?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test('an exec credential plugin: a refused first token is renewed, and the controller works on', async () => {
  const admin = parseYaml(readFileSync(kube().kubeconfig, 'utf8')) as Any;
  const token: string = admin.users[0].user.token;
  assert.ok(token, 'the admin kubeconfig has a token');
  // The plugin: a wrong token on its first run, the admin token from then on; it counts its runs.
  const plugin = join(dir, 'get-token.mjs');
  writeFileSync(
    plugin,
    `#!${process.execPath}
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
const n = (existsSync(${JSON.stringify(runsFile)}) ? Number(readFileSync(${JSON.stringify(runsFile)}, 'utf8')) : 0) + 1;
writeFileSync(${JSON.stringify(runsFile)}, String(n));
const info = JSON.parse(process.env.KUBERNETES_EXEC_INFO);
const token = n === 1 ? 'not-a-valid-token' : ${JSON.stringify(token)};
process.stdout.write(JSON.stringify({ apiVersion: info.apiVersion, kind: 'ExecCredential', status: { token } }));
`,
    { mode: 0o755 },
  );
  const kubeconfig = join(dir, 'kubeconfig');
  writeFileSync(
    kubeconfig,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: admin.clusters,
      contexts: [{ name: 'exec', context: { cluster: admin.clusters[0].name, user: 'exec-user' } }],
      users: [
        {
          name: 'exec-user',
          user: {
            exec: {
              apiVersion: 'client.authentication.k8s.io/v1',
              command: './get-token.mjs',
              interactiveMode: 'Never',
              provideClusterInfo: true,
            },
          },
        },
      ],
      'current-context': 'exec',
    }),
  );

  ctl = await startControllerProcess({
    namespaces: [ns],
    leaseNamespace: ns,
    kubeconfig,
    extraArgs: ['--log-level', 'debug'],
  });
  await eventually(
    'the controller to lead',
    async () => (await ctl!.readyz()).body.trim() === 'ok leader',
    60_000,
  );
  await kubectl(['apply', '-f', '-'], trigger('exec-t', ns));
  const dep = await eventually(
    'the Deployment of a trigger',
    async () => getJson<Any>(['get', 'deployment', 'exec-t', '-n', ns]),
    60_000,
  );
  assert.equal(dep.metadata.labels['kubeless.io/trigger-name'], 'exec-t');
  const runs = Number(readFileSync(runsFile, 'utf8'));
  assert.ok(runs >= 2, `the plugin ran again after the 401 (${runs} runs)`);
  const logs = ctl.logs();
  assert.match(logs, /401|Unauthorized/i, 'the refused token shows in the logs as a 401');
  assert.ok(!logs.includes(token), 'the token is not in the logs');
  assert.ok(!logs.includes('not-a-valid-token'), 'the refused token is not in the logs either');
});
