/**
 * OPERA on a node with shard databases (docs/scale.md, "OPERA on the shard databases"): a token
 * lives on the shard of its serial, which the bank draws at charge. A charge sends each shard's
 * part of its value from the holder's account to that shard's `float:opera` as one crossing, in
 * the charge's transaction; the shard records the part's tokens when it receives the crossing, in
 * the same transaction that credits its float (chargeReceipt), so a shard's float always equals
 * its tokens still issued. The charge is answered once every part is received, so a token handed
 * to an ODW is always known on its shard. Deposits are in node-shard-deposit.ts.
 */
import { toHex, utf8 } from '../../core/bytes.ts';
import { sha256 } from '../../core/crypto/hash.ts';
import { ApiProblem, sendAcross, type CrossingReceipt, type IssuerServices, type Party, type Queryable, type TransactionHandle } from '../../issuer/plugin.ts';
import { OPERA_FLOAT_ACCOUNT } from './node-common.ts';
import type { Token } from './token.ts';

/** The crossing kind of a charge's part, received with chargeReceipt. */
export const CHARGE_CROSSING_KIND = 'opera-charge';
/** The crossing kind of a deposit's part, from a shard to the depositor's account at home. */
export const DEPOSIT_CROSSING_KIND = 'opera-deposit';

/** The shard places of a node with shard databases, or undefined for a node without. */
export function shardPlaces(services: IssuerServices): readonly Party[] | undefined {
  const parties = services.shardLedgers?.parties;
  return parties === undefined ? undefined : parties.slice(1);
}

/** The place of a token's serial: its first four bytes, big-endian, modulo the shards (serials are random). */
export function serialPlace(serial: Uint8Array, places: readonly Party[]): Party {
  const n = ((serial[0] ?? 0) * 2 ** 24 + (serial[1] ?? 0) * 2 ** 16 + (serial[2] ?? 0) * 2 ** 8 + (serial[3] ?? 0)) % places.length;
  return places[n] as Party;
}

/** The id of one place's part of an ODW request: a digest of the device and the nonce (ids are bounded), and the place. */
export function partId(kind: 'charge' | 'deposit', device: string, nonce: Uint8Array, place: Party): string {
  return `opera-${kind}:${toHex(sha256(utf8(`${device}:${toHex(nonce)}`))).slice(0, 32)}:${place}`;
}

/** Indices of `tokens` by the place of their serials, in the order of the places. */
export function byPlace(tokens: readonly Token[], places: readonly Party[], only: (i: number) => boolean = () => true): Map<Party, number[]> {
  const parts = new Map<Party, number[]>(places.map((p) => [p, []]));
  tokens.forEach((token, i) => {
    if (only(i)) parts.get(serialPlace(token.body.serial, places))?.push(i);
  });
  for (const [place, indices] of parts) if (indices.length === 0) parts.delete(place);
  return parts;
}

/**
 * In the charge's transaction at home: each shard's part of the fresh tokens is written down and
 * its value sent from the holder's account to that shard's float. Answers the crossings to deliver.
 * @throws ApiProblem with the ledger's code (INSUFFICIENT_FUNDS, …): the whole charge rolls back
 */
export async function sendChargeParts(
  tx: TransactionHandle,
  services: IssuerServices,
  places: readonly Party[],
  charge: { device: string; account: string; nonce: Uint8Array; tokens: readonly Token[]; at: string },
): Promise<Array<{ id: string; to: Party }>> {
  const sent: Array<{ id: string; to: Party }> = [];
  for (const [place, indices] of byPlace(charge.tokens, places)) {
    const tokens = indices.map((i) => charge.tokens[i] as Token);
    const id = partId('charge', charge.device, charge.nonce, place);
    await tx.query(
      'INSERT INTO opera_charge_parts (crossing_id, to_party, device_key_id, serials, token_values, issued_at) VALUES ($1, $2, $3, $4, $5, $6)',
      [id, place, charge.device, tokens.map((t) => toHex(t.body.serial)).join(','), tokens.map((t) => t.body.value.toString()).join(','), charge.at],
    );
    const amount = tokens.reduce((sum, t) => sum + t.body.value, 0n);
    const moved = await sendAcross(tx, 'home', { id, to: place, debit: charge.account, credit: OPERA_FLOAT_ACCOUNT, amount, kind: CHARGE_CROSSING_KIND, reference: { receipt: true, device: charge.device, tokens: tokens.length } });
    if (!moved.ok) throw new ApiProblem(moved.code, moved.message);
    sent.push({ id, to: place });
  }
  return sent;
}

/**
 * Delivers a charge's parts (again: a retry of the charge lands here too) and answers once every
 * part is received on its shard.
 * @throws ApiProblem SHARD_UNAVAILABLE when a shard did not take its part: the charge stands, and the same request sent again answers it
 */
export async function deliverChargeParts(services: IssuerServices, places: readonly Party[], device: string, nonce: Uint8Array): Promise<void> {
  const ids = places.map((place) => partId('charge', device, nonce, place));
  const { rows } = await services.db.query<{ crossing_id: string; to_party: string }>('SELECT crossing_id, to_party FROM opera_charge_parts WHERE crossing_id = ANY($1::text[])', [ids]);
  const parts = rows.flatMap((r) => places.filter((p) => p === r.to_party).map((to) => ({ id: r.crossing_id, to })));
  const crossings = services.crossings;
  if (crossings === undefined) throw new ApiProblem('SHARD_UNAVAILABLE', 'the node has shard databases but no relay of credits between them', {});
  const received = await crossings.deliver('home', parts);
  const missing = parts.filter((p) => !received.has(p.id)).map((p) => p.to);
  if (missing.length > 0) {
    throw new ApiProblem('SHARD_UNAVAILABLE', `the charge is recorded, but its tokens are not on ${missing.join(', ')} yet: send the same request again to get its tokens`, { places: missing });
  }
  // Received means credited with its receipt, or sent back (the shard had no float:opera, which the
  // node opens at every start): the tokens must be there before an ODW may hold them.
  for (const part of parts) {
    const held = await services.shardLedgers?.db(part.to).query<{ n: string }>('SELECT count(*)::text AS n FROM opera_shard_tokens WHERE charge = $1', [part.id]);
    if (held === undefined || held.rows[0]?.n === '0') throw new Error(`charge part ${part.id} was received on ${part.to} without its tokens: see the node's log for a returned crossing`);
  }
}

interface ChargePartRow {
  to_party: string;
  device_key_id: string;
  serials: string;
  token_values: string;
  issued_at: Date;
}

/**
 * On a shard, in the transaction that credits its float with a charge's part: the part's tokens,
 * read from the home's record of it, become issued here. A part that does not add up to the
 * crossing's amount is not received (its transaction fails, and the crossing comes back).
 */
export const chargeReceipt: CrossingReceipt = async (tx, { self, from, entry, sender }) => {
  const { rows } = await sender.query<ChargePartRow>('SELECT to_party, device_key_id, serials, token_values, issued_at FROM opera_charge_parts WHERE crossing_id = $1', [entry.id]);
  const part = rows[0];
  if (from !== 'home' || part === undefined || part.to_party !== self) throw new Error(`crossing ${entry.id} from ${from} is no charge part for ${self}`);
  const serials = part.serials.split(',');
  const values = part.token_values.split(',').map((v) => BigInt(v));
  if (serials.length !== values.length || values.reduce((sum, v) => sum + v, 0n) !== entry.amount) throw new Error(`charge part ${entry.id} does not add up to its crossing's ${entry.amount}`);
  const inserted = await tx.query(
    `INSERT INTO opera_shard_tokens (serial, value, device_key_id, charge, issued_at)
     SELECT decode(s, 'hex'), v, $1, $2, $3 FROM unnest($4::text[], $5::bigint[]) AS x(s, v)`,
    [part.device_key_id, entry.id, part.issued_at.toISOString(), serials, values],
  );
  if (inserted.rowCount !== serials.length) throw new Error(`charge part ${entry.id}: ${inserted.rowCount} of ${serials.length} tokens recorded`);
};

/**
 * Why OPERA's records at home cannot follow the ledger to shard databases: tokens issued at home
 * and not yet deposited would be looked for on their serial's shard, which never recorded them.
 * Moving them is not built, so the first start on shard databases waits until none is left.
 */
export async function homeTokensOutstanding(home: Queryable): Promise<string | undefined> {
  const { rows } = await home.query<{ n: string }>("SELECT count(*)::text AS n FROM opera_tokens WHERE state = 'issued'");
  const [row] = rows;
  if (row === undefined || row.n === '0') return undefined;
  return `${row.n} OPERA token(s) issued in the home database are not deposited yet (moving them to their shards is not built): start the node on shard databases before its first charge, or once they are deposited`;
}
