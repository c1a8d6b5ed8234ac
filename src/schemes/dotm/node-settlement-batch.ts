/**
 * A run of an upload's transaction events settled together (§3.3.4 at volume): their sides'
 * reports, their paths' records and their current records written in one statement, the tree
 * nodes they touched read back in one, instead of three statements an event.
 *
 * Taking the run together decides what taking its events one after another would: the events of a
 * run are *independent*. Each is a transaction's side (not a redemption) whose blocks this node
 * issued, and no two share a serial or a tsn, so no event writes a tree node, a child, a credit or
 * a transaction row another one reads. The liveness of a record also hangs on the transaction its
 * tsn names (dotm_currents): an event may join a run only when every current record already filed
 * under its tsn in the upload's serials lies in its own serials (`TransactionLinks`); an honest
 * pair of sides always passes, and a wallet that put another serial's record under a tsn sends its
 * event down the one-at-a-time path. Refunds are decided event by event after the one write, the
 * tree is read once after them, and the findings are opened event by event in the upload's order,
 * so that the node answers and records what it would have one event at a time.
 */
import { assert } from '../../core/assert.ts';
import { toHex } from '../../core/bytes.ts';
import { base64Param, type TransactionHandle } from '../../issuer/plugin.ts';
import { REPORTS, settleRefund, type TransactionRow } from './node-credits.ts';
import { findingsAt, openFinding } from './node-findings.ts';
import type { DotmFinding, DotmWallet, EventResult, SettlementContext } from './node-settlement-model.ts';
import { type LockedBlocks, type Path, currentOf, issuedHere, nodeColumns, viewNodes } from './node-tree.ts';
import type { EventKind, WalletEvent } from './online.ts';

/** An event's kind when it reports a transaction's side. */
export type SideKind = Exclude<EventKind, 'redeemed'>;

/** A checked transaction event that may settle with others: its paths all of this node's blocks, of distinct serials. */
export interface BatchEvent {
  readonly event: WalletEvent & { readonly body: { readonly kind: SideKind } };
  readonly paths: readonly Path[];
}

/** What one event of a run came to. */
export interface BatchOutcome {
  readonly result: EventResult;
  readonly findings: DotmFinding[];
}

/** For each tsn (hex) of an upload, the serials (hex) of the current records filed under it. */
export type TransactionLinks = Map<string, Set<string>>;

/**
 * Reads which of the upload's locked serials hold current records filed under the upload's tsns,
 * in one statement (by serial: dotm_currents has no index by tsn). Run after lockSerials: no other
 * upload files a current record in a locked serial until this one commits.
 */
export async function transactionLinks(tx: TransactionHandle, locked: LockedBlocks, tsns: readonly Uint8Array[]): Promise<TransactionLinks> {
  const links: TransactionLinks = new Map();
  const wanted = [...new Set(tsns.map((t) => toHex(t)))];
  if (locked.size === 0 || wanted.length === 0) return links;
  const { rows } = await tx.query<{ tsn: string; serial: string }>(
    `SELECT DISTINCT encode(k.tsn, 'hex') AS tsn, encode(n.serial, 'hex') AS serial
     FROM dotm_nodes n JOIN dotm_currents k ON k.digest = n.digest
     WHERE n.serial IN (SELECT decode(s, 'hex') FROM unnest($1::text[]) AS s) AND k.tsn IN (SELECT decode(t, 'hex') FROM unnest($2::text[]) AS t)`,
    [[...locked.keys()], wanted],
  );
  for (const row of rows) linkTransaction(links, row.tsn, [row.serial]);
  return links;
}

/** Notes that current records under `tsn` (hex) may now lie in these serials (hex). */
export function linkTransaction(links: TransactionLinks, tsn: string, serials: Iterable<string>): void {
  let set = links.get(tsn);
  if (set === undefined) {
    set = new Set();
    links.set(tsn, set);
  }
  for (const s of serials) set.add(s);
}

/** The serials (hex) of an event's paths. */
export function serialsOf(paths: readonly Path[]): string[] {
  return paths.map((p) => toHex(p.serial));
}

/**
 * True when a checked event may settle in a run: a transaction's side, every path of this node's
 * blocks (no other bank's copy), no serial twice, and no current record under its tsn outside its
 * own serials.
 */
export function batchable(event: WalletEvent, paths: readonly Path[], locked: LockedBlocks, links: TransactionLinks, foreign: readonly boolean[]): event is BatchEvent['event'] {
  if (event.body.kind === 'redeemed' || foreign.some((f) => f)) return false;
  const own = new Set(serialsOf(paths));
  if (own.size !== paths.length) return false;
  if (!paths.every((path) => issuedHere(locked, path))) return false;
  for (const serial of links.get(toHex(event.body.tsn)) ?? []) if (!own.has(serial)) return false;
  return true;
}

/** A run being gathered: its events, and the serials and tsns they use. */
export class Run {
  readonly events: Array<BatchEvent & { readonly index: number }> = [];
  readonly #serials = new Set<string>();
  readonly #tsns = new Set<string>();

  /** True when the event shares no serial and no tsn with the run. */
  admits(item: BatchEvent): boolean {
    return !this.#tsns.has(toHex(item.event.body.tsn)) && serialsOf(item.paths).every((s) => !this.#serials.has(s));
  }

  add(item: BatchEvent, index: number): void {
    assert(this.admits(item), 'a run takes independent events');
    this.events.push({ ...item, index });
    this.#tsns.add(toHex(item.event.body.tsn));
    for (const s of serialsOf(item.paths)) this.#serials.add(s);
  }

  /** Empties the run, answering what it held. */
  take(): Array<BatchEvent & { readonly index: number }> {
    const events = this.events.splice(0);
    this.#serials.clear();
    this.#tsns.clear();
    return events;
  }
}

interface WrittenRow extends TransactionRow {
  tsn: Uint8Array | null;
  prev: Uint8Array | null;
}

/**
 * Writes a run in one statement: each side's report (dotm_transactions, as reportTransaction
 * does: a row made, or this side added to the row the other side made unless it names another σ
 * or amount), every path's records (dotm_nodes), and each current record under its tsn
 * (dotm_currents) when its side's report was taken. Answers the reported rows by tsn (hex) and the
 * digests (hex) that got a new child.
 */
async function writeRun(tx: TransactionHandle, wallet: DotmWallet, items: readonly BatchEvent[]): Promise<{ reported: Map<string, TransactionRow>; parents: Set<string> }> {
  const records = items.flatMap((item) => item.paths.flatMap((path) => path.records.map((r) => ({ serial: path.serial, r }))));
  const currents = items.flatMap((item) => item.paths.filter((p) => p.records.length > 0).map((p) => ({ digest: currentOf(p).digest, tsn: item.event.body.tsn })));
  const column = (kind: SideKind, seq: string, value: bigint): bigint | null => (REPORTS[kind].seq === seq ? value : null);
  const side = (kind: SideKind, which: string): string | null => (REPORTS[kind].side === which ? wallet.walletKeyId : null);
  const bodies = items.map((item) => item.event.body);
  const { rows } = await tx.query<WrittenRow>(
    `WITH reported AS (
       INSERT INTO dotm_transactions AS t (tsn, transaction, amount, sent_seq, abandoned_seq, received_seq, rolled_back_seq, payer_wallet, payee_wallet)
       SELECT decode(n, 'base64'), decode(s, 'base64'), a, q1, q2, q3, q4, w1, w2
       FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[], $8::text[], $9::text[]) AS x(n, s, a, q1, q2, q3, q4, w1, w2)
       ON CONFLICT (tsn) DO UPDATE SET
         sent_seq = coalesce(t.sent_seq, EXCLUDED.sent_seq), abandoned_seq = coalesce(t.abandoned_seq, EXCLUDED.abandoned_seq),
         received_seq = coalesce(t.received_seq, EXCLUDED.received_seq), rolled_back_seq = coalesce(t.rolled_back_seq, EXCLUDED.rolled_back_seq),
         payer_wallet = coalesce(t.payer_wallet, EXCLUDED.payer_wallet), payee_wallet = coalesce(t.payee_wallet, EXCLUDED.payee_wallet)
         WHERE t.transaction = EXCLUDED.transaction AND t.amount = EXCLUDED.amount
       RETURNING tsn, transaction, amount, payer_wallet, sent_seq, abandoned_seq, received_seq, rolled_back_seq, refund
     ), inserted AS (
       INSERT INTO dotm_nodes (digest, serial, prev, holder_key_id, payer_key_id, amount, recorded_at, record)
       SELECT decode(d, 'base64'), decode(z, 'base64'), decode(p, 'base64'), h, y, a, t, decode(r, 'base64')
       FROM unnest($10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::bigint[], $16::bigint[], $17::text[]) AS x(d, z, p, h, y, a, t, r)
       ON CONFLICT (digest) DO NOTHING RETURNING prev
     ), current AS (
       INSERT INTO dotm_currents (digest, tsn)
       SELECT decode(d, 'base64'), decode(n, 'base64') FROM unnest($18::text[], $19::text[]) AS x(d, n)
       WHERE decode(n, 'base64') IN (SELECT tsn FROM reported)
       ON CONFLICT DO NOTHING
     )
     SELECT tsn, transaction, amount, payer_wallet, sent_seq, abandoned_seq, received_seq, rolled_back_seq, refund, NULL::bytea AS prev FROM reported
     UNION ALL
     SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, prev FROM inserted`,
    [
      bodies.map((b) => base64Param(b.tsn)),
      bodies.map((b) => base64Param(b.transaction)),
      bodies.map((b) => b.amount),
      bodies.map((b) => column(b.kind, 'sent_seq', BigInt(b.seq))),
      bodies.map((b) => column(b.kind, 'abandoned_seq', BigInt(b.seq))),
      bodies.map((b) => column(b.kind, 'received_seq', BigInt(b.seq))),
      bodies.map((b) => column(b.kind, 'rolled_back_seq', BigInt(b.seq))),
      bodies.map((b) => side(b.kind, 'payer_wallet')),
      bodies.map((b) => side(b.kind, 'payee_wallet')),
      ...nodeColumns(records),
      currents.map((c) => base64Param(c.digest)),
      currents.map((c) => base64Param(c.tsn)),
    ],
  );
  const reported = new Map<string, TransactionRow>();
  const parents = new Set<string>();
  for (const row of rows) {
    if (row.prev !== null) parents.add(toHex(new Uint8Array(row.prev)));
    else if (row.tsn !== null) reported.set(toHex(new Uint8Array(row.tsn)), row);
  }
  return { reported, parents };
}

/**
 * Settles a run of independent transaction events (see the file's comment) of the wallet's log,
 * in the log's order; answers each event's result and findings, as settleEvent would have.
 */
export async function settleRun(tx: TransactionHandle, ctx: SettlementContext, wallet: DotmWallet, items: readonly BatchEvent[]): Promise<BatchOutcome[]> {
  if (items.length === 0) return [];
  const { reported, parents } = await writeRun(tx, wallet, items);
  const planned = [];
  for (const { event, paths } of items) {
    const { body } = event;
    // The nodes the event touched, in the order settleEvent visits them: each path's new children, then its current record and the node it hangs from.
    const touched = new Map<string, Uint8Array>();
    for (const path of paths) for (const r of path.records) if (parents.has(toHex(r.prev))) touched.set(toHex(r.prev), r.prev);
    const row = reported.get(toHex(body.tsn));
    if (row === undefined) {
      planned.push({ body, paths, row, touched, result: { seq: body.seq, status: 'refused', code: 'TRANSACTION_MISMATCH', message: 'the other side reported another transaction under this tsn; the records are kept as evidence' } satisfies EventResult });
      continue;
    }
    for (const path of paths) {
      const current = currentOf(path);
      touched.set(toHex(current.digest), current.digest);
      touched.set(toHex(current.prev), current.prev);
    }
    const refund = await settleRefund(tx, body, row, paths);
    planned.push({ body, paths, row, touched, result: { seq: body.seq, status: 'taken', ...(refund === undefined ? {} : { refund }) } satisfies EventResult });
  }
  // The tree after every write of the run, read once: no event of a run changes a node another one touched.
  const views = await viewNodes(
    tx,
    planned.flatMap((p) => [...p.touched.values()]),
  );
  const outcomes: BatchOutcome[] = [];
  for (const { body, paths, row, touched, result } of planned) {
    const findings: DotmFinding[] = [];
    if (row !== undefined) {
      const first = currentOf(paths[0] as Path);
      const contradiction = async (culprit: string, what: string) => {
        const found = await openFinding(tx, ctx, { kind: 'contradiction', subject: toHex(body.tsn), serial: null, culprit, received: null, spent: null, records: paths.map((p) => toHex(currentOf(p).digest)), reason: what });
        if (found !== null) findings.push(found);
      };
      if (row.sent_seq !== null && row.abandoned_seq !== null) await contradiction(first.payer, 'the payer reported the transaction both sent and abandoned');
      if (row.received_seq !== null && row.rolled_back_seq !== null) await contradiction(first.payee, 'the payee reported the transaction both received and rolled back');
    }
    findings.push(...(await findingsAt(tx, ctx, views, [...touched.values()])));
    outcomes.push({ result, findings });
  }
  return outcomes;
}

