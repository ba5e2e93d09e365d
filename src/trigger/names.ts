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

/** A TCP port, 1 to 65535, as decimal text (leading zeros allowed, as URL parsers allow them). RE2-compatible. */
export const PORT_PATTERN =
  '0*([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])';

const cel = (pattern: string) => `'${pattern.replaceAll('\\', '\\\\')}'`;

// The broker: pulsar:// or pulsar+ssl://, then one host or several separated by commas (the Python client's
// multi-host service URL), then an optional path. The form rule is the pattern the CRD always had; the port rule
// refuses a port that is not a number from 1 to 65535 after any of the hosts, and says nothing when the form is
// already wrong, so each mistake gets one message.
export const BROKER_PATTERN = '^pulsar(\\+ssl)?://[^\\s/]+(/[^\\s]*)?$';
const HOST_PORT = `(\\[[0-9A-Fa-f:.]+\\]|[^\\s/:,\\[\\]]+)(:${PORT_PATTERN})?`;
export const BROKER_PORTS_PATTERN = `^pulsar(\\+ssl)?://${HOST_PORT}(,${HOST_PORT})*(/[^\\s]*)?$`;
const BROKER_RE = new RegExp(BROKER_PATTERN);
const BROKER_PORTS_RE = new RegExp(BROKER_PORTS_PATTERN);
export const BROKER_CEL = `self.matches(${cel(BROKER_PATTERN)})`;
export const BROKER_MESSAGE =
  'must be a pulsar:// or pulsar+ssl:// URL, e.g. pulsar://pulsar.addr:6650 or pulsar+ssl://pulsar.addr:6651';
export const BROKER_PORT_CEL = `!self.matches(${cel(BROKER_PATTERN)}) || self.matches(${cel(BROKER_PORTS_PATTERN)})`;
export const BROKER_PORT_MESSAGE =
  'must give each host as host:port with a port from 1 to 65535 (or host alone, for the default port; [IPv6]:port for an IPv6 address), e.g. pulsar://pulsar.addr:6650';

export function brokerFormOk(value: string): boolean {
  return BROKER_RE.test(value);
}

export function brokerPortsOk(value: string): boolean {
  return !BROKER_RE.test(value) || BROKER_PORTS_RE.test(value);
}

export const FUNCTION_URL_CEL =
  "isURL(self) && url(self).getScheme() in ['http', 'https'] && url(self).getHostname() != ''";
export const FUNCTION_URL_MESSAGE = 'must be an http or https URL, e.g. http://myfunction.default:8080';
// CEL's url() takes any port of digits (Go's net/url), so the range is a rule of its own. It reads the port from the
// text, as Go does (after the host: a bracketed IPv6 address, or up to the first ':'; '' when there is none, which
// is the scheme's default to both Go and Node), with one regular expression that both sides run: the same check
// on url(self).getPort() costs too much for the API server's CEL budget (a string of unknown length).
export const FUNCTION_PORT_PATTERN = `^[A-Za-z][A-Za-z0-9+.-]*://([^/?#]*@)?(\\[[^\\]]*\\]|[^:/?#]*)(:(${PORT_PATTERN})?)?([/?#].*)?$`;
const FUNCTION_PORT_RE = new RegExp(FUNCTION_PORT_PATTERN);
export const FUNCTION_PORT_CEL = `!(${FUNCTION_URL_CEL}) || self.matches(${cel(FUNCTION_PORT_PATTERN)})`;
export const FUNCTION_PORT_MESSAGE =
  'must have a port from 1 to 65535, or none for the default (80 for http, 443 for https), e.g. http://myfunction.default:8080';

// Node's URL parser refuses a port above 65535 outright, where Go only wants digits: the form check looks past
// such a port, so that, as in CEL, the port rule is the one that fails.
const AUTHORITY = /^([A-Za-z][A-Za-z0-9+.-]*:\/\/(?:[^/?#]*@)?(?:\[[^\]]*\]|[^:/?#]*))(?::([^/?#]*))?(.*)$/s;

function portText(value: string): { port: string; withPort: (p: string) => string } | undefined {
  const m = AUTHORITY.exec(value);
  if (!m) return undefined;
  return { port: m[2] ?? '', withPort: (p) => `${m[1]}:${p}${m[3]}` };
}

/** The function URL's form (FUNCTION_URL_CEL): an http or https URL with a host, whatever number its port is. */
export function functionUrlFormOk(value: string): boolean {
  if (parseFunctionUrl(value) !== undefined) return true;
  const p = portText(value);
  return p !== undefined && /^[0-9]+$/.test(p.port) && parseFunctionUrl(p.withPort('1')) !== undefined;
}

/** The function URL's port (FUNCTION_PORT_CEL): none, or 1 to 65535; a URL of the wrong form passes here. */
export function functionUrlPortOk(value: string): boolean {
  return !functionUrlFormOk(value) || FUNCTION_PORT_RE.test(value);
}

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

// The Pulsar admin REST URL (spec.pulsar.adminUrl): an http or https URL with a host and a port from 1 to 65535, as
// the function's (the same two rules, with messages of its own), and a third rule: no user info, query or fragment.
// KEDA's pulsar scaler appends the admin API's path (/admin/v2/persistent/...) to it as text, and Go's HTTP client
// would send a user info as a password in plain text; credentials come from the trigger's token instead.
export const ADMIN_URL_CEL = FUNCTION_URL_CEL;
export const ADMIN_URL_MESSAGE = 'must be an http or https URL, e.g. http://pulsar.addr:8080';
export const ADMIN_PORT_CEL = FUNCTION_PORT_CEL;
export const ADMIN_PORT_MESSAGE =
  'must have a port from 1 to 65535, or none for the default (80 for http, 443 for https), e.g. http://pulsar.addr:8080';
export const ADMIN_PARTS_PATTERN = '^[A-Za-z][A-Za-z0-9+.-]*://[^/?#@]*(/[^?#]*)?$';
const ADMIN_PARTS_RE = new RegExp(ADMIN_PARTS_PATTERN);
export const ADMIN_PARTS_CEL = `!(${FUNCTION_URL_CEL}) || self.matches(${cel(ADMIN_PARTS_PATTERN)})`;
export const ADMIN_PARTS_MESSAGE =
  'must have no user name or password, query or fragment (the admin API paths are appended to it), e.g. https://pulsar.addr:8443';

/**
 * The admin URL's form (ADMIN_URL_CEL). CEL's isURL (Go's url.ParseRequestURI) does not split off a fragment, so a
 * '#' before the path makes the host or port invalid there; Node's parser reads it as a fragment. The same refusal
 * here keeps the message the same on both sides (a '#' after the path is the parts rule's).
 */
export function adminUrlFormOk(value: string): boolean {
  return functionUrlFormOk(value) && !/^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/]*#/.test(value);
}
/** The admin URL's port (ADMIN_PORT_CEL). */
export const adminUrlPortOk = functionUrlPortOk;
/** The admin URL's parts (ADMIN_PARTS_CEL): no user info, query or fragment; a URL of the wrong form passes. */
export function adminUrlPartsOk(value: string): boolean {
  return !adminUrlFormOk(value) || ADMIN_PARTS_RE.test(value);
}

/** The usual ports of Pulsar's admin REST API: the broker's webServicePort and webServicePortTls. */
export const ADMIN_PORT_HTTP = 8080;
export const ADMIN_PORT_HTTPS = 8443;

/**
 * The admin URL a broker URL implies: the first host of the service URL, with http for pulsar:// and https for
 * pulsar+ssl://, and the usual admin port in place of whatever port the broker URL gives (the binary protocol's port
 * says nothing about the web service's). undefined when the broker URL is not one (validation reports that).
 */
export function defaultAdminUrl(broker: string): string | undefined {
  if (!brokerFormOk(broker) || !brokerPortsOk(broker)) return undefined;
  const tls = broker.startsWith('pulsar+ssl://');
  const rest = broker.slice(tls ? 'pulsar+ssl://'.length : 'pulsar://'.length);
  const first = rest.split(/[/,]/, 1)[0] ?? '';
  // [IPv6]:port keeps its brackets; host:port loses the port.
  const host = first.startsWith('[') ? first.slice(0, first.indexOf(']') + 1) : first.split(':', 1)[0];
  if (!host) return undefined;
  return tls ? `https://${host}:${ADMIN_PORT_HTTPS}` : `http://${host}:${ADMIN_PORT_HTTP}`;
}

/**
 * The admin URL of a trigger: spec.pulsar.adminUrl without trailing slashes (KEDA appends /admin/v2/... as text,
 * and a doubled slash is not the same path to every server), or the one the broker URL implies.
 */
export function adminUrlOf(pulsar: { broker: string; adminUrl?: string | undefined }): string | undefined {
  if (pulsar.adminUrl !== undefined) return pulsar.adminUrl.replace(/\/+$/, '');
  return defaultAdminUrl(pulsar.broker);
}
