/**
 * The node's tree of every serial (§3.4.4): the paths an event's blocks take from the central
 * bank's presentation, checked and inserted record by record; which records are live; and what each
 * node may still credit online.
 */
import { assert } from '../../core/assert.ts';
import { equalBytes, fromHex, toHex } from '../../core/bytes.ts';
import { encodeCbor } from '../../core/cbor.ts';
import { verifyRecordWithMemo } from '../../core/crypto/signature-memo.ts';
import { isTallyError } from '../../core/errors.ts';
import { base64Param, bigintColumn, type TransactionHandle } from '../../issuer/plugin.ts';
import { decodeThrough, type CertificateCache } from '../../pki/certificate-cache.ts';
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

export function pathOf(verified: VerifiedBlock, certificates?: CertificateCache): Path {
  const subjectOf = (encoded: Uint8Array) => toHex(keyId(decodeThrough(certificates, encoded).body.subject));
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
      paths.push(pathOf(ctx.verify(part.current === undefined ? part.block : appendRecord(part.block, part.current)), ctx.certificates));
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
    const payeeKey = decodeThrough(ctx.certificates, first.record.ucertR).body.subject;
    if (!verifyRecordWithMemo(ctx.provider, ctx.verifiedSignatures, payeeKey, NOTIFICATION_TAG, notificationSigned(n), n.signature)) return { code: 'SIGNATURE_INVALID', message: 'the notification does not verify under upk_R' };
  }
  return { paths };
}

/** The blocks this node issued among some serials, locked: each serial's presentation digest, by serial (hex). */
export type LockedBlocks = ReadonlyMap<string, Uint8Array>;

/**
 * Locks the rows of these serials in one statement, in serial order for every caller, so that
 * settlements of one serial queue; answers the presentation digest of each one this node issued.
 */
export async function lockSerials(tx: TransactionHandle, serials: readonly Uint8Array[]): Promise<LockedBlocks> {
  const unique = [...new Set(serials.map((s) => toHex(s)))];
  if (unique.length === 0) return new Map();
  const { rows } = await tx.query<{ serial: Uint8Array; digest: Uint8Array }>(
    `SELECT serial, digest FROM dotm_blocks WHERE serial IN (SELECT decode(s, 'hex') FROM unnest($1::text[]) AS s) ORDER BY serial FOR UPDATE`,
    [unique],
  );
  return new Map(rows.map((row) => [toHex(new Uint8Array(row.serial)), new Uint8Array(row.digest)]));
}

/** True when the node issued this serial with exactly this presentation (its row locked by lockSerials). */
export function issuedHere(locked: LockedBlocks, path: Path): boolean {
  const digest = locked.get(toHex(path.serial));
  return digest !== undefined && equalBytes(digest, path.root);
}

/**
 * Adds the path's records to the tree in one statement, with, for a transaction's event, its
 * current record under the transaction's tsn (dotm_currents); answers the nodes that got a new
 * child, in the path's order.
 */
export async function insertPath(tx: TransactionHandle, path: Path, currentOf?: { tsn: Uint8Array }): Promise<Uint8Array[]> {
  return (await insertPaths(tx, [path], currentOf)).at(0) ?? [];
}

/** The columns of dotm_nodes for records, as the arrays `INSERT ... SELECT ... FROM unnest(...)` takes: digest, serial, prev, holder, payer, amount, time, record. */
export function nodeColumns(records: readonly { serial: Uint8Array; r: PathRecord }[]): [string[], string[], string[], string[], string[], bigint[], bigint[], string[]] {
  return [
    records.map(({ r }) => base64Param(r.digest)),
    records.map(({ serial }) => base64Param(serial)),
    records.map(({ r }) => base64Param(r.prev)),
    records.map(({ r }) => r.payee),
    records.map(({ r }) => r.payer),
    records.map(({ r }) => r.record.amount),
    records.map(({ r }) => BigInt(r.record.timestamp)),
    records.map(({ r }) => base64Param(encodeCbor(recordWire(r.record)))),
  ];
}

/**
 * insertPath for several paths in one statement, answering for each path what insertPath would
 * have, called on the paths one after another: a record two paths share counts as new for the
 * first of them only. With `currentOf`, each path's last record is filed under that tsn.
 */
export async function insertPaths(tx: TransactionHandle, paths: readonly Path[], currentOf?: { tsn: Uint8Array }): Promise<Uint8Array[][]> {
  const records = paths.flatMap((path) => path.records.map((r) => ({ serial: path.serial, r })));
  if (records.length === 0) return paths.map(() => []);
  const lasts = currentOf === undefined ? [] : paths.flatMap((path) => path.records.slice(-1).map((r) => r.digest));
  const { rows } = await tx.query<{ digest: Uint8Array }>(
    `WITH inserted AS (
       INSERT INTO dotm_nodes (digest, serial, prev, holder_key_id, payer_key_id, amount, recorded_at, record)
       SELECT decode(d, 'base64'), decode(z, 'base64'), decode(p, 'base64'), h, y, a, t, decode(r, 'base64')
       FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[], $8::text[]) AS x(d, z, p, h, y, a, t, r)
       ON CONFLICT (digest) DO NOTHING RETURNING digest
     ), current AS (
       INSERT INTO dotm_currents (digest, tsn) SELECT decode(d, 'base64'), decode($10, 'base64') FROM unnest($9::text[]) AS x(d) ON CONFLICT DO NOTHING
     )
     SELECT digest FROM inserted`,
    [
      ...nodeColumns(records),
      lasts.map((d) => base64Param(d)),
      currentOf === undefined ? null : base64Param(currentOf.tsn),
    ],
  );
  const inserted = new Set(rows.map((row) => toHex(new Uint8Array(row.digest))));
  // A record inserted by this statement is new to the first path that carries it; within a path
  // each record has its own prev, so a path's new children hang from its new records' prevs.
  return paths.map((path) =>
    path.records.filter((r) => inserted.delete(toHex(r.digest))).map((r) => r.prev),
  );
}

/** SQL: whether the record under `alias` is live (see the file's comment); a record no event named as current is. */
export function liveOf(alias: string): string {
  return `(NOT EXISTS (SELECT 1 FROM dotm_currents k WHERE k.digest = ${alias}.digest)
  OR EXISTS (SELECT 1 FROM dotm_currents k JOIN dotm_transactions t ON t.tsn = k.tsn
             WHERE k.digest = ${alias}.digest AND t.rolled_back_seq IS NULL AND (t.sent_seq IS NOT NULL OR t.abandoned_seq IS NULL)))`;
}

/** SQL: whether the record `n` is live. */
export const LIVE = liveOf('n');

interface NodeRow {
  digest: Uint8Array;
  serial: Uint8Array;
  holder_key_id: string;
  amount: bigint;
  live: boolean;
  redeemed: bigint;
  credited_below: bigint;
  /** The live children as `hexdigest:amount`, comma-joined in digest order; null when there are none. */
  children: string | null;
}

/** A tree node with what the invariant needs. */
export interface NodeView {
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

/** Several tree nodes, each with its live children, in one statement; by digest (hex). */
export async function viewNodes(tx: TransactionHandle, digests: readonly Uint8Array[]): Promise<Map<string, NodeView>> {
  const unique = [...new Set(digests.map((d) => toHex(d)))];
  const views = new Map<string, NodeView>();
  if (unique.length === 0) return views;
  const { rows } = await tx.query<NodeRow>(
    `SELECT n.digest, n.serial, n.holder_key_id, n.amount, ${LIVE} AS live, n.redeemed, n.credited_below,
            (SELECT string_agg(encode(c.digest, 'hex') || ':' || c.amount, ',' ORDER BY c.digest) FROM dotm_nodes c WHERE c.prev = n.digest AND ${liveOf('c')}) AS children
     FROM dotm_nodes n WHERE n.digest IN (SELECT decode(d, 'hex') FROM unnest($1::text[]) AS d)`,
    [unique],
  );
  for (const row of rows) {
    const counted = (row.children ?? '')
      .split(',')
      .filter((c) => c !== '')
      .map((c) => {
        const [digest, amount] = c.split(':') as [string, string];
        return { digest: fromHex(digest), amount: BigInt(amount) };
      });
    const redeemed = bigintColumn(row, 'redeemed');
    views.set(toHex(new Uint8Array(row.digest)), {
      serial: new Uint8Array(row.serial),
      holder: row.holder_key_id,
      live: row.live,
      received: row.live ? bigintColumn(row, 'amount') : 0n,
      redeemed,
      creditedBelow: bigintColumn(row, 'credited_below'),
      counted,
      spent: counted.reduce((sum, c) => sum + c.amount, redeemed),
    });
  }
  for (const digest of unique) assert(views.has(digest), `tree node ${digest} is missing`);
  return views;
}

export async function viewNode(tx: TransactionHandle, digest: Uint8Array): Promise<NodeView> {
  return (await viewNodes(tx, [digest])).get(toHex(digest)) as NodeView;
}

/**
 * True when crediting `amount` at the end of `nodes` keeps, at each of them, the value credited at
 * or below it within what its holder received. `views` holds the nodes (viewNodes), `pending` this
 * event's credits not yet written.
 */
export function creditable(views: ReadonlyMap<string, NodeView>, nodes: readonly Uint8Array[], amount: bigint, pending: ReadonlyMap<string, bigint>): boolean {
  return nodes.every((digest) => {
    const node = views.get(toHex(digest));
    assert(node !== undefined, `tree node ${toHex(digest)} was read`);
    return node.creditedBelow + (pending.get(toHex(digest)) ?? 0n) + amount <= node.received;
  });
}

export function addPending(pending: Map<string, bigint>, nodes: readonly Uint8Array[], amount: bigint): void {
  for (const digest of nodes) pending.set(toHex(digest), (pending.get(toHex(digest)) ?? 0n) + amount);
}

/** Adds each pending credit to its node's credited_below, in one statement. */
export async function writeCredits(tx: TransactionHandle, pending: ReadonlyMap<string, bigint>): Promise<void> {
  await addToNodes(tx, 'credited_below', [...pending].map(([digest, amount]) => ({ digest: fromHex(digest), amount })));
}

/** Records value given up at nodes (a redemption at its tip, a refunded deduction), in one statement; a node named twice gets both. */
export async function giveUp(tx: TransactionHandle, entries: readonly { digest: Uint8Array; amount: bigint }[]): Promise<void> {
  await addToNodes(tx, 'redeemed', entries);
}

async function addToNodes(tx: TransactionHandle, column: 'redeemed' | 'credited_below', entries: readonly { digest: Uint8Array; amount: bigint }[]): Promise<void> {
  const sums = new Map<string, bigint>();
  for (const { digest, amount } of entries) sums.set(toHex(digest), (sums.get(toHex(digest)) ?? 0n) + amount);
  if (sums.size === 0) return;
  // One row of x a node (the sums above): an UPDATE ... FROM would apply only one of two.
  await tx.query(`UPDATE dotm_nodes n SET ${column} = n.${column} + x.a FROM unnest($1::text[], $2::bigint[]) AS x(d, a) WHERE n.digest = decode(x.d, 'hex')`, [
    [...sums.keys()],
    [...sums.values()],
  ]);
}
