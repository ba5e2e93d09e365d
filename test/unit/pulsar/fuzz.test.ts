// Property tests: random and mutated bytes never crash, hang or throw anything but the decoder's typed error.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import * as cmds from '../../../src/pulsar/commands.ts';
import { FrameError } from '../../../src/pulsar/errors.ts';
import { decodeFrame, encodeCommand, encodePayloadCommand, FrameDecoder } from '../../../src/pulsar/frame.ts';
import { parseMessageMetadata, parseSingleMessageMetadata } from '../../../src/pulsar/metadata.ts';

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

const valid: Uint8Array[] = [
  encodeCommand(cmds.flow(7n, 500)),
  encodeCommand(cmds.lookup('persistent://public/default/x', 3n, true)),
  Uint8Array.from(
    Buffer.concat(
      encodePayloadCommand(
        cmds.send(1n, 2n, 1),
        {
          producerName: 'p',
          sequenceId: 2n,
          publishTime: 3n,
          properties: [{ key: 'a', value: 'b' }],
          replicateTo: [],
          encryptionKeys: [],
          numMessagesInBatch: 2,
        },
        Uint8Array.from([0, 0, 0, 2, 0x18, 1, 0x41, 0, 0, 0, 2, 0x18, 0, 0x42]),
      ),
    ),
  ),
];

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
});
