import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { formatSettingsError } from '../../../src/cli/dispatcher.ts';
import { parseArgs, settingsFromManifests } from '../../../src/cli/run.ts';
import { runnerConfig } from '../../../src/dispatcher/app.ts';
import { decodeSettingsEnv } from '../../../src/trigger/settings.ts';

const manifest = (name: string, extra = '') => `apiVersion: kubeless.io/v1
kind: PulsarTrigger
metadata:
  name: ${name}
  namespace: team
spec:
  pulsar:
    topic: mytopic
    broker: pulsar://127.0.0.1:6650
${extra}  kubeless:
    function: http://myfunction.team:8080
  delivery:
    ordering: strict
    retry:
      factor: 5
      maxAttempts: 4
    statusActions:
      - status: "404"
        action: drop
`;

describe('run -f', () => {
  test('manifests become the same settings the environment gives', () => {
    const r = settingsFromManifests(
      [
        {
          name: 'a.yaml',
          text: `${manifest('one', '    auth-token: inline-token\n')}---\n${manifest('two')}`,
        },
      ],
      { tokenFile: undefined, tokenEnv: undefined, graceMs: undefined },
      {},
    );
    assert.ok(r.ok, JSON.stringify(!r.ok && r.issues));
    const [one, two] = r.value;
    assert.equal(one?.authToken, 'inline-token');
    // No token file: the Deployment's mount (render.ts) does not exist outside a pod.
    assert.equal(one?.authTokenFile, undefined);
    assert.equal(two?.authToken, undefined);
    assert.equal(one?.subscription, 'one-team');
    assert.equal(one?.topic, 'persistent://public/default/mytopic');
    const cfg = runnerConfig(one!);
    assert.equal(cfg.lanes.ordering, 'strict');
    assert.equal(cfg.retry.multiplier, 5);
    assert.equal(cfg.retry.maxAttempts, 4);
    assert.deepEqual(cfg.statusActions.rules, [{ from: 404, to: 404, action: 'drop' }]);
  });

  test('token from a file or an env var', () => {
    const fromFile = settingsFromManifests(
      [{ name: 'a.yaml', text: manifest('one', '    auth-token: inline\n') }],
      { tokenFile: '/run/token', tokenEnv: undefined, graceMs: 1000 },
      {},
    );
    assert.ok(fromFile.ok);
    assert.equal(fromFile.value[0]?.authTokenFile, '/run/token');
    assert.equal(fromFile.value[0]?.shutdownGraceMs, 1000);
    const fromEnv = settingsFromManifests(
      [{ name: 'a.yaml', text: manifest('one') }],
      { tokenFile: undefined, tokenEnv: 'MY_TOKEN', graceMs: undefined },
      { MY_TOKEN: 'from-env' },
    );
    assert.ok(fromEnv.ok);
    assert.equal(fromEnv.value[0]?.authToken, 'from-env');
  });

  test('every problem of every document is reported', () => {
    const bad = manifest('one').replace('pulsar://127.0.0.1:6650', 'http://nope').replace('strict', 'sorted');
    const r = settingsFromManifests(
      [
        { name: 'a.yaml', text: bad },
        { name: 'b.yaml', text: 'kind: Pod\napiVersion: v1\n' },
        { name: 'c.yaml', text: 'a: [' },
      ],
      { tokenFile: undefined, tokenEnv: undefined, graceMs: undefined },
      {},
    );
    assert.equal(r.ok, false);
    if (r.ok) return;
    const text = r.issues.map((i) => `${i.path}: ${i.message}`).join('\n');
    assert.match(text, /a\.yaml#0 spec\.pulsar\.broker/);
    assert.match(text, /a\.yaml#0 spec\.delivery\.ordering/);
    assert.match(text, /b\.yaml#0: not a kubeless\.io\/v1 PulsarTrigger/);
    assert.match(text, /c\.yaml#0: YAML/);
  });

  test('arguments', () => {
    const ok = parseArgs(['-f', 'a.yaml', '--file=b.yaml', '--port', '0', '--token-env', 'T']);
    assert.ok(ok.ok);
    assert.deepEqual(ok.value.files, ['a.yaml', 'b.yaml']);
    assert.equal(ok.value.port, 0);
    const bad = parseArgs(['--port', 'x', '--token-file', 'f', '--token-env', 'T', '--what']);
    assert.equal(bad.ok, false);
    if (!bad.ok) assert.equal(bad.problems.length, 4);
  });
});

describe('dispatcher environment errors', () => {
  test('one message, every bad variable, never the token', () => {
    const r = decodeSettingsEnv({
      PULSAR_AUTH_TOKEN: 'tok-secret',
      DISPATCH_CONCURRENCY: '0',
      PULSAR_TOPIC: 't',
    });
    assert.equal(r.ok, false);
    if (r.ok) return;
    const text = formatSettingsError(r.error, 'dispatcher');
    assert.match(text, /- DISPATCH_CONCURRENCY: /);
    assert.match(text, /- PULSAR_BROKER: /);
    assert.match(text, /- KUBELESS_FUNCTION: /);
    assert.doesNotMatch(text, /tok-secret/);
  });
});
