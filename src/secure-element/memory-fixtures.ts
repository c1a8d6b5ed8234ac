/**
 * Secure elements kept in memory (not exported by any index): storage and a monotonic counter that
 * live as long as the test, or the benchmark run, to run a trusted app in an in-process host
 * without a file or an fsync per commit.
 */
import assert from 'node:assert/strict';
import { TallyError } from '../core/errors.ts';
import type { MonotonicCounter } from './counter.ts';
import type { SecureStorage } from './storage.ts';

/** Storage that lives as long as the test: enough to reopen a wallet, and to read its master secret. */
export class MemoryStorage implements SecureStorage {
  readonly location = 'memory';
  master: Uint8Array | null = null;
  private readonly states = new Map<string, Uint8Array>();
  private readonly temps = new Map<string, Uint8Array>();
  async readMaster(): Promise<Uint8Array | null> {
    return this.master;
  }
  async createMaster(secret: Uint8Array): Promise<void> {
    if (this.master !== null) throw new TallyError('SE_ALREADY_PROVISIONED', 'memory storage has a master secret', { path: this.location });
    this.master = secret;
  }
  /** A copy of everything stored: a cloned device. */
  clone(): MemoryStorage {
    const copy = new MemoryStorage();
    copy.master = this.master;
    for (const [app, sealed] of this.states) copy.states.set(app, sealed);
    return copy;
  }
  async readState(app: string): Promise<Uint8Array | null> {
    return this.states.get(app) ?? null;
  }
  async writeTemp(app: string, sealed: Uint8Array): Promise<void> {
    this.temps.set(app, sealed);
  }
  async replace(app: string): Promise<void> {
    const temp = this.temps.get(app);
    assert.ok(temp !== undefined, 'replace after writeTemp');
    this.states.set(app, temp);
    this.temps.delete(app);
  }
  async discardTemp(app: string): Promise<void> {
    this.temps.delete(app);
  }
}

/** A counter that lives as long as the test. */
export class MemoryCounter implements MonotonicCounter {
  readonly description = 'memory';
  private value = 0n;
  /** A counter at the same value: a cloned device's. */
  clone(): MemoryCounter {
    const copy = new MemoryCounter();
    copy.value = this.value;
    return copy;
  }
  async open(): Promise<bigint> {
    return this.value;
  }
  async read(): Promise<bigint> {
    return this.value;
  }
  async increment(): Promise<bigint> {
    return ++this.value;
  }
  async close(): Promise<void> {}
}
