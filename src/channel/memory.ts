/**
 * Two connected byte streams in memory: what one end sends, the other receives. Delivery is
 * asynchronous (a microtask), as on a real connection, so a send never runs the peer's code inside
 * the caller. Pure: works in a browser, a worker or a test.
 */
import { CLOSED_BY_PEER, CLOSED_HERE, linkClosed, ReceiverSlot, sendOnClosed, type ByteStream, type DuplexReceiver } from './stream.ts';
import type { TallyError } from '../core/errors.ts';

/** How the pair behaves. */
export interface MemoryPairOptions {
  /** Cut every write into chunks of at most this many bytes, as a network may (default: whole writes). */
  chunkBytes?: number | undefined;
}

class MemoryEnd implements ByteStream {
  readonly unit = 'bytes' as const;
  private readonly slot = new ReceiverSlot();
  private error: TallyError | undefined;
  peer: MemoryEnd | undefined;

  constructor(private readonly chunkBytes: number) {}

  send(bytes: Uint8Array): void {
    if (this.error !== undefined) throw sendOnClosed(this.error);
    const peer = this.peer as MemoryEnd;
    // A copy: the sender may reuse its buffer, a wire would not notice.
    const copy = bytes.slice();
    for (let offset = 0; offset < copy.length; offset += this.chunkBytes) {
      const chunk = copy.subarray(offset, offset + this.chunkBytes);
      queueMicrotask(() => peer.arrive(chunk));
    }
  }

  attach(receiver: DuplexReceiver): void {
    this.slot.attach(receiver);
  }

  close(error?: TallyError): void {
    if (this.error !== undefined) return;
    this.error = error ?? linkClosed(CLOSED_HERE);
    this.slot.end(this.error);
    const peer = this.peer as MemoryEnd;
    // Queued after every chunk already sent, so the peer reads them before it learns of the close.
    queueMicrotask(() => peer.peerClosed());
  }

  get closeError(): TallyError | undefined {
    return this.error;
  }

  private arrive(chunk: Uint8Array): void {
    if (this.error === undefined) this.slot.deliver(chunk);
  }

  private peerClosed(): void {
    if (this.error !== undefined) return;
    this.error = linkClosed(CLOSED_BY_PEER);
    this.slot.end(this.error);
  }
}

/**
 * Creates two connected in-memory byte streams.
 * @throws RangeError when `chunkBytes` is not a positive integer
 */
export function memoryPair(options?: MemoryPairOptions): [ByteStream, ByteStream] {
  const chunkBytes = options?.chunkBytes ?? Number.MAX_SAFE_INTEGER;
  if (!Number.isSafeInteger(chunkBytes) || chunkBytes < 1) throw new RangeError(`chunkBytes: expected a positive integer, got ${chunkBytes}`);
  const a = new MemoryEnd(chunkBytes);
  const b = new MemoryEnd(chunkBytes);
  a.peer = b;
  b.peer = a;
  return [a, b];
}
