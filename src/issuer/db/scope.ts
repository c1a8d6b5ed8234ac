/**
 * Guards around one open transaction: the database refuses calls made from inside its own
 * transaction (they would wait for the connection the transaction holds), and a transaction
 * handle refuses calls after its transaction has ended.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { assert } from '../../core/assert.ts';
import type { Queryable, TransactionHandle } from './database.ts';

/** Tracks whether the running code is inside a transaction of one database. */
export class TransactionScope {
  readonly #inside = new AsyncLocalStorage<true>();

  /** Runs `fn` marked as inside a transaction. */
  run<T>(fn: () => Promise<T>): Promise<T> {
    return this.#inside.run(true, fn);
  }

  /**
   * Refuses a call on the database itself from inside one of its transactions.
   * @throws TallyError ASSERTION_FAILED inside a transaction
   */
  assertOutside(what: string): void {
    assert(
      this.#inside.getStore() !== true,
      `${what} was called on the database inside one of its own transactions, which would wait forever: use the transaction handle`,
    );
  }
}

/** A transaction handle that stops working once its transaction has ended. */
export function scopedHandle(inner: Queryable): { handle: TransactionHandle; end: () => void } {
  let ended = false;
  const check = (): void => assert(!ended, 'a transaction handle was used after its transaction ended');
  const handle: TransactionHandle = {
    get open() {
      return !ended;
    },
    query: (sql, params) => {
      check();
      return inner.query(sql, params);
    },
    exec: (sql) => {
      check();
      return inner.exec(sql);
    },
  };
  return { handle, end: () => void (ended = true) };
}
