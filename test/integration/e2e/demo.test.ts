// `make demo`, non-interactively: testenv/cli.ts demo with KPT_DEMO_EXIT_AFTER_READY=1 against the test servers
// (it reuses them through the environment, as `make demo` does when they are given). It must install everything,
// deliver the sample messages to the sample function, show the trigger table and stop cleanly.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { kube, pulsarPlain } from '../../support/env.ts';
import { randomSuffix, repoRoot } from '../../support/packaging.ts';
import { runKubectl } from './fixture.ts';

test('make demo runs end to end and stops by itself with KPT_DEMO_EXIT_AFTER_READY=1', {
  timeout: 300_000,
}, async () => {
  kube();
  pulsarPlain();
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
  assert.match(out, /^NAME\s+BROKER\s+TOPIC\s+FUNCTION\s+READY\s+AGE$/m);
  assert.match(
    out,
    /^hello\s+pulsar:\/\/\S+\s+persistent:\/\/public\/default\/e2e-demo-\S+\s+http:\/\/127\.0\.0\.1:\d+\s+True\s/m,
  );
  assert.match(out, /kubectl get pulsartriggers,deployments,pods -n e2e-demo-/);
  // It cleaned up after itself: its trigger is gone (its namespace is being deleted with it).
  const left = await runKubectl(kube().kubeconfig, ['get', 'pulsartriggers', '-n', ns, '-o', 'name']).catch(
    () => '',
  );
  assert.equal(left.trim(), '');
});
