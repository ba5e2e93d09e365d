// Publish messages to a Pulsar topic with the project's own client (src/pulsar/).
//
//   node examples/publish.ts --url pulsar://127.0.0.1:6650 --topic persistent://public/default/hello hi there
//   node examples/publish.ts --url ... --topic ... --count 10 --key k1 tick     # tick-0 ... tick-9
//   --token JWT for a broker with token authentication; --ca FILE for pulsar+ssl:// with a private CA.

import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { PulsarClient } from '../src/pulsar/index.ts';
import { tokenAuth } from '../src/pulsar/token.ts';

export interface PublishOptions {
  url: string;
  topic: string;
  messages: string[];
  key?: string | undefined;
  token?: string | undefined;
  caFile?: string | undefined;
}

/** Publishes each message and waits for the broker's receipts; returns their message ids. */
export async function publishMessages(o: PublishOptions): Promise<string[]> {
  const client = new PulsarClient({
    serviceUrl: o.url,
    ...(o.token ? { auth: tokenAuth({ token: o.token }) } : {}),
    ...(o.caFile ? { tls: { ca: readFileSync(o.caFile, 'utf8') } } : {}),
  });
  try {
    // One batch per key, the way a Key_Shared subscription (the default with ordering key) needs it.
    const producer = await client.createProducer({ topic: o.topic, batchingByKey: true });
    const ids = await Promise.all(
      o.messages.map((m) =>
        producer.send({ payload: Buffer.from(m), key: o.key, properties: { source: 'examples/publish.ts' } }),
      ),
    );
    await producer.close();
    return ids.map((id) => id.toString());
  } finally {
    await client.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      url: { type: 'string', default: process.env.PULSAR_SERVICE_URL ?? 'pulsar://127.0.0.1:6650' },
      topic: { type: 'string', default: 'persistent://public/default/hello' },
      count: { type: 'string' },
      key: { type: 'string' },
      token: { type: 'string' },
      ca: { type: 'string' },
    },
  });
  const base = positionals.length > 0 ? positionals : ['hello from examples/publish.ts'];
  const count = values.count ? Number(values.count) : undefined;
  const messages = count ? Array.from({ length: count }, (_, i) => `${base.join(' ')}-${i}`) : base;
  const ids = await publishMessages({
    url: values.url,
    topic: values.topic,
    messages,
    key: values.key,
    token: values.token,
    caFile: values.ca,
  });
  for (let i = 0; i < ids.length; i++)
    process.stdout.write(`published ${JSON.stringify(messages[i])} as ${ids[i]}\n`);
  process.exit(0);
}
