/**
 * Settlement of DOT-M on the node: online data updating (§3.3.4), the exception handling that
 * needs the node (§3.3.5, situations 3 and 5), and double-spending detection (§3.4.4).
 *
 * The node keeps the tree of every serial: the presentation at its root and every record any
 * wallet uploaded, each linked to its `prev`. A node x's holder is the original owner (root) or
 * the record's payee, and what it received is the block's value or the record's amount. Its
 * children are the records whose `prev` is x, all signed by its holder. Then
 *   spent(x) = Σ amounts of its live children + Σ value given up at x  ≤  received(x).
 * A record is live unless every transaction that carried it was rolled back by its payee (step 9
 * without the success message) or withdrawn by its payer without a notification (`abandoned`, and
 * not also `sent`). A record that is not live moved nothing: its payer still holds the value, and
 * its payee received 0, so anything its payee spends from it is over-spending by that payee. When
 * the payer deducted (`sent`) and the payee rolled back (exceptional situations 3 and 5), the
 * payer's deduction is given up at its node like a redemption, and C refunds it online.
 * Where the inequality breaks, the node's holder signed more than it had: the finding names it,
 * and both its certificates (ucert, wcert) are revoked.
 *
 * Money leaves `float:dotm` only through redemptions and refunds, and each credit must fit, at
 * every node of its path, within what that node's holder received minus what was already
 * credited at or below it: whatever wallets upload, a serial never pays out more than its value.
 * Runs inside the caller's transaction, with the wallet's row and every touched serial locked.
 */
import { assert } from '../../core/assert.ts';
import { equalBytes, fromHex, toHex } from '../../core/bytes.ts';
import { encodeCbor } from '../../core/cbor.ts';
import { sha256 } from '../../core/crypto/hash.ts';
import { verifyRecord } from '../../core/crypto/record.ts';
import { SUITE_NAMES, type CryptoProvider, type PublicKey, type Signer } from '../../core/crypto/suite.ts';
import { isTallyError } from '../../core/errors.ts';
import { bigintColumn, revokeCertificate, transfer, type ExposedHolder, type Queryable, type SchemeHoldings, type TransactionHandle } from '../../issuer/plugin.ts';
import { decodeCertificate } from '../../pki/certificate.ts';
import { keyId } from '../../pki/key-id.ts';
import { appendRecord, type VerifiedBlock } from './block.ts';
import { NOTIFICATION_TAG, notificationSigned, presentationDigest, recordDigest, recordWire, type CurrencyBlock, type TransactionRecord } from './messages.ts';
import { partsDigest, walletEventWire, type EventBody, type EventKind, type WalletEvent } from './online.ts';

/** The ledger account holding the value outstanding in currency blocks. */
export const DOTM_FLOAT_ACCOUNT = 'float:dotm';

/** A registered DOT-M wallet as the node keeps it. */
export interface DotmWallet {
  readonly walletKeyId: string;
  readonly userKeyId: string;
  readonly accountId: string;
  readonly walletKey: PublicKey;
  readonly lastSeq: number;
  readonly revoked: boolean;
}

/** What settlement needs from the node. */
export interface SettlementContext {
  readonly provider: CryptoProvider;
  /** verifyBlock with the node's root key as pk_C, its root and intermediary, its time, no revocations. */
  readonly verify: (block: CurrencyBlock) => VerifiedBlock;
  /** The intermediary's key, which signs revocation lists. */
  readonly intermediary: Signer;
  readonly now: number;
}

/** What the node did with one uploaded event. */
export interface EventResult {
  readonly seq: number;
  readonly status: 'taken' | 'duplicate' | 'refused';
  readonly code?: string | undefined;
  readonly message?: string | undefined;
  /** For a redemption: what was credited to the wallet's account. */
  readonly credited?: bigint | undefined;
  /** For a transaction the payer reported sent and the payee rolled back: whether the payer was refunded now. */
  readonly refund?: 'credited' | 'withheld' | undefined;
}

/** The kinds of fraud settlement proves. */
export type FindingKind = 'overspent' | 'contradiction' | 'clone';

/** A finding: who broke the rules, where, and the evidence. */
export interface DotmFinding {
  readonly kind: FindingKind;
  /** Hex: the over-spent node's digest, the tsn reported both ways, or the conflicting event's digest. */
  readonly subject: string;
  readonly serial: string | null;
  /** Key id of the culprit's user key. */
  readonly culprit: string;
  /** The culprit's wallet key id, when it is registered here. */
  readonly wallet: string | null;
  readonly received: bigint | null;
  readonly spent: bigint | null;
  /** Digests of the records involved (the children of an over-spent node). */
  readonly records: readonly string[];
  readonly reason: string;
}

/** What a batch of events did, or the gap that stopped it before anything changed. */
export type SettleOutcome =
  | { readonly ok: true; readonly lastSeq: number; readonly results: readonly EventResult[]; readonly findings: readonly DotmFinding[] }
  | { readonly ok: false; readonly code: 'SEQUENCE_GAP'; readonly message: string };

interface WalletRow {
  wallet_key_id: string;
  user_key_id: string;
  account_id: string;
  wallet_suite: string;
  wallet_public_key: Uint8Array;
  last_seq: bigint;
  revoked: boolean;
}

/** The wallet's row, locked when `lock` (inside a transaction); null when not registered. */
export async function readWallet(q: Queryable, walletKeyId: string, options: { lock?: boolean } = {}): Promise<DotmWallet | null> {
  const { rows } = await q.query<WalletRow>(
    `SELECT wallet_key_id, user_key_id, account_id, wallet_suite, wallet_public_key, last_seq, revoked
     FROM dotm_wallets WHERE wallet_key_id = $1${options.lock === true ? ' FOR UPDATE' : ''}`,
    [walletKeyId],
  );
  const row = rows[0];
  if (row === undefined) return null;
  const suite = SUITE_NAMES.find((s) => s === row.wallet_suite);
  assert(suite !== undefined, `wallet ${walletKeyId}: unknown suite ${row.wallet_suite}`);
  const lastSeq = Number(bigintColumn(row, 'last_seq'));
  assert(Number.isSafeInteger(lastSeq), `wallet ${walletKeyId}: last_seq out of range`);
  return {
    walletKeyId: row.wallet_key_id,
    userKeyId: row.user_key_id,
    accountId: row.account_id,
    walletKey: { suite, key: new Uint8Array(row.wallet_public_key) },
    lastSeq,
    revoked: row.revoked,
  };
}

/** SHA-256 of an event's encoding, signature included: two events under one seq differ here. */
export function eventDigest(event: WalletEvent): Uint8Array {
  return sha256(encodeCbor(walletEventWire(event)));
}

/** One record of a verified path, with its payer and payee. */
interface PathRecord {
  readonly digest: Uint8Array;
  readonly prev: Uint8Array;
  readonly payer: string;
  readonly payee: string;
  readonly record: TransactionRecord;
}

/** A verified block path: the presentation's digest, then each record in order. */
interface Path {
  readonly serial: Uint8Array;
  readonly root: Uint8Array;
  readonly records: readonly PathRecord[];
  /** The last node: the last record's digest, or the root. */
  readonly tip: Uint8Array;
  readonly holder: string;
}

type Refused = { readonly code: string; readonly message: string };

function subjectOf(certificate: Uint8Array): string {
  return toHex(keyId(decodeCertificate(certificate).body.subject));
}

function pathOf(verified: VerifiedBlock): Path {
  const { presentation } = verified.block;
  const root = presentationDigest(presentation);
  let prev = root;
  const records = verified.block.records.map((record): PathRecord => {
    const digest = recordDigest(record);
    const node = { digest, prev, payer: subjectOf(record.ucertP), payee: subjectOf(record.ucertR), record };
    prev = digest;
    return node;
  });
  return { serial: presentation.serial, root, records, tip: verified.tip, holder: toHex(verified.holder) };
}

/** The digests from the root to the tip. */
function nodesOf(path: Path): Uint8Array[] {
  return [path.root, ...path.records.map((r) => r.digest)];
}

function currentOf(path: Path): PathRecord {
  const last = path.records[path.records.length - 1];
  assert(last !== undefined, 'a transaction part has its current record');
  return last;
}

/**
 * The checks that need no database: the parts add up to the amount, every path verifies from C's
 * signature to its tip, the wallet's user is the right party, and R's notification verifies.
 */
function checkEvent(ctx: SettlementContext, wallet: DotmWallet, body: EventBody): { paths: Path[] } | Refused {
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
async function issuedHere(tx: TransactionHandle, path: Path): Promise<boolean> {
  const { rows } = await tx.query<{ digest: Uint8Array }>('SELECT digest FROM dotm_blocks WHERE serial = $1', [path.serial]);
  return rows[0] !== undefined && equalBytes(new Uint8Array(rows[0].digest), path.root);
}

/** Adds the path's records to the tree; answers the nodes that got a new child. */
async function insertPath(tx: TransactionHandle, path: Path): Promise<Uint8Array[]> {
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
const LIVE = `(NOT EXISTS (SELECT 1 FROM dotm_currents k WHERE k.digest = n.digest)
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

async function viewNode(tx: TransactionHandle, digest: Uint8Array): Promise<NodeView> {
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
async function creditable(tx: TransactionHandle, nodes: readonly Uint8Array[], amount: bigint, pending: ReadonlyMap<string, bigint>): Promise<boolean> {
  for (const digest of nodes) {
    const node = await viewNode(tx, digest);
    if (node.creditedBelow + (pending.get(toHex(digest)) ?? 0n) + amount > node.received) return false;
  }
  return true;
}

function addPending(pending: Map<string, bigint>, nodes: readonly Uint8Array[], amount: bigint): void {
  for (const digest of nodes) pending.set(toHex(digest), (pending.get(toHex(digest)) ?? 0n) + amount);
}

async function writeCredits(tx: TransactionHandle, pending: ReadonlyMap<string, bigint>): Promise<void> {
  for (const [digest, amount] of pending) {
    await tx.query('UPDATE dotm_nodes SET credited_below = credited_below + $2 WHERE digest = $1', [fromHex(digest), amount]);
  }
}

/** Revokes ucert and wcert of the wallet of `userKeyId` (if registered here); answers its key id. */
async function revokeUser(tx: TransactionHandle, ctx: SettlementContext, userKeyId: string, reason: string): Promise<string | null> {
  const { rows } = await tx.query<{ wallet_key_id: string; ucert_serial: Uint8Array; wcert_serial: Uint8Array }>(
    'SELECT wallet_key_id, ucert_serial, wcert_serial FROM dotm_wallets WHERE user_key_id = $1',
    [userKeyId],
  );
  const row = rows[0];
  if (row === undefined) return null;
  await revokeCertificate(tx, ctx.intermediary, { serial: new Uint8Array(row.ucert_serial), subjectKeyId: userKeyId, role: 'user', reason }, ctx.now);
  await revokeCertificate(tx, ctx.intermediary, { serial: new Uint8Array(row.wcert_serial), subjectKeyId: row.wallet_key_id, role: 'device', reason }, ctx.now);
  await tx.query('UPDATE dotm_wallets SET revoked = true WHERE wallet_key_id = $1', [row.wallet_key_id]);
  return row.wallet_key_id;
}

/** Records a finding once and revokes its culprit; answers it, or null when it was already known. */
async function openFinding(tx: TransactionHandle, ctx: SettlementContext, finding: Omit<DotmFinding, 'wallet'>): Promise<DotmFinding | null> {
  const evidence = {
    received: finding.received?.toString() ?? null,
    spent: finding.spent?.toString() ?? null,
    records: [...finding.records],
    reason: finding.reason,
  };
  const opened = await tx.query(
    `INSERT INTO dotm_findings (kind, subject, serial, culprit_key_id, evidence) VALUES ($1, $2, $3, $4, $5::text::jsonb)
     ON CONFLICT DO NOTHING RETURNING id`,
    [finding.kind, fromHex(finding.subject), finding.serial === null ? null : fromHex(finding.serial), finding.culprit, JSON.stringify(evidence)],
  );
  if (opened.rowCount === 0) return null;
  const wallet = await revokeUser(tx, ctx, finding.culprit, `dotm fraud: ${finding.kind}`);
  if (wallet !== null) await tx.query('UPDATE dotm_findings SET culprit_wallet = $2 WHERE id = $1', [(opened.rows[0] as { id: bigint }).id, wallet]);
  return { ...finding, wallet };
}

/** §3.4.4: checks spent(x) ≤ received(x) at one node; a break names x's holder. */
async function checkNode(tx: TransactionHandle, ctx: SettlementContext, digest: Uint8Array): Promise<DotmFinding | null> {
  const node = await viewNode(tx, digest);
  if (node.spent <= node.received) return null;
  const how = node.live
    ? 'it signed payments and redemptions worth more than it received'
    : 'it spent or redeemed value from a payment it rolled back, or that its payer withdrew before any success message';
  return openFinding(tx, ctx, {
    kind: 'overspent',
    subject: toHex(digest),
    serial: toHex(node.serial),
    culprit: node.holder,
    received: node.received,
    spent: node.spent,
    records: node.counted.map((c) => toHex(c.digest)),
    reason: `the holder of this node double spent: ${how}`,
  });
}

interface TransactionRow {
  transaction: Uint8Array;
  amount: bigint;
  payer_wallet: string | null;
  sent_seq: bigint | null;
  abandoned_seq: bigint | null;
  received_seq: bigint | null;
  rolled_back_seq: bigint | null;
  refund: string | null;
}

/** Which column of dotm_transactions each event kind fills, and which side reports it. */
const REPORTS = {
  sent: { seq: 'sent_seq', side: 'payer_wallet' },
  abandoned: { seq: 'abandoned_seq', side: 'payer_wallet' },
  received: { seq: 'received_seq', side: 'payee_wallet' },
  'rolled-back': { seq: 'rolled_back_seq', side: 'payee_wallet' },
} as const satisfies Record<Exclude<EventKind, 'redeemed'>, { seq: string; side: string }>;

/** Records one side's report of a transaction; null when the other side named another σ under this tsn. */
async function reportTransaction(tx: TransactionHandle, wallet: DotmWallet, body: EventBody & { kind: keyof typeof REPORTS }): Promise<TransactionRow | null> {
  await tx.query('INSERT INTO dotm_transactions (tsn, transaction, amount) VALUES ($1, $2, $3) ON CONFLICT (tsn) DO NOTHING', [body.tsn, body.transaction, body.amount]);
  const read = async () =>
    (await tx.query<TransactionRow>(
      'SELECT transaction, amount, payer_wallet, sent_seq, abandoned_seq, received_seq, rolled_back_seq, refund FROM dotm_transactions WHERE tsn = $1 FOR UPDATE',
      [body.tsn],
    )).rows[0];
  const row = await read();
  assert(row !== undefined, 'the transaction row was just written');
  if (!equalBytes(new Uint8Array(row.transaction), body.transaction) || bigintColumn(row, 'amount') !== body.amount) return null;
  const { seq, side } = REPORTS[body.kind];
  await tx.query(`UPDATE dotm_transactions SET ${seq} = coalesce(${seq}, $2), ${side} = coalesce(${side}, $3) WHERE tsn = $1`, [body.tsn, BigInt(body.seq), wallet.walletKeyId]);
  const updated = await read();
  assert(updated !== undefined, 'the transaction row is still there');
  return updated;
}

/**
 * Exceptional situations 3 and 5 (§3.3.5): the payer deducted (sent) and the payee rolled back, so
 * "C could construct the same amount of digital currency and give them back to P". The payer's
 * deduction is given up at the node each current record hangs from, and credited to the payer's
 * account once per tsn when those nodes hold it. Answers what was decided now, or undefined when
 * it is not yet time.
 */
async function settleRefund(tx: TransactionHandle, body: EventBody, row: TransactionRow, paths: readonly Path[]): Promise<'credited' | 'withheld' | undefined> {
  if (row.sent_seq === null || row.rolled_back_seq === null || row.refund !== null) return undefined;
  for (const path of paths) {
    const current = currentOf(path);
    await tx.query('UPDATE dotm_nodes SET redeemed = redeemed + $2 WHERE digest = $1', [current.prev, current.record.amount]);
  }
  // A payer that also reported the offer withdrawn has a broken wallet: no refund on its word.
  let decision: 'credited' | 'withheld' = row.abandoned_seq === null && row.payer_wallet !== null ? 'credited' : 'withheld';
  const pending = new Map<string, bigint>();
  for (const path of paths) {
    if (decision === 'withheld') break;
    const current = currentOf(path);
    const from = await viewNode(tx, current.prev);
    const above = nodesOf(path).slice(0, -1);
    if (from.spent > from.received || !(await creditable(tx, above, current.record.amount, pending))) decision = 'withheld';
    addPending(pending, above, current.record.amount);
  }
  if (decision === 'credited') {
    const payer = await tx.query<{ account_id: string }>('SELECT account_id FROM dotm_wallets WHERE wallet_key_id = $1', [row.payer_wallet]);
    const account = payer.rows[0]?.account_id;
    assert(account !== undefined, 'the payer wallet of a transaction is registered');
    const moved = await transfer(tx, {
      idempotencyKey: `dotm-refund:${toHex(body.tsn)}`,
      debit: DOTM_FLOAT_ACCOUNT,
      credit: account,
      amount: bigintColumn(row, 'amount'),
      kind: 'dotm-refund',
      reference: { tsn: toHex(body.tsn), wallet: row.payer_wallet },
    });
    assert(moved.ok, `the float pays a refund it holds: ${moved.ok ? '' : moved.message}`);
    await writeCredits(tx, pending);
  }
  await tx.query('UPDATE dotm_transactions SET refund = $2 WHERE tsn = $1', [body.tsn, decision]);
  return decision;
}

/** A redemption: each copy's value is recorded at its tip and credited where the tree allows it. */
async function settleRedemption(tx: TransactionHandle, wallet: DotmWallet, body: EventBody, paths: readonly Path[]): Promise<{ credited: bigint; refused: number }> {
  const amounts = body.parts.map((p) => p.block.remaining);
  for (const [k, path] of paths.entries()) await tx.query('UPDATE dotm_nodes SET redeemed = redeemed + $2 WHERE digest = $1', [path.tip, amounts[k] as bigint]);
  const pending = new Map<string, bigint>();
  let credited = 0n;
  let refused = 0;
  for (const [k, path] of paths.entries()) {
    const amount = amounts[k] as bigint;
    // The holder's own payments from this copy come first: a redemption past them is over-spending.
    const tip = await viewNode(tx, path.tip);
    const ok = tip.spent <= tip.received && (await creditable(tx, nodesOf(path), amount, pending));
    if (ok) {
      addPending(pending, nodesOf(path), amount);
      credited += amount;
    } else {
      refused += 1;
    }
    await tx.query('INSERT INTO dotm_redemptions (wallet_key_id, seq, part, serial, tip, amount, credited) VALUES ($1, $2, $3, $4, $5, $6, $7)', [
      wallet.walletKeyId,
      BigInt(body.seq),
      k,
      path.serial,
      path.tip,
      amount,
      ok,
    ]);
  }
  if (credited > 0n) {
    const moved = await transfer(tx, {
      idempotencyKey: `dotm-redeem:${wallet.walletKeyId}:${body.seq}`,
      debit: DOTM_FLOAT_ACCOUNT,
      credit: wallet.accountId,
      amount: credited,
      kind: 'dotm-redeem',
      reference: { wallet: wallet.walletKeyId, seq: body.seq },
    });
    assert(moved.ok, `the float pays a redemption it holds: ${moved.ok ? '' : moved.message}`);
    await writeCredits(tx, pending);
  }
  return { credited, refused };
}

/** Processes the next event of the wallet's log (its seq is last_seq + 1). */
async function settleEvent(tx: TransactionHandle, ctx: SettlementContext, wallet: DotmWallet, event: WalletEvent): Promise<{ result: EventResult; findings: DotmFinding[] }> {
  const { body } = event;
  const checked = checkEvent(ctx, wallet, body);
  if (!('paths' in checked)) return { result: { seq: body.seq, status: 'refused', ...checked }, findings: [] };
  const { paths } = checked;
  for (const path of paths) {
    if (!(await issuedHere(tx, path))) return { result: { seq: body.seq, status: 'refused', code: 'PAYMENT_INVALID', message: `serial ${toHex(path.serial)} was not issued by this node` }, findings: [] };
  }
  const touched = new Map<string, Uint8Array>();
  const touch = (d: Uint8Array) => touched.set(toHex(d), d);
  for (const path of paths) (await insertPath(tx, path)).forEach(touch);

  const findings: DotmFinding[] = [];
  let result: EventResult = { seq: body.seq, status: 'taken' };
  if (body.kind === 'redeemed') {
    const done = await settleRedemption(tx, wallet, body, paths);
    paths.forEach((p) => touch(p.tip));
    result =
      done.refused === 0
        ? { ...result, credited: done.credited }
        : { seq: body.seq, status: 'refused', code: 'DOUBLE_SPEND', message: `${done.refused} of ${paths.length} copies were spent already or pass through a double-spent node; only the others were credited`, credited: done.credited };
  } else {
    const reported = await reportTransaction(tx, wallet, { ...body, kind: body.kind });
    if (reported === null) {
      result = { seq: body.seq, status: 'refused', code: 'TRANSACTION_MISMATCH', message: 'the other side reported another transaction under this tsn; the records are kept as evidence' };
    } else {
      for (const path of paths) {
        const current = currentOf(path);
        await tx.query('INSERT INTO dotm_currents (digest, tsn) VALUES ($1, $2) ON CONFLICT DO NOTHING', [current.digest, body.tsn]);
        touch(current.digest);
        touch(current.prev);
      }
      const first = currentOf(paths[0] as Path);
      const contradiction = async (culprit: string, what: string) => {
        const found = await openFinding(tx, ctx, { kind: 'contradiction', subject: toHex(body.tsn), serial: null, culprit, received: null, spent: null, records: paths.map((p) => toHex(currentOf(p).digest)), reason: what });
        if (found !== null) findings.push(found);
      };
      if (reported.sent_seq !== null && reported.abandoned_seq !== null) await contradiction(first.payer, 'the payer reported the transaction both sent and abandoned');
      if (reported.received_seq !== null && reported.rolled_back_seq !== null) await contradiction(first.payee, 'the payee reported the transaction both received and rolled back');
      const refund = await settleRefund(tx, body, reported, paths);
      if (refund !== undefined) result = { ...result, refund };
    }
  }
  for (const digest of touched.values()) {
    const found = await checkNode(tx, ctx, digest);
    if (found !== null) findings.push(found);
  }
  return { result, findings };
}

/**
 * An event under a seq already taken: the same bytes are a duplicate; other bytes prove two states
 * of one wallet signed (a clone). Its records still enter the tree, as evidence.
 */
async function settleRepeat(tx: TransactionHandle, ctx: SettlementContext, wallet: DotmWallet, event: WalletEvent, digest: Uint8Array): Promise<{ result: EventResult; findings: DotmFinding[] }> {
  const seq = event.body.seq;
  const { rows } = await tx.query<{ digest: Uint8Array }>('SELECT digest FROM dotm_events WHERE wallet_key_id = $1 AND seq = $2', [wallet.walletKeyId, BigInt(seq)]);
  const stored = rows[0];
  assert(stored !== undefined, `event ${seq} of ${wallet.walletKeyId} was taken but is not stored`);
  if (equalBytes(new Uint8Array(stored.digest), digest)) return { result: { seq, status: 'duplicate' }, findings: [] };
  const findings: DotmFinding[] = [];
  const checked = checkEvent(ctx, wallet, event.body);
  if ('paths' in checked) {
    for (const path of checked.paths) {
      if (!(await issuedHere(tx, path))) continue;
      for (const parent of await insertPath(tx, path)) {
        const found = await checkNode(tx, ctx, parent);
        if (found !== null) findings.push(found);
      }
    }
  }
  const clone = await openFinding(tx, ctx, {
    kind: 'clone',
    subject: toHex(digest),
    serial: null,
    culprit: wallet.userKeyId,
    received: null,
    spent: null,
    records: [],
    reason: `the wallet signed two different events with seq ${seq}: its state was cloned or restored`,
  });
  if (clone !== null) findings.push(clone);
  return { result: { seq, status: 'refused', code: 'EVENT_CONFLICT', message: `event ${seq} differs from the one already taken from this wallet` }, findings };
}

/**
 * §3.3.4: takes a wallet's uploaded events in order (the wallet's row locked by the caller, the
 * events' signatures checked). Events up to last_seq are duplicates (or clone evidence); the rest
 * must continue the log without a gap, or nothing changes.
 */
export async function settleEvents(tx: TransactionHandle, ctx: SettlementContext, wallet: DotmWallet, events: readonly WalletEvent[]): Promise<SettleOutcome> {
  const next = events.find((e) => e.body.seq > wallet.lastSeq);
  if (next !== undefined && next.body.seq !== wallet.lastSeq + 1) {
    return { ok: false, code: 'SEQUENCE_GAP', message: `event ${next.body.seq} does not follow ${wallet.lastSeq}, the last event taken from this wallet: upload from event ${wallet.lastSeq + 1} on` };
  }
  await lockSerials(tx, events.flatMap((e) => e.body.parts.map((p) => p.block.presentation.serial)));
  const results: EventResult[] = [];
  const findings: DotmFinding[] = [];
  let lastSeq = wallet.lastSeq;
  for (const event of events) {
    const digest = eventDigest(event);
    if (event.body.seq <= lastSeq) {
      const repeat = await settleRepeat(tx, ctx, wallet, event, digest);
      results.push(repeat.result);
      findings.push(...repeat.findings);
      continue;
    }
    assert(event.body.seq === lastSeq + 1, 'the caller passes consecutive events');
    const done = await settleEvent(tx, ctx, wallet, event);
    const { body } = event;
    await tx.query(
      `INSERT INTO dotm_events (wallet_key_id, seq, digest, kind, tsn, amount, status, code, event) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
      [wallet.walletKeyId, BigInt(body.seq), digest, body.kind, body.tsn, body.amount, done.result.status === 'refused' ? 'refused' : 'taken', done.result.code ?? null, encodeCbor(walletEventWire(event))],
    );
    results.push(done.result);
    findings.push(...done.findings);
    lastSeq = body.seq;
  }
  if (lastSeq !== wallet.lastSeq) await tx.query('UPDATE dotm_wallets SET last_seq = $2 WHERE wallet_key_id = $1', [wallet.walletKeyId, BigInt(lastSeq)]);
  return { ok: true, lastSeq, results, findings };
}

/** Every finding, oldest first. */
export async function listFindings(q: Queryable): Promise<DotmFinding[]> {
  const { rows } = await q.query<{ kind: FindingKind; subject: Uint8Array; serial: Uint8Array | null; culprit_key_id: string; culprit_wallet: string | null; evidence: { received: string | null; spent: string | null; records: string[]; reason: string } }>(
    'SELECT kind, subject, serial, culprit_key_id, culprit_wallet, evidence FROM dotm_findings ORDER BY id',
  );
  return rows.map((r) => ({
    kind: r.kind,
    subject: toHex(new Uint8Array(r.subject)),
    serial: r.serial === null ? null : toHex(new Uint8Array(r.serial)),
    culprit: r.culprit_key_id,
    wallet: r.culprit_wallet,
    received: r.evidence.received === null ? null : BigInt(r.evidence.received),
    spent: r.evidence.spent === null ? null : BigInt(r.evidence.spent),
    records: r.evidence.records,
    reason: r.evidence.reason,
  }));
}

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
                - coalesce((SELECT sum(c.amount) FROM dotm_nodes c WHERE c.prev = n.digest AND ${LIVE.replaceAll('n.digest', 'c.digest')}), 0)
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
