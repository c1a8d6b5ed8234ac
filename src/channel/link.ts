/**
 * A link carries typed messages between two devices: each message is one frame of deterministic
 * CBOR, decoded on arrival by the codec the receiver names. Every wait has a timeout; unread
 * messages queue in a bounded inbox. Pure.
 */
import { decodeCbor, encodeCbor } from '../core/cbor.ts';
import type { Codec } from '../core/codec.ts';
import { isTallyError, TallyError } from '../core/errors.ts';
import { FRAME_BYTES_MAX, framed } from './frame.ts';
import { Inbox, type InboxLimits } from './inbox.ts';
import type { ByteStream, FrameChannel } from './stream.ts';

/** How long `receive` waits by default. */
export const RECEIVE_TIMEOUT_MS = 10_000;
/** Largest encoded message, in bytes: one frame. */
export const MESSAGE_BYTES_MAX = FRAME_BYTES_MAX;

/** How a link behaves. */
export interface LinkOptions {
  /** Default wait of `receive` (default RECEIVE_TIMEOUT_MS). */
  receiveTimeoutMs?: number | undefined;
  /** Bounds of the queue of unread messages (defaults INBOX_FRAMES_MAX, INBOX_BYTES_MAX). */
  inbox?: InboxLimits | undefined;
}

/** One receive call's wait and name. */
export interface ReceiveOptions {
  /** How long to wait (default: the link's receiveTimeoutMs); Infinity waits without limit. */
  timeoutMs?: number | undefined;
  /** Names the message in errors and is the root of decode paths (default "message"). */
  what?: string | undefined;
}

/** Typed messages over a frame channel. */
export class Link {
  private readonly inbox: Inbox;
  private readonly receiveTimeoutMs: number;

  /** Takes the channel's receiver. */
  constructor(
    private readonly channel: FrameChannel,
    options?: LinkOptions,
  ) {
    this.inbox = new Inbox(channel, options?.inbox);
    this.receiveTimeoutMs = options?.receiveTimeoutMs ?? RECEIVE_TIMEOUT_MS;
  }

  /**
   * Sends one message as deterministic CBOR.
   * @throws TallyError LINK_CLOSED when the link is closed; TOO_LARGE over MESSAGE_BYTES_MAX
   * @throws TypeError for a value CBOR does not carry (floats, class instances)
   */
  send(value: unknown): void {
    this.channel.send(encodeCbor(value));
  }

  /**
   * Waits for the next message and decodes it; a message that does not decode is consumed and
   * the link stays open (the scheme decides whether to go on).
   * @throws TallyError TIMEOUT when none arrives in time; LINK_CLOSED when the link closes first
   * (or the error that broke it: FRAME_INVALID, HANDSHAKE_FAILED); DECODE_FAILED for a message that
   * is not deterministic CBOR or that the codec refuses
   */
  async receive<T>(codec: Codec<T>, options?: ReceiveOptions): Promise<T> {
    const what = options?.what ?? 'message';
    const frame = await this.inbox.next({ timeoutMs: options?.timeoutMs ?? this.receiveTimeoutMs, what });
    let value: unknown;
    try {
      value = decodeCbor(frame, { maxBytes: MESSAGE_BYTES_MAX });
    } catch (e) {
      const got = isTallyError(e) ? e.message : String(e);
      throw new TallyError('DECODE_FAILED', `${what}: expected deterministic CBOR, got ${got}`, { path: what, expected: 'deterministic CBOR', got }, { cause: e });
    }
    return codec.decode(value, what);
  }

  /** Closes the link; `error` says why (absent: an orderly close, the peer sees LINK_CLOSED). */
  close(error?: TallyError): void {
    this.channel.close(error);
  }

  /** Settles with the reason once the link closes (either side, or a failure); never rejects. */
  get closed(): Promise<TallyError> {
    return this.inbox.closed;
  }

  /** Why the link closed, once it has. */
  get closeError(): TallyError | undefined {
    return this.channel.closeError;
  }

  /** Messages received and not yet read. */
  get unread(): number {
    return this.inbox.size;
  }
}

/** Frames a byte stream if it is one; a frame channel is used as it is. */
export function toFrames(carrier: ByteStream | FrameChannel): FrameChannel {
  return carrier.unit === 'bytes' ? framed(carrier) : carrier;
}

/** A plain (unencrypted, unauthenticated) link over a byte stream or a frame channel. */
export function openLink(carrier: ByteStream | FrameChannel, options?: LinkOptions): Link {
  return new Link(toFrames(carrier), options);
}
