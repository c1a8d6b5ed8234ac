/**
 * A monotonic counter kept in a small file, for development and simulation only.
 *
 * It does NOT stop rollback by the device owner: whoever can restore files can restore this
 * counter together with the sealed state it guards, and the pair then looks consistent. Real
 * rollback protection needs a counter outside the owner's reach, such as a TPM NV counter.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readSync, renameSync, rmSync } from 'node:fs';
import { link, mkdir, rm } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { assert } from '../core/assert.ts';
import { TallyError, isTallyError } from '../core/errors.ts';
import type { MonotonicCounter } from './counter.ts';
import { isFsError, syncDirectory, syncDirectorySync, writeDurably, writeDurablySync } from './durable-file.ts';
import { KeyedQueue } from './keyed-queue.ts';

/** The largest value, as for a TPM NV counter (64 bits). */
const COUNTER_MAX = 2n ** 64n - 1n;
/** "18446744073709551615\n" is 21 bytes; anything longer is not a counter file. */
const COUNTER_FILE_BYTES_MAX = 21;
/** The whole file: a decimal without leading zeros, then one newline. */
const COUNTER_TEXT = /^(0|[1-9][0-9]{0,19})\n$/;

function failed(reason: string, cause?: unknown): TallyError<'COUNTER_FAILED'> {
  return new TallyError('COUNTER_FAILED', reason, { reason }, cause === undefined ? undefined : { cause });
}

function encode(value: bigint): Uint8Array {
  return new TextEncoder().encode(`${value}\n`);
}

function decode(bytes: Uint8Array, path: string): bigint {
  const text = new TextDecoder('utf-8', { fatal: false }).decode(bytes);
  const match = bytes.length <= COUNTER_FILE_BYTES_MAX ? COUNTER_TEXT.exec(text) : null;
  const digits = match?.[1];
  const value = digits === undefined ? null : BigInt(digits);
  if (value === null || value > COUNTER_MAX) {
    const shown = JSON.stringify(text.slice(0, COUNTER_FILE_BYTES_MAX + 1));
    throw failed(`counter file ${path} is corrupt: expected a decimal in 0..2^64-1 and a newline, got ${shown} (${bytes.length} bytes); restore it or remove the device's state`);
  }
  return value;
}

// Calls on one path are serialised across every FileCounter of this process, so concurrent
// increments never read the same value. Other processes are not excluded: one writer per file.
const queue = new KeyedQueue();

/**
 * A counter in a file of decimal text, replaced atomically and durably (temp file, fsync, rename,
 * fsync of the directory). For development and simulation ONLY: a device owner who restores old
 * files restores this counter with the state, so it does NOT stop rollback by the owner.
 * Increments are serialised within one process; do not share the file between processes.
 */
export class FileCounter implements MonotonicCounter {
  readonly description: string;
  readonly #path: string;
  readonly #dir: string;

  /** A counter in the file at `path` (created by open()). */
  constructor(path: string) {
    this.#path = resolve(path);
    this.#dir = dirname(this.#path);
    this.description = `file:${this.#path}`;
  }

  /**
   * Creates the file at 0 if it is absent and returns the current value.
   * @throws TallyError COUNTER_FAILED when the file is corrupt or cannot be read or written
   */
  open(): Promise<bigint> {
    return this.#run(async () => {
      const existing = this.#readOrNull();
      if (existing !== null) return existing;
      await mkdir(this.#dir, { recursive: true, mode: 0o700 });
      const temp = this.#tempPath();
      try {
        await writeDurably(temp, encode(0n), 'wx');
        // link() fails if the file appeared meanwhile, so a counter another opener created (and
        // perhaps incremented) is never replaced by a fresh 0, as rename() would do.
        await link(temp, this.#path);
      } catch (e) {
        if (!isFsError(e, 'EEXIST')) throw e;
      } finally {
        await rm(temp, { force: true });
      }
      await syncDirectory(this.#dir);
      return this.#readExisting();
    });
  }

  /** The current value. @throws TallyError COUNTER_FAILED when the file is absent or corrupt */
  read(): Promise<bigint> {
    return this.#run(async () => this.#readExisting());
  }

  /**
   * Adds one, durably, and returns the new value; the file's calls run on the calling thread, as a
   * commit's writes do (durable-file.ts). @throws TallyError COUNTER_FAILED
   */
  increment(): Promise<bigint> {
    return this.#run(async () => {
      const current = this.#readExisting();
      if (current === COUNTER_MAX) throw failed(`counter file ${this.#path} is at its maximum 2^64-1`);
      const next = current + 1n;
      const bytes = encode(next);
      assert(decode(bytes, this.#path) === next, 'counter text round-trips');
      const temp = this.#tempPath();
      try {
        writeDurablySync(temp, bytes, 'wx');
        renameSync(temp, this.#path);
      } catch (e) {
        rmSync(temp, { force: true });
        throw e;
      }
      syncDirectorySync(this.#dir);
      return next;
    });
  }

  /** Waits for calls in flight; a file holds no other resource. */
  async close(): Promise<void> {
    await this.#run(() => Promise.resolve());
  }

  #run<T>(task: () => Promise<T>): Promise<T> {
    return queue.run(this.#path, async () => {
      try {
        return await task();
      } catch (e) {
        if (isTallyError(e)) throw e;
        throw failed(`counter file ${this.#path}: ${e instanceof Error ? e.message : String(e)}`, e);
      }
    });
  }

  #tempPath(): string {
    return `${this.#path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  }

  #readOrNull(): bigint | null {
    let bytes: Uint8Array;
    try {
      // Read at most one byte more than a valid file has, so a huge file cannot exhaust memory.
      const fd = openSync(this.#path, 'r');
      try {
        const buffer = new Uint8Array(COUNTER_FILE_BYTES_MAX + 1);
        bytes = buffer.subarray(0, readSync(fd, buffer, 0, buffer.length, 0));
      } finally {
        closeSync(fd);
      }
    } catch (e) {
      if (isFsError(e, 'ENOENT')) return null;
      throw e;
    }
    return decode(bytes, this.#path);
  }

  #readExisting(): bigint {
    const value = this.#readOrNull();
    if (value === null) throw failed(`counter file ${this.#path} does not exist: call open() first (a counter file that vanished after open() is a rollback)`);
    return value;
  }
}

