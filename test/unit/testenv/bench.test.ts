import assert from 'node:assert/strict';
import { test } from 'node:test';
import { benchFiles, benchServers, formatTable, parseBenchLine } from '../../../testenv/bench.ts';

test('BENCH lines parse; the ratio is derived from the limit when absent', () => {
  assert.deepEqual(
    parseBenchLine(
      'BENCH {"name":"produce","value":900,"unit":"msg/s","limit":1000,"limitName":"Java","goal":"ratio >= 0.8","ok":true}',
    ),
    {
      name: 'produce',
      value: 900,
      unit: 'msg/s',
      limit: 1000,
      limitName: 'Java',
      ratio: 0.9,
      goal: 'ratio >= 0.8',
      ok: true,
    },
  );
  assert.equal(parseBenchLine('produce: 900 msg/s'), undefined);
  assert.deepEqual(parseBenchLine('BENCH {"name":"x"}'), { malformed: 'BENCH {"name":"x"}' });
  assert.deepEqual(parseBenchLine('BENCH not json'), { malformed: 'BENCH not json' });
});

test('the table shows each figure next to its limit, ratio and goal, and failed benchmarks', () => {
  const table = formatTable([
    {
      file: 'bench/client.ts',
      code: 0,
      seconds: 1,
      malformed: [],
      figures: [
        {
          name: 'produce',
          value: 51234,
          unit: 'msg/s',
          limit: 60211,
          limitName: 'Java',
          ratio: 0.851,
          goal: 'ratio >= 0.8',
          ok: true,
        },
      ],
    },
    { file: 'bench/controller.ts', code: 3, seconds: 1, malformed: [], figures: [] },
  ]);
  const lines = table.split('\n');
  assert.match(lines[0]!, /^benchmark\s+figure\s+value\s+limit \/ peer\s+ratio\s+goal\s+met$/);
  assert.match(
    lines[2]!,
    /^client\s+produce\s+51,234 msg\/s\s+60,211 msg\/s \(Java\)\s+0\.85\s+ratio >= 0\.8\s+yes$/,
  );
  assert.match(lines[3]!, /^controller\s+FAILED \(exit 3\)$/);
});

test('each benchmark declares the servers it uses; make bench starts only those for it', () => {
  const declared = Object.fromEntries(benchFiles().map((f) => [f, benchServers(f)]));
  // The Pulsar benchmarks need no API server, the controller's no broker: each runs without the other's idle CPU.
  assert.deepEqual(declared, {
    'bench/autoscaling.ts': ['pulsar', 'kube', 'node'],
    'bench/backlog.ts': ['pulsar', 'kube'],
    'bench/client-codecs.ts': ['pulsar'],
    'bench/client.ts': ['pulsar'],
    'bench/controller.ts': ['kube'],
    'bench/dispatcher.ts': ['pulsar'],
  });
});
