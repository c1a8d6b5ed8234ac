/** DOT-M's part of the audit's exposure check. */
import { bigintColumn, type ExposedHolder, type Queryable, type SchemeHoldings } from '../../issuer/plugin.ts';
import { DOTM_FLOAT_ACCOUNT } from './node-settlement-model.ts';
import { LIVE, liveOf } from './node-tree.ts';

/**
 * What the node knows each DOT-M holder has left, from the tree of every serial: at each node, what
 * its holder received (0 for a record that is not live) minus its live children and what it gave up
 * to be credited online. A node below zero was spent twice (settlement names its holder). The float
 * must also cover redemptions and refunds given up at a node but withheld, which it still holds.
 */
export async function dotmHoldings(q: Queryable): Promise<SchemeHoldings> {
  const { rows } = await q.query<{ holder: string; wallet: string | null; value: bigint; fraud: boolean }>(
    `WITH valued AS (
       SELECT n.holder_key_id AS holder,
              ((CASE WHEN ${LIVE} THEN n.amount ELSE 0 END)
                - coalesce((SELECT sum(c.amount) FROM dotm_nodes c WHERE c.prev = n.digest AND ${liveOf('c')}), 0)
                - n.redeemed)::numeric(30, 0) AS value
       FROM dotm_nodes n
     )
     SELECT v.holder, w.wallet_key_id AS wallet,
            sum(CASE WHEN v.value < 0 THEN v.value ELSE 0 END)::numeric(30, 0) AS value,
            EXISTS (SELECT 1 FROM dotm_findings f WHERE f.culprit_key_id = v.holder) AS fraud
     FROM valued v LEFT JOIN dotm_wallets w ON w.user_key_id = v.holder
     GROUP BY v.holder, w.wallet_key_id
     UNION ALL
     SELECT '', NULL, sum(CASE WHEN value > 0 THEN value ELSE 0 END)::numeric(30, 0), false FROM valued`,
  );
  const withheld = await q.query<{ v: bigint }>(
    `SELECT ((SELECT coalesce(sum(amount), 0) FROM dotm_redemptions WHERE NOT credited)
           + (SELECT coalesce(sum(amount), 0) FROM dotm_transactions WHERE refund = 'withheld'))::numeric(30, 0) AS v`,
  );
  let expected = bigintColumn(withheld.rows[0] as object, 'v');
  const exposed: ExposedHolder[] = [];
  for (const row of rows) {
    const value = row['value'] === null ? 0n : bigintColumn(row, 'value');
    if (row.holder === '') expected += value;
    else if (value < 0n) exposed.push({ device: row.wallet ?? row.holder, amount: -value, fraud: row.fraud });
  }
  exposed.sort((a, b) => (a.amount === b.amount ? a.device.localeCompare(b.device) : a.amount > b.amount ? -1 : 1));
  return { scheme: 'dotm', floatAccount: DOTM_FLOAT_ACCOUNT, expected, exposed };
}
