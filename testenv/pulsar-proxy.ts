// A real Pulsar proxy (`bin/pulsar proxy` from the same distribution) in front of a running broker: lookups
// through it answer with the broker's address and proxyThroughServiceUrl, and clients then CONNECT to the
// proxy naming the broker (proxy_to_broker_url). Free ports, its own copy of proxy.conf, a bounded heap, logs
// in its own data dir; stop() kills the whole process group.

import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, type ServiceProcess, spawnService, waitFor } from './lib/proc.ts';

export interface StartProxyOptions {
  /** The Pulsar distribution (bin/pulsar). */
  home: string;
  /** The broker's pulsar:// URL and http:// admin URL the proxy forwards to. */
  brokerServiceUrl: string;
  brokerWebServiceUrl: string;
  /** Extra proxy.conf settings (last wins). */
  settings?: Record<string, string | number | boolean>;
  startTimeoutMs?: number;
}

export interface ProxyHandle {
  /** pulsar://127.0.0.1:port of the proxy. */
  readonly serviceUrl: string;
  /** http://127.0.0.1:port of the proxy's web service. */
  readonly webUrl: string;
  readonly dataDir: string;
  readonly logFile: string;
  readonly process: ServiceProcess;
  stop(): Promise<void>;
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export async function startPulsarProxy(opts: StartProxyOptions): Promise<ProxyHandle> {
  const dataDir = mkdtempSync(join(tmpdir(), 'kpt-pulsar-proxy-'));
  const logFile = join(dataDir, 'proxy.log');
  const [servicePort, webPort] = [await freePort(), await freePort()];
  const settings: Record<string, string | number | boolean> = {
    bindAddress: '127.0.0.1',
    advertisedAddress: '127.0.0.1',
    servicePort,
    webServicePort: webPort,
    clusterName: 'standalone',
    brokerServiceURL: opts.brokerServiceUrl,
    brokerWebServiceURL: opts.brokerWebServiceUrl,
    // The test brokers listen on random ports, not only 6650/6651.
    brokerProxyAllowedTargetPorts: '*',
    brokerProxyAllowedHostNames: '*',
    brokerProxyAllowedIPAddresses: '*',
    ...opts.settings,
  };
  const confFile = join(dataDir, 'proxy.conf');
  copyFileSync(join(opts.home, 'conf', 'proxy.conf'), confFile);
  const overrides = Object.entries(settings)
    .map(([k, v]) => `${k}=${v}`)
    .join('\n');
  writeFileSync(confFile, `${readFileSync(confFile, 'utf8')}\n# kpt testenv overrides\n${overrides}\n`);
  const svc = spawnService('pulsar-proxy', join(opts.home, 'bin', 'pulsar'), ['proxy'], {
    env: {
      PULSAR_PROXY_CONF: confFile,
      PULSAR_MEM: '-Xms64m -Xmx256m -XX:MaxDirectMemorySize=256m',
      PULSAR_GC: '-XX:+UseSerialGC',
      PULSAR_LOG_DIR: join(dataDir, 'logs'),
    },
    logFile,
  });
  try {
    await waitFor('pulsar proxy port', async () => ((await portOpen(servicePort)) ? true : undefined), {
      timeoutMs: opts.startTimeoutMs ?? 120_000,
      svc,
      intervalMs: 500,
    });
  } catch (e) {
    await svc.stop();
    throw e;
  }
  return {
    serviceUrl: `pulsar://127.0.0.1:${servicePort}`,
    webUrl: `http://127.0.0.1:${webPort}`,
    dataDir,
    logFile,
    process: svc,
    async stop() {
      await svc.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
