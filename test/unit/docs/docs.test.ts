// What the documentation says, checked against the code it describes: every Ready=False reason the controller can
// set has a row in docs/troubleshooting.md; the README's `kubectl get pt` columns are the CRD's printer columns; the
// environment table lists exactly the dispatcher's variables; the chart README's values exist in values.yaml with
// the defaults it gives; the metric tables and the alert table of docs/monitoring.md name what the code exports and
// the chart ships; the README's "Needs" and subscription-type rule hold; relative links and their anchors resolve;
// the README stays short, and no user-facing text speaks of the project's past instead of the user's task.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { test } from 'node:test';
import { parse } from 'yaml';
import { makeMetrics } from '../../../src/controller/controller.ts';
import { DispatcherMetrics } from '../../../src/dispatcher/metrics.ts';
import { customResourceDefinition } from '../../../src/trigger/crd.ts';
import {
  DEFAULT_RESOURCES,
  type JsonObject,
  renderTrigger,
  settingsFor,
} from '../../../src/trigger/render.ts';
import { ENV } from '../../../src/trigger/settings.ts';
import { type PulsarTrigger, SHORT_NAMES, type TriggerSpec } from '../../../src/trigger/spec.ts';

const root = resolve(import.meta.dirname, '..', '..', '..');
const read = (path: string) => readFileSync(join(root, path), 'utf8');
const chartDir = 'deploy/chart/kubeless-pulsar-trigger';

/** The part of a Markdown document under a heading, up to the next heading of the same or a higher level. */
function section(doc: string, heading: string): string {
  const lines = doc.split('\n');
  const start = lines.findIndex((l) => l.trim() === heading);
  assert.ok(start >= 0, `heading "${heading}"`);
  const level = heading.indexOf(' ');
  const end = lines.findIndex(
    (l, i) => i > start && /^#+ /.test(l) && l.indexOf(' ') <= level && !l.startsWith('#'.repeat(level + 1)),
  );
  return lines.slice(start + 1, end < 0 ? undefined : end).join('\n');
}

/** The first cells of a Markdown table's rows (header and separator left out). */
function firstCells(text: string): string[] {
  return text
    .split('\n')
    .filter((l) => l.startsWith('| ') && !l.startsWith('| ---') && !l.startsWith('|---'))
    .slice(1)
    .map((l) => l.split(' | ')[0]!.slice(2));
}

const ticked = (cell: string) => [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1]!);

test('docs/troubleshooting.md has a row for every Ready=False reason the controller can set, and no other', () => {
  const controller = readdirSync(join(root, 'src/controller'))
    .filter((f) => f.endsWith('.ts'))
    .map((f) => read(`src/controller/${f}`))
    .join('\n');
  const union = /export type Reason =([^;]*);/.exec(controller)?.[1];
  assert.ok(union, "reconcile.ts's Reason union");
  const elsewhere = controller.replace(union, '');
  // A reason is one the controller can set when it is named somewhere besides the union (a failed(...) call, the
  // condition it writes, the admin outcome); Ready is the True one.
  const reasons = [...union.matchAll(/'(\w+)'/g)]
    .map((m) => m[1]!)
    .filter((r) => r !== 'Ready' && elsewhere.includes(`'${r}'`))
    .sort();
  assert.ok(reasons.includes('ReplicasNotReady') && reasons.includes('InvalidSpec'), reasons.join(' '));
  const documented = firstCells(section(read('docs/troubleshooting.md'), '## Ready=False reasons'))
    .flatMap(ticked)
    .sort();
  assert.deepEqual(documented, reasons);
});

test("the README's `kubectl get pt` columns are the CRD's printer columns", () => {
  const crd = customResourceDefinition() as {
    spec: { versions: { additionalPrinterColumns: { name: string }[] }[] };
  };
  const columns = crd.spec.versions[0]!.additionalPrinterColumns.map((c) => c.name.toUpperCase());
  const lines = read('README.md').split('\n');
  const i = lines.findIndex((l) => l.startsWith('$ kubectl get pt'));
  assert.ok(i >= 0, 'the README shows `kubectl get pt`');
  assert.ok((SHORT_NAMES as readonly string[]).includes('pt'), 'pt is a short name of the CRD');
  assert.deepEqual(lines[i + 1]!.trim().split(/\s+/), ['NAME', ...columns]);
});

test('docs/environment.md lists exactly the variables of the dispatcher contract', () => {
  const doc = read('docs/environment.md');
  const table = doc.slice(0, doc.indexOf('## The broker token'));
  const documented = firstCells(table).flatMap(ticked).sort();
  assert.deepEqual(documented, [...new Set(Object.values(ENV))].sort());
});

test('docs/environment.md names every flag of the controller', () => {
  const flags = [...read('src/controller/config.ts').matchAll(/flag: '([a-z-]+)'/g)].map((m) => m[1]!);
  assert.ok(flags.length > 10);
  const options = section(read('docs/environment.md'), '## Controller options');
  for (const f of flags) assert.ok(options.includes(`\`--${f}\``), `--${f}`);
});

test("LOG_LEVEL from a trigger's spec.deployment replaces the default, as environment.md says", () => {
  assert.match(
    read('docs/environment.md'),
    /except for `LOG_LEVEL`[^.]*: the\s+user's entry replaces the default/,
  );
  const trigger = {
    metadata: { name: 't', namespace: 'ns', uid: 'u' },
    spec: {
      pulsar: { topic: 'events', broker: 'pulsar://b:6650' },
      kubeless: { function: 'http://f.ns:8080' },
      deployment: {
        spec: { template: { spec: { containers: [{ env: [{ name: 'LOG_LEVEL', value: 'debug' }] }] } } },
      },
    },
  } as unknown as PulsarTrigger;
  const r = renderTrigger(trigger, { dispatcherImage: 'd:1', timezone: 'UTC', resources: DEFAULT_RESOURCES });
  assert.ok(r.ok);
  const template = (r.value.deployment.spec as JsonObject).template as JsonObject;
  const env = (template.spec as { containers: { env: { name: string; value?: string }[] }[] }).containers[0]!
    .env;
  assert.deepEqual(
    env.filter((e) => e.name === 'LOG_LEVEL'),
    [{ name: 'LOG_LEVEL', value: 'debug' }],
  );
});

test('the subscription type follows the ordering as the README and environment.md say', () => {
  const rule = '`key` → `Key_Shared`, `strict` → `Failover`, `none` → `Shared`';
  for (const doc of ['README.md', 'docs/environment.md']) assert.ok(read(doc).includes(rule), doc);
  const spec = (ordering: 'key' | 'strict' | 'none'): TriggerSpec => ({
    pulsar: { topic: 'events', broker: 'pulsar://b:6650' },
    kubeless: { function: 'http://f.ns:8080' },
    delivery: { ordering },
  });
  for (const [ordering, type] of [
    ['key', 'Key_Shared'],
    ['strict', 'Failover'],
    ['none', 'Shared'],
  ] as const) {
    const s = settingsFor({ name: 't', namespace: 'ns' }, spec(ordering), 'UTC');
    assert.ok(s.ok);
    assert.equal(s.value.subscriptionType, type, ordering);
  }
});

test("the chart README's values exist in values.yaml, with the defaults it gives, and cover every value", () => {
  const values = parse(read(`${chartDir}/values.yaml`)) as Record<string, unknown>;
  const at = (path: string): unknown =>
    path.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown> | undefined)?.[k], values);
  const isMap = (v: unknown): v is Record<string, unknown> =>
    typeof v === 'object' && v !== null && !Array.isArray(v);
  const table = section(read(`${chartDir}/README.md`), '## Values');
  const documented = new Set<string>();
  for (const row of table.split('\n').filter((l) => l.startsWith('| `'))) {
    const [pathsCell, defaultsCell] = row.slice(2).split(' | ');
    const paths = ticked(pathsCell!);
    for (const p of paths) {
      assert.notEqual(at(p), undefined, `${p} is in values.yaml`);
      documented.add(p);
    }
    // A default cell of one backticked literal per value is checked value by value.
    const literals = defaultsCell!.split(', ');
    if (literals.length === paths.length && literals.every((l) => /^`[^`]*`$/.test(l))) {
      paths.forEach((p, i) => {
        const v = at(p);
        const want = literals[i]!.slice(1, -1);
        const shown = typeof v === 'string' ? (v === '' ? '""' : v) : JSON.stringify(v);
        assert.equal(shown, want, `default of ${p}`);
      });
    }
  }
  // Every value down to the ones that are free-form objects (resources, security contexts, label maps).
  const opaque = new Set([
    'resources',
    'podSecurityContext',
    'securityContext',
    'dispatcher.deployment.resources',
  ]);
  const leaves = (v: unknown, prefix: string): string[] =>
    isMap(v) && Object.keys(v).length > 0 && !opaque.has(prefix)
      ? Object.entries(v).flatMap(([k, c]) => leaves(c, prefix ? `${prefix}.${k}` : k))
      : [prefix];
  for (const leaf of leaves(values, ''))
    assert.ok(documented.has(leaf), `${leaf} is in the chart README's table`);
});

test('docs/monitoring.md lists every metric the controller and the dispatcher export, and every alert', async () => {
  const doc = read('docs/monitoring.md');
  const names = (heading: string) =>
    firstCells(section(doc, heading))
      .flatMap(ticked)
      .map((n) => n.replace(/\{.*\}$/, ''))
      .sort();
  const exported = async (r: { getMetricsAsJSON(): Promise<{ name: string }[]> }) =>
    (await r.getMetricsAsJSON()).map((m) => m.name).sort();
  assert.deepEqual(names('## Controller metrics'), await exported(makeMetrics().registry));
  assert.deepEqual(
    names('## Dispatcher metrics'),
    await exported(new DispatcherMetrics({ defaultMetrics: false }).registry),
  );
  const shipped = [...read(`${chartDir}/templates/prometheusrule.yaml`).matchAll(/- alert: (\w+)/g)]
    .map((m) => m[1]!)
    .sort();
  assert.deepEqual(names('## The alerts'), shipped);
});

test('the README is under 250 lines and its "Needs" names the Go and Node versions the set-up uses', () => {
  const readme = read('README.md');
  assert.ok(readme.split('\n').length < 250, `${readme.split('\n').length} lines`);
  const needs = readme.slice(readme.indexOf('Needs:'), readme.indexOf('\n\n', readme.indexOf('Needs:')));
  const goDirectives = readdirSync(join(root, 'testenv/gobin')).map((d) => {
    const m = /^go (\d+)\.(\d+)/m.exec(read(`testenv/gobin/${d}/go.mod`));
    assert.ok(m, `testenv/gobin/${d}/go.mod has a go directive`);
    return [Number(m[1]), Number(m[2])] as const;
  });
  const [major, minor] = goDirectives.reduce((a, b) =>
    b[0] > a[0] || (b[0] === a[0] && b[1] > a[1]) ? b : a,
  );
  assert.ok(needs.includes(`Go ≥ ${major}.${minor}`), `Needs says Go ≥ ${major}.${minor}`);
  const node = /^NODE_VERSION\s*:=\s*(\d+)\./m.exec(read('Makefile'))?.[1];
  assert.ok(readme.includes(`Node.js ${node}`) && needs.includes(`Node ${node}`), `Node ${node}`);
  for (const tool of ['flock', 'openssl', 'gcc', 'Maven', 'npm', 'apt-get', 'cgroup v1'])
    assert.ok(needs.includes(tool), `Needs names ${tool}`);
});

test('bench/README.md names every benchmark make bench runs', () => {
  const table = read('bench/README.md');
  for (const f of readdirSync(join(root, 'bench')).filter((f) => f.endsWith('.ts') && !f.endsWith('.lib.ts')))
    assert.ok(table.includes(`| \`${f}\` |`), `bench/${f} has a row`);
});

/** The user-facing documents: the README, docs/, the benchmarks' README and the chart's texts. */
const userDocs = [
  'README.md',
  ...readdirSync(join(root, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => `docs/${f}`),
  'bench/README.md',
  `${chartDir}/README.md`,
  `${chartDir}/values.yaml`,
  `${chartDir}/values.schema.json`,
  `${chartDir}/templates/NOTES.txt`,
];

test('no user-facing text speaks of sessions or calls the Python project "the seed"', () => {
  for (const file of userDocs) {
    const text = read(file);
    assert.doesNotMatch(text, /\bsessions?\b/i, file);
    assert.doesNotMatch(
      text,
      /\b(the seed|seed['’]s|seed (chart|README|project|controller|dispatcher|image))\b/i,
      file,
    );
  }
});

/** GitHub's anchor for a heading. */
function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N} _-]/gu, '')
    .replace(/ /g, '-');
}

test('relative links in the documents lead to files and headings that exist', () => {
  for (const file of userDocs.filter((f) => f.endsWith('.md'))) {
    const text = read(file).replace(/```[\s\S]*?```/g, '');
    for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      const target = m[1]!;
      if (/^[a-z]+:/.test(target)) continue;
      const [path, anchor] = target.split('#') as [string, string | undefined];
      const resolved = path === '' ? file : join(dirname(file), path);
      let content: string;
      try {
        content = read(resolved);
      } catch {
        assert.fail(`${file}: ${target} (no ${resolved})`);
      }
      if (anchor === undefined) continue;
      const anchors = content
        .split('\n')
        .filter((l) => /^#+ /.test(l))
        .map((l) => slug(l.replace(/^#+ /, '')));
      assert.ok(anchors.includes(anchor), `${file}: ${target} (no heading #${anchor} in ${resolved})`);
    }
  }
});
