/**
 * Length-prefixed frames between the wallet process and the secure element process: a 4-byte
 * big-endian length, then that many bytes of deterministic CBOR. Pure: no I/O.
 */
import { concatBytes } from '../core/bytes.ts';
import { encodeCbor } from '../core/cbor.ts';
import { TallyError } from '../core/errors.ts';

/** Largest frame body accepted, in bytes. */
export const FRAME_BYTES_MAX = 2 * 1024 * 1024;
const HEADER_BYTES = 4;

/** Encodes a value as one frame. @throws RangeError when the body is over FRAME_BYTES_MAX */
export function encodeFrame(value: unknown): Uint8Array {
  const body = encodeCbor(value);
  if (body.length > FRAME_BYTES_MAX) throw new RangeError(`frame: body of ${body.length} bytes is over ${FRAME_BYTES_MAX}`);
  const header = new Uint8Array(HEADER_BYTES);
  new DataView(header.buffer).setUint32(0, body.length);
  return concatBytes(header, body);
}

/** One result of reading frames: a whole frame body, or an error for a frame that was dropped. */
export type FrameEvent = { readonly frame: Uint8Array } | { readonly error: TallyError };

/**
 * Splits a byte stream into frames. A header announcing more than FRAME_BYTES_MAX yields an error and
 * drops everything buffered, so the reader resynchronises on the next write instead of waiting for
 * gigabytes that will never come.
 */
export class FrameReader {
  private buffer: Uint8Array = new Uint8Array(0);

  /** Adds received bytes and returns every event they complete. */
  push(chunk: Uint8Array): FrameEvent[] {
    this.buffer = this.buffer.length === 0 ? chunk : concatBytes(this.buffer, chunk);
    const events: FrameEvent[] = [];
    while (this.buffer.length >= HEADER_BYTES) {
      const length = new DataView(this.buffer.buffer, this.buffer.byteOffset, HEADER_BYTES).getUint32(0);
      if (length > FRAME_BYTES_MAX) {
        this.buffer = new Uint8Array(0);
        events.push({
          error: new TallyError('FRAME_INVALID', `frame announces ${length} bytes, over the limit of ${FRAME_BYTES_MAX}; input dropped`, {
            reason: 'oversized',
          }),
        });
        break;
      }
      if (this.buffer.length < HEADER_BYTES + length) break;
      events.push({ frame: this.buffer.slice(HEADER_BYTES, HEADER_BYTES + length) });
      this.buffer = this.buffer.subarray(HEADER_BYTES + length);
    }
    return events;
  }

  /** Bytes waiting for the rest of their frame. */
  get pending(): number {
    return this.buffer.length;
  }
}
