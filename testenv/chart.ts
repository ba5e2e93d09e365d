// The chart's values for a release on the test node (testenv/node.ts), shared by `make demo` and the end-to-end
// tests: the project's images as imported into the node's runtime (never pulled), and the API server's address as
// pods reach it (the node has no kube-proxy, so the in-cluster Service address leads nowhere). Everything else is
// the chart's own default unless the caller says otherwise.

/** An image reference split as the chart takes it: repository and tag. */
export function splitImage(ref: string): { repository: string; tag: string } {
  const at = ref.lastIndexOf(':');
  if (at < 0 || ref.slice(at).includes('/')) throw new Error(`image reference without a tag: ${ref}`);
  return { repository: ref.slice(0, at), tag: ref.slice(at + 1) };
}

export interface NodeChartOptions {
  /** The servers' variables: KPT_POD_API_SERVER, KPT_CONTROLLER_IMAGE, KPT_DISPATCHER_IMAGE (testenv/cli.ts). */
  env: Record<string, string | undefined>;
  watchNamespaces: string[];
}

export function nodeChartValues(o: NodeChartOptions): Record<string, unknown> {
  const need = (name: string) => {
    const v = o.env[name];
    if (!v) throw new Error(`${name} is not set: the chart needs the test node (testenv/cli.ts starts it)`);
    return v;
  };
  const api = new URL(need('KPT_POD_API_SERVER'));
  const controller = splitImage(need('KPT_CONTROLLER_IMAGE'));
  const dispatcher = splitImage(need('KPT_DISPATCHER_IMAGE'));
  return {
    image: { ...controller, pullPolicy: 'Never' },
    dispatcher: { deployment: { image: dispatcher.repository, tag: dispatcher.tag } },
    controller: {
      watchNamespaces: o.watchNamespaces,
      extraEnv: [
        { name: 'KUBERNETES_SERVICE_HOST', value: api.hostname },
        { name: 'KUBERNETES_SERVICE_PORT', value: api.port },
      ],
    },
  };
}

/** Merges `extra` into `base` (objects key by key, everything else replaced), as helm merges values files. */
export function mergeValues(
  base: Record<string, unknown>,
  extra: Record<string, unknown>,
): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(extra)) {
    const b = out[k];
    out[k] =
      isPlain(b) && isPlain(v) ? mergeValues(b as Record<string, unknown>, v as Record<string, unknown>) : v;
  }
  return out;
}

function isPlain(v: unknown): boolean {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
