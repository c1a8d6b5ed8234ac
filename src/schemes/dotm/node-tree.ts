/**
 * The node's tree of every serial (§3.4.4): the paths an event's blocks take from the central
 * bank's presentation, checked and inserted record by record; which records are live; and what each
 * node may still credit online.
 */
import { assert } from '../../core/assert.ts';
import { equalBytes, fromHex, toHex } from '../../core/bytes.ts';
import { encodeCbor } from '../../core/cbor.ts';
import { verifyRecord } from '../../core/crypto/record.ts';
import { isTallyError } from '../../core/errors.ts';
import { bigintColumn, type TransactionHandle } from '../../issuer/plugin.ts';
import { decodeCertificate } from '../../pki/certificate.ts';
import { keyId } from '../../pki/key-id.ts';
import { appendRecord, type VerifiedBlock } from './block.ts';
import { NOTIFICATION_TAG, notificationSigned, presentationDigest, recordDigest, recordWire, type TransactionRecord } from './messages.ts';
import { partsDigest, type EventBody } from './online.ts';
import type { DotmWallet, SettlementContext } from './node-settlement-model.ts';

/** One record of a verified path, with its payer and payee. */
interface PathRecord {
  readonly digest: Uint8Array;
  readonly prev: Uint8Array;
  readonly payer: string;
  readonly payee: string;
  readonly record: TransactionRecord;
}

/** A verified block path: the presentation's digest, then each record in order. */
export interface Path {
  readonly serial: Uint8Array;
  readonly root: Uint8Array;
  readonly records: readonly PathRecord[];
  /** The last node: the last record's digest, or the root. */
  readonly tip: Uint8Array;
  readonly holder: string;
  /** Key id (hex) of the intermediary that issued the serial; undefined for the central bank's key (pk_C). */
  readonly issuer: string | undefined;
}

type Refused = { readonly code: string; readonly message: string };

function subjectOf(certificate: Uint8Array): string {
  return toHex(keyId(decodeCertificate(certificate).body.subject));
}

export function pathOf(verified: VerifiedBlock): Path {
  const { presentation } = verified.block;
  const root = presentationDigest(presentation);
  let prev = root;
  const records = verified.block.records.map((record): PathRecord => {
    const digest = recordDigest(record);
    const node = { digest, prev, payer: subjectOf(record.ucertP), payee: subjectOf(record.ucertR), record };
    prev = digest;
    return node;
  });
  return { serial: presentation.serial, root, records, tip: verified.tip, holder: toHex(verified.holder), issuer: presentation.issuer === undefined ? undefined : toHex(presentation.issuer) };
}

/** The digests from the root to the tip. */
export function nodesOf(path: Path): Uint8Array[] {
  return [path.root, ...path.records.map((r) => r.digest)];
}

export function currentOf(path: Path): PathRecord {
  const last = path.records[path.records.length - 1];
  assert(last !== undefined, 'a transaction part has its current record');
  return last;
}

/**
 * The checks that need no database: the parts add up to the amount, every path verifies from C's
 * signature to its tip, the wallet's user is the right party, and R's notification verifies.
 */
export function checkEvent(ctx: SettlementContext, wallet: DotmWallet, body: EventBody): { paths: Path[] } | Refused {
  const redeem = body.kind === 'redeemed';
  let total = 0n;
  for (const [k, part] of body.parts.entries()) {
    if (redeem !== (part.current === undefined)) return { code: 'EVENT_INVALID', message: `part ${k}: ${redeem ? 'a redemption has no current record' : 'a transaction part needs its current record'}` };
    const amount = part.current === undefined ? part.block.remaining : part.current.amount;
    if (amount <= 0n) return { code: 'EVENT_INVALID', message: `part ${k} moves nothing` };
    total += amount;
  }
  if (total !== body.amount) return { code: 'EVENT_INVALID', message: 'the parts do not add up to the amount the event names' };
  if (redeem && !equalBytes(body.transaction, partsDigest(body.parts))) return { code: 'EVENT_INVALID', message: 'the redemption does not name its parts' };

  const paths: Path[] = [];
  for (const [k, part] of body.parts.entries()) {
    try {
      paths.push(pathOf(ctx.verify(part.current === undefined ? part.block : appendRecord(part.block, part.current))));
    } catch (e) {
      if (isTallyError(e)) return { code: e.code, message: `part ${k}: ${e.message}` };
      throw e;
    }
  }

  const me = wallet.userKeyId;
  if (redeem) {
    const other = paths.find((p) => p.holder !== me);
    return other === undefined ? { paths } : { code: 'EVENT_INVALID', message: `a redeemed copy is held by ${other.holder}, not by this wallet's user` };
  }
  const currents = paths.map(currentOf);
  const payer = currents[0]?.payer;
  if (currents.some((c) => c.payer !== payer)) return { code: 'EVENT_INVALID', message: 'the current records have different payers' };
  const side = body.kind === 'sent' || body.kind === 'abandoned' ? 'payer' : 'payee';
  if (currents.some((c) => c[side] !== me)) return { code: 'EVENT_INVALID', message: `this wallet's user is not the ${side} of every current record` };
  if (body.kind === 'sent' || body.kind === 'received') {
    const n = body.notification;
    const first = currents[0];
    if (n === undefined || first === undefined) return { code: 'EVENT_INVALID', message: `a ${body.kind} event carries R's notification` };
    if (!equalBytes(n.tsn, body.tsn) || !equalBytes(n.transaction, body.transaction)) return { code: 'EVENT_INVALID', message: 'the notification names another transaction' };
    const payeeKey = decodeCertificate(first.record.ucertR).body.subject;
    if (!verifyRecord(ctx.provider, payeeKey, NOTIFICATION_TAG, notificationSigned(n), n.signature)) return { code: 'SIGNATURE_INVALID', message: 'the notification does not verify under upk_R' };
  }
  return { paths };
}

/** Locks the rows of these serials, in one order for every caller, so settlements of one serial queue. */
export async function lockSerials(tx: TransactionHandle, serials: readonly Uint8Array[]): Promise<void> {
  const unique = new Map(serials.map((s) => [toHex(s), s]));
  for (const key of [...unique.keys()].sort()) await tx.query('SELECT 1 FROM dotm_blocks WHERE serial = $1 FOR UPDATE', [unique.get(key) as Uint8Array]);
}

/** True when the node issued this serial with exactly this presentation. */
export async function issuedHere(tx: TransactionHandle, path: Path): Promise<boolean> {
  const { rows } = await tx.query<{ digest: Uint8Array }>('SELECT digest FROM dotm_blocks WHERE serial = $1', [path.serial]);
  return rows[0] !== undefined && equalBytes(new Uint8Array(rows[0].digest), path.root);
}

/** Adds the path's records to the tree; answers the nodes that got a new child. */
export async function insertPath(tx: TransactionHandle, path: Path): Promise<Uint8Array[]> {
  const parents: Uint8Array[] = [];
  for (const r of path.records) {
    const inserted = await tx.query(
      `INSERT INTO dotm_nodes (digest, serial, prev, holder_key_id, payer_key_id, amount, recorded_at, record)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (digest) DO NOTHING`,
      [r.digest, path.serial, r.prev, r.payee, r.payer, r.record.amount, BigInt(r.record.timestamp), encodeCbor(recordWire(r.record))],
    );
    if (inserted.rowCount === 1) parents.push(r.prev);
  }
  return parents;
}

interface NodeRow {
  serial: Uint8Array;
  holder_key_id: string;
  amount: bigint;
  live: boolean;
  redeemed: bigint;
  credited_below: bigint;
}

/** SQL: whether the record `n` is live (see the file's comment); a record no event named as current is. */
export const LIVE = `(NOT EXISTS (SELECT 1 FROM dotm_currents k WHERE k.digest = n.digest)
  OR EXISTS (SELECT 1 FROM dotm_currents k JOIN dotm_transactions t ON t.tsn = k.tsn
             WHERE k.digest = n.digest AND t.rolled_back_seq IS NULL AND (t.sent_seq IS NOT NULL OR t.abandoned_seq IS NULL)))`;

/** A tree node with what the invariant needs. */
interface NodeView {
  readonly serial: Uint8Array;
  readonly holder: string;
  readonly live: boolean;
  /** What its holder received: 0 for a record that is not live. */
  readonly received: bigint;
  readonly redeemed: bigint;
  readonly creditedBelow: bigint;
  /** Its live children. */
  readonly counted: readonly { digest: Uint8Array; amount: bigint }[];
  readonly spent: bigint;
}

export async function viewNode(tx: TransactionHandle, digest: Uint8Array): Promise<NodeView> {
  const { rows } = await tx.query<NodeRow>(`SELECT serial, holder_key_id, amount, ${LIVE} AS live, redeemed, credited_below FROM dotm_nodes n WHERE digest = $1`, [digest]);
  const row = rows[0];
  assert(row !== undefined, `tree node ${toHex(digest)} is missing`);
  const children = await tx.query<{ digest: Uint8Array; amount: bigint }>(`SELECT digest, amount FROM dotm_nodes n WHERE prev = $1 AND ${LIVE} ORDER BY digest`, [digest]);
  const counted = children.rows.map((c) => ({ digest: new Uint8Array(c.digest), amount: bigintColumn(c, 'amount') }));
  const redeemed = bigintColumn(row, 'redeemed');
  return {
    serial: new Uint8Array(row.serial),
    holder: row.holder_key_id,
    live: row.live,
    received: row.live ? bigintColumn(row, 'amount') : 0n,
    redeemed,
    creditedBelow: bigintColumn(row, 'credited_below'),
    counted,
    spent: counted.reduce((sum, c) => sum + c.amount, redeemed),
  };
}

/**
 * True when crediting `amount` at the end of `nodes` keeps, at each of them, the value credited at
 * or below it within what its holder received. `pending` holds this event's credits not yet written.
 */
export async function creditable(tx: TransactionHandle, nodes: readonly Uint8Array[], amount: bigint, pending: ReadonlyMap<string, bigint>): Promise<boolean> {
  for (const digest of nodes) {
    const node = await viewNode(tx, digest);
    if (node.creditedBelow + (pending.get(toHex(digest)) ?? 0n) + amount > node.received) return false;
  }
  return true;
}

export function addPending(pending: Map<string, bigint>, nodes: readonly Uint8Array[], amount: bigint): void {
  for (const digest of nodes) pending.set(toHex(digest), (pending.get(toHex(digest)) ?? 0n) + amount);
}

export async function writeCredits(tx: TransactionHandle, pending: ReadonlyMap<string, bigint>): Promise<void> {
  for (const [digest, amount] of pending) {
    await tx.query('UPDATE dotm_nodes SET credited_below = credited_below + $2 WHERE digest = $1', [fromHex(digest), amount]);
  }
}
