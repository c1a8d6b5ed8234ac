/**
 * An account's history: its transfers, newest first, a bounded page at a time.
 */
import type { Queryable } from '../db/database.ts';
import { findAccount } from './account.ts';
import { HISTORY_LIMIT_MAX } from './rules.ts';
import { TRANSFER_COLUMNS, transferFromRow, type Transfer, type TransferRow } from './transfer.ts';

/** One transfer as seen from one account. */
export interface HistoryEntry {
  readonly transfer: Transfer;
  /** What it did to this account's balance: the amount, negative when the account was debited. */
  readonly delta: bigint;
}

/** Which page to read. */
export interface HistoryOptions {
  /** 1..HISTORY_LIMIT_MAX entries. */
  readonly limit: number;
  /** Only transfers with a smaller id: pass the last id of the previous page. */
  readonly before?: bigint | undefined;
}

// Larger than any transfer id: identity columns are bigints.
const ID_ABOVE_ALL = 2n ** 63n - 1n;

/**
 * Up to `limit` transfers of the account, newest first; undefined when the account does not exist.
 * @throws RangeError for a limit outside 1..HISTORY_LIMIT_MAX
 */
export async function history(q: Queryable, accountId: string, options: HistoryOptions): Promise<HistoryEntry[] | undefined> {
  const { limit, before = ID_ABOVE_ALL } = options;
  if (!Number.isInteger(limit) || limit < 1 || limit > HISTORY_LIMIT_MAX) {
    throw new RangeError(`history limit: expected 1..${HISTORY_LIMIT_MAX}, got ${limit}`);
  }
  if ((await findAccount(q, accountId)) === undefined) return undefined;
  // One index range per side, each already limited, instead of an OR across both indexes.
  const result = await q.query<TransferRow>(
    `(SELECT ${TRANSFER_COLUMNS} FROM transfers WHERE debit_account = $1 AND id < $2 ORDER BY id DESC LIMIT $3)
     UNION ALL
     (SELECT ${TRANSFER_COLUMNS} FROM transfers WHERE credit_account = $1 AND id < $2 ORDER BY id DESC LIMIT $3)
     ORDER BY id DESC LIMIT $3`,
    [accountId, before, limit],
  );
  return result.rows.map((row) => {
    const t = transferFromRow(row);
    return { transfer: t, delta: t.credit === accountId ? t.amount : -t.amount };
  });
}
