// `make demo`: the whole system on this machine. testenv/cli.ts starts (or reuses) the servers and calls
// runDemo(), which installs the CRD, starts the controller as a local process under the Helm chart's RBAC identity,
// starts the node agent (testenv/node-agent.ts) and the sample function (examples/function.ts), applies the sample
// trigger (examples/trigger.yaml, pointed at these servers), publishes a few messages, shows them arriving, and
// stays up until Ctrl-C. KPT_DEMO_EXIT_AFTER_READY=1 stops after the messages arrived (tests, CI).
// KPT_DEMO_NAMESPACE picks the namespace (default kpt-demo).

import { spawn } from 'node:child_process';
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { formatEvent, startFunction } from '../examples/function.ts';
import { publishMessages } from '../examples/publish.ts';
import { installChartIdentity } from '../test/support/chart-identity.ts';
import { freePort, type ServiceProcess, spawnService, waitFor } from './lib/proc.ts';
import { startNodeAgent } from './node-agent.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

export interface DemoOptions {
  /** The servers' variables (KUBECONFIG, KUBECONFIG_UNPRIVILEGED, KPT_BIN_DIR, PULSAR_SERVICE_URL, ...). */
  env: Record<string, string>;
  exitAfterReady: boolean;
  namespace?: string | undefined;
  /** Called once the demo is up; resolves when it should stop (Ctrl-C). */
  waitForStop: () => Promise<unknown>;
}

const bold = (s: string) => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);
const say = (s: string) => process.stdout.write(`${s}\n`);
const title = (s: string) => say(`\n${bold(`==> ${s}`)}`);

function run(cmd: string, args: string[], env: Record<string, string>, input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
    });
    child.stderr.on('data', (c: Buffer) => {
      err += c.toString();
    });
    child.on('error', reject);
    child.on('exit', (code) =>
      code === 0 ? resolve(out) : reject(new Error(`${cmd} ${args.join(' ')}: exit ${code}\n${err}${out}`)),
    );
    child.stdin.end(input ?? '');
  });
}

export async function runDemo(opts: DemoOptions): Promise<number> {
  const env = opts.env;
  Object.assign(process.env, env);
  const kubeconfig = env.KUBECONFIG!;
  const binDir = env.KPT_BIN_DIR!;
  const pulsarUrl = env.PULSAR_SERVICE_URL!;
  const kubectlBin = join(binDir, 'kubectl');
  const kubectl = (args: string[], input?: string) =>
    run(kubectlBin, ['--kubeconfig', kubeconfig, ...args], {}, input);
  const ns = opts.namespace ?? 'kpt-demo';
  const demoDir = mkdtempSync(join(tmpdir(), 'kpt-demo-'));
  const logs = join(demoDir, 'logs');
  mkdirSync(logs, { recursive: true });
  const cleanups: (() => Promise<unknown>)[] = [];
  let code = 0;

  try {
    title('Install the PulsarTrigger CRD (deploy/crd.yaml)');
    await kubectl(['apply', '--server-side', '--force-conflicts', '-f', join(root, 'deploy', 'crd.yaml')]);
    await kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd/pulsartriggers.kubeless.io']);
    say('customresourcedefinition.apiextensions.k8s.io/pulsartriggers.kubeless.io established');

    title(`Create the controller's identity from the Helm chart's RBAC (watching namespace ${ns})`);
    const id = await installChartIdentity({ watchNamespaces: [ns] });
    cleanups.push(() => id.remove());
    say(`ServiceAccount ${id.username}, kubeconfig ${id.kubeconfig}`);

    title('Start the controller (a local process, as that ServiceAccount)');
    const ctlPort = await freePort();
    const controller: ServiceProcess = spawnService(
      'controller',
      process.execPath,
      [
        join(root, 'bin', 'kubeless-pulsar-trigger.js'),
        'controller',
        '--kubeconfig',
        id.kubeconfig,
        '--namespaces',
        ns,
        '--dispatcher-image',
        'kubeless-pulsar-trigger:demo',
        '--leader-election-namespace',
        id.namespace,
        '--leader-election-id',
        id.leaseName,
        '--http-port',
        String(ctlPort),
        '--http-host',
        '127.0.0.1',
      ],
      { logFile: join(logs, 'controller.log'), cwd: root },
    );
    cleanups.push(() => controller.stop(15_000));
    await waitFor(
      'controller /readyz',
      async () => {
        const r = await fetch(`http://127.0.0.1:${ctlPort}/readyz`, { signal: AbortSignal.timeout(1000) });
        return r.status === 200 ? true : undefined;
      },
      { timeoutMs: 60_000, svc: controller },
    );
    say(`controller ready: http://127.0.0.1:${ctlPort}/metrics, log ${join(logs, 'controller.log')}`);

    title('Start the node agent (runs the dispatcher pods as local processes)');
    const agentLog = join(logs, 'node-agent.log');
    const agent = await startNodeAgent({
      kubeconfig,
      namespaces: [ns],
      logsDir: logs,
      log: (line) => {
        appendFileSync(agentLog, `${new Date().toISOString()} ${line}\n`);
        say(`[node-agent] ${line}`);
      },
    });
    cleanups.push(() => agent.stop());

    title('Start the sample function (examples/function.ts)');
    const functionLog = join(logs, 'function.log');
    let fnPort = 8080;
    const fn = await startFunction({
      port: fnPort,
      name: 'hello',
      onEvent: (e) => {
        const text = formatEvent(e);
        appendFileSync(functionLog, text);
        process.stdout.write(text);
      },
    }).catch(async () => {
      fnPort = await freePort();
      return startFunction({
        port: fnPort,
        name: 'hello',
        onEvent: (e) => {
          const text = formatEvent(e);
          appendFileSync(functionLog, text);
          process.stdout.write(text);
        },
      });
    });
    cleanups.push(() => fn.close());
    say(`function "hello" listening on ${fn.url}, prints each event (also to ${functionLog})`);

    title('Apply the sample trigger (examples/trigger.yaml)');
    const topic = `persistent://public/default/${ns}-hello`;
    const trigger = parse(readFileSync(join(root, 'examples', 'trigger.yaml'), 'utf8')) as {
      metadata: { name: string; namespace: string };
      spec: { pulsar: { topic: string; broker: string }; kubeless: { function: string } };
    };
    trigger.metadata.namespace = ns;
    trigger.spec.pulsar.topic = topic;
    trigger.spec.pulsar.broker = pulsarUrl;
    trigger.spec.kubeless.function = fn.url;
    const name = trigger.metadata.name;
    say((await kubectl(['apply', '-f', '-'], JSON.stringify(trigger))).trim());
    cleanups.push(() =>
      kubectl(['delete', 'pulsartrigger', name, '-n', ns, '--ignore-not-found', '--wait=false']).catch(
        () => '',
      ),
    );

    await waitFor(
      'the dispatcher Deployment to have a ready replica',
      async () => {
        const out = await kubectl([
          'get',
          'deployment',
          name,
          '-n',
          ns,
          '-o',
          'jsonpath={.status.readyReplicas}',
        ]);
        return out.trim() === '1' ? true : undefined;
      },
      { timeoutMs: 120_000 },
    );
    say((await kubectl(['get', 'deployments,pods', '-n', ns, '-o', 'wide'])).trimEnd());

    title(`Publish 3 messages to ${topic}`);
    const messages = ['hello', 'from', 'pulsar'].map((w, i) => `${w} (${i + 1}/3)`);
    const before = fn.events.length;
    await publishMessages({ url: pulsarUrl, topic, messages, key: 'demo' });
    await waitFor(
      'the function to receive the 3 messages',
      async () => (fn.events.length - before >= messages.length ? true : undefined),
      { timeoutMs: 60_000 },
    );
    say(`the function received all ${messages.length} messages`);

    title('kubectl get pulsartriggers');
    await waitFor(
      'the trigger to report Ready',
      async () => {
        const out = await kubectl([
          'get',
          'pulsartrigger',
          name,
          '-n',
          ns,
          '-o',
          'jsonpath={.status.conditions[?(@.type=="Ready")].status}',
        ]);
        return out.trim() === 'True' ? true : undefined;
      },
      { timeoutMs: 60_000 },
    ).catch(() => undefined);
    say((await kubectl(['get', 'pulsartriggers', '-n', ns])).trimEnd());

    const exports = `export KUBECONFIG=${kubeconfig} PATH=${binDir}:$PATH`;
    say(`
${bold('The demo is up.')}

Publish more (each one is printed here as the function receives it):
  node examples/publish.ts --url ${pulsarUrl} --topic ${topic} "your message"
  node examples/publish.ts --url ${pulsarUrl} --topic ${topic} --count 20 tick
  ${env.PULSAR_HOME ? `${join(env.PULSAR_HOME, 'bin', 'pulsar-client')} --url ${pulsarUrl} produce ${topic} -m hi   (the Java CLI)` : ''}

Use kubectl against it:
  ${exports}
  kubectl get pulsartriggers,deployments,pods -n ${ns}
  kubectl edit pulsartrigger ${name} -n ${ns}          # e.g. spec.deployment.spec.replicas: 2
  kubectl delete pulsartrigger ${name} -n ${ns}

Logs: ${logs}
  controller.log, node-agent.log, function.log, and one <namespace>_<pod>.log per dispatcher process

${opts.exitAfterReady ? 'KPT_DEMO_EXIT_AFTER_READY=1: stopping now.' : 'Press Ctrl-C to stop everything the demo started.'}`);

    if (!opts.exitAfterReady) await opts.waitForStop();
  } catch (e) {
    code = 1;
    process.stderr.write(`\ndemo failed: ${e instanceof Error ? e.message : String(e)}\nlogs: ${logs}\n`);
  } finally {
    title('Stopping');
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
  }
  return code;
}
