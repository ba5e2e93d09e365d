// In-memory stand-ins for the runner's ports: a broker-like source (redelivers what is released or left unacked
// at close), a scripted function and a dead-letter sink.

import type { Attempt, AttemptDone, FunctionClient } from '../../../src/dispatcher/http.ts';
import type { Outcome } from '../../../src/dispatcher/policy.ts';
import type { DeadLetter, DeadLetterSink, MessageSource } from '../../../src/dispatcher/ports.ts';
import type { SourceMessage } from '../../../src/dispatcher/request.ts';

export function message(n: number, over: Partial<SourceMessage> = {}): SourceMessage {
  return {
    id: `1:${n}:-1:-1`,
    payload: new TextEncoder().encode(`m${n}`),
    key: undefined,
    properties: {},
    eventTime: undefined,
    publishTime: 1_700_000_000_000 + n,
    redeliveryCount: 0,
    topic: 'persistent://public/default/t',
    ...over,
  };
}

export class FakeSource implements MessageSource<SourceMessage> {
  readonly queue: SourceMessage[] = [];
  readonly acked: string[] = [];
  readonly released: string[] = [];
  closed = false;
  #waiters: ((m: SourceMessage | undefined) => void)[] = [];
  #outstanding = new Map<string, SourceMessage>();

  push(...msgs: SourceMessage[]): void {
    for (const m of msgs) {
      const w = this.#waiters.shift();
      if (w) {
        this.#outstanding.set(m.id, m);
        w(m);
      } else this.queue.push(m);
    }
  }
  receive(): Promise<SourceMessage | undefined> {
    if (this.closed) return Promise.resolve(undefined);
    const m = this.queue.shift();
    if (m) {
      this.#outstanding.set(m.id, m);
      return Promise.resolve(m);
    }
    return new Promise((resolve) => this.#waiters.push(resolve));
  }
  async ack(msg: SourceMessage): Promise<void> {
    this.acked.push(msg.id);
    this.#outstanding.delete(msg.id);
  }
  release(msg: SourceMessage): void {
    this.released.push(msg.id);
    this.#outstanding.delete(msg.id);
    setTimeout(() => this.push({ ...msg, redeliveryCount: msg.redeliveryCount + 1 }), 1);
  }
  isReady(): boolean {
    return !this.closed;
  }
  async close(): Promise<void> {
    this.closed = true;
    for (const w of this.#waiters.splice(0)) w(undefined);
  }
  /** What the broker would redeliver after the close. */
  unacked(): string[] {
    return [...this.#outstanding.keys()];
  }
}

export type Script = (
  body: string,
  headers: Record<string, string>,
  signal?: AbortSignal,
) => Promise<Outcome> | Outcome;

export class FakeFunction implements FunctionClient {
  readonly calls: { body: string; headers: Record<string, string> }[] = [];
  script: Script;
  closed = false;
  constructor(script: Script = () => ({ kind: 'status', status: 200 })) {
    this.script = script;
  }
  async post(payload: Uint8Array, headers: Record<string, string>, signal?: AbortSignal): Promise<Attempt> {
    const body = new TextDecoder().decode(payload);
    this.calls.push({ body, headers });
    const outcome = await this.script(body, headers, signal);
    return { outcome, durationMs: 1 };
  }
  send<T>(
    payload: Uint8Array,
    headers: Record<string, string>,
    signal: AbortSignal | undefined,
    done: AttemptDone<T>,
    ctx: T,
  ): void {
    void this.post(payload, headers, signal).then((a) => done(ctx, a.outcome, a.durationMs));
  }
  async close(): Promise<void> {
    this.closed = true;
  }
}

export class FakeSink implements DeadLetterSink {
  readonly sent: DeadLetter[] = [];
  failNext = 0;
  async send(msg: DeadLetter): Promise<void> {
    await new Promise((r) => setTimeout(r, 1));
    if (this.failNext > 0) {
      this.failNext--;
      throw Object.assign(new Error('broker unavailable'), { code: 'E_TEST' });
    }
    this.sent.push(msg);
  }
  async close(): Promise<void> {}
}

export function until(check: () => boolean, what: string, limitMs = 5000): Promise<void> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const tick = () => {
      if (check()) resolve();
      else if (Date.now() - started > limitMs) reject(new Error(`timed out waiting for: ${what}`));
      else setTimeout(tick, 2);
    };
    tick();
  });
}

/** Resolves after an abort or never: a function that hangs. */
export function hang(signal?: AbortSignal): Promise<Outcome> {
  return new Promise((resolve) => {
    signal?.addEventListener('abort', () => resolve({ kind: 'aborted' }), { once: true });
  });
}
