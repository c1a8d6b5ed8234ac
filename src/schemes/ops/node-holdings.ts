/**
 * What the node knows OPS devices hold, for the audit's exposure check and for settling a device:
 * deposits - withdrawals - payments it made + what it collected + payments on their way to it.
 */
import { bigintColumn, type ExposedHolder, type Queryable, type SchemeHoldings } from '../../issuer/plugin.ts';

/**
 * What the node knows each OPS device holds: deposits - withdrawals - every payment it made that the
 * node knows of (reported by it, collected by a payee, or claimed) + what it reported collecting +
 * payments known to be on their way to it. Payments to client certificates not yet claimed are on
 * their way to their payee; the float must cover them too.
 */
export async function opsHoldings(q: Queryable, floatAccount: string): Promise<SchemeHoldings> {
  const { rows } = await q.query<{ device: string; held: bigint; fraud: boolean }>(
    `WITH device_ids AS (
       SELECT device_key_id AS d FROM ops_devices
       UNION SELECT sender_key_id FROM ops_payments
       UNION SELECT p.receiver_key_id FROM ops_payments p JOIN devices r ON r.key_id = p.receiver_key_id
     ), counter_ops AS (
       SELECT device_key_id AS d, sum(CASE kind WHEN 'deposit' THEN amount ELSE -amount END) AS v FROM ops_counter_ops GROUP BY 1
     ), paid AS (
       -- A payment of another bank's device collected here is that bank's to settle, not a holding here.
       SELECT sender_key_id AS d, sum(amount) AS v FROM ops_payments p
       WHERE NOT EXISTS (SELECT 1 FROM ops_foreign_collects f WHERE f.sender_key_id = p.sender_key_id AND f.index = p.index) GROUP BY 1
     ), collected AS (
       SELECT device_key_id AS d, sum(amount) AS v FROM ops_collects GROUP BY 1
     ), arriving AS (
       SELECT receiver_key_id AS d, sum(amount) AS v FROM ops_payments WHERE settled IS NULL GROUP BY 1
     )
     SELECT x.d AS device,
            (coalesce(c.v, 0) - coalesce(p.v, 0) + coalesce(k.v, 0) + coalesce(a.v, 0))::numeric(30, 0) AS held,
            (EXISTS (SELECT 1 FROM ops_fraud_cases f WHERE f.device_key_id = x.d)
              OR EXISTS (SELECT 1 FROM ops_devices r WHERE r.device_key_id = x.d AND r.retired_at IS NOT NULL)) AS fraud
     FROM device_ids x
     LEFT JOIN counter_ops c ON c.d = x.d LEFT JOIN paid p ON p.d = x.d
     LEFT JOIN collected k ON k.d = x.d LEFT JOIN arriving a ON a.d = x.d`,
  );
  const unclaimed = await q.query<{ v: bigint }>(
    `SELECT coalesce(sum(amount), 0)::numeric(30, 0) AS v FROM ops_payments p
     WHERE settled IS NULL AND NOT EXISTS (SELECT 1 FROM devices r WHERE r.key_id = p.receiver_key_id)`,
  );
  // Two tiers: what this bank's devices collected from other banks' devices reaches the float only
  // when the payer's bank settles the claim. While it is on its way the claim covers it; once
  // refused (a clone's payment, a revoked device's) it is a shortfall its sender is named for.
  const foreign = await q.query<{ sender: string; receivable: bigint; lost: bigint }>(
    `SELECT f.sender_key_id AS sender,
            coalesce(sum(f.amount) FILTER (WHERE c.status IN ('pending', 'presented', 'accepted')), 0)::numeric(30, 0) AS receivable,
            coalesce(sum(f.amount) FILTER (WHERE c.status = 'refused'), 0)::numeric(30, 0) AS lost
     FROM ops_foreign_collects f JOIN interbank_claims c ON c.claim_id = f.claim_id GROUP BY 1`,
  );
  let expected = bigintColumn(unclaimed.rows[0] as object, 'v');
  const exposed: ExposedHolder[] = [];
  for (const row of foreign.rows) {
    expected -= bigintColumn(row, 'receivable');
    const lost = bigintColumn(row, 'lost');
    if (lost > 0n) exposed.push({ device: row.sender, amount: lost, fraud: true });
  }
  for (const row of rows) {
    const held = bigintColumn(row, 'held');
    if (held >= 0n) expected += held;
    else exposed.push({ device: row.device, amount: -held, fraud: row.fraud });
  }
  exposed.sort((a, b) => (a.amount === b.amount ? a.device.localeCompare(b.device) : a.amount > b.amount ? -1 : 1));
  return { scheme: 'ops', floatAccount, expected, exposed };
}

/**
 * What the node's own account of one device's flow says it holds (the opsHoldings formula for one
 * device): deposits - withdrawals - every payment of it the node knows + what it reported
 * collecting + payments known to be on their way to it. Below zero for a device that spent value
 * it did not have.
 */
export async function knownHolding(q: Queryable, device: string): Promise<bigint> {
  const { rows } = await q.query<{ v: bigint }>(
    `SELECT (coalesce((SELECT sum(CASE kind WHEN 'deposit' THEN amount ELSE -amount END) FROM ops_counter_ops WHERE device_key_id = $1), 0)
           - coalesce((SELECT sum(amount) FROM ops_payments WHERE sender_key_id = $1), 0)
           + coalesce((SELECT sum(amount) FROM ops_collects WHERE device_key_id = $1), 0)
           + coalesce((SELECT sum(amount) FROM ops_payments WHERE receiver_key_id = $1 AND settled IS NULL), 0))::numeric(30, 0) AS v`,
    [device],
  );
  return bigintColumn(rows[0] as object, 'v');
}
