// The function the dispatcher benchmarks post to: a minimal HTTP server answering 200 with an empty body, in a
// worker thread (its own event loop) of the benchmark's process. Counts requests; a body starting with "T" and a
// timestamp (ms since the epoch, fractional, 23 characters) is a latency probe.

import { Worker } from 'node:worker_threads';

const FUNCTION_SOURCE = `
const { parentPort } = require('node:worker_threads');
const http = require('node:http');
let count = 0;
let latencies = [];
const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    count++;
    const body = Buffer.concat(chunks);
    if (body[0] === 0x54) latencies.push(performance.timeOrigin + performance.now() - Number(body.subarray(1, 24).toString()));
    res.writeHead(200, { 'content-length': '0' });
    res.end();
  });
});
server.keepAliveTimeout = 60000;
server.listen(0, '127.0.0.1', () => parentPort.postMessage({ port: server.address().port }));
parentPort.on('message', (m) => {
  if (m === 'count') parentPort.postMessage({ count });
  if (m === 'latencies') { parentPort.postMessage({ latencies }); latencies = []; }
});
`;

export class FunctionWorker {
  readonly worker = new Worker(FUNCTION_SOURCE, { eval: true });
  port = 0;
  async start(): Promise<void> {
    this.port = await new Promise<number>((resolve) =>
      this.worker.once('message', (m: { port: number }) => resolve(m.port)),
    );
  }
  ask<T>(what: 'count' | 'latencies'): Promise<T> {
    return new Promise((resolve) => {
      this.worker.once('message', (m: T) => resolve(m));
      this.worker.postMessage(what);
    });
  }
  async count(): Promise<number> {
    return (await this.ask<{ count: number }>('count')).count;
  }
  get url(): string {
    return `http://127.0.0.1:${this.port}/`;
  }
  stop(): Promise<number> {
    return this.worker.terminate();
  }
}
