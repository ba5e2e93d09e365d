// `make demo`: the whole system on this machine. testenv/cli.ts starts the servers and the node (kubelet,
// containerd, the project's images imported) and calls runDemo(), which installs the CRD and the Helm chart (the
// controller runs as a pod from the project's image), starts the sample function (examples/function.ts) on the
// node's address, applies the sample trigger (examples/trigger.yaml, pointed at these servers), shows the
// dispatcher pod running on the node, publishes a few messages, shows them arriving, and stays up until Ctrl-C.
// KPT_DEMO_EXIT_AFTER_READY=1 stops after the messages arrived (tests, CI). KPT_DEMO_NAMESPACE picks the
// triggers' namespace (default kpt-demo); the chart goes into <namespace>-system.

import { spawn } from 'node:child_process';
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { formatEvent, startFunction } from '../examples/function.ts';
import { publishMessages } from '../examples/publish.ts';
import { nodeChartValues } from './chart.ts';
import { freePort, waitFor } from './lib/proc.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

export interface DemoOptions {
  /** The servers' variables (KUBECONFIG, KPT_BIN_DIR, PULSAR_SERVICE_URL, KPT_NODE_IP, ...; testenv/cli.ts). */
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
  // Where pods reach this machine: the node's address (the pod bridge's gateway).
  const podPulsarUrl = env.PULSAR_POD_SERVICE_URL!;
  const nodeIp = env.KPT_NODE_IP!;
  const kubectlBin = join(binDir, 'kubectl');
  const kubectl = (args: string[], input?: string) =>
    run(kubectlBin, ['--kubeconfig', kubeconfig, ...args], {}, input);
  const ns = opts.namespace ?? 'kpt-demo';
  const releaseNs = `${ns}-system`;
  const demoDir = mkdtempSync(join(tmpdir(), 'kpt-demo-'));
  const logs = join(demoDir, 'logs');
  mkdirSync(logs, { recursive: true });
  const helmEnv = {
    KUBECONFIG: kubeconfig,
    HELM_CONFIG_HOME: join(demoDir, 'helm-config'),
    HELM_CACHE_HOME: join(demoDir, 'helm-cache'),
    HELM_DATA_HOME: join(demoDir, 'helm-data'),
  };
  const helm = (args: string[]) => run(join(binDir, 'helm'), args, helmEnv);
  const cleanups: (() => Promise<unknown>)[] = [];
  let code = 0;

  try {
    title('Install the PulsarTrigger CRD (deploy/crd.yaml)');
    await kubectl(['apply', '--server-side', '--force-conflicts', '-f', join(root, 'deploy', 'crd.yaml')]);
    await kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd/pulsartriggers.kubeless.io']);
    say('customresourcedefinition.apiextensions.k8s.io/pulsartriggers.kubeless.io established');

    title(
      `Install the chart: the controller runs as a pod from the project's image (watching namespace ${ns})`,
    );
    await kubectl(['create', 'namespace', ns]).catch(() => '');
    const valuesFile = join(demoDir, 'values.json');
    writeFileSync(valuesFile, JSON.stringify(nodeChartValues({ env, watchNamespaces: [ns] }), null, 2));
    const chart = join(root, 'deploy', 'chart', 'kubeless-pulsar-trigger');
    say(
      `helm upgrade --install kpt ${chart} --namespace ${releaseNs} --create-namespace --values ${valuesFile}`,
    );
    await helm([
      'upgrade',
      '--install',
      'kpt',
      chart,
      '--namespace',
      releaseNs,
      '--create-namespace',
      '--values',
      valuesFile,
    ]);
    // Cleanups run last to first: the chart goes after the trigger (its controller removes the trigger's
    // finalizer), then the namespaces.
    cleanups.push(() =>
      kubectl(['delete', 'namespace', ns, releaseNs, '--ignore-not-found', '--wait=false']).catch(() => ''),
    );
    cleanups.push(() =>
      helm(['uninstall', 'kpt', '--namespace', releaseNs, '--ignore-not-found']).catch(() => ''),
    );
    await kubectl(['rollout', 'status', 'deployment', '-n', releaseNs, '--timeout=180s']);
    say((await kubectl(['get', 'pods', '-n', releaseNs, '-o', 'wide'])).trimEnd());

    title(`Start the sample function (examples/function.ts) on the node's address ${nodeIp}`);
    const functionLog = join(logs, 'function.log');
    const onEvent = (e: Parameters<typeof formatEvent>[0]) => {
      const text = formatEvent(e);
      appendFileSync(functionLog, text);
      process.stdout.write(text);
    };
    const fn = await startFunction({ port: 8080, host: nodeIp, name: 'hello', onEvent }).catch(async () =>
      startFunction({ port: await freePort(), host: nodeIp, name: 'hello', onEvent }),
    );
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
    trigger.spec.pulsar.broker = podPulsarUrl;
    // The test broker's admin API is not on the usual port the controller would derive from the broker URL.
    (trigger.spec.pulsar as Record<string, unknown>).adminUrl = env.PULSAR_POD_ADMIN_URL;
    trigger.spec.kubeless.function = fn.url;
    const name = trigger.metadata.name;
    say((await kubectl(['apply', '-f', '-'], JSON.stringify(trigger))).trim());
    cleanups.push(() =>
      kubectl(['delete', 'pulsartrigger', name, '-n', ns, '--ignore-not-found', '--timeout=60s']).catch(
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
    // Each printed command runs as pasted into a fresh shell: absolute paths, the project's own Node 24.
    const publish = `${process.execPath} ${join(root, 'examples', 'publish.ts')} --url ${pulsarUrl} --topic ${topic}`;
    say(`
${bold('The demo is up.')}

Publish more (each one is printed here as the function receives it):
  ${publish} "your message"
  ${publish} --count 20 tick
  ${env.PULSAR_HOME ? `${join(env.PULSAR_HOME, 'bin', 'pulsar-client')} --url ${pulsarUrl} produce ${topic} -m hi   (the Java CLI)` : ''}

Use kubectl against it:
  ${exports}
  kubectl get pulsartriggers,deployments,pods -n ${ns} -o wide
  kubectl logs -n ${ns} deployment/${name}                 # the dispatcher
  kubectl logs -n ${releaseNs} deployment/kpt-kubeless-pulsar-trigger   # the controller
  kubectl edit pulsartrigger ${name} -n ${ns}          # e.g. spec.deployment.spec.replicas: 2
  kubectl delete pulsartrigger ${name} -n ${ns}

The function's log: ${functionLog} (removed when the demo stops; KPT_KEEP_DATA=1 keeps it)

${opts.exitAfterReady ? 'KPT_DEMO_EXIT_AFTER_READY=1: stopping now.' : 'Press Ctrl-C to stop everything the demo started.'}`);

    if (!opts.exitAfterReady) await opts.waitForStop();
  } catch (e) {
    code = 1;
    process.stderr.write(`\ndemo failed: ${e instanceof Error ? e.message : String(e)}\nlogs: ${logs}\n`);
  } finally {
    title('Stopping');
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
    // Its folder (values, helm's own, the function's log) goes with it, unless asked to keep it.
    if (!process.env.KPT_KEEP_DATA) rmSync(demoDir, { recursive: true, force: true });
  }
  return code;
}
