/**
 * A monotonic counter: the rollback protection of a secure element's sealed state. The host keeps
 * the state's version equal to the counter; a sealed file with an older version is a rollback.
 */

/** A counter that only ever goes up. Values are bigints (a TPM NV counter is 64-bit). */
export interface MonotonicCounter {
  /** A short description for logs and benchmarks ("file:/path", "tpm:0x01800016@swtpm"). */
  readonly description: string;
  /**
   * Creates the counter if it does not exist yet and returns its current value. A fresh counter
   * need not start at zero (a TPM NV counter starts at the highest value any counter had).
   * @throws TallyError COUNTER_FAILED
   */
  open(): Promise<bigint>;
  /** The current value. @throws TallyError COUNTER_FAILED */
  read(): Promise<bigint>;
  /** Adds one, durably, and returns the new value. @throws TallyError COUNTER_FAILED */
  increment(): Promise<bigint>;
  /** Releases handles (connections, processes). */
  close(): Promise<void>;
}
