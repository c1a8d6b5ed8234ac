/**
 * What the node knows of the value out in OPERA tokens, for the audit's exposure check. Every token
 * the bank signed is a row with a state, and each leaves the float once (deposited, or refunded to
 * the payer of a transaction its payee never took): the float must equal the tokens still issued.
 * The bank does not know which ODW holds a token now (tokens move offline, ODW to ODW), and no
 * holder can take value out twice (a serial spent is refused as a double spend, found and named in
 * opera_findings), so no holder is ever exposed; a difference here is a fault of the node itself.
 */
import { bigintColumn, type Queryable, type SchemeHoldings } from '../../issuer/plugin.ts';
import { OPERA_SCHEME } from './messages.ts';

/** What the OPERA float must cover: the value of the tokens issued and neither deposited nor refunded. */
export async function operaHoldings(q: Queryable, floatAccount: string): Promise<SchemeHoldings> {
  // On a node with shard databases, a shard's tokens are in opera_shard_tokens (node-shards.ts); the audit reads each database.
  const { rows } = await q.query<{ outstanding: bigint }>(
    "SELECT ((SELECT coalesce(sum(value), 0) FROM opera_tokens WHERE state = 'issued') + (SELECT coalesce(sum(value), 0) FROM opera_shard_tokens WHERE state = 'issued'))::bigint AS outstanding",
  );
  const row = rows[0];
  return { scheme: OPERA_SCHEME, floatAccount, expected: row === undefined ? 0n : bigintColumn(row, 'outstanding'), exposed: [] };
}
