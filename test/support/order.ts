// Per-key order of what a function received, for the ordering tests (dispatcher and end to end).

/** What the function saw, per key: arrivals by message number. */
export interface OrderReport {
  /** Distinct messages delivered. */
  delivered: number;
  /** Messages whose first arrival came after a later message of their key had arrived. */
  late: number;
  /** Arrivals of a message that had arrived before (a redelivery: at least once). */
  repeats: number;
  /** Keys with a late message. */
  keysOutOfOrder: string[];
}

/**
 * Each key's arrivals in the order the function got them. No message late and every message delivered: each key
 * arrived in exactly its production order.
 */
export function orderReport(arrivals: { key: string; n: number }[]): OrderReport {
  const highest = new Map<string, number>();
  const seen = new Set<string>();
  const bad = new Set<string>();
  let late = 0;
  let repeats = 0;
  for (const { key, n } of arrivals) {
    const id = `${key}/${n}`;
    if (seen.has(id)) {
      repeats++;
      continue;
    }
    seen.add(id);
    const top = highest.get(key) ?? -1;
    if (n < top) {
      late++;
      bad.add(key);
    }
    highest.set(key, Math.max(top, n));
  }
  return { delivered: seen.size, late, repeats, keysOutOfOrder: [...bad].sort() };
}
