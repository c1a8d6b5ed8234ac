/**
 * Money that crosses between two databases of one node (its home and its shards), exactly once.
 *
 * No transaction spans two databases. A credit to an account in another place is instead:
 * 1. sent: in the sender's transaction, the debit account pays a sender's clearing account for
 *    the receiver (one of CLEARING_STRIPES, by the crossing's id), and an outbox row names the
 *    credit (`sendAcross`);
 * 2. carried: a message naming the outbox row's id goes to the receiver (queue/credit-relay.ts),
 *    published again until the stream has taken it;
 * 3. received: in the receiver's transaction, an inbox row under the same id (its primary key
 *    makes a second delivery a no-op) and a transfer from the receiver's clearing account for the
 *    sender to the credit account (`receiveAcross`). When that account does not exist there, the
 *    money goes back: the inbox row says 'returned' and a return credit is sent the other way.
 * So, per database, each clearing account's balance is what it sent to that peer less what it
 * received from it, and over a pair of databases the two clearing accounts sum to what is in
 * flight between them (`clearingPositions`, shards/audit.ts).
 */
import type { Queryable, TransactionHandle } from '../db/database.ts';
import { bigintColumn } from '../db/database.ts';
import { ensureAccount } from './account.ts';
import { failure, type LedgerFailure } from './result.ts';
import { IDEMPOTENCY_KEY_LENGTH_MAX } from './rules.ts';
import { checkCommon, transfer, type Transfer, type TransferFailureCode } from './transfer.ts';
import type { JsonValue } from './json.ts';
import { jsonText } from './json.ts';

/** A place of one node's ledger: its own database ('home') or shard K's ('sK'). */
export type Party = 'home' | `s${number}`;

/** The place names a node with `shards` shard databases has, home first. */
export function partiesOf(shards: number): Party[] {
  return ['home', ...Array.from({ length: shards }, (_, k) => `s${k}` as const)];
}

const PARTY = /^(home|s[0-9]{1,2})$/;

/** Whether `text` names a place. */
export function isParty(text: string): text is Party {
  return PARTY.test(text);
}

/**
 * Clearing accounts per peer in each place: a crossing takes the row lock of one of them (by its
 * id), so crossings to or from one peer do not all wait on one row. The audit sums them by peer.
 */
export const CLEARING_STRIPES = 8;

/** One of the clearing accounts, in one place, of its position with `peer`. */
export function clearingAccount(peer: Party, stripe: number): string {
  if (!Number.isInteger(stripe) || stripe < 0 || stripe >= CLEARING_STRIPES) throw new RangeError(`stripe: expected 0 to ${CLEARING_STRIPES - 1}, got ${stripe}`);
  return `clearing:${peer}.${stripe}`;
}

/** The stripe of a crossing's id (FNV-1a of its characters): the same id always takes the same row. */
export function stripeOf(id: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) {
    h ^= id.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h % CLEARING_STRIPES;
}

function isClearing(account: string): boolean {
  return account.startsWith('clearing:');
}

/** The longest crossing id: the longest key made of it ('across-in:home:return:home:<id>', places being at most four characters) stays within an idempotency key. */
export const CROSSING_ID_LENGTH_MAX = IDEMPOTENCY_KEY_LENGTH_MAX - 'across-in:home:return:home:'.length;
const CROSSING_ID = /^[A-Za-z0-9._:/-]+$/;
/** Ids of returns: a caller's id may not start so. */
const RETURN_PREFIX = 'return:';

/** The transfer keys of a crossing: sent under its id, received under its sender and id. */
const sentKey = (id: string) => `across-out:${id}`;
const receivedKey = (from: Party, id: string) => `across-in:${from}:${id}`;

/** A credit to send to another place. */
export interface Crossing {
  /** Unique per sending place; a second send under it with the same fields answers the first. */
  readonly id: string;
  readonly to: Party;
  /** Debited here. */
  readonly debit: string;
  /** Credited there. */
  readonly credit: string;
  readonly amount: bigint;
  readonly kind: string;
  readonly reference?: { readonly [key: string]: JsonValue } | undefined;
}

/** An outbox row: what the receiver reads when a message names it. */
export interface OutboxEntry {
  readonly id: string;
  readonly to: Party;
  readonly credit: string;
  readonly returnTo: string;
  readonly currency: string;
  readonly amount: bigint;
  readonly kind: string;
  readonly reference: JsonValue | null;
}

interface OutboxRow {
  id: string;
  to_party: string;
  credit_account: string;
  return_account: string;
  currency: string;
  amount: bigint;
  kind: string;
  reference: JsonValue | null;
}

function entryFromRow(row: OutboxRow): OutboxEntry {
  if (!isParty(row.to_party)) throw new Error(`outbox ${row.id}: unknown place ${row.to_party}`);
  return { id: row.id, to: row.to_party, credit: row.credit_account, returnTo: row.return_account, currency: row.currency, amount: bigintColumn(row, 'amount'), kind: row.kind, reference: row.reference };
}

/** Opens this place's clearing account for each peer (idempotent). */
export async function openClearing(tx: TransactionHandle, peers: readonly Party[], currency: string): Promise<void> {
  for (const peer of peers) {
    for (let stripe = 0; stripe < CLEARING_STRIPES; stripe++) {
      const opened = await ensureAccount(tx, { id: clearingAccount(peer, stripe), kind: 'clearing', currency });
      if (!opened.ok) throw new Error(`clearing account for ${peer}: ${opened.message}`);
    }
  }
}

export type SendResult = { readonly ok: true; readonly transfer: Transfer; readonly entry: OutboxEntry; readonly replayed: boolean } | LedgerFailure<TransferFailureCode>;

/**
 * Sends a credit to another place, in the caller's transaction: the debit moves to this place's
 * clearing account for the receiver, and the outbox row is written. Nothing is published here:
 * publish the entry's id after the commit (and a relay publishes what was left unpublished).
 */
export async function sendAcross(tx: TransactionHandle, self: Party, crossing: Crossing): Promise<SendResult> {
  if (crossing.id.startsWith(RETURN_PREFIX)) return failure('REQUEST_INVALID', `id: ${RETURN_PREFIX}… is kept for returned credits`);
  // A clearing account may go below zero: paying out of one would make money, and paying into
  // another place's would strand it there with no outbox row to account for it.
  if (isClearing(crossing.debit)) return failure('REQUEST_INVALID', `debit: ${crossing.debit} is a clearing account, moved only by crossings`);
  if (isClearing(crossing.credit)) return failure('REQUEST_INVALID', `credit: ${crossing.credit} is a clearing account, moved only by crossings`);
  return send(tx, self, crossing);
}

async function send(tx: TransactionHandle, self: Party, crossing: Crossing): Promise<SendResult> {
  if (crossing.id.length < 1 || crossing.id.length > CROSSING_ID_LENGTH_MAX || !CROSSING_ID.test(crossing.id)) {
    return failure('REQUEST_INVALID', `id: expected 1 to ${CROSSING_ID_LENGTH_MAX} characters of letters, digits and . _ : / -, got ${JSON.stringify(crossing.id.slice(0, 40))}`);
  }
  if (!isParty(crossing.to) || crossing.to === self) return failure('REQUEST_INVALID', `to: expected another place than ${self}, got ${JSON.stringify(crossing.to)}`);
  const common = checkCommon({ ...crossing, idempotencyKey: sentKey(crossing.id) });
  if ('ok' in common) return common;
  const moved = await transfer(tx, {
    idempotencyKey: sentKey(crossing.id),
    debit: crossing.debit,
    credit: clearingAccount(crossing.to, stripeOf(crossing.id)),
    amount: crossing.amount,
    kind: crossing.kind,
    reference: { ...crossing.reference, to: crossing.to, credit: crossing.credit },
  });
  if (!moved.ok) return moved;
  const written = await writeOutbox(tx, crossing, moved.transfer.currency);
  if (written === undefined) return failure('IDEMPOTENCY_CONFLICT', `crossing ${crossing.id} was sent with another receiver: use a new id for a new credit`);
  return { ok: true, transfer: moved.transfer, entry: written.entry, replayed: written.replayed };
}

/** Writes the outbox row, or finds the same one written before; undefined when another row has the id. */
async function writeOutbox(tx: TransactionHandle, crossing: Crossing, currency: string): Promise<{ entry: OutboxEntry; replayed: boolean } | undefined> {
  const referenceText = crossing.reference === undefined ? null : jsonText(crossing.reference).text;
  const inserted = await tx.query<OutboxRow>(
    `INSERT INTO shard_outbox (id, to_party, credit_account, return_account, currency, amount, kind, reference)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8::text::jsonb) ON CONFLICT (id) DO NOTHING
     RETURNING id, to_party, credit_account, return_account, currency, amount, kind, reference`,
    [crossing.id, crossing.to, crossing.credit, crossing.debit, currency, crossing.amount, crossing.kind, referenceText],
  );
  const row = inserted.rows[0];
  if (row !== undefined) return { entry: entryFromRow(row), replayed: false };
  const entry = await outboxEntry(tx, crossing.id);
  const same = entry !== undefined && entry.to === crossing.to && entry.credit === crossing.credit && entry.returnTo === crossing.debit && entry.amount === crossing.amount && entry.kind === crossing.kind;
  return same ? { entry, replayed: true } : undefined;
}

/** The outbox row under `id`, or undefined. */
export async function outboxEntry(q: Queryable, id: string): Promise<OutboxEntry | undefined> {
  const found = await q.query<OutboxRow>('SELECT id, to_party, credit_account, return_account, currency, amount, kind, reference FROM shard_outbox WHERE id = $1', [id]);
  const row = found.rows[0];
  return row === undefined ? undefined : entryFromRow(row);
}

/**
 * Outbox rows still waiting for `step`, oldest first: 'published', those the stream has not taken,
 * sent at least `olderThanMs` ago; 'delivered', those published at least `olderThanMs` ago and not
 * known received (published_at is left as it was, so the caller spaces its rounds).
 */
async function waiting(q: Queryable, step: 'published' | 'delivered', olderThanMs: number, limit: number): Promise<Array<{ id: string; to: Party }>> {
  const where = step === 'published' ? 'published_at IS NULL AND created_at' : 'delivered_at IS NULL AND published_at IS NOT NULL AND published_at';
  const found = await q.query<{ id: string; to_party: string }>(
    `SELECT id, to_party FROM shard_outbox WHERE ${where} <= now() - make_interval(secs => $1::double precision / 1000)
     ORDER BY created_at, id LIMIT $2`,
    [olderThanMs, limit],
  );
  return found.rows.flatMap((r) => (isParty(r.to_party) ? [{ id: r.id, to: r.to_party }] : []));
}

/** Records, once, when these outbox rows reached `step`. */
async function mark(q: Queryable, step: 'published' | 'delivered', ids: readonly string[]): Promise<void> {
  if (ids.length === 0) return;
  const column = step === 'published' ? 'published_at' : 'delivered_at';
  await q.query(`UPDATE shard_outbox SET ${column} = now() WHERE id = ANY($1::text[]) AND ${column} IS NULL`, [ids]);
}

/** Outbox ids not yet taken by the stream, oldest first, sent at least `olderThanMs` ago. */
export const unpublished = (q: Queryable, olderThanMs: number, limit: number) => waiting(q, 'published', olderThanMs, limit);
/** Records that the stream took these outbox rows' messages. */
export const markPublished = (q: Queryable, ids: readonly string[]) => mark(q, 'published', ids);
/** Outbox rows published at least `olderThanMs` ago and not known delivered. */
export const undelivered = (q: Queryable, olderThanMs: number, limit: number) => waiting(q, 'delivered', olderThanMs, limit);
/** Records that these outbox rows were seen received. */
export const markDelivered = (q: Queryable, ids: readonly string[]) => mark(q, 'delivered', ids);

/** Which of `ids` from `from` this place has received. */
export async function received(q: Queryable, from: Party, ids: readonly string[]): Promise<Set<string>> {
  if (ids.length === 0) return new Set();
  const found = await q.query<{ id: string }>('SELECT id FROM shard_inbox WHERE from_party = $1 AND id = ANY($2::text[])', [from, ids]);
  return new Set(found.rows.map((r) => r.id));
}

/** What receiving one crossing did here. */
export type Received =
  | { readonly outcome: 'credited'; readonly transfer: Transfer }
  | { readonly outcome: 'returned'; readonly back: OutboxEntry; readonly reason: string }
  | { readonly outcome: 'already' };

/**
 * Receives a crossing from `from` in the caller's transaction, once per (sender, id): credits its
 * account here from the clearing account for the sender; when that account cannot take it (it
 * does not exist here, another currency), sends the money back to the sender's return account
 * under `return:<from>:<id>`, to be published as any other crossing.
 */
export async function receiveAcross(tx: TransactionHandle, self: Party, from: Party, entry: OutboxEntry): Promise<Received> {
  if (entry.to !== self || from === self) throw new Error(`crossing ${entry.id} from ${from} is addressed to ${entry.to}, not to ${self}`);
  // Every receipt from one sender takes its clearing account's row first, so two deliveries of
  // one crossing meet here, and the second sees the first's inbox row before it writes anything
  // (a refusal that would no longer hold, the credit account opened since, cannot then credit
  // a crossing that already went back).
  const clearing = clearingAccount(from, stripeOf(entry.id));
  await tx.query('SELECT 1 FROM accounts WHERE id = $1 FOR UPDATE', [clearing]);
  const seen = await tx.query<{ id: string }>('SELECT id FROM shard_inbox WHERE from_party = $1 AND id = $2', [from, entry.id]);
  if (seen.rows[0] !== undefined) return { outcome: 'already' };
  const moved = isClearing(entry.credit)
    ? failure('REQUEST_INVALID', `credit: ${entry.credit} is a clearing account, moved only by crossings`)
    : await transfer(tx, {
        idempotencyKey: receivedKey(from, entry.id),
        debit: clearing,
        credit: entry.credit,
        amount: entry.amount,
        kind: entry.kind,
        reference: { from, crossing: entry.id },
      });
  const outcome = moved.ok ? 'credited' : 'returned';
  const claimed = await tx.query<{ id: string }>(
    `INSERT INTO shard_inbox (from_party, id, amount, outcome) VALUES ($1, $2, $3, $4) ON CONFLICT (from_party, id) DO NOTHING RETURNING id`,
    [from, entry.id, entry.amount, outcome],
  );
  // Under the clearing account's lock nothing else can have written it: fail whole rather than keep a credit.
  if (claimed.rows[0] === undefined) throw new Error(`crossing ${entry.id} from ${from} was received meanwhile under the clearing account's lock`);
  if (moved.ok) return { outcome: 'credited', transfer: moved.transfer };
  // A return that cannot be credited where the money came from is not bounced again: the
  // transaction fails, and the message comes back until an operator has looked at it.
  if (entry.id.startsWith(RETURN_PREFIX)) throw new Error(`returned crossing ${entry.id} cannot be credited to ${entry.credit}: ${moved.message}`);
  // The money never left the clearing account for the sender: it goes back from there, with no
  // transfer here (sent and received both grow by the amount, and the balance stays).
  const returned = { id: `${RETURN_PREFIX}${from}:${entry.id}`, to: from, debit: entry.returnTo, credit: entry.returnTo, amount: entry.amount, kind: entry.kind };
  const back = await writeOutbox(tx, { ...returned, reference: { returned: entry.id, reason: moved.code } }, entry.currency);
  if (back === undefined) throw new Error(`crossing ${entry.id} from ${from} could not be returned: ${returned.id} is taken`);
  return { outcome: 'returned', back: back.entry, reason: moved.message };
}

/** One place's position with one peer, from one snapshot of its database. */
export interface ClearingPosition {
  readonly peer: Party;
  /** The clearing account's balance. */
  readonly balance: bigint;
  readonly sent: { readonly count: bigint; readonly amount: bigint };
  readonly received: { readonly count: bigint; readonly amount: bigint };
}

/**
 * This place's position with each peer that it has a clearing account for or any crossing with.
 * Run it in one transaction with the ledger's audit, so that both read one snapshot.
 */
export async function clearingPositions(q: Queryable): Promise<ClearingPosition[]> {
  const found = await q.query<{ peer: string; balance: bigint | null; sent_n: bigint; sent: bigint; received_n: bigint; received: bigint }>(
    `WITH clearing AS (
       SELECT split_part(substr(id, 10), '.', 1) AS peer, balance FROM accounts WHERE kind = 'clearing'
     ), peers AS (
       SELECT peer FROM clearing
       UNION SELECT to_party FROM shard_outbox
       UNION SELECT from_party FROM shard_inbox
     )
     SELECT p.peer,
            (SELECT sum(balance::numeric) FROM clearing c WHERE c.peer = p.peer) AS balance,
            (SELECT count(*) FROM shard_outbox o WHERE o.to_party = p.peer) AS sent_n,
            (SELECT coalesce(sum(amount::numeric), 0) FROM shard_outbox o WHERE o.to_party = p.peer) AS sent,
            (SELECT count(*) FROM shard_inbox i WHERE i.from_party = p.peer) AS received_n,
            (SELECT coalesce(sum(amount::numeric), 0) FROM shard_inbox i WHERE i.from_party = p.peer) AS received
     FROM peers p ORDER BY p.peer`,
  );
  return found.rows
    .filter((r) => isParty(r.peer))
    .map((r) => ({
      peer: r.peer as Party,
      balance: r.balance === null ? 0n : bigintColumn(r, 'balance'),
      sent: { count: bigintColumn(r, 'sent_n'), amount: bigintColumn(r, 'sent') },
      received: { count: bigintColumn(r, 'received_n'), amount: bigintColumn(r, 'received') },
    }));
}
