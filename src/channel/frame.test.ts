import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { concatBytes } from '../core/bytes.ts';
import { isTallyError, type TallyError } from '../core/errors.ts';
import { encodeFrame, FRAME_BYTES_MAX, FRAME_HEADER_BYTES, FrameDecoder, framed } from './frame.ts';
import { memoryPair } from './memory.ts';
import type { DuplexReceiver } from './stream.ts';

const bodies = [new Uint8Array([1, 2, 3]), new Uint8Array(0), new Uint8Array(300).map((_, i) => i & 0xff), new Uint8Array([0xff])];
const wire = concatBytes(...bodies.map(encodeFrame));

function decodeChunks(chunks: Uint8Array[]): Uint8Array[] {
  const decoder = new FrameDecoder();
  const out: Uint8Array[] = [];
  for (const chunk of chunks) {
    const { frames, error } = decoder.push(chunk);
    assert.equal(error, undefined);
    out.push(...frames);
  }
  assert.equal(decoder.pending, 0);
  return out;
}

/** Collects what a duplex delivers. */
function collector(): DuplexReceiver & { units: Uint8Array[]; error: Promise<TallyError> } {
  let settle: (error: TallyError) => void = () => {};
  const error = new Promise<TallyError>((resolve) => (settle = resolve));
  const units: Uint8Array[] = [];
  return { units, error, data: (unit) => units.push(unit), closed: (e) => settle(e) };
}

describe('frame codec', () => {
  test('header is the 4-byte big-endian body length', () => {
    assert.deepEqual(encodeFrame(new Uint8Array([9, 8])), new Uint8Array([0, 0, 0, 2, 9, 8]));
    const big = encodeFrame(new Uint8Array(0x010203));
    assert.deepEqual(big.subarray(0, FRAME_HEADER_BYTES), new Uint8Array([0, 1, 2, 3]));
  });

  test('round trip in one chunk', () => {
    assert.deepEqual(decodeChunks([wire]), bodies);
  });

  test('round trip split in two at every byte boundary', () => {
    for (let i = 0; i <= wire.length; i++) {
      assert.deepEqual(decodeChunks([wire.subarray(0, i), wire.subarray(i)]), bodies, `split at ${i}`);
    }
  });

  test('round trip one byte at a time, and in every chunk size', () => {
    for (let size = 1; size <= 20; size++) {
      const chunks: Uint8Array[] = [];
      for (let i = 0; i < wire.length; i += size) chunks.push(wire.subarray(i, i + size));
      assert.deepEqual(decodeChunks(chunks), bodies, `chunks of ${size}`);
    }
  });

  test('a body of exactly FRAME_BYTES_MAX passes; one byte more is refused when sending', () => {
    const body = new Uint8Array(FRAME_BYTES_MAX).fill(7);
    assert.deepEqual(decodeChunks([encodeFrame(body)]), [body]);
    assert.throws(() => encodeFrame(new Uint8Array(FRAME_BYTES_MAX + 1)), (e) => isTallyError(e, 'TOO_LARGE'));
  });

  test('an oversized header is refused at once, after the frames before it, and stays refused', () => {
    const decoder = new FrameDecoder();
    const header = new Uint8Array(FRAME_HEADER_BYTES);
    new DataView(header.buffer).setUint32(0, FRAME_BYTES_MAX + 1);
    const { frames, error } = decoder.push(concatBytes(encodeFrame(new Uint8Array([5])), header));
    assert.deepEqual(frames, [new Uint8Array([5])]);
    assert.ok(isTallyError(error, 'FRAME_INVALID'));
    assert.match(error.message, new RegExp(`announces ${FRAME_BYTES_MAX + 1} bytes, expected at most ${FRAME_BYTES_MAX}`));
    const again = decoder.push(encodeFrame(new Uint8Array([6])));
    assert.deepEqual(again.frames, []);
    assert.equal(again.error, error);
  });
});

describe('framed channel over a byte stream', () => {
  test('frames keep their boundaries over a stream that cuts writes into 3-byte chunks', async () => {
    const [a, b] = memoryPair({ chunkBytes: 3 });
    const left = framed(a);
    const right = framed(b);
    const got = collector();
    right.attach(got);
    left.attach(collector());
    for (const body of bodies) left.send(body);
    left.close();
    const error = await got.error;
    assert.deepEqual(got.units, bodies);
    assert.ok(isTallyError(error, 'LINK_CLOSED'));
    assert.equal(error.details.reason, 'closed by the peer');
  });

  test('an oversized header closes the link with FRAME_INVALID without waiting for the body', async () => {
    const [a, b] = memoryPair();
    const right = framed(b);
    const got = collector();
    right.attach(got);
    const sender = collector();
    a.attach(sender);
    // A valid frame, then a header announcing 4 GiB - 1, and only a few bytes of it.
    a.send(concatBytes(encodeFrame(new Uint8Array([1])), new Uint8Array([0xff, 0xff, 0xff, 0xff, 1, 2, 3])));
    const error = await got.error;
    assert.ok(isTallyError(error, 'FRAME_INVALID'));
    assert.equal(error.details.reason, 'oversized frame');
    assert.deepEqual(got.units, [new Uint8Array([1])]);
    assert.equal(right.closeError, error);
    // The sender learns that its peer hung up.
    const senderError = await sender.error;
    assert.ok(isTallyError(senderError, 'LINK_CLOSED'));
    assert.throws(() => a.send(new Uint8Array([1])), (e) => isTallyError(e, 'LINK_CLOSED'));
  });

  test('frames sent before the receiver is attached are held, not lost', async () => {
    const [a, b] = memoryPair();
    const left = framed(a);
    left.send(new Uint8Array([1]));
    left.send(new Uint8Array([2]));
    const right = framed(b);
    await new Promise((resolve) => setTimeout(resolve, 5));
    const got = collector();
    right.attach(got);
    assert.deepEqual(got.units, [new Uint8Array([1]), new Uint8Array([2])]);
  });
});
