// Helpers for the Pulsar client integration tests (real broker from test/support/env.ts).
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { Consumer, Message } from '../../../src/pulsar/index.ts';

export function unique(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
}

/** Receives `n` messages, failing (not hanging) if they do not come within `guardMs`. */
export async function receiveN(
  consumer: Consumer,
  n: number,
  guardMs = 60_000,
  ack = true,
): Promise<Message[]> {
  const out: Message[] = [];
  const deadline = Date.now() + guardMs;
  while (out.length < n) {
    const m = await receiveWithin(consumer, deadline - Date.now());
    if (!m) throw new Error(`received ${out.length} of ${n} messages before the ${guardMs} ms guard`);
    out.push(m);
    if (ack) await consumer.ack(m);
  }
  return out;
}

// A receive() that outlived its wait stays pending; the next wait on the same consumer picks it up, so no
// message is taken by a forgotten receive.
const outstanding = new WeakMap<Consumer, Promise<Message>>();

/** The next message, or undefined if none comes within ms. */
export async function receiveWithin(consumer: Consumer, ms: number): Promise<Message | undefined> {
  let pending = outstanding.get(consumer);
  if (!pending) {
    pending = consumer.receive();
    pending.catch(() => {});
    outstanding.set(consumer, pending);
  }
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((r) => {
    timer = setTimeout(() => r(undefined), Math.max(0, ms));
  });
  const m = await Promise.race([pending, timeout]);
  clearTimeout(timer);
  if (m !== undefined) outstanding.delete(consumer);
  return m;
}

/** Runs $PULSAR_HOME/bin/pulsar-client with the given arguments; resolves with stdout. */
export function pulsarClientCli(
  home: string,
  serviceUrl: string,
  args: string[],
  timeoutMs = 180_000,
): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      join(home, 'bin/pulsar-client'),
      ['--url', serviceUrl, ...args],
      { timeout: timeoutMs, maxBuffer: 256 * 1024 * 1024, env: { ...process.env, PULSAR_MEM: '-Xmx256m' } },
      (err, stdout, stderr) => {
        if (err)
          reject(new Error(`pulsar-client ${args.join(' ')} failed: ${err.message}\n${stderr.slice(-4000)}`));
        else resolve(stdout);
      },
    );
  });
}
