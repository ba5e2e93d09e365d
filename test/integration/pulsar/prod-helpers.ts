// Helpers for the production-cluster tests (TLS, tokens, partitions, codecs, chunks, proxy).
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Logger } from '../../../src/pulsar/auth.ts';
import type { Consumer, Message } from '../../../src/pulsar/index.ts';

export function uniqueName(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
}

/** A logger that keeps every record, to check what was (and was not) logged. */
export function recordingLogger(): Logger & { records: { level: string; obj: object; msg: string }[] } {
  const records: { level: string; obj: object; msg: string }[] = [];
  const at =
    (level: string) =>
    (obj: object, msg?: string): void => {
      records.push({ level, obj, msg: msg ?? '' });
    };
  return { records, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

/** The next message or undefined after `ms` (a late message is nacked, never lost). */
export async function nextWithin(consumer: Consumer, ms: number): Promise<Message | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const pending = consumer.receive();
  const m = await Promise.race([
    pending,
    new Promise<undefined>((r) => {
      timer = setTimeout(() => r(undefined), Math.max(0, ms));
    }),
  ]);
  clearTimeout(timer);
  if (m === undefined)
    pending.then(
      (late) => consumer.nack(late),
      () => {},
    );
  return m;
}

/** Receives (and acks) exactly n messages or throws after the guard. */
export async function takeN(consumer: Consumer, n: number, guardMs = 90_000): Promise<Message[]> {
  const out: Message[] = [];
  const deadline = Date.now() + guardMs;
  while (out.length < n) {
    const m = await nextWithin(consumer, deadline - Date.now());
    if (!m) throw new Error(`received ${out.length} of ${n} messages within the ${guardMs} ms guard`);
    out.push(m);
    await consumer.ack(m);
  }
  return out;
}

/** Admin REST call (plain or TLS with a CA and a token). */
export async function admin(
  adminUrl: string,
  method: string,
  path: string,
  opts: { token?: string | undefined; caFile?: string | undefined; body?: unknown } = {},
): Promise<string> {
  const args = ['-sS', '-X', method, '-w', '\n%{http_code}', `${adminUrl}${path}`];
  if (opts.token) args.push('-H', `Authorization: Bearer ${opts.token}`);
  if (opts.caFile) args.push('--cacert', opts.caFile);
  if (opts.body !== undefined)
    args.push('-H', 'Content-Type: application/json', '-d', JSON.stringify(opts.body));
  const out = await new Promise<string>((resolve, reject) =>
    execFile('curl', args, (err, stdout) => (err ? reject(err) : resolve(stdout))),
  );
  const i = out.lastIndexOf('\n');
  const status = Number(out.slice(i + 1));
  const body = out.slice(0, i);
  if (status >= 300) throw new Error(`admin ${method} ${path}: HTTP ${status} ${body}`);
  return body;
}

/** Creates a partitioned topic (persistent://public/default/<name>) with n partitions. */
export async function createPartitionedTopic(
  adminUrl: string,
  name: string,
  partitions: number,
  opts: { token?: string; caFile?: string } = {},
): Promise<string> {
  await admin(adminUrl, 'PUT', `/admin/v2/persistent/public/default/${name}/partitions`, {
    ...opts,
    body: partitions,
  });
  return `persistent://public/default/${name}`;
}

export function readKey(file: string): Buffer {
  return readFileSync(file);
}
