// Certificates for the secure test servers, made with the machine's openssl: a CA, and leaf certificates signed
// by it for the names the tests connect to.

import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

export interface CertAuthority {
  certFile: string;
  keyFile: string;
}

export function makeCa(dir: string, name: string): CertAuthority {
  const keyFile = join(dir, `${name}.key`);
  const certFile = join(dir, `${name}.crt`);
  openssl(['genrsa', '-out', keyFile, '2048'], dir);
  openssl(
    [
      'req',
      '-x509',
      '-new',
      '-key',
      keyFile,
      '-sha256',
      '-days',
      '30',
      '-subj',
      `/CN=${name}`,
      '-out',
      certFile,
    ],
    dir,
  );
  return { certFile, keyFile };
}

export interface LeafCert {
  certFile: string;
  keyFile: string;
}

/**
 * A leaf certificate signed by `ca`. `altNames` like ['DNS:localhost', 'IP:127.0.0.1']. The key is PKCS#8, which
 * both Java (Pulsar) and Go (Kubernetes) read.
 */
export function makeLeaf(
  dir: string,
  ca: CertAuthority,
  name: string,
  opts: { cn: string; altNames?: string[]; client?: boolean; organization?: string },
): LeafCert {
  const rawKey = join(dir, `${name}.rsa.key`);
  const keyFile = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  const certFile = join(dir, `${name}.crt`);
  const ext = join(dir, `${name}.ext`);
  openssl(['genrsa', '-out', rawKey, '2048'], dir);
  openssl(['pkcs8', '-topk8', '-nocrypt', '-in', rawKey, '-out', keyFile], dir);
  const subj = `/CN=${opts.cn}${opts.organization ? `/O=${opts.organization}` : ''}`;
  openssl(['req', '-new', '-key', keyFile, '-subj', subj, '-out', csr], dir);
  const lines = [
    'basicConstraints=CA:FALSE',
    'keyUsage=digitalSignature,keyEncipherment',
    `extendedKeyUsage=${opts.client ? 'clientAuth' : 'serverAuth,clientAuth'}`,
  ];
  if (opts.altNames?.length) lines.push(`subjectAltName=${opts.altNames.join(',')}`);
  writeFileSync(ext, `${lines.join('\n')}\n`);
  openssl(
    [
      'x509',
      '-req',
      '-in',
      csr,
      '-CA',
      ca.certFile,
      '-CAkey',
      ca.keyFile,
      '-CAcreateserial',
      '-days',
      '30',
      '-sha256',
      '-extfile',
      ext,
      '-out',
      certFile,
    ],
    dir,
  );
  return { certFile, keyFile };
}

/** An RSA key pair (PEM), e.g. for service account token signing. */
export function makeRsaKeyPair(dir: string, name: string): { privateKeyFile: string; publicKeyFile: string } {
  const privateKeyFile = join(dir, `${name}.key`);
  const publicKeyFile = join(dir, `${name}.pub`);
  openssl(['genrsa', '-out', privateKeyFile, '2048'], dir);
  openssl(['rsa', '-in', privateKeyFile, '-pubout', '-out', publicKeyFile], dir);
  return { privateKeyFile, publicKeyFile };
}
