// The chart's monitoring objects and image references as helm renders them: the PodMonitor selects exactly the
// dispatcher pods the controller renders (src/trigger/render.ts: their labels, whatever a trigger's spec.deployment
// says, and the container port "metrics") and no controller pod, in the watched namespaces; the PrometheusRule's
// expressions parse as PromQL (Prometheus's own grammar) and name only metrics the controller and the dispatcher
// export, with the thresholds and namespaces of the values; both stay off by default. An image tag that is a digest
// renders as repo@sha256:..., which the controller accepts as its dispatcher image.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { parser } from '@prometheus-io/lezer-promql';
import { parseAllDocuments } from 'yaml';
import { parseConfig } from '../../../src/controller/config.ts';
import { makeMetrics } from '../../../src/controller/controller.ts';
import { DispatcherMetrics } from '../../../src/dispatcher/metrics.ts';
import { DEFAULT_RESOURCES, type JsonObject, renderTrigger } from '../../../src/trigger/render.ts';
import type { PulsarTrigger } from '../../../src/trigger/spec.ts';
import { serverKubeVersion } from '../../support/chart-identity.ts';
import { chartDir, type Manifest, runOk, type Tools, tempDir, tools } from '../../support/packaging.ts';

let t: Tools;
let kubeVersion: string;
const home = tempDir('chart-monitoring');

before(async () => {
  t = tools(home.dir);
  kubeVersion = await serverKubeVersion(t.kubectl, t.kubeconfig);
});
after(() => home.remove());

async function render(args: string[]): Promise<Manifest[]> {
  const r = await runOk(
    t.helm,
    ['template', 'kpt', chartDir, '--namespace', 'kpt-system', '--kube-version', kubeVersion, ...args],
    { env: t.env },
  );
  return parseAllDocuments(r.stdout)
    .map((d) => d.toJS() as Manifest | null)
    .filter((d): d is Manifest => d !== null);
}

function only<T = Manifest>(objs: Manifest[], kind: string): T {
  const found = objs.filter((o) => o.kind === kind);
  assert.equal(found.length, 1, `exactly one ${kind}, got ${found.length}`);
  return found[0] as T;
}

/** A dispatcher Deployment as the controller renders it, with a spec.deployment that tries to change its labels. */
function dispatcherPodTemplate(): { labels: Record<string, string>; ports: { name: string }[] } {
  const trigger = {
    apiVersion: 'kubeless.io/v1',
    kind: 'PulsarTrigger',
    metadata: { name: 'mytrigger', namespace: 'team-a', uid: 'u-1' },
    spec: {
      pulsar: { topic: 'persistent://public/default/mytopic', broker: 'pulsar://pulsar.addr:6650' },
      kubeless: { function: 'http://myfunction.team-a:8080' },
      deployment: {
        spec: {
          template: {
            metadata: {
              labels: { 'app.kubernetes.io/component': 'mine', 'app.kubernetes.io/name': 'mine', extra: 'x' },
            },
            spec: { containers: [{ ports: [{ name: 'http', containerPort: 8080 }] }] },
          },
        },
      },
    },
  } as unknown as PulsarTrigger;
  const r = renderTrigger(trigger, { dispatcherImage: 'd:1', timezone: 'UTC', resources: DEFAULT_RESOURCES });
  assert.ok(r.ok);
  const template = (r.value.deployment.spec as JsonObject).template as JsonObject;
  const pod = template.spec as { containers: { ports: { name: string }[] }[] };
  return {
    labels: (template.metadata as { labels: Record<string, string> }).labels,
    ports: pod.containers[0]!.ports,
  };
}

const selects = (selector: Record<string, string>, labels: Record<string, string>) =>
  Object.entries(selector).every(([k, v]) => labels[k] === v);

test('by default there is neither a PodMonitor nor a PrometheusRule', async () => {
  const kinds = (await render([])).map((o) => o.kind);
  assert.ok(!kinds.includes('PodMonitor'));
  assert.ok(!kinds.includes('PrometheusRule'));
});

describe('podMonitor.enabled', () => {
  interface PodMonitor extends Manifest {
    spec: {
      namespaceSelector: { any?: boolean; matchNames?: string[] };
      selector: { matchLabels: Record<string, string> };
      podMetricsEndpoints: { port: string; path: string; interval: string; scrapeTimeout: string }[];
    };
  }

  test("selects the dispatcher pods on their port 'metrics', and no controller pod", async () => {
    const objs = await render([
      '--set',
      'podMonitor.enabled=true',
      '--set',
      'podMonitor.interval=15s',
      '--set',
      'podMonitor.labels.release=prometheus',
    ]);
    const pm = only<PodMonitor>(objs, 'PodMonitor');
    assert.equal(pm.metadata.namespace, 'kpt-system');
    assert.equal(pm.metadata.labels?.release, 'prometheus');
    assert.deepEqual(pm.spec.namespaceSelector, { any: true }, 'every namespace when all are watched');
    const dispatcher = dispatcherPodTemplate();
    assert.ok(selects(pm.spec.selector.matchLabels, dispatcher.labels), JSON.stringify(dispatcher.labels));
    assert.equal(dispatcher.labels.extra, 'x', "the trigger's own labels are kept beside ours");
    const controllerPod = only<
      Manifest & { spec: { template: { metadata: { labels: Record<string, string> } } } }
    >(objs, 'Deployment').spec.template.metadata.labels;
    assert.ok(!selects(pm.spec.selector.matchLabels, controllerPod), 'the controller pods are not selected');
    assert.deepEqual(pm.spec.podMetricsEndpoints, [
      { port: 'metrics', path: '/metrics', interval: '15s', scrapeTimeout: '10s' },
    ]);
    assert.ok(
      dispatcher.ports.some((p) => p.name === 'metrics'),
      "the dispatcher container has the port 'metrics' even with a spec.deployment list of ports",
    );
  });

  test('looks only in the watched namespaces when the controller watches some', async () => {
    const objs = await render([
      '--set',
      'podMonitor.enabled=true',
      '--set',
      'controller.watchNamespaces={team-a,team-b,team-a}',
    ]);
    assert.deepEqual(only<PodMonitor>(objs, 'PodMonitor').spec.namespaceSelector, {
      matchNames: ['team-a', 'team-b'],
    });
  });
});

describe('prometheusRule.enabled', () => {
  interface Rule {
    alert?: string;
    record?: string;
    expr: string;
    for?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  }
  interface PrometheusRule extends Manifest {
    spec: { groups: { name: string; rules: Rule[] }[] };
  }
  const rulesOf = (objs: Manifest[]) =>
    only<PrometheusRule>(objs, 'PrometheusRule').spec.groups.flatMap((g) => g.rules);

  /** Every metric name the two processes export (histograms with their _bucket, _count and _sum series). */
  async function exported(): Promise<Set<string>> {
    const names = new Set<string>();
    const add = (m: { name: string; type: unknown }) => {
      names.add(m.name);
      if (String(m.type) === 'histogram')
        for (const s of ['_bucket', '_count', '_sum']) names.add(m.name + s);
    };
    for (const m of await makeMetrics().registry.getMetricsAsJSON()) add(m);
    for (const m of await new DispatcherMetrics().registry.getMetricsAsJSON()) add(m);
    return names;
  }

  /** The metric names a PromQL expression selects, and whether Prometheus's grammar found an error in it. */
  function parsePromql(expr: string): { metrics: string[]; error: boolean } {
    const tree = parser.parse(expr);
    const metrics: string[] = [];
    let error = false;
    tree.iterate({
      enter: (node) => {
        if (node.type.isError) error = true;
        if (node.name === 'VectorSelector') {
          const name = node.node.getChild('Identifier');
          if (name) metrics.push(expr.slice(name.from, name.to));
        }
      },
    });
    return { metrics, error };
  }

  test('every expression is PromQL over metrics the controller and the dispatcher export', async () => {
    const names = await exported();
    const rules = rulesOf(await render(['--set', 'prometheusRule.enabled=true']));
    assert.ok(rules.length >= 8, `${rules.length} rules`);
    const used = new Set<string>();
    for (const r of rules) {
      const p = parsePromql(r.expr);
      assert.equal(p.error, false, `${r.alert}: ${r.expr}`);
      assert.ok(p.metrics.length > 0, `${r.alert} selects a metric`);
      for (const m of p.metrics) {
        assert.ok(names.has(m), `${r.alert}: ${m} is exported`);
        used.add(m.replace(/_(bucket|count|sum)$/, ''));
      }
      assert.match(r.alert ?? '', /^KubelessPulsarTrigger[A-Za-z]+$/);
      assert.ok(['warning', 'critical'].includes(r.labels?.severity ?? ''), `${r.alert} has a severity`);
      assert.ok(r.annotations?.summary && r.annotations.description, `${r.alert} says what it means`);
    }
    for (const m of ['kpt_controller_leader', 'kpt_dispatcher_delivery_attempts_total'])
      assert.ok(used.has(m));
  });

  test("the controller's alerts match its release namespace; the dispatchers' the watched namespaces", async () => {
    const all = rulesOf(await render(['--set', 'prometheusRule.enabled=true']));
    const watched = rulesOf(
      await render([
        '--set',
        'prometheusRule.enabled=true',
        '--set',
        'controller.watchNamespaces={team-a,team-b}',
      ]),
    );
    for (const r of all.filter((x) => x.expr.includes('kpt_controller_')))
      for (const sel of r.expr.match(/kpt_controller_\w+\{[^}]*\}/g) ?? [])
        assert.match(sel, /namespace="kpt-system"/, `${r.alert}: ${sel}`);
    for (const r of all.filter((x) => x.expr.includes('kpt_dispatcher_')))
      assert.doesNotMatch(r.expr, /namespace/, `${r.alert}: every namespace`);
    for (const r of watched.filter((x) => x.expr.includes('kpt_dispatcher_'))) {
      const selectors = r.expr.match(/kpt_dispatcher_\w+(\{[^}]*\})?/g) ?? [];
      assert.ok(selectors.length > 0);
      for (const sel of selectors) assert.match(sel, /namespace=~"team-a\|team-b"/, `${r.alert}: ${sel}`);
      assert.equal(parsePromql(r.expr).error, false, r.expr);
    }
  });

  test('thresholds, labels and extra rules come from the values', async () => {
    const objs = await render([
      '--set',
      'prometheusRule.enabled=true',
      '--set',
      'prometheusRule.labels.release=prometheus',
      '--set',
      'prometheusRule.alertLabels.team=payments',
      // --set reads 0.25 as a string; a values file or --set-json gives the number.
      '--set-json',
      'prometheusRule.thresholds.deliveryFailureRatio=0.25',
      '--set',
      'prometheusRule.thresholds.messageAgeSeconds=60',
      '--set',
      'prometheusRule.thresholds.controllerQueueDepth=7',
      '--set-json',
      'prometheusRule.extraRules=[{"alert":"Mine","expr":"up == 0","labels":{"severity":"warning"}}]',
    ]);
    assert.equal(only<PrometheusRule>(objs, 'PrometheusRule').metadata.labels?.release, 'prometheus');
    const rules = rulesOf(objs);
    const byName = new Map(rules.map((r) => [r.alert, r]));
    assert.match(byName.get('KubelessPulsarTriggerDeliveryFailing')!.expr, /> 0\.25$/);
    assert.match(byName.get('KubelessPulsarTriggerDeliveryLag')!.expr, /> 60$/);
    assert.match(byName.get('KubelessPulsarTriggerQueueBacklog')!.expr, /> 7$/);
    for (const r of rules.filter((x) => x.alert !== 'Mine')) assert.equal(r.labels?.team, 'payments');
    assert.deepEqual(byName.get('Mine'), { alert: 'Mine', expr: 'up == 0', labels: { severity: 'warning' } });
  });
});

describe('an image tag that is a digest', () => {
  const digest = `sha256:${'0123456789abcdef'.repeat(4)}`;

  test('renders repo@sha256:... for both images; the controller accepts that dispatcher image', async () => {
    const objs = await render([
      '--set',
      `image.tag=${digest}`,
      '--set',
      `dispatcher.deployment.tag=${digest}`,
    ]);
    const pod = only<
      Manifest & { spec: { template: { spec: { containers: { image: string; args: string[] }[] } } } }
    >(objs, 'Deployment').spec.template.spec;
    const c = pod.containers[0]!;
    assert.equal(c.image, `ghcr.io/kubeless-pulsar-trigger/controller@${digest}`);
    const parsed = parseConfig(c.args.slice(1), { POD_NAMESPACE: 'kpt-system', POD_NAME: 'kpt-abc' });
    assert.ok(parsed.ok, parsed.ok ? '' : parsed.error.message);
    assert.equal(parsed.value.dispatcherImage, `ghcr.io/kubeless-pulsar-trigger/dispatcher@${digest}`);
  });

  test('a plain tag still renders repo:tag', async () => {
    const objs = await render(['--set', 'image.tag=1.2.3']);
    const pod = only<Manifest & { spec: { template: { spec: { containers: { image: string }[] } } } }>(
      objs,
      'Deployment',
    ).spec.template.spec;
    assert.equal(pod.containers[0]!.image, 'ghcr.io/kubeless-pulsar-trigger/controller:1.2.3');
  });
});
