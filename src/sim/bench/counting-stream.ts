/** A byte stream wrapper for benchmarks that counts the payload passing it each way. */
import type { ByteStream, DuplexReceiver } from '../../channel/index.ts';
import type { TallyError } from '../../core/errors.ts';

/** A byte stream that counts what passes it each way (the payload the transport carries). */
export class CountingStream implements ByteStream {
  readonly unit = 'bytes' as const;
  sentBytes = 0;
  receivedBytes = 0;

  constructor(private readonly inner: ByteStream) {}

  send(unit: Uint8Array): void {
    this.inner.send(unit);
    this.sentBytes += unit.length;
  }

  attach(receiver: DuplexReceiver): void {
    this.inner.attach({
      data: (unit) => {
        this.receivedBytes += unit.length;
        receiver.data(unit);
      },
      closed: (error) => receiver.closed(error),
    });
  }

  close(error?: TallyError): void {
    this.inner.close(error);
  }

  get closeError(): TallyError | undefined {
    return this.inner.closeError;
  }

  /** Bytes both ways so far. */
  get totalBytes(): number {
    return this.sentBytes + this.receivedBytes;
  }
}
