/**
 * The carrier every link layer sits on: a duplex that sends units of bytes, delivers the peer's
 * units to one receiver and closes once. A byte stream's units are arbitrary chunks (as TCP cuts
 * them); a frame channel's units are whole frames. One shape for both lets framing, the secure
 * session and the fault injector stack on any transport. Pure: no I/O of its own.
 */
import { assert } from '../core/assert.ts';
import { isTallyError, TallyError } from '../core/errors.ts';

/** What a duplex's units are: chunks of a byte stream, or whole frames. */
export type UnitKind = 'bytes' | 'frames';

/** Receives what a duplex delivers, in order. */
export interface DuplexReceiver {
  /** One unit from the peer. */
  data(unit: Uint8Array): void;
  /** The duplex closed, once: LINK_CLOSED for an orderly close by either side, else why it failed. */
  closed(error: TallyError): void;
}

/** A two-way carrier of byte units. */
export interface Duplex<K extends UnitKind = UnitKind> {
  /** What the units are; keeps a byte stream from being used where frames are expected. */
  readonly unit: K;
  /**
   * Sends one unit; the duplex may keep a reference, so do not change it afterwards.
   * @throws TallyError LINK_CLOSED when the duplex is closed
   */
  send(unit: Uint8Array): void;
  /**
   * Sets the one receiver; units that arrived earlier are held and delivered first.
   * @throws TallyError ASSERTION_FAILED when a receiver is already attached
   */
  attach(receiver: DuplexReceiver): void;
  /** Closes both directions; `error` says why (absent: an orderly close). Idempotent. */
  close(error?: TallyError): void;
  /** Why the duplex closed, once it has. */
  readonly closeError: TallyError | undefined;
}

/** A duplex whose units are arbitrary chunks of one byte stream (a transport). */
export type ByteStream = Duplex<'bytes'>;
/** A duplex whose units are whole frames (message boundaries are kept). */
export type FrameChannel = Duplex<'frames'>;

/** The reason given when this side closes in order. */
export const CLOSED_HERE = 'closed by this side';
/** The reason given when the peer closes in order. */
export const CLOSED_BY_PEER = 'closed by the peer';

/** A LINK_CLOSED error with its reason. */
export function linkClosed(reason: string, cause?: unknown): TallyError<'LINK_CLOSED'> {
  return new TallyError('LINK_CLOSED', `link closed: ${reason}`, { reason }, { cause });
}

/** The error for sending on a duplex that closed with `closeError`. */
export function sendOnClosed(closeError: TallyError): TallyError<'LINK_CLOSED'> {
  const reason = isTallyError(closeError, 'LINK_CLOSED') ? closeError.details.reason : closeError.message;
  return new TallyError('LINK_CLOSED', `cannot send: link closed: ${reason}`, { reason }, { cause: closeError });
}

/**
 * The receiving half every duplex implementation shares: holds units until a receiver is
 * attached, drops units after the close, and reports the close exactly once.
 */
export class ReceiverSlot {
  private receiver: DuplexReceiver | undefined;
  private held: Uint8Array[] = [];
  private error: TallyError | undefined;
  private notified = false;

  /** Sets the receiver and hands it what was held (and the close, if it came already). */
  attach(receiver: DuplexReceiver): void {
    assert(this.receiver === undefined, 'a duplex takes one receiver');
    this.receiver = receiver;
    // Units the peer sent before it closed are still its last words: deliver them first.
    while (this.held.length > 0 && !this.notified) receiver.data(this.held.shift() as Uint8Array);
    this.held = [];
    this.notify();
  }

  /** Passes one unit on, or holds it until a receiver is attached. */
  deliver(unit: Uint8Array): void {
    if (this.error !== undefined) return;
    if (this.receiver === undefined) this.held.push(unit);
    else this.receiver.data(unit);
  }

  /** Records the close (the first one wins) and reports it once a receiver is attached. */
  end(error: TallyError): void {
    if (this.error !== undefined) return;
    this.error = error;
    this.notify();
  }

  /** Why the slot closed, once it has. */
  get closeError(): TallyError | undefined {
    return this.error;
  }

  private notify(): void {
    if (this.error === undefined || this.receiver === undefined || this.notified) return;
    this.notified = true;
    this.receiver.closed(this.error);
  }
}
