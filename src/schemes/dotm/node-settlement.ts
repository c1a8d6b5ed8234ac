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
 * Money leaves `float:dotm` only through redemptions, refunds and the operator's settlement of a
 * revoked wallet's remainder (node-remainder.ts), and each credit must fit, at
 * every node of its path, within what that node's holder received minus what was already
 * credited at or below it: whatever wallets upload, a serial never pays out more than its value.
 * Runs inside the caller's transaction, with the wallet's row and every touched serial locked.
 * The parts live in node-settlement-model.ts, node-tree.ts, node-findings.ts,
 * node-credits.ts, node-holdings.ts and node-settlement-batch.ts (independent events in one run).
 */
import { assert } from '../../core/assert.ts';
import { equalBytes, toHex } from '../../core/bytes.ts';
import { encodeCbor } from '../../core/cbor.ts';
import { base64Param, type IssuerServices, type TransactionHandle } from '../../issuer/plugin.ts';
import { isForeign, presentForeignCopies } from './node-interbank.ts';
import { walletEventWire, type WalletEvent } from './online.ts';
import { reportTransaction, settleRedemption, settleRefund } from './node-credits.ts';
import { checkNodes, openFinding } from './node-findings.ts';
import { type DotmFinding, type DotmWallet, type EventResult, type SettleOutcome, type SettlementContext, eventDigest } from './node-settlement-model.ts';
import { type LockedBlocks, type Path, checkEvent, currentOf, insertPath, insertPaths, issuedHere, lockSerials } from './node-tree.ts';
import { Run, batchable, linkTransaction, serialsOf, settleRun, transactionLinks } from './node-settlement-batch.ts';

/**
 * The checks of the next event that need no write: checkEvent, and that this node issued every
 * serial it settles here. Answers the refusal, or the paths with which of them are other banks'.
 */
function planEvent(ctx: SettlementContext, locked: LockedBlocks, wallet: DotmWallet, event: WalletEvent): { paths: Path[]; foreign: boolean[] } | EventResult {
  const { body } = event;
  const checked = checkEvent(ctx, wallet, body);
  if (!('paths' in checked)) return { seq: body.seq, status: 'refused', ...checked };
  // Several operators: a copy of another bank's block is settled by that bank, which keeps its
  // serial's tree; here it takes no place in the tree (node-interbank.ts).
  const foreign = checked.paths.map((p) => isForeign(ctx, p));
  for (const [k, path] of checked.paths.entries()) {
    if (!foreign[k] && !issuedHere(locked, path)) return { seq: body.seq, status: 'refused', code: 'PAYMENT_INVALID', message: `serial ${toHex(path.serial)} was not issued by this node` };
  }
  return { paths: checked.paths, foreign };
}

/** Processes the next event of the wallet's log (its seq is last_seq + 1), planned by planEvent. */
async function settleEvent(tx: TransactionHandle, services: IssuerServices, ctx: SettlementContext, wallet: DotmWallet, event: WalletEvent, checked: { paths: Path[]; foreign: boolean[] }): Promise<{ result: EventResult; findings: DotmFinding[] }> {
  const { body } = event;
  const { foreign } = checked;
  const paths = checked.paths.filter((_p, k) => !foreign[k]);
  let claims: string[] | undefined;
  if (body.kind === 'redeemed' && foreign.some((f) => f)) {
    const copies = checked.paths.flatMap((path, part) => (foreign[part] ? [{ path, part }] : []));
    const presented = await presentForeignCopies(tx, services, ctx, wallet, event, copies);
    if (presented.refused !== undefined) return { result: { seq: body.seq, status: 'refused', ...presented.refused }, findings: [] };
    claims = presented.claims;
  }
  const touched = new Map<string, Uint8Array>();
  const touch = (d: Uint8Array) => touched.set(toHex(d), d);
  // A transaction's side is reported first: its current records go into the tree under its tsn
  // (dotm_currents) only when both sides name the same transaction; the records go in either way.
  const reported = body.kind === 'redeemed' ? undefined : await reportTransaction(tx, wallet, { ...body, kind: body.kind });
  for (const parents of await insertPaths(tx, paths, reported === undefined || reported === null ? undefined : { tsn: body.tsn })) parents.forEach(touch);

  const findings: DotmFinding[] = [];
  let result: EventResult = { seq: body.seq, status: 'taken' };
  if (body.kind === 'redeemed') {
    const own = { ...body, parts: body.parts.filter((_p, k) => !foreign[k]) };
    const done = await settleRedemption(tx, wallet, own, paths);
    paths.forEach((p) => touch(p.tip));
    result =
      done.refused === 0
        ? { ...result, credited: done.credited }
        : { seq: body.seq, status: 'refused', code: 'DOUBLE_SPEND', message: `${done.refused} of ${paths.length} copies were spent already or pass through a double-spent node; only the others were credited`, credited: done.credited };
    if (claims !== undefined) result = { ...result, claims };
  } else {
    assert(reported !== undefined, 'a transaction event was reported');
    if (reported === null) {
      result = { seq: body.seq, status: 'refused', code: 'TRANSACTION_MISMATCH', message: 'the other side reported another transaction under this tsn; the records are kept as evidence' };
    } else {
      for (const path of paths) {
        const current = currentOf(path);
        touch(current.digest);
        touch(current.prev);
      }
      const first = currentOf(checked.paths[0] as Path);
      const contradiction = async (culprit: string, what: string) => {
        const found = await openFinding(tx, ctx, { kind: 'contradiction', subject: toHex(body.tsn), serial: null, culprit, received: null, spent: null, records: paths.map((p) => toHex(currentOf(p).digest)), reason: what });
        if (found !== null) findings.push(found);
      };
      if (reported.sent_seq !== null && reported.abandoned_seq !== null) await contradiction(first.payer, 'the payer reported the transaction both sent and abandoned');
      if (reported.received_seq !== null && reported.rolled_back_seq !== null) await contradiction(first.payee, 'the payee reported the transaction both received and rolled back');
      // A refund of a payment made with other banks' blocks would come out of their floats: not here.
      const refund = foreign.some((f) => f) ? undefined : await settleRefund(tx, body, reported, paths);
      if (refund !== undefined) result = { ...result, refund };
    }
  }
  findings.push(...(await checkNodes(tx, ctx, [...touched.values()])));
  return { result, findings };
}

/**
 * An event under a seq already taken: the same bytes are a duplicate; other bytes prove two states
 * of one wallet signed (a clone). Its records still enter the tree, as evidence.
 */
async function settleRepeat(tx: TransactionHandle, ctx: SettlementContext, locked: LockedBlocks, wallet: DotmWallet, event: WalletEvent, digest: Uint8Array): Promise<{ result: EventResult; findings: DotmFinding[] }> {
  const seq = event.body.seq;
  const { rows } = await tx.query<{ digest: Uint8Array }>('SELECT digest FROM dotm_events WHERE wallet_key_id = $1 AND seq = $2', [wallet.walletKeyId, BigInt(seq)]);
  const stored = rows[0];
  assert(stored !== undefined, `event ${seq} of ${wallet.walletKeyId} was taken but is not stored`);
  if (equalBytes(new Uint8Array(stored.digest), digest)) return { result: { seq, status: 'duplicate' }, findings: [] };
  const findings: DotmFinding[] = [];
  const checked = checkEvent(ctx, wallet, event.body);
  if ('paths' in checked) {
    // A transaction the wallet reports withdrawn or rolled back moved nothing: its current record
    // is no payment, and taken in as one it would count against its payer (who may be honest).
    const moved = event.body.kind !== 'abandoned' && event.body.kind !== 'rolled-back';
    for (const path of checked.paths) {
      if (isForeign(ctx, path) || !issuedHere(locked, path)) continue;
      const evidence = moved ? path : { ...path, records: path.records.slice(0, -1) };
      findings.push(...(await checkNodes(tx, ctx, await insertPath(tx, evidence))));
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

/** An event of the upload taken in its turn, and what came of it. */
interface TakenEvent {
  readonly event: WalletEvent;
  readonly digest: Uint8Array;
  readonly result: EventResult;
}

/** Stores the upload's new events, as signed, and moves the wallet's last seq to the last of them: one statement. */
async function recordEvents(tx: TransactionHandle, wallet: DotmWallet, taken: readonly TakenEvent[], lastSeq: number): Promise<void> {
  await tx.query(
    `WITH stored AS (
       INSERT INTO dotm_events (wallet_key_id, seq, digest, kind, tsn, amount, status, code, event)
       SELECT $1, q, decode(d, 'base64'), k, decode(t, 'base64'), a, s, nullif(c, ''), decode(e, 'base64')
       FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::text[], $8::text[], $9::text[]) AS x(q, d, k, t, a, s, c, e)
     )
     UPDATE dotm_wallets SET last_seq = $10 WHERE wallet_key_id = $1`,
    [
      wallet.walletKeyId,
      taken.map((t) => BigInt(t.event.body.seq)),
      taken.map((t) => base64Param(t.digest)),
      taken.map((t) => t.event.body.kind),
      taken.map((t) => base64Param(t.event.body.tsn)),
      taken.map((t) => t.event.body.amount),
      taken.map((t) => (t.result.status === 'refused' ? 'refused' : 'taken')),
      // A refusal's code, or '' for none (no code is empty).
      taken.map((t) => t.result.code ?? ''),
      taken.map((t) => base64Param(encodeCbor(walletEventWire(t.event)))),
      BigInt(lastSeq),
    ],
  );
}

/**
 * §3.3.4: takes a wallet's uploaded events in order (the wallet's row locked by the caller, the
 * events' signatures checked). Events up to last_seq are duplicates (or clone evidence); the rest
 * must continue the log without a gap, or nothing changes. Consecutive transaction events that
 * touch no serial or tsn in common settle as one run (node-settlement-batch.ts); the others, and
 * any that a run cannot take, one at a time, in the log's order.
 */
export async function settleEvents(tx: TransactionHandle, services: IssuerServices, ctx: SettlementContext, wallet: DotmWallet, events: readonly WalletEvent[]): Promise<SettleOutcome> {
  const next = events.find((e) => e.body.seq > wallet.lastSeq);
  if (next !== undefined && next.body.seq !== wallet.lastSeq + 1) {
    return { ok: false, code: 'SEQUENCE_GAP', message: `event ${next.body.seq} does not follow ${wallet.lastSeq}, the last event taken from this wallet: upload from event ${wallet.lastSeq + 1} on` };
  }
  const locked = await lockSerials(tx, events.flatMap((e) => e.body.parts.map((p) => p.block.presentation.serial)));
  const fresh = events.filter((e) => e.body.seq > wallet.lastSeq && e.body.kind !== 'redeemed');
  const links = await transactionLinks(tx, locked, fresh.map((e) => e.body.tsn));
  const outcomes: Array<{ result: EventResult; findings: DotmFinding[] } | undefined> = events.map(() => undefined);
  const run = new Run();
  const settleHeld = async () => {
    const held = run.take();
    const done = await settleRun(tx, ctx, wallet, held);
    held.forEach((item, k) => {
      outcomes[item.index] = done[k];
    });
  };
  const digests = events.map(eventDigest);
  let lastSeq = wallet.lastSeq;
  for (const [index, event] of events.entries()) {
    const digest = digests[index] as Uint8Array;
    if (event.body.seq <= lastSeq) {
      await settleHeld();
      outcomes[index] = await settleRepeat(tx, ctx, locked, wallet, event, digest);
      continue;
    }
    assert(event.body.seq === lastSeq + 1, 'the caller passes consecutive events');
    lastSeq = event.body.seq;
    const planned = planEvent(ctx, locked, wallet, event);
    // A refusal without a write is decided now, whatever the run holds.
    if (!('paths' in planned)) {
      outcomes[index] = { result: planned, findings: [] };
      continue;
    }
    const { paths, foreign } = planned;
    if (event.body.kind !== 'redeemed') linkTransaction(links, toHex(event.body.tsn), serialsOf(paths.filter((_p, k) => !foreign[k])));
    if (batchable(event, paths, locked, links, foreign)) {
      const item = { event, paths };
      if (!run.admits(item)) await settleHeld();
      run.add(item, index);
      continue;
    }
    await settleHeld();
    outcomes[index] = await settleEvent(tx, services, ctx, wallet, event, planned);
  }
  await settleHeld();
  const results: EventResult[] = [];
  const findings: DotmFinding[] = [];
  const taken: TakenEvent[] = [];
  for (const [index, event] of events.entries()) {
    const done = outcomes[index];
    assert(done !== undefined, `event ${event.body.seq} was settled`);
    results.push(done.result);
    findings.push(...done.findings);
    if (event.body.seq > wallet.lastSeq) taken.push({ event, digest: digests[index] as Uint8Array, result: done.result });
  }
  if (taken.length > 0) await recordEvents(tx, wallet, taken, lastSeq);
  return { ok: true, lastSeq, results, findings };
}

/** Every finding, oldest first. */

export { DOTM_FLOAT_ACCOUNT, readWallet, eventDigest, type DotmFinding, type DotmWallet, type EventResult, type FindingKind, type SettleOutcome, type SettlementContext } from './node-settlement-model.ts';
export { listFindings } from './node-findings.ts';
export { dotmHoldings } from './node-holdings.ts';
export { lockSerials } from './node-tree.ts';
