// Property tests: random and mutated bytes never crash, hang or throw anything but the decoder's typed error.
// The last test is a short run of `make fuzz`'s generator (test/support/frame-fuzz.ts): KPT_FUZZ_FRAMES inputs
// (default 20,000), seed KPT_FUZZ_SEED or a random one, named in a failure so that it can be repeated.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { FrameError } from '../../../src/pulsar/errors.ts';
import { decodeFrame, FrameDecoder } from '../../../src/pulsar/frame.ts';
import { parseMessageMetadata, parseSingleMessageMetadata } from '../../../src/pulsar/metadata.ts';
import { corpus, type FuzzStats, runFuzz, runInput } from '../../support/frame-fuzz.ts';

/** Feeds bytes through the stream decoder and the frame parser; returns how many frames came out. */
function decodeAll(bytes: Uint8Array, chunk: number): number {
  const d = new FrameDecoder(64 * 1024);
  let frames = 0;
  try {
    for (let i = 0; i < bytes.length; i += chunk) {
      d.push(bytes.subarray(i, i + chunk), (body) => {
        const f = decodeFrame(body);
        assert.ok(f.command !== undefined);
        frames++;
      });
    }
  } catch (e) {
    if (!(e instanceof FrameError)) throw e;
  }
  return frames;
}

/** The valid frames of the shared fuzz corpus (every command kind, single and batched messages). */
const valid: Uint8Array[] = corpus().map((seed) => seed.bytes);

test('random bytes: only FrameError, never a crash or hang', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 4096 }), fc.integer({ min: 1, max: 64 }), (bytes, chunk) => {
      decodeAll(bytes, chunk);
    }),
    { numRuns: 2000 },
  );
});

test('random frame bodies after a plausible header: only FrameError', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 4, maxLength: 2048 }), (body) => {
      const framed = new Uint8Array(body.length + 4);
      new DataView(framed.buffer).setUint32(0, body.length);
      framed.set(body, 4);
      decodeAll(framed, framed.length);
    }),
    { numRuns: 2000 },
  );
});

test('mutated valid frames: only FrameError or a frame (possibly marked corrupt)', () => {
  fc.assert(
    fc.property(
      fc.constantFrom(...valid),
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }),
      fc.nat(),
      (frame, edits, cut) => {
        const m = frame.slice();
        for (const [pos, v] of edits) m[pos % m.length] = v;
        decodeAll(m, 1 + (cut % 17));
        decodeAll(m.subarray(0, cut % (m.length + 1)), m.length);
      },
    ),
    { numRuns: 3000 },
  );
});

test('metadata readers on random bytes: only FrameError', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => {
      for (const parse of [
        () => parseMessageMetadata(bytes),
        () => parseSingleMessageMetadata(bytes, 0, bytes.length),
      ]) {
        try {
          parse();
        } catch (e) {
          if (!(e instanceof FrameError)) throw e;
        }
      }
    }),
    { numRuns: 3000 },
  );
});

test('the valid frames used above do decode', () => {
  for (const f of valid) assert.equal(decodeAll(f, 5), 1);
  for (const seed of corpus()) {
    assert.equal(runInput({ recipe: seed.name, bytes: seed.bytes, chunk: 3 }), 'decoded', seed.name);
  }
});

test('the fuzz generator of make fuzz, a short run: only decoded frames or expected codes', (t) => {
  const frames = Number(process.env.KPT_FUZZ_FRAMES ?? 20_000);
  const seed = Number(process.env.KPT_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 32));
  const stats: FuzzStats = { ran: 0, results: {} };
  const finding = runFuzz(seed, 0, frames, stats);
  t.diagnostic(`seed ${seed}: ${JSON.stringify(stats.results)}`);
  assert.equal(finding, undefined, `KPT_FUZZ_SEED=${seed} make fuzz reproduces: ${JSON.stringify(finding)}`);
  assert.equal(stats.ran, frames);
  assert.ok((stats.results.decoded ?? 0) > 0, 'some inputs decode');
  assert.ok(
    Object.keys(stats.results).some((k) => k.startsWith('refused ')),
    'some inputs are refused with a code',
  );
});
