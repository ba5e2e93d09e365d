// The dispatcher's token provider (pulsar-source.ts tokenAuth): the file wins over the variable and is read again
// at every CONNECT and AUTH_CHALLENGE, trimmed, including after the kubelet's way of updating a Secret volume (a
// new folder and the ..data link swapped); a file that cannot be read is an error naming the file, never a fall back
// on the variable, and the token never reaches a log line.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, test } from 'node:test';
import { createLogger } from '../../../src/dispatcher/log.ts';
import { tokenAuth } from '../../../src/dispatcher/pulsar-source.ts';

const dir = mkdtempSync(join(tmpdir(), 'kpt-dispatcher-token-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const text = (b: Uint8Array) => Buffer.from(b).toString('utf8');
const ENV_TOKEN = 'token-from-the-environment-variable';

/** A folder laid out as the kubelet writes a Secret volume: <ts>/token, ..data → <ts>, token → ..data/token. */
function secretVolume(name: string, token: string): { dir: string; rotate(token: string): void } {
  const vol = join(dir, name);
  mkdirSync(vol);
  let n = 0;
  const write = (value: string) => {
    const ts = `..${++n}`;
    mkdirSync(join(vol, ts));
    writeFileSync(join(vol, ts, 'token'), value);
    symlinkSync(ts, join(vol, '..data_tmp'));
    renameSync(join(vol, '..data_tmp'), join(vol, '..data'));
  };
  write(token);
  symlinkSync('..data/token', join(vol, 'token'));
  return { dir: vol, rotate: write };
}

test('no token, the variable alone, or the file over the variable', async () => {
  assert.equal(tokenAuth({ authToken: undefined, authTokenFile: undefined }), undefined);
  const fromEnv = tokenAuth({ authToken: ` ${ENV_TOKEN}\n`, authTokenFile: undefined });
  assert.equal(fromEnv?.method, 'token');
  assert.equal(text(await fromEnv!.data()), ENV_TOKEN);
  const file = join(dir, 'plain-token');
  writeFileSync(file, 'token-from-the-file\n');
  const both = tokenAuth({ authToken: ENV_TOKEN, authTokenFile: file });
  assert.equal(text(await both!.data()), 'token-from-the-file');
  assert.equal(both!.source, `token file ${file}`);
});

test('a Secret volume rotated by a ..data swap: the next CONNECT and AUTH_CHALLENGE read the new token', async () => {
  const vol = secretVolume('rotating', 'first-token\n');
  const auth = tokenAuth({ authToken: ENV_TOKEN, authTokenFile: join(vol.dir, 'token') })!;
  assert.equal(text(await auth.data()), 'first-token');
  vol.rotate('  second-token \n');
  assert.equal(text(await auth.data(new TextEncoder().encode('PulsarAuthRefresh'))), 'second-token');
  assert.equal(text(await auth.data()), 'second-token');
});

test('an unreadable or empty file fails naming the file, without falling back on the variable', async () => {
  const missing = tokenAuth({ authToken: ENV_TOKEN, authTokenFile: join(dir, 'missing') })!;
  await assert.rejects(missing.data(), (e: Error & { code?: string }) => {
    assert.equal(e.code, 'AUTHENTICATION_FAILED');
    assert.match(e.message, /cannot read token file .*missing: ENOENT/);
    assert.ok(!e.message.includes(ENV_TOKEN));
    return true;
  });
  const empty = join(dir, 'empty');
  writeFileSync(empty, '\n');
  await assert.rejects(
    tokenAuth({ authToken: ENV_TOKEN, authTokenFile: empty })!.data(),
    /token file .* is empty/,
  );
});

test('each read is logged at debug by source and purpose, never by content', async () => {
  const lines: string[] = [];
  const log = createLogger(
    'debug',
    new Writable({
      write(chunk, _enc, done) {
        lines.push(String(chunk));
        done();
      },
    }),
  );
  const file = join(dir, 'logged-token');
  writeFileSync(file, 'logged-secret-token-value');
  const auth = tokenAuth({ authToken: ENV_TOKEN, authTokenFile: file }, log)!;
  await auth.data();
  await auth.data(new TextEncoder().encode('PulsarAuthRefresh'));
  const entries = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.deepEqual(
    entries.map((e) => [e.level, e.msg, e.source, e.for]),
    [
      ['debug', 'read the Pulsar token', `token file ${file}`, 'CONNECT'],
      ['debug', 'read the Pulsar token', `token file ${file}`, 'AUTH_CHALLENGE'],
    ],
  );
  for (const l of lines) {
    assert.ok(!l.includes('logged-secret-token-value'));
    assert.ok(!l.includes(ENV_TOKEN));
  }
});
