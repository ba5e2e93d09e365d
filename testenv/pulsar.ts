// A real Apache Pulsar standalone broker for tests, from the official server distribution fetched from Maven
// Central with Maven itself (cached in ~/.m2 and extracted under the kpt cache, reused by later runs).
//
// Profiles:
//  - plain:  pulsar://127.0.0.1, no authentication.
//  - secure: pulsar+ssl://localhost and https://localhost with a generated CA, token authentication (HS256,
//            generated secret key), authorization on, an admin (superuser) token and a client token with
//            produce/consume on public/default. Plain ports are still open but require a token too.

import { execFileSync } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeCa, makeLeaf } from './lib/certs.ts';
import { newSecretKey, signToken } from './lib/jwt.ts';
import { freePort, type ServiceProcess, spawnService, waitFor } from './lib/proc.ts';

export const PULSAR_VERSION = '4.0.8';

export function cacheDir(): string {
  const dir = process.env.KPT_CACHE || join(homedir(), '.cache', 'kpt');
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** The extracted distribution; downloads (mvn dependency:get) and extracts it on first use. */
export function ensurePulsarDistribution(): string {
  const home = join(cacheDir(), 'pulsar', `apache-pulsar-${PULSAR_VERSION}`);
  if (existsSync(join(home, 'bin', 'pulsar')) && existsSync(join(home, '.kpt-complete'))) return home;
  const artifact = `org.apache.pulsar:pulsar-server-distribution:${PULSAR_VERSION}:tar.gz:bin`;
  // MAVEN_REPO moves Maven's local repository (e.g. a CI cache); by default it is ~/.m2/repository.
  const m2 = process.env.MAVEN_REPO || join(homedir(), '.m2', 'repository');
  const mvnArgs = ['-q', '-B', '-Dstyle.color=never', `-Dmaven.repo.local=${m2}`, 'dependency:get'];
  execFileSync('mvn', [...mvnArgs, `-Dartifact=${artifact}`, '-Dtransitive=false'], {
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const tarball = join(
    m2,
    'org/apache/pulsar/pulsar-server-distribution',
    PULSAR_VERSION,
    `pulsar-server-distribution-${PULSAR_VERSION}-bin.tar.gz`,
  );
  if (!existsSync(tarball)) throw new Error(`testenv: Maven reported success but ${tarball} is missing`);
  const parent = join(cacheDir(), 'pulsar');
  const staging = mkdtempSync(join(parent.replace(/pulsar$/, ''), 'pulsar-extract-'));
  execFileSync('tar', ['xzf', tarball, '-C', staging]);
  rmSync(home, { recursive: true, force: true });
  mkdirSync(parent, { recursive: true });
  renameSync(join(staging, `apache-pulsar-${PULSAR_VERSION}`), home);
  rmSync(staging, { recursive: true, force: true });
  writeFileSync(join(home, '.kpt-complete'), `${artifact}\n`);
  return home;
}

export type PulsarProfile = 'plain' | 'secure';

export interface PulsarHandle {
  readonly profile: PulsarProfile;
  readonly home: string;
  readonly dataDir: string;
  readonly logFile: string;
  /** pulsar://127.0.0.1:port (plain) or pulsar+ssl://localhost:port (secure). */
  readonly serviceUrl: string;
  /** http://127.0.0.1:port (plain) or https://localhost:port (secure). */
  readonly adminUrl: string;
  /** The plain (non-TLS) broker URL; in the secure profile it still requires a token. */
  readonly plainServiceUrl: string;
  readonly caFile?: string;
  readonly adminToken?: string;
  readonly clientToken?: string;
  readonly secretKeyFile?: string;
  /** Environment variables for tests (see test/support/env.ts). */
  readonly env: Record<string, string>;
  readonly process: () => ServiceProcess;
  /** Peak RSS of the broker JVM in MiB, as far as observed. */
  peakRssMiB(): number | undefined;
  /** Stop and start again on the same ports and data (a broker restart as clients see it). */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export interface StartPulsarOptions {
  profile?: PulsarProfile;
  /** JVM heap; the standalone runs broker and bookie in one JVM. */
  maxHeap?: string;
  /** Extra broker settings (key=value lines appended to standalone.conf; last wins). */
  settings?: Record<string, string | number | boolean>;
  /** Seconds between re-checks of a connection's credentials (AUTH_CHALLENGE), secure profile. */
  authRefreshSeconds?: number;
  startTimeoutMs?: number;
  /**
   * Another address of this machine that pods reach (the pod bridge's gateway, testenv/node.ts): the broker then
   * listens on every address and advertises this one in lookups, so a client anywhere on the machine or in a pod
   * follows them to an address it can reach; the secure profile's certificate names it too.
   */
  podAddress?: string;
}

export async function startPulsar(opts: StartPulsarOptions = {}): Promise<PulsarHandle> {
  const profile = opts.profile ?? 'plain';
  const home = ensurePulsarDistribution();
  const dataDir = mkdtempSync(join(tmpdir(), `kpt-pulsar-${profile}-`));
  const logFile = join(dataDir, 'pulsar.log');
  const [brokerPort, webPort, bookiePort] = [await freePort(), await freePort(), await freePort()];
  const secure = profile === 'secure';
  const settings: Record<string, string | number | boolean> = {
    bindAddress: opts.podAddress ? '0.0.0.0' : '127.0.0.1',
    advertisedAddress: opts.podAddress ?? (secure ? 'localhost' : '127.0.0.1'),
    brokerServicePort: brokerPort,
    webServicePort: webPort,
    // A 5 MiB payload plus its metadata fits in one message (the default limit, exactly 5 MiB, counts the
    // metadata too); bigger ones need chunking, as on a real cluster. The standalone's bookie keeps its own
    // default frame limit (5 MiB + 10 KiB) whatever this file says, so the broker must not accept more than that.
    maxMessageSize: 5 * 1024 * 1024 + 4096,
    // The standalone's bookie reads this file too; keep it light.
    dbStorage_writeCacheMaxSizeMb: 64,
    dbStorage_readAheadCacheMaxSizeMb: 64,
    dbStorage_rocksDB_blockCacheSize: 33554432,
    managedLedgerCacheSizeMB: 64,
    // Test data is thrown away: the bookie's journal need not fsync each write (like etcd's --unsafe-no-fsync).
    // Without this, publish latency here is the shared disk's fsync time, which hides the client's own.
    journalSyncData: false,
    // Batch-index acks (ack_set) are kept by the broker, so a partly acked batch redelivers only its unacked
    // entries, also to another consumer. Off by default in Pulsar 4.0; clusters that want it turn it on.
    acknowledgmentAtBatchIndexLevelEnabled: true,
    // A consumer waiting at the end of the topic is handed new entries at once instead of after the default 10 ms
    // re-check; latency-sensitive clusters set the same. Measured here: publish→receive p50 10 ms → 2.6 ms.
    managedLedgerNewEntriesCheckDelayInMillis: 0,
    // Let tests create topics and subscriptions freely; partitioned topics are created explicitly.
    allowAutoTopicCreation: true,
    allowAutoTopicCreationType: 'non-partitioned',
    brokerDeleteInactiveTopicsEnabled: false,
  };
  let tokens: { admin: string; client: string; secretKeyFile: string } | undefined;
  let caFile: string | undefined;
  let brokerTlsPort: number | undefined;
  let webTlsPort: number | undefined;
  if (secure) {
    brokerTlsPort = await freePort();
    webTlsPort = await freePort();
    const ca = makeCa(dataDir, 'pulsar-ca');
    caFile = ca.certFile;
    const server = makeLeaf(dataDir, ca, 'broker', {
      cn: 'localhost',
      altNames: ['DNS:localhost', ...(opts.podAddress ? [`IP:${opts.podAddress}`] : [])],
    });
    const secretKey = newSecretKey();
    const secretKeyFile = join(dataDir, 'token-secret.key');
    writeFileSync(secretKeyFile, secretKey, { mode: 0o600 });
    tokens = {
      admin: signToken(secretKey, 'admin'),
      client: signToken(secretKey, 'client'),
      secretKeyFile,
    };
    Object.assign(settings, {
      brokerServicePortTls: brokerTlsPort,
      webServicePortTls: webTlsPort,
      tlsCertificateFilePath: server.certFile,
      tlsKeyFilePath: server.keyFile,
      tlsTrustCertsFilePath: ca.certFile,
      authenticationEnabled: true,
      authenticationProviders: 'org.apache.pulsar.broker.authentication.AuthenticationProviderToken',
      tokenSecretKey: `file://${secretKeyFile}`,
      authenticationRefreshCheckSeconds: opts.authRefreshSeconds ?? 60,
      authorizationEnabled: true,
      superUserRoles: 'admin',
      brokerClientAuthenticationPlugin: 'org.apache.pulsar.client.impl.auth.AuthenticationToken',
      brokerClientAuthenticationParameters: `token:${tokens.admin}`,
    });
  }
  Object.assign(settings, opts.settings);
  const confFile = join(dataDir, 'standalone.conf');
  copyFileSync(join(home, 'conf', 'standalone.conf'), confFile);
  const overrides = Object.entries(settings)
    .map(([k, v]) => `${k}=${v}`)
    .join('\n');
  writeFileSync(confFile, `${readFileSync(confFile, 'utf8')}\n# kpt testenv overrides\n${overrides}\n`);

  const maxHeap = opts.maxHeap ?? '768m';
  const env = {
    PULSAR_MEM: `-Xms128m -Xmx${maxHeap} -XX:MaxDirectMemorySize=512m`,
    PULSAR_GC: '-XX:+UseSerialGC',
    PULSAR_LOG_DIR: join(dataDir, 'logs'),
    PULSAR_STANDALONE_CONF: confFile,
    PULSAR_EXTRA_OPTS: '-Dpulsar.allocator.exit_on_oom=true',
  };
  const args = [
    'standalone',
    '--config',
    confFile,
    '--no-functions-worker',
    '--no-stream-storage',
    '--bookkeeper-port',
    String(bookiePort),
    '--bookkeeper-dir',
    join(dataDir, 'bookkeeper'),
    '--metadata-dir',
    join(dataDir, 'metadata'),
    '--advertised-address',
    String(settings.advertisedAddress),
  ];
  const start = () => spawnService(`pulsar-${profile}`, join(home, 'bin', 'pulsar'), args, { env, logFile });

  const adminUrl = secure ? `https://localhost:${webTlsPort}` : `http://127.0.0.1:${webPort}`;
  const serviceUrl = secure ? `pulsar+ssl://localhost:${brokerTlsPort}` : `pulsar://127.0.0.1:${brokerPort}`;
  const plainServiceUrl = `pulsar://127.0.0.1:${brokerPort}`;
  const ca = caFile ? readFileSync(caFile) : undefined;
  const admin = (method: string, path: string, body?: unknown) =>
    adminRequest(adminUrl, method, path, { token: tokens?.admin, ca, body });

  let proc = start();
  let peak: number | undefined;
  const ready = async () => {
    const timeoutMs = opts.startTimeoutMs ?? 180_000;
    await waitFor(
      `pulsar ${profile} admin API at ${adminUrl}`,
      async () => {
        const r = await admin('GET', '/admin/v2/clusters');
        return r.status === 200 ? true : undefined;
      },
      { timeoutMs, svc: proc },
    );
    // Ready means a topic can be created (public/default exists and the bookie takes writes).
    await waitFor(
      `pulsar ${profile} topic creation`,
      async () => {
        const r = await admin('PUT', '/admin/v2/persistent/public/default/kpt-ready-check');
        return r.status === 204 || r.status === 409 ? true : undefined;
      },
      { timeoutMs, svc: proc },
    );
    if (secure) {
      const r = await admin('POST', '/admin/v2/namespaces/public/default/permissions/client', [
        'produce',
        'consume',
      ]);
      if (r.status !== 204)
        throw new Error(`testenv: granting client permissions failed: ${r.status} ${r.body}`);
    }
  };
  await ready();

  // Where pods reach the broker (the advertised pod address), next to where this machine's clients do.
  const podServiceUrl = opts.podAddress
    ? secure
      ? `pulsar+ssl://${opts.podAddress}:${brokerTlsPort}`
      : `pulsar://${opts.podAddress}:${brokerPort}`
    : undefined;
  const podAdminUrl = opts.podAddress
    ? secure
      ? `https://${opts.podAddress}:${webTlsPort}`
      : `http://${opts.podAddress}:${webPort}`
    : undefined;
  const testEnv: Record<string, string> = secure
    ? {
        ...(podServiceUrl ? { PULSAR_SECURE_POD_SERVICE_URL: podServiceUrl } : {}),
        ...(podAdminUrl ? { PULSAR_SECURE_POD_ADMIN_URL: podAdminUrl } : {}),
        PULSAR_SECURE_SERVICE_URL: serviceUrl,
        PULSAR_SECURE_ADMIN_URL: adminUrl,
        PULSAR_SECURE_CA_FILE: caFile!,
        PULSAR_SECURE_ADMIN_TOKEN: tokens!.admin,
        PULSAR_SECURE_CLIENT_TOKEN: tokens!.client,
        PULSAR_SECURE_SECRET_KEY_FILE: tokens!.secretKeyFile,
        PULSAR_HOME: home,
      }
    : {
        ...(podServiceUrl ? { PULSAR_POD_SERVICE_URL: podServiceUrl } : {}),
        ...(podAdminUrl ? { PULSAR_POD_ADMIN_URL: podAdminUrl } : {}),
        PULSAR_SERVICE_URL: serviceUrl,
        PULSAR_ADMIN_URL: adminUrl,
        PULSAR_HOME: home,
      };

  const handle: PulsarHandle = {
    profile,
    home,
    dataDir,
    logFile,
    serviceUrl,
    adminUrl,
    plainServiceUrl,
    caFile,
    adminToken: tokens?.admin,
    clientToken: tokens?.client,
    secretKeyFile: tokens?.secretKeyFile,
    env: testEnv,
    process: () => proc,
    peakRssMiB() {
      const now = proc.peakRssMiB();
      if (now !== undefined && (peak === undefined || now > peak)) peak = now;
      return peak;
    },
    async restart() {
      handle.peakRssMiB();
      await proc.stop(20_000);
      proc = start();
      await ready();
    },
    async stop() {
      handle.peakRssMiB();
      await proc.stop(15_000);
      if (!process.env.KPT_KEEP_DATA) rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return handle;
}

export interface AdminResponse {
  status: number;
  body: string;
}

/** A minimal admin REST call (http or https with a CA and a bearer token). */
export async function adminRequest(
  baseUrl: string,
  method: string,
  path: string,
  opts: { token?: string; ca?: Buffer; body?: unknown } = {},
): Promise<AdminResponse> {
  const headers: Record<string, string> = {};
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  const body = opts.body === undefined ? undefined : JSON.stringify(opts.body);
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (baseUrl.startsWith('https:')) {
    return new Promise((resolve, reject) => {
      const req = httpsRequest(
        `${baseUrl}${path}`,
        { method, headers, ca: opts.ca, timeout: 10_000 },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }),
          );
        },
      );
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', reject);
      req.end(body);
    });
  }
  const res = await fetch(`${baseUrl}${path}`, {
    method,
    headers,
    body,
    signal: AbortSignal.timeout(10_000),
  });
  return { status: res.status, body: await res.text() };
}
