// Loaded into the controller process by bench/controller.ts --diagnose (node --import): its event-loop delay,
// reported on stderr and reset at each SIGUSR2, so the benchmark can read it for one phase.
import { monitorEventLoopDelay } from 'node:perf_hooks';

const h = monitorEventLoopDelay({ resolution: 5 });
h.enable();
process.on('SIGUSR2', () => {
  const ms = (ns) => (ns / 1e6).toFixed(1);
  process.stderr.write(
    `diagnose: controller event-loop delay: mean ${ms(h.mean)} ms, p50 ${ms(h.percentile(50))}, p99 ${ms(h.percentile(99))}, max ${ms(h.max)} ms\n`,
  );
  h.reset();
});
