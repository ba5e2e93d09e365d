// Runs test/support/java/KptJava.java (the Pulsar Java client from the distribution) for interop tests.
// Compiled once per source version into the kpt cache; the .class files are never part of the repository.

import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

const SOURCE = join(import.meta.dirname, 'java', 'KptJava.java');

export function kptJavaClasses(home: string): string {
  const src = readFileSync(SOURCE);
  const hash = createHash('sha256').update(src).update(home).digest('hex').slice(0, 16);
  const cache = process.env.KPT_CACHE || join(homedir(), '.cache', 'kpt');
  const out = join(cache, `kpt-java-${hash}`);
  if (!existsSync(join(out, 'KptJava.class'))) {
    mkdirSync(out, { recursive: true });
    execFileSync('javac', ['-nowarn', '-cp', `${home}/lib/*`, '-d', out, SOURCE], { stdio: 'pipe' });
  }
  return out;
}

export interface JavaRecord {
  kind: 'SENT' | 'RECV';
  /** SENT: message id; RECV: topic. */
  where: string;
  key: string | undefined;
  length: number;
  sha256: string;
  index: string | undefined;
}

/** Runs `KptJava <args>` and parses its SENT/RECV lines. Rejects with stderr on failure. */
export function runKptJava(home: string, args: string[], timeoutMs = 180_000): Promise<JavaRecord[]> {
  const classes = kptJavaClasses(home);
  return new Promise((resolve, reject) => {
    execFile(
      'java',
      ['-Xmx512m', '-cp', `${classes}:${home}/lib/*`, 'KptJava', ...args],
      { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err) {
          reject(
            new Error(
              `KptJava ${args[0]} failed: ${err.message}\n${stderr.split('\n').slice(-30).join('\n')}`,
            ),
          );
          return;
        }
        const out: JavaRecord[] = [];
        for (const line of stdout.split('\n')) {
          const f = line.trim().split(' ');
          if (f[0] !== 'SENT' && f[0] !== 'RECV') continue;
          out.push({
            kind: f[0],
            where: f[1] as string,
            key: f[2] === '-' ? undefined : f[2],
            length: Number(f[3]),
            sha256: f[4] as string,
            index: f[5],
          });
        }
        resolve(out);
      },
    );
  });
}

export function sha256(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}
