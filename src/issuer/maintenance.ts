/**
 * Housekeeping of the node's tables: nonces of signed requests outlive their request window only
 * to refuse replays, and stored idempotent answers are kept for a retention period. Past those,
 * the rows are dropped, in batches so a long backlog never holds one long transaction.
 *
 * Dropping an idempotent answer is safe: a request older than the signature window is refused
 * before it is looked up, and the ledger's own transfer keys still stop a second effect.
 */
import type { Queryable } from './db/database.ts';

/** How long stored idempotent answers are kept. */
export const IDEMPOTENCY_RETENTION_MS = 7 * 24 * 3600 * 1000;
/** Rows dropped per statement. */
export const SWEEP_BATCH = 5000;

/** How many rows one sweep dropped. */
export interface SweepReport {
  readonly nonces: number;
  readonly idempotency: number;
}

async function dropBatches(q: Queryable, sql: string, params: readonly bigint[]): Promise<number> {
  let total = 0;
  for (;;) {
    const { rowCount } = await q.query(sql, [...params, BigInt(SWEEP_BATCH)]);
    total += rowCount;
    if (rowCount < SWEEP_BATCH) return total;
  }
}

/**
 * Drops nonces whose window ended before `now` (the node's clock, which set their expiry) and
 * idempotent answers older than `retentionMs` by the database's clock (which stamped them).
 * Answers still being written (no status yet) are left alone.
 */
export async function sweepExpired(q: Queryable, now: number, retentionMs: number = IDEMPOTENCY_RETENTION_MS): Promise<SweepReport> {
  const nonces = await dropBatches(
    q,
    `DELETE FROM request_nonces WHERE ctid IN (
       SELECT ctid FROM request_nonces WHERE expires_at < to_timestamp($1::bigint / 1000.0) LIMIT $2)`,
    [BigInt(now)],
  );
  const idempotency = await dropBatches(
    q,
    `DELETE FROM idempotency WHERE ctid IN (
       SELECT ctid FROM idempotency WHERE created_at < now() - $1::bigint * interval '1 millisecond' AND status IS NOT NULL LIMIT $2)`,
    [BigInt(retentionMs)],
  );
  return { nonces, idempotency };
}
