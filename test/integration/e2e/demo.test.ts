// `make demo`, non-interactively: testenv/cli.ts demo with KPT_DEMO_EXIT_AFTER_READY=1 against the test servers
// and the test node (it reuses them through the environment). It must install the chart (the controller as a pod
// from the project's image), run the dispatcher pod on the node, deliver the sample messages to the sample
// function, show the trigger table, print commands that work as pasted into a fresh shell, and stop cleanly.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { kube, node, pulsarPlain } from '../../support/env.ts';
import { randomSuffix, repoRoot } from '../../support/packaging.ts';
import { runKubectl } from './fixture.ts';

test('make demo runs end to end and stops by itself with KPT_DEMO_EXIT_AFTER_READY=1', {
  timeout: 300_000,
}, async () => {
  kube();
  pulsarPlain();
  const n = node();
  const ns = `e2e-demo-${randomSuffix()}`;
  const { code, out } = await new Promise<{ code: number | null; out: string }>((resolve) => {
    const child = spawn(process.execPath, [join(repoRoot, 'testenv', 'cli.ts'), 'demo'], {
      cwd: repoRoot,
      env: { ...process.env, KPT_DEMO_EXIT_AFTER_READY: '1', KPT_DEMO_NAMESPACE: ns },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let text = '';
    child.stdout.on('data', (c: Buffer) => {
      text += c.toString();
    });
    child.stderr.on('data', (c: Buffer) => {
      text += c.toString();
    });
    child.on('exit', (c) => resolve({ code: c, out: text }));
  });
  assert.equal(code, 0, out.slice(-6000));
  for (const body of ['hello (1/3)', 'from (2/3)', 'pulsar (3/3)']) {
    assert.match(
      out,
      new RegExp(`body \\(\\d+ bytes\\): ${body.replace(/[()]/g, '\\$&')}`),
      'the function printed it',
    );
  }
  assert.match(out, /event-namespace: e2e-demo-/);
  assert.match(out, /^NAME\s+BROKER\s+TOPIC\s+FUNCTION\s+READY\s+BACKLOG\s+OLDEST\s+AGE$/m);
  assert.match(
    out,
    new RegExp(
      `^hello\\s+pulsar://${n.ip.replaceAll('.', '\\.')}:\\d+\\s+persistent://public/default/e2e-demo-\\S+\\s+http://${n.ip.replaceAll('.', '\\.')}:\\d+\\s+True\\s`,
      'm',
    ),
  );
  // The controller and the dispatcher ran as pods on the node, from the project's images.
  assert.match(
    out,
    new RegExp(`^kpt-kubeless-pulsar-trigger-\\S+\\s+1/1\\s+Running\\s.*\\s${n.name}\\s`, 'm'),
  );
  assert.match(out, new RegExp(`^pod/hello-\\S+\\s+1/1\\s+Running\\s.*\\s${n.name}\\s`, 'm'));
  assert.match(out, /kubectl get pulsartriggers,deployments,pods -n e2e-demo-/);
  // The publish command it prints works as pasted into a fresh shell (no Node on PATH, another folder).
  const printed = out.split('\n').find((l) => /examples\/publish\.ts .* "your message"$/.test(l));
  assert.ok(printed, 'the demo prints a publish command');
  const pasted = await new Promise<{ code: number | null; text: string }>((resolve) => {
    const child = spawn('/bin/sh', ['-c', printed.trim()], {
      cwd: '/',
      env: { PATH: '/usr/bin:/bin' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let text = '';
    child.stdout.on('data', (c: Buffer) => {
      text += c.toString();
    });
    child.stderr.on('data', (c: Buffer) => {
      text += c.toString();
    });
    child.on('exit', (c) => resolve({ code: c, text }));
  });
  assert.equal(pasted.code, 0, `${printed}\n${pasted.text}`);
  // It cleaned up after itself: its trigger is gone (its namespace is being deleted with it).
  const left = await runKubectl(kube().kubeconfig, ['get', 'pulsartriggers', '-n', ns, '-o', 'name']).catch(
    () => '',
  );
  assert.equal(left.trim(), '');
});
