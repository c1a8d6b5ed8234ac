/**
 * What the wallet sees of a secure element, whichever host runs it: send a command, get the
 * output. The in-process host and the isolated (child process) host both implement it.
 */
import type { InputOf, OutputOf } from './trusted-app.ts';

/** The points where a commit can be cut short by a crash, in order. */
export const CRASH_POINTS = ['before-write', 'after-write', 'after-rename', 'after-increment'] as const;
/** A named point in the commit protocol at which tests can crash the host. */
export type CrashPoint = (typeof CRASH_POINTS)[number];

/** Per-call options. */
export interface CallOptions {
  /**
   * Names this invocation (16 bytes). Calling again with the same id after a crash returns the
   * stored output, byte for byte, instead of running the command twice.
   */
  requestId?: Uint8Array | undefined;
}

/** A running secure element. */
export interface SecureElement<C> {
  /** The device identity derived from the master secret. */
  readonly deviceId: Uint8Array;
  /** A description for logs ("in-process file:/x tpm:0x1500016"). */
  readonly description: string;
  /**
   * Runs a command.
   * @throws TallyError SE_REJECTED (the app refused; nothing changed), DECODE_FAILED (bad input;
   * nothing changed), SE_UNAVAILABLE (host closed or crashed), SE_CRASHED, ROLLBACK_DETECTED
   */
  call<K extends keyof C & string>(name: K, input: InputOf<C[K]>, options?: CallOptions): Promise<OutputOf<C[K]>>;
  /** Stops the host; later calls fail with SE_UNAVAILABLE. */
  close(): Promise<void>;
}
