// HS256 JSON Web Tokens as Pulsar's AuthenticationProviderToken validates them (secret key given as raw bytes).

import { createHmac, randomBytes } from 'node:crypto';

function b64url(data: Buffer | string): string {
  return Buffer.from(data).toString('base64url');
}

export function newSecretKey(): Buffer {
  return randomBytes(32);
}

/** A token for `subject`; `expiresInSeconds` sets `exp` (short-lived tokens for rotation tests). */
export function signToken(secretKey: Buffer, subject: string, expiresInSeconds?: number): string {
  const header = b64url(JSON.stringify({ alg: 'HS256' }));
  const claims: Record<string, unknown> = { sub: subject };
  if (expiresInSeconds !== undefined) claims.exp = Math.floor(Date.now() / 1000) + expiresInSeconds;
  const body = b64url(JSON.stringify(claims));
  const sig = createHmac('sha256', secretKey).update(`${header}.${body}`).digest('base64url');
  return `${header}.${body}.${sig}`;
}
