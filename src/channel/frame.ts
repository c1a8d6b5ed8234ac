/**
 * Length-prefixed frames over a byte stream: a 4-byte big-endian length, then that many bytes.
 * A header announcing more than FRAME_BYTES_MAX closes the link at once: a peer cannot make this
 * side wait for, or buffer, gigabytes. Pure: no I/O.
 */
import { concatBytes } from '../core/bytes.ts';
import { checkSize, TallyError } from '../core/errors.ts';
import { ReceiverSlot, type ByteStream, type DuplexReceiver, type FrameChannel } from './stream.ts';

/** Largest frame body, in bytes: every message on a link fits in one. */
export const FRAME_BYTES_MAX = 512 * 1024;
/** The length header's size, in bytes. */
export const FRAME_HEADER_BYTES = 4;

/**
 * The wire form of one frame: header and body.
 * @throws TallyError TOO_LARGE when the body is over FRAME_BYTES_MAX
 */
export function encodeFrame(body: Uint8Array): Uint8Array {
  checkSize('frame', body.length, FRAME_BYTES_MAX, { label: 'frame body' });
  const header = new Uint8Array(FRAME_HEADER_BYTES);
  new DataView(header.buffer).setUint32(0, body.length);
  return concatBytes(header, body);
}

/** What one chunk of input completed: whole frame bodies, then the error that stopped reading, if any. */
export interface DecodedChunk {
  readonly frames: Uint8Array[];
  readonly error: TallyError<'FRAME_INVALID'> | undefined;
}

/**
 * Splits a byte stream into frame bodies, however the stream is chunked. Each byte is copied
 * once. After an oversized header it refuses all further input: the stream cannot be resynchronised.
 */
export class FrameDecoder {
  private readonly header = new Uint8Array(FRAME_HEADER_BYTES);
  private headerFilled = 0;
  private body: Uint8Array | undefined;
  private bodyFilled = 0;
  private failure: TallyError<'FRAME_INVALID'> | undefined;

  /** Adds received bytes; returns the frames they complete, and the error if the input turned bad. */
  push(chunk: Uint8Array): DecodedChunk {
    const frames: Uint8Array[] = [];
    if (this.failure !== undefined) return { frames, error: this.failure };
    let offset = 0;
    for (;;) {
      if (this.body === undefined) {
        if (offset === chunk.length) break;
        const n = Math.min(FRAME_HEADER_BYTES - this.headerFilled, chunk.length - offset);
        this.header.set(chunk.subarray(offset, offset + n), this.headerFilled);
        this.headerFilled += n;
        offset += n;
        if (this.headerFilled < FRAME_HEADER_BYTES) break;
        this.headerFilled = 0;
        const length = new DataView(this.header.buffer).getUint32(0);
        if (length > FRAME_BYTES_MAX) {
          this.failure = new TallyError(
            'FRAME_INVALID',
            `frame header announces ${length} bytes, expected at most ${FRAME_BYTES_MAX}`,
            { reason: 'oversized frame' },
          );
          return { frames, error: this.failure };
        }
        this.body = new Uint8Array(length);
        this.bodyFilled = 0;
      }
      const n = Math.min(this.body.length - this.bodyFilled, chunk.length - offset);
      this.body.set(chunk.subarray(offset, offset + n), this.bodyFilled);
      this.bodyFilled += n;
      offset += n;
      if (this.bodyFilled < this.body.length) break;
      frames.push(this.body);
      this.body = undefined;
    }
    return { frames, error: undefined };
  }

  /** Bytes received of a frame not yet complete (header included). */
  get pending(): number {
    return this.body === undefined ? this.headerFilled : FRAME_HEADER_BYTES + this.bodyFilled;
  }
}

class FramedChannel implements FrameChannel {
  readonly unit = 'frames' as const;
  private readonly slot = new ReceiverSlot();
  private readonly decoder = new FrameDecoder();

  constructor(private readonly stream: ByteStream) {
    stream.attach({
      data: (chunk) => {
        const { frames, error } = this.decoder.push(chunk);
        for (const frame of frames) this.slot.deliver(frame);
        if (error !== undefined) stream.close(error);
      },
      closed: (error) => this.slot.end(error),
    });
  }

  send(body: Uint8Array): void {
    // One write per frame, so frames from one sender never interleave on the stream.
    this.stream.send(encodeFrame(body));
  }

  attach(receiver: DuplexReceiver): void {
    this.slot.attach(receiver);
  }

  close(error?: TallyError): void {
    this.stream.close(error);
  }

  get closeError(): TallyError | undefined {
    return this.stream.closeError;
  }
}

/** Frames over a byte stream; takes the stream's receiver. An oversized header closes the stream with FRAME_INVALID. */
export function framed(stream: ByteStream): FrameChannel {
  return new FramedChannel(stream);
}
