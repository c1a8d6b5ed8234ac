/**
 * The receiving queue of a frame channel: frames wait here until asked for, every wait has a
 * timeout, and a peer that sends more than the queue holds has the link closed on it (it cannot
 * make this side buffer without bound). Pure.
 */
import { TallyError } from '../core/errors.ts';
import type { DuplexReceiver, FrameChannel } from './stream.ts';

/** Most frames waiting unread before the link is closed. */
export const INBOX_FRAMES_MAX = 64;
/** Most bytes waiting unread before the link is closed. */
export const INBOX_BYTES_MAX = 1024 * 1024;

/** Bounds of an inbox. */
export interface InboxLimits {
  framesMax?: number | undefined;
  bytesMax?: number | undefined;
}

/** What a wait is for and how long it may last (Infinity: no limit). */
export interface WaitOptions {
  timeoutMs: number;
  /** Names the awaited frame in a TIMEOUT error ("payment request"). */
  what: string;
}

interface Waiter {
  resolve(frame: Uint8Array): void;
  reject(error: TallyError): void;
  timer: ReturnType<typeof setTimeout> | undefined;
}

/** A TIMEOUT error for a wait. */
export function timeoutError(what: string, timeoutMs: number): TallyError<'TIMEOUT'> {
  return new TallyError('TIMEOUT', `expected ${what} within ${timeoutMs} ms, got nothing`, { what, timeoutMs });
}

/** A bounded queue of the frames a channel delivers, read one by one with a timeout. */
export class Inbox {
  private readonly queue: Uint8Array[] = [];
  private queuedBytes = 0;
  private readonly waiters: Waiter[] = [];
  private error: TallyError | undefined;
  private target: DuplexReceiver | undefined;
  private readonly framesMax: number;
  private readonly bytesMax: number;
  private resolveClosed: (error: TallyError) => void = () => {};
  /** Settles with the close reason once the channel closes; never rejects. */
  readonly closed: Promise<TallyError>;

  /** Attaches to the channel (its one receiver). */
  constructor(
    private readonly channel: FrameChannel,
    limits?: InboxLimits,
  ) {
    this.framesMax = limits?.framesMax ?? INBOX_FRAMES_MAX;
    this.bytesMax = limits?.bytesMax ?? INBOX_BYTES_MAX;
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
    channel.attach({ data: (frame) => this.data(frame), closed: (error) => this.end(error) });
  }

  /**
   * The next frame: a queued one at once, else the next to arrive.
   * @throws TallyError TIMEOUT when none arrives in time; the close error (LINK_CLOSED or what
   * broke the link) once the channel is closed and the queue is empty
   */
  next(options: WaitOptions): Promise<Uint8Array> {
    const frame = this.queue.shift();
    if (frame !== undefined) {
      this.queuedBytes -= frame.length;
      return Promise.resolve(frame);
    }
    if (this.error !== undefined) return Promise.reject(this.error);
    return new Promise((resolve, reject) => {
      const waiter: Waiter = { resolve, reject, timer: undefined };
      // Infinity would make setTimeout fire at once; no timer means no limit.
      if (Number.isFinite(options.timeoutMs)) {
        waiter.timer = setTimeout(() => {
          this.waiters.splice(this.waiters.indexOf(waiter), 1);
          reject(timeoutError(options.what, options.timeoutMs));
        }, Math.max(0, options.timeoutMs));
      }
      this.waiters.push(waiter);
    });
  }

  /** Frames waiting unread. */
  get size(): number {
    return this.queue.length;
  }

  /**
   * Stops queueing: what is queued, later frames and the close go to `target` from now on. The
   * secure session uses this to take over a channel after the handshake read it.
   */
  handOver(target: DuplexReceiver): void {
    // A close during the hand-over reaches `target` through end(); one from before, here: once either way.
    const closedBefore = this.error;
    this.target = target;
    for (let frame = this.queue.shift(); frame !== undefined; frame = this.queue.shift()) target.data(frame);
    this.queuedBytes = 0;
    if (closedBefore !== undefined) target.closed(closedBefore);
  }

  private data(frame: Uint8Array): void {
    if (this.target !== undefined) return this.target.data(frame);
    const waiter = this.waiters.shift();
    if (waiter !== undefined) {
      clearTimeout(waiter.timer);
      waiter.resolve(frame);
      return;
    }
    this.queue.push(frame);
    this.queuedBytes += frame.length;
    if (this.queue.length > this.framesMax || this.queuedBytes > this.bytesMax) {
      this.channel.close(
        new TallyError(
          'FRAME_INVALID',
          `peer sent more than this side has read: expected at most ${this.framesMax} frames and ${this.bytesMax} bytes waiting, got ${this.queue.length} frames and ${this.queuedBytes} bytes`,
          { reason: 'inbox overflow' },
        ),
      );
    }
  }

  private end(error: TallyError): void {
    this.error = error;
    this.resolveClosed(error);
    if (this.target !== undefined) return this.target.closed(error);
    for (const waiter of this.waiters.splice(0)) {
      clearTimeout(waiter.timer);
      waiter.reject(error);
    }
  }
}
