// Frame codec against byte vectors worked out by hand from the protocol description:
// [totalSize u32][commandSize u32][BaseCommand] and, for payload commands,
// [0x0e01][CRC32C u32][metadataSize u32][MessageMetadata][payload].
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as cmds from '../../../src/pulsar/commands.ts';
import { FrameError } from '../../../src/pulsar/errors.ts';
import { decodeFrame, encodeCommand, encodePayloadCommand, FrameDecoder } from '../../../src/pulsar/frame.ts';
import { BaseCommand_Type } from '../../../src/pulsar/proto/generated/PulsarApi.ts';

const hex = (s: string) => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
const concat = (parts: Uint8Array[]) => Uint8Array.from(Buffer.concat(parts));

// PING: BaseCommand { type (field 1, varint) = 18, ping (field 18, bytes) = {} }
//   08 12          field 1 varint 18
//   92 01 00       field 18 (tag 18<<3|2 = 146 = 0x92 0x01), length 0
const PING = hex('00000009 00000005 0812 920100');

// FLOW: type 11, flow (field 11, tag 0x5a) = { consumer_id (1) = 1, messagePermits (2) = 1000 (e8 07) }
const FLOW = hex('0000000d 00000009 080b 5a05 0801 10e807');

// SEND producer 0, sequence 0 (required fields written even when zero), num_messages left at its default.
//   command  08 06 32 04 [08 00 10 00]                         8 bytes
//   metadata producer_name "p", sequence_id 0, publish_time 1: 0a 01 70 10 00 18 01 (7 bytes)
//   payload  "hi"
//   CRC32C over [00000007][metadata][payload] = 0x7ed8df46
//   total = 4 + 8 + 2 + 4 + 4 + 7 + 2 = 31
const SEND = hex('0000001f 00000008 0806 3204 0800 1000 0e01 7ed8df46 00000007 0a0170 1000 1801 6869');

test('PING encodes to the hand-worked bytes and decodes back', () => {
  assert.deepEqual(cmds.PING_FRAME, PING);
  assert.deepEqual(encodeCommand({ type: BaseCommand_Type.PING, ping: {} }), PING);
  const f = decodeFrame(PING.subarray(4));
  assert.equal(f.command.type, BaseCommand_Type.PING);
  assert.equal(f.payload, undefined);
});

test('FLOW encodes to the hand-worked bytes and decodes back', () => {
  assert.deepEqual(encodeCommand(cmds.flow(1n, 1000)), FLOW);
  const f = decodeFrame(FLOW.subarray(4));
  assert.equal(f.command.type, BaseCommand_Type.FLOW);
  assert.equal(f.command.flow?.consumerId, 1n);
  assert.equal(f.command.flow?.messagePermits, 1000);
});

test('SEND with payload: sizes, magic, CRC32C, metadata and payload match the hand-worked frame', () => {
  const parts = encodePayloadCommand(
    cmds.send(0n, 0n, 1),
    {
      producerName: 'p',
      sequenceId: 0n,
      publishTime: 1n,
      properties: [],
      replicateTo: [],
      encryptionKeys: [],
    },
    new TextEncoder().encode('hi'),
  );
  assert.deepEqual(concat(parts), SEND);
  const f = decodeFrame(SEND.subarray(4));
  assert.equal(f.corrupt, undefined);
  assert.equal(f.command.type, BaseCommand_Type.SEND);
  assert.equal(f.command.send?.sequenceId, 0n);
  assert.equal(f.metadata?.producerName, 'p');
  assert.equal(f.metadata?.publishTime, 1);
  assert.equal(f.metadata?.numMessagesInBatch, -1, 'absent num_messages_in_batch means a single message');
  assert.deepEqual(f.payload, new TextEncoder().encode('hi'));
});

test('a bad checksum is reported on the frame, not thrown, and the command is still readable', () => {
  const bad = SEND.slice();
  bad[bad.length - 1] = (bad[bad.length - 1] as number) ^ 0x01;
  const f = decodeFrame(bad.subarray(4));
  assert.equal(f.command.type, BaseCommand_Type.SEND);
  assert.ok(f.corrupt instanceof FrameError);
  assert.equal(f.corrupt.code, 'CHECKSUM_MISMATCH');
  assert.equal(f.payload, undefined);
});

test('the stream decoder yields the same frames for every split of the input', () => {
  const stream = concat([PING, SEND, FLOW, PING]);
  for (let cut1 = 0; cut1 <= stream.length; cut1++) {
    for (const cut2 of [cut1, Math.min(stream.length, cut1 + 3), stream.length]) {
      const d = new FrameDecoder();
      const bodies: Uint8Array[] = [];
      for (const chunk of [stream.subarray(0, cut1), stream.subarray(cut1, cut2), stream.subarray(cut2)]) {
        d.push(chunk, (b) => bodies.push(b.slice()));
      }
      assert.deepEqual(
        bodies.map((b) => decodeFrame(b).command.type),
        [BaseCommand_Type.PING, BaseCommand_Type.SEND, BaseCommand_Type.FLOW, BaseCommand_Type.PING],
        `cuts at ${cut1}/${cut2}`,
      );
      assert.ok(d.idle);
    }
  }
});

test('a frame larger than the max frame size is a typed error', () => {
  const d = new FrameDecoder(1024);
  assert.throws(
    () => d.push(hex('00100000 00000000'), () => {}),
    (e: unknown) => e instanceof FrameError && e.code === 'FRAME_TOO_LARGE',
  );
  assert.throws(
    () => new FrameDecoder().push(hex('00000002 0000'), () => {}),
    (e: unknown) => e instanceof FrameError && e.code === 'FRAME_INVALID',
  );
});

test('a command size beyond the frame is a typed error', () => {
  assert.throws(
    () => decodeFrame(hex('000000ff 0812')),
    (e: unknown) => e instanceof FrameError && e.code === 'FRAME_INVALID',
  );
});
