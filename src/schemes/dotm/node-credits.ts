/** What leaves `float:dotm` at settlement: the refunds of exceptional situations 3 and 5 (§3.3.5), and redemptions, each within what its path may still credit. */
import { assert } from '../../core/assert.ts';
import { equalBytes, toHex } from '../../core/bytes.ts';
import { base64Param, bigintColumn, transfer, type TransactionHandle } from '../../issuer/plugin.ts';
import type { EventBody, EventKind } from './online.ts';
import { DOTM_FLOAT_ACCOUNT, type DotmWallet } from './node-settlement-model.ts';
import { type Path, addPending, creditable, currentOf, giveUp, nodesOf, viewNodes, writeCredits } from './node-tree.ts';

/** A transaction as both sides reported it (dotm_transactions). */
export interface TransactionRow {
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
export const REPORTS = {
  sent: { seq: 'sent_seq', side: 'payer_wallet' },
  abandoned: { seq: 'abandoned_seq', side: 'payer_wallet' },
  received: { seq: 'received_seq', side: 'payee_wallet' },
  'rolled-back': { seq: 'rolled_back_seq', side: 'payee_wallet' },
} as const satisfies Record<Exclude<EventKind, 'redeemed'>, { seq: string; side: string }>;

/** Records one side's report of a transaction; null when the other side named another σ under this tsn. */
export async function reportTransaction(tx: TransactionHandle, wallet: DotmWallet, body: EventBody & { kind: keyof typeof REPORTS }): Promise<TransactionRow | null> {
  const { seq, side } = REPORTS[body.kind];
  // One statement: the row made with this side's report, or this side's report added to the row
  // the other side made (its row locked), unless that row names another σ or amount: then no row.
  const { rows } = await tx.query<TransactionRow>(
    `INSERT INTO dotm_transactions AS t (tsn, transaction, amount, ${seq}, ${side}) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (tsn) DO UPDATE SET ${seq} = coalesce(t.${seq}, EXCLUDED.${seq}), ${side} = coalesce(t.${side}, EXCLUDED.${side})
       WHERE t.transaction = EXCLUDED.transaction AND t.amount = EXCLUDED.amount
     RETURNING transaction, amount, payer_wallet, sent_seq, abandoned_seq, received_seq, rolled_back_seq, refund`,
    [body.tsn, body.transaction, body.amount, BigInt(body.seq), wallet.walletKeyId],
  );
  const row = rows[0];
  if (row === undefined) return null;
  assert(equalBytes(new Uint8Array(row.transaction), body.transaction) && bigintColumn(row, 'amount') === body.amount, 'the transaction row is the one reported');
  return row;
}

/**
 * Exceptional situations 3 and 5 (§3.3.5): the payer deducted (sent) and the payee rolled back, so
 * "C could construct the same amount of digital currency and give them back to P". The payer's
 * deduction is given up at the node each current record hangs from, and credited to the payer's
 * account once per tsn when those nodes hold it. Answers what was decided now, or undefined when
 * it is not yet time.
 */
export async function settleRefund(tx: TransactionHandle, body: EventBody, row: TransactionRow, paths: readonly Path[]): Promise<'credited' | 'withheld' | undefined> {
  if (row.sent_seq === null || row.rolled_back_seq === null || row.refund !== null) return undefined;
  const currents = paths.map(currentOf);
  await giveUp(
    tx,
    currents.map((current) => ({ digest: current.prev, amount: current.record.amount })),
  );
  // A payer that also reported the offer withdrawn has a broken wallet: no refund on its word.
  let decision: 'credited' | 'withheld' = row.abandoned_seq === null && row.payer_wallet !== null ? 'credited' : 'withheld';
  const pending = new Map<string, bigint>();
  if (decision === 'credited') {
    // Read once, after the deductions given up: nothing below writes the tree before writeCredits.
    const views = await viewNodes(tx, paths.flatMap((path) => nodesOf(path).slice(0, -1)));
    for (const [k, path] of paths.entries()) {
      const current = currents[k] as (typeof currents)[number];
      const from = views.get(toHex(current.prev));
      assert(from !== undefined, 'the node a current record hangs from was read');
      const above = nodesOf(path).slice(0, -1);
      if (from.spent > from.received || !creditable(views, above, current.record.amount, pending)) {
        decision = 'withheld';
        break;
      }
      addPending(pending, above, current.record.amount);
    }
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
export async function settleRedemption(tx: TransactionHandle, wallet: DotmWallet, body: EventBody, paths: readonly Path[]): Promise<{ credited: bigint; refused: number }> {
  const amounts = body.parts.map((p) => p.block.remaining);
  await giveUp(
    tx,
    paths.map((path, k) => ({ digest: path.tip, amount: amounts[k] as bigint })),
  );
  // Every node of every path read once, after the value given up at the tips: nothing below
  // writes the tree before writeCredits, so each copy is judged on what one read per copy saw.
  const views = await viewNodes(tx, paths.flatMap(nodesOf));
  const pending = new Map<string, bigint>();
  let credited = 0n;
  const taken: boolean[] = [];
  for (const [k, path] of paths.entries()) {
    const amount = amounts[k] as bigint;
    // The holder's own payments from this copy come first: a redemption past them is over-spending.
    const tip = views.get(toHex(path.tip));
    assert(tip !== undefined, 'the tip of a redeemed copy was read');
    const ok = tip.spent <= tip.received && creditable(views, nodesOf(path), amount, pending);
    if (ok) {
      addPending(pending, nodesOf(path), amount);
      credited += amount;
    }
    taken.push(ok);
  }
  const refused = taken.filter((ok) => !ok).length;
  if (paths.length > 0) {
    await tx.query(
      `INSERT INTO dotm_redemptions (wallet_key_id, seq, part, serial, tip, amount, credited)
       SELECT $1, $2, k, decode(z, 'base64'), decode(t, 'base64'), a, c FROM unnest($3::int[], $4::text[], $5::text[], $6::bigint[], $7::boolean[]) AS x(k, z, t, a, c)`,
      [wallet.walletKeyId, BigInt(body.seq), paths.map((_p, k) => k), paths.map((p) => base64Param(p.serial)), paths.map((p) => base64Param(p.tip)), paths.map((_p, k) => amounts[k] as bigint), taken],
    );
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
