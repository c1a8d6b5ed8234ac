/** The escrow of a retired (or operator-settled) OPS device: what the node can vouch it held, paid out to its payees and then to its owner. */
import { bigintColumn, type TransactionHandle } from '../../issuer/plugin.ts';
import type { OpsDeviceRow } from './node-settlement.ts';

/** A retired device's escrow. */
export interface RetirementRow {
  readonly escrow: bigint;
  readonly releaseAt: number;
  readonly released: boolean;
}

/** The escrow of a device its owner retired, or null. */
export async function retirementOf(tx: TransactionHandle, device: string): Promise<RetirementRow | null> {
  const { rows } = await tx.query<{ escrow: bigint; release_at: bigint; released: boolean }>('SELECT escrow, release_at, released FROM ops_devices WHERE device_key_id = $1 AND retired_at IS NOT NULL', [device]);
  const row = rows[0];
  if (row === undefined) return null;
  return { escrow: bigintColumn(row, 'escrow'), releaseAt: Number(bigintColumn(row, 'release_at')), released: row.released };
}

/**
 * The value the node can vouch a device holds when its owner retires it: its balance at its last
 * report (0 without one), the deposits and withdrawals after that report, less its payments past the
 * report that payees already settled, plus payments made to it that it never collected. Its payments
 * nobody reported yet are not in it: they are paid from this escrow when they surface.
 */
export async function retirementValue(tx: TransactionHandle, device: string, row: OpsDeviceRow): Promise<bigint> {
  const { rows } = await tx.query<{ v: bigint }>(
    `SELECT (coalesce((SELECT reported_balance FROM ops_devices WHERE device_key_id = $1 AND reported_i IS NOT NULL), 0)
           + coalesce((SELECT sum(CASE kind WHEN 'deposit' THEN amount ELSE -amount END) FROM ops_counter_ops
                       WHERE device_key_id = $1 AND i > coalesce((SELECT reported_i FROM ops_devices WHERE device_key_id = $1), 0)), 0)
           - coalesce((SELECT sum(amount) FROM ops_payments WHERE sender_key_id = $1 AND index > $2 AND settled IS NOT NULL), 0)
           + coalesce((SELECT sum(amount) FROM ops_payments WHERE receiver_key_id = $1 AND settled IS NULL), 0))::numeric(30, 0) AS v`,
    [device, row.reportedJ],
  );
  return bigintColumn(rows[0] as object, 'v');
}
