// TLS options for pulsar+ssl:// connections: trusted CA file or bundle, hostname verification (on unless
// explicitly turned off, which logs a warning), and an optional client certificate and key (mTLS). Files are
// read once, when the options are built; unreadable files are a TlsFailed error naming the file.
// describeTlsError() turns node:tls failures into a sentence that says what to fix.

import { readFileSync } from 'node:fs';
import type tls from 'node:tls';
import { type Logger, silentLogger } from './auth.ts';
import { PulsarError, PulsarErrorCode } from './errors.ts';

export interface TlsSettings {
  /** PEM file with the CA certificate(s) to trust (a bundle may hold several). Default: Node's CA store. */
  trustCertsFile?: string | undefined;
  /** Check that the broker's certificate names the host connected to. Default true. */
  hostnameVerification?: boolean | undefined;
  /** Client certificate (PEM) and its private key, for brokers that require mTLS. Both or neither. */
  certFile?: string | undefined;
  keyFile?: string | undefined;
  logger?: Logger | undefined;
}

function readPem(what: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (e) {
    throw new PulsarError(
      PulsarErrorCode.TlsFailed,
      `TLS: cannot read the ${what} ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      { file },
      { cause: e },
    );
  }
}

export function tlsOptions(s: TlsSettings = {}): tls.ConnectionOptions {
  const opts: tls.ConnectionOptions = { rejectUnauthorized: true };
  if (s.trustCertsFile) {
    const ca = readPem('trusted CA file', s.trustCertsFile);
    if (!ca.toString('latin1').includes('-----BEGIN CERTIFICATE-----')) {
      throw new PulsarError(
        PulsarErrorCode.TlsFailed,
        `TLS: the trusted CA file ${s.trustCertsFile} holds no PEM certificate`,
        { file: s.trustCertsFile },
      );
    }
    opts.ca = ca;
  }
  if (Boolean(s.certFile) !== Boolean(s.keyFile)) {
    throw new PulsarError(
      PulsarErrorCode.InvalidArgument,
      'TLS: a client certificate needs both certFile and keyFile',
      { certFile: s.certFile, keyFile: s.keyFile },
    );
  }
  if (s.certFile && s.keyFile) {
    opts.cert = readPem('client certificate', s.certFile);
    opts.key = readPem('client key', s.keyFile);
  }
  if (s.hostnameVerification === false) {
    (s.logger ?? silentLogger).warn(
      { tlsHostnameVerification: false },
      'TLS hostname verification is OFF: any certificate signed by the trusted CA is accepted for any broker',
    );
    opts.checkServerIdentity = () => undefined;
  }
  return opts;
}

const HINTS: Record<string, string> = {
  ERR_TLS_CERT_ALTNAME_INVALID:
    "the broker's certificate does not name this host (hostname verification; use the name in the certificate)",
  UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    "the broker's certificate is not signed by a trusted CA (check the CA file)",
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    "the broker's certificate is not signed by a trusted CA (check the CA file)",
  SELF_SIGNED_CERT_IN_CHAIN:
    "the broker's certificate chain ends in a CA that is not trusted (check the CA file)",
  DEPTH_ZERO_SELF_SIGNED_CERT: 'the broker presents a self-signed certificate that is not trusted',
  CERT_HAS_EXPIRED: "the broker's certificate has expired",
  CERT_NOT_YET_VALID: "the broker's certificate is not valid yet",
  ERR_SSL_WRONG_VERSION_NUMBER: 'the port does not speak TLS (a pulsar+ssl:// URL pointing at a plain port?)',
};

/**
 * A TlsFailed error for a TLS failure (certificate, hostname, handshake), or undefined when `err` is not one.
 * The broker closing the connection for a missing client certificate shows up as a handshake alert.
 */
export function describeTlsError(err: unknown, broker: string): PulsarError | undefined {
  const e = err as NodeJS.ErrnoException & { reason?: string };
  const code = e?.code ?? '';
  let hint = HINTS[code];
  if (!hint && /^ERR_SSL_|^ERR_TLS_/.test(code)) {
    hint = /CERTIFICATE_REQUIRED|HANDSHAKE_FAILURE|BAD_CERTIFICATE|UNKNOWN_CA/i.test(code)
      ? 'the broker refused the TLS handshake (does it require a client certificate, or not trust ours?)'
      : 'TLS handshake failed';
  }
  if (!hint) return undefined;
  return new PulsarError(
    PulsarErrorCode.TlsFailed,
    `TLS connection to ${broker} refused: ${hint} (${code}: ${e.message})`,
    { broker, tlsCode: code },
    { cause: err },
  );
}
