// Parsing of the two addresses a trigger names: the Pulsar topic and the function URL. Each check exists twice on
// purpose, once here (TypeScript, used by zod and the renderer) and once as the CEL rule next to it, which the API
// server runs; test/unit/trigger/names.test.ts and the malformed-trigger integration test keep them in step.

export interface TopicName {
  /** persistent://tenant/namespace/name, the form the broker uses. */
  full: string;
  type: 'persistent' | 'non-persistent';
  /** tenant/namespace, what the seed passed as PULSAR_TOPIC_NAMESPACE. */
  namespace: string;
  tenant: string;
  localName: string;
}

// Tenant and namespace: Pulsar's NamedEntity characters. Local name: anything but '/' and whitespace.
const SEGMENT = '[A-Za-z0-9_=:.-]+';
const LOCAL = '[^/\\s]+';
export const TOPIC_PATTERN = `^((persistent|non-persistent)://${SEGMENT}/${SEGMENT}/${LOCAL}|${SEGMENT}/${SEGMENT}/${LOCAL}|${LOCAL})$`;
const TOPIC_RE = new RegExp(TOPIC_PATTERN);
/** The same rule for the API server. CEL's matches() uses RE2, which accepts this pattern unchanged. */
export const TOPIC_CEL = `self.matches('${TOPIC_PATTERN.replaceAll('\\', '\\\\')}')`;
export const TOPIC_MESSAGE =
  'must be a Pulsar topic name: persistent://tenant/namespace/topic, non-persistent://tenant/namespace/topic, tenant/namespace/topic or topic';

/**
 * Remembers the last results of a pure parser of strings. A render parses the same topic and URL more than once
 * (validation, then the environment), and many triggers often name the same function: new URL() and the topic
 * regex were ~5 % of the controller's CPU while it created 1000 Deployments (profiled). Results are frozen, since
 * they are shared.
 */
function remembered<T extends object>(parse: (s: string) => T | undefined, size = 256) {
  const known = new Map<string, T | undefined>();
  return (s: string): T | undefined => {
    if (known.has(s)) return known.get(s);
    const value = parse(s);
    if (known.size >= size) known.delete(known.keys().next().value as string);
    known.set(s, value && Object.freeze(value));
    return value;
  };
}

/** Parses a topic the way Pulsar clients do: short forms live in public/default and are persistent. */
export const parseTopic = remembered(parseTopicNow);

function parseTopicNow(topic: string): TopicName | undefined {
  if (!TOPIC_RE.test(topic)) return undefined;
  let type: TopicName['type'] = 'persistent';
  let rest = topic;
  const scheme = /^(persistent|non-persistent):\/\//.exec(topic);
  if (scheme) {
    type = scheme[1] as TopicName['type'];
    rest = topic.slice(scheme[0].length);
  }
  const parts = rest.split('/');
  const [tenant, ns, localName] = parts.length === 3 ? parts : ['public', 'default', parts[0]];
  if (!tenant || !ns || !localName) return undefined;
  return {
    full: `${type}://${tenant}/${ns}/${localName}`,
    type,
    tenant,
    namespace: `${tenant}/${ns}`,
    localName,
  };
}

export interface FunctionAddress {
  url: string;
  scheme: 'http' | 'https';
  /** Port from the URL, or the scheme's default. */
  port: number;
  /** For Kubeless service URLs (http://name.namespace:port): the function's name and namespace. */
  name: string | undefined;
  namespace: string | undefined;
}

export const FUNCTION_URL_CEL =
  "isURL(self) && url(self).getScheme() in ['http', 'https'] && url(self).getHostname() != ''";
export const FUNCTION_URL_MESSAGE = 'must be an http or https URL, e.g. http://myfunction.default:8080';

export const parseFunctionUrl = remembered(parseFunctionUrlNow);

function parseFunctionUrlNow(value: string): FunctionAddress | undefined {
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    return undefined;
  }
  if ((u.protocol !== 'http:' && u.protocol !== 'https:') || u.hostname === '') return undefined;
  const scheme = u.protocol === 'https:' ? 'https' : 'http';
  const port = u.port ? Number(u.port) : scheme === 'https' ? 443 : 80;
  // name.namespace, optionally followed by .svc or .svc.<cluster domain>: the Kubeless service naming.
  const labels = u.hostname.split('.');
  const isIp = /^[0-9.]+$/.test(u.hostname) || u.hostname.startsWith('[');
  const kube = !isIp && labels.length >= 2 && (labels.length === 2 || labels[2] === 'svc');
  return {
    url: value,
    scheme,
    port,
    name: kube ? labels[0] : undefined,
    namespace: kube ? labels[1] : undefined,
  };
}
