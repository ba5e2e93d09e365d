// Where the real servers are. `make test` (testenv/cli.ts) starts them and exports these variables; a developer
// can point them at servers of their own. A missing variable is a test failure, never a skip: a test that cannot
// reach its server proves nothing.

export interface PulsarPlain {
  /** pulsar://127.0.0.1:port, no authentication. */
  serviceUrl: string;
  /** http://127.0.0.1:port, the admin REST API. */
  adminUrl: string;
  /** The extracted Pulsar distribution (bin/pulsar-client, bin/pulsar-admin, bin/pulsar-perf), if local. */
  home: string | undefined;
}

export interface PulsarSecure {
  /** pulsar+ssl://localhost:port, token authentication and authorization on. */
  serviceUrl: string;
  /** https://localhost:port. */
  adminUrl: string;
  caFile: string;
  adminToken: string;
  clientToken: string;
  /** The HS256 secret key file the broker validates tokens with (to mint short-lived tokens in tests). */
  secretKeyFile: string;
  home: string | undefined;
}

export interface Kube {
  /** Admin kubeconfig (system:masters). */
  kubeconfig: string;
  /** A kubeconfig for an identity with no RBAC grants. */
  unprivilegedKubeconfig: string;
  /** Folder with the pinned kubectl and helm binaries. */
  binDir: string;
}

function need(name: string): string {
  const value = process.env[name];
  if (!value) {
    throw new Error(
      `test environment: ${name} is not set. Run the tests through \`make test\` or start servers with \`make env-up\` and \`eval "$(make -s env)"\`.`,
    );
  }
  return value;
}

export function pulsarPlain(): PulsarPlain {
  return {
    serviceUrl: need('PULSAR_SERVICE_URL'),
    adminUrl: need('PULSAR_ADMIN_URL'),
    home: process.env.PULSAR_HOME || undefined,
  };
}

export function pulsarSecure(): PulsarSecure {
  return {
    serviceUrl: need('PULSAR_SECURE_SERVICE_URL'),
    adminUrl: need('PULSAR_SECURE_ADMIN_URL'),
    caFile: need('PULSAR_SECURE_CA_FILE'),
    adminToken: need('PULSAR_SECURE_ADMIN_TOKEN'),
    clientToken: need('PULSAR_SECURE_CLIENT_TOKEN'),
    secretKeyFile: need('PULSAR_SECURE_SECRET_KEY_FILE'),
    home: process.env.PULSAR_HOME || undefined,
  };
}

export function pulsarHome(): string {
  return need('PULSAR_HOME');
}

export function kube(): Kube {
  return {
    kubeconfig: need('KUBECONFIG'),
    unprivilegedKubeconfig: need('KUBECONFIG_UNPRIVILEGED'),
    binDir: need('KPT_BIN_DIR'),
  };
}

export interface Node {
  /** The node's name (kubelet --hostname-override). */
  name: string;
  /** The node's InternalIP: the pod bridge's gateway, where pods reach servers on this machine. */
  ip: string;
  /** containerd's socket, for `ctr` (the node's runtime). */
  containerdAddress: string;
  /** The API server as pods reach it (https://<node ip>:<port>). */
  podApiServer: string;
  /** The project's images, imported into the node's runtime (`make image`). */
  controllerImage: string;
  dispatcherImage: string;
  /** The plain broker as pods reach it (pulsar://<node ip>:<port>). */
  pulsarServiceUrl: string;
  /** The secure broker as pods reach it (pulsar+ssl://<node ip>:<port>). */
  pulsarSecureServiceUrl: string;
  /** The plain broker's admin API as pods reach it (http://<node ip>:<port>). */
  pulsarAdminUrl: string;
  /** The secure broker's admin API as pods reach it (https://<node ip>:<port>). */
  pulsarSecureAdminUrl: string;
}

/** The real node (testenv/node.ts) that runs pods: kubelet, containerd, the project's images. */
export function node(): Node {
  return {
    name: need('KPT_NODE_NAME'),
    ip: need('KPT_NODE_IP'),
    containerdAddress: need('KPT_CONTAINERD_ADDRESS'),
    podApiServer: need('KPT_POD_API_SERVER'),
    controllerImage: need('KPT_CONTROLLER_IMAGE'),
    dispatcherImage: need('KPT_DISPATCHER_IMAGE'),
    pulsarServiceUrl: need('PULSAR_POD_SERVICE_URL'),
    pulsarSecureServiceUrl: need('PULSAR_SECURE_POD_SERVICE_URL'),
    pulsarAdminUrl: need('PULSAR_POD_ADMIN_URL'),
    pulsarSecureAdminUrl: need('PULSAR_SECURE_POD_ADMIN_URL'),
  };
}
