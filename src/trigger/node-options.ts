// V8 heap flags for the dispatcher container, rendered into its NODE_OPTIONS from the container's memory limit.
//
// Why: V8 sizes its heap from the machine's memory, not the container's, and grows it lazily under a high
// allocation rate; a dispatcher at full load reached ~170-300 MiB RSS with Node's defaults while holding a bounded
// number of messages (bench/dispatcher.ts). A young generation of a few MiB and an old-space cap derived from the
// limit keep it well inside the limit, and a heap that hits its cap fails as "heap out of memory" (restart) before
// the kernel's OOM killer would.
//
// Measured (bench/dispatcher.ts, 2 shared cores, 60,000 × 1 KiB): the old-space cap is what bounds RSS at full
// load and what costs throughput when small (64 MiB: ~27 % of the CPU in GC, -35 % msg/s); the semi-space size
// matters less: 16 MiB instead of 4 raised the full-load peak to 135-138 MiB (over the 128 MiB goal) with no
// throughput gain, so 4 stays. See docs/dispatcher.md (Memory).

/** Young generation semi-space, MiB. */
export const SEMI_SPACE_MIB = 4;
/** Old space as a fraction of the memory limit, within [OLD_SPACE_MIN_MIB, OLD_SPACE_MAX_MIB]. */
export const OLD_SPACE_FRACTION = 1 / 8;
export const OLD_SPACE_MIN_MIB = 64;
export const OLD_SPACE_MAX_MIB = 2048;

const UNITS: Record<string, number> = {
  '': 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
};

/** A Kubernetes memory quantity ("1Gi", "512Mi", "1e9", "800M", 1073741824) in bytes; undefined if unreadable. */
export function memoryBytes(quantity: unknown): number | undefined {
  if (typeof quantity === 'number') return Number.isFinite(quantity) && quantity > 0 ? quantity : undefined;
  if (typeof quantity !== 'string') return undefined;
  const m = /^([0-9]+(?:\.[0-9]+)?(?:[eE][0-9]+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(quantity.trim());
  if (!m) return undefined;
  const bytes = Number(m[1]) * (UNITS[m[2] ?? ''] ?? 1);
  return Number.isFinite(bytes) && bytes > 0 ? bytes : undefined;
}

/** NODE_OPTIONS for a dispatcher whose container has this memory limit (none: the default limit's share). */
export function dispatcherNodeOptions(memoryLimit: unknown): string {
  const limit = memoryBytes(memoryLimit) ?? 2 ** 30;
  const oldSpace = Math.min(
    OLD_SPACE_MAX_MIB,
    Math.max(OLD_SPACE_MIN_MIB, Math.floor((limit / 2 ** 20) * OLD_SPACE_FRACTION)),
  );
  return `--max-semi-space-size=${SEMI_SPACE_MIB} --max-old-space-size=${oldSpace}`;
}
