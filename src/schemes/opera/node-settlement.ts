/**
 * The settlement of a transaction two ODWs did not finish offline (paper §4.1: the transaction log
 * keeps the mode, the partner's SN, TR_k, TR_n and FLG so that it can be finished later). Here it
 * is finished online, from the reports both sides upload, by whether the payer released its token
 * key (Msg 3-1) and whether the payee took the tokens:
 *
 * - a payer that never released is refunded at once: without its key the payee cannot use them;
 * - a payer that released waits for its payee: the payee took them (it shows the payer's release)
 *   and the transaction is paid, or it never will and the payer is refunded;
 * - a payee that took them is paid; one that did not has abandoned them.
 *
 * With change (the payer's tokens worth amount + change, the payee's change tokens in its report),
 * the payee released its change key in the commit that took the payer's tokens: a payee that took
 * them has given the change, and a payer that reports (so never opened it) is refunded its value
 * from the payee's change tokens; a payee that never took them never gave it, and its change tokens
 * are refunded to it. A payer that is not heard from took the change offline (its log ended). A
 * payer refunded as never released whose payee then shows its release lied: the change goes back to the payee.
 *
 * One row per transaction, locked while a report is applied, so that concurrent reports settle it
 * once; a refund spends the tokens' serials, so a token is never both refunded and deposited.
 */
import { assert } from '../../core/assert.ts';
import { compareBytes, equalBytes, toHex } from '../../core/bytes.ts';
import { decodeCbor, encodeCbor } from '../../core/cbor.ts';
import { ApiProblem, bigintColumn, transfer, type IssuerServices, type TransactionHandle } from '../../issuer/plugin.ts';
import { NONCE_BYTES, settleReportCodec, type SettledOutcome, type SettleReport, type SettleReportBody } from './messages.ts';
import { OPERA_FLOAT_ACCOUNT } from './node-common.ts';
import { spendToken } from './node-deposit.ts';
import { recordFinding } from './node-findings.ts';
import type { Token } from './token.ts';

interface SettlementRow {
  payer_sn: Uint8Array;
  payee_sn: Uint8Array;
  amount: bigint;
  count: number;
  payer_device: string | null;
  payer_account: string | null;
  payer_report: Uint8Array | null;
  released: number | null;
  payee_report: Uint8Array | null;
  accepted: number | null;
  outcome: 'pending' | 'refunded' | 'paid';
  credited: bigint;
  change_amount: bigint;
  change_to: 'payer' | 'payee' | null;
  change_credited: bigint;
}

/** A report to apply: its ODW, the holder's account, the report as signed and its body. */
export interface Report {
  readonly device: string;
  readonly account: string;
  readonly report: SettleReport;
  readonly body: SettleReportBody;
}

/** How the bank settled the transaction for the reporting side, and what it credited that side's holder. */
export interface SideOutcome {
  readonly outcome: SettledOutcome;
  readonly credited: bigint;
}

/** What each side is told: the payer by the transaction's outcome, the payee by whether it took the tokens; each credited what went to its holder. */
function sideOutcome(row: Pick<SettlementRow, 'outcome' | 'credited' | 'accepted' | 'change_to' | 'change_credited'>, payer: boolean): SideOutcome {
  const change = row.change_to === (payer ? 'payer' : 'payee') ? row.change_credited : 0n;
  if (!payer) return { outcome: row.accepted === 1 ? 'paid' : 'abandoned', credited: change };
  return { outcome: row.outcome, credited: (row.outcome === 'refunded' ? row.credited : 0n) + change };
}

/** A report's body without its nonce: what two reports of one side must agree on. */
function substance(body: SettleReportBody): Uint8Array {
  return encodeCbor({ ...body, nonce: new Uint8Array(NONCE_BYTES) });
}

/**
 * Gives tokens' value to a holder's account from the float, each once (the payer's tokens, or the
 * change: `leg`): a token already deposited or refunded is not credited, and found. Answers what was credited.
 */
async function refund(tx: TransactionHandle, services: IssuerServices, txid: Uint8Array, payer: { device: string; account: string; tokens: readonly Token[] }, leg: 'refund' | 'change' = 'refund'): Promise<bigint> {
  const at = new Date(services.now()).toISOString();
  let credited = 0n;
  // In the order of their serials, so that concurrent spends lock rows in one order.
  for (const token of [...payer.tokens].sort((a, b) => compareBytes(a.body.serial, b.body.serial))) {
    const spent = await spendToken(tx, token, { state: 'refunded', device: payer.device, at, txid });
    if ('spent' in spent && spent.spent) credited += token.body.value;
    else await recordFinding(tx, services, { kind: 'refund-spent', serial: token.body.serial, txid, device: payer.device, first: 'first' in spent ? spent.first : null });
  }
  if (credited > 0n) {
    const moved = await transfer(tx, {
      idempotencyKey: `opera-${leg}:${toHex(txid)}`,
      debit: OPERA_FLOAT_ACCOUNT,
      credit: payer.account,
      amount: credited,
      kind: `opera-${leg}`,
      reference: { txid: toHex(txid), device: payer.device },
      currency: services.currency,
    });
    // Thrown: the tokens spent above roll back with the missing credit.
    if (!moved.ok) throw new ApiProblem(moved.code, `the refund cannot be credited: ${moved.message}`);
  }
  return credited;
}

/** A report as the bank stored it. */
function storedReport(stored: Uint8Array | null): SettleReportBody {
  assert(stored !== null, 'the report is stored');
  return settleReportCodec.decode(decodeCbor(new Uint8Array(stored)), 'stored report').body;
}

/**
 * Applies one side's report to its transaction and answers that side's outcome. A side's later
 * report (a fresh nonce, the same contents) is answered from the transaction as it stands.
 * @throws ApiProblem OPERA_REPORT_MISMATCH when the report disagrees with the other side's (the SNs, the amount, the count) or with this side's earlier one
 */
export async function applyReport(tx: TransactionHandle, services: IssuerServices, report: Report): Promise<SideOutcome> {
  const { body } = report;
  const payer = body.mode === 'send';
  const [payerSn, payeeSn] = payer ? [body.self, body.partner] : [body.partner, body.self];
  const at = new Date(services.now()).toISOString();
  await tx.query(
    'INSERT INTO opera_settlements (txid, payer_sn, payee_sn, amount, count, change_amount, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) ON CONFLICT (txid) DO NOTHING',
    [body.txid, payerSn, payeeSn, body.amount, body.count, body.change ?? 0n, at],
  );
  const { rows } = await tx.query<SettlementRow>(
    `SELECT payer_sn, payee_sn, amount, count, payer_device, payer_account, payer_report, released, payee_report, accepted, outcome, credited, change_amount, change_to, change_credited
     FROM opera_settlements WHERE txid = $1 FOR UPDATE`,
    [body.txid],
  );
  const found = rows[0];
  assert(found !== undefined, `settlement ${toHex(body.txid)} was inserted or held in this transaction`);
  const row: SettlementRow = { ...found, amount: bigintColumn(found, 'amount'), credited: bigintColumn(found, 'credited'), change_amount: bigintColumn(found, 'change_amount'), change_credited: bigintColumn(found, 'change_credited') };
  const txid = toHex(body.txid);
  if (!equalBytes(new Uint8Array(row.payer_sn), payerSn) || !equalBytes(new Uint8Array(row.payee_sn), payeeSn)) {
    throw new ApiProblem('OPERA_REPORT_MISMATCH', `transaction ${txid} was reported between other ODWs (payer ${toHex(new Uint8Array(row.payer_sn))}, payee ${toHex(new Uint8Array(row.payee_sn))})`, { field: 'sn' });
  }
  if (row.amount !== body.amount || row.count !== body.count || row.change_amount !== (body.change ?? 0n)) {
    throw new ApiProblem('OPERA_REPORT_MISMATCH', `transaction ${txid} was reported as ${row.count} tokens for ${row.amount} with change ${row.change_amount}, not ${body.count} for ${body.amount} with change ${body.change ?? 0n}`, { field: 'amount' });
  }
  const earlier = payer ? row.payer_report : row.payee_report;
  if (earlier !== null) {
    const first = settleReportCodec.decode(decodeCbor(new Uint8Array(earlier)), 'report');
    if (!equalBytes(substance(first.body), substance(body))) throw new ApiProblem('OPERA_REPORT_MISMATCH', `the ${payer ? 'payer' : 'payee'} of transaction ${txid} already reported it otherwise`, { field: 'report' });
    return sideOutcome(row, payer);
  }
  const stored = encodeCbor(report.report);
  let { outcome, credited, change_to: changeTo, change_credited: changeCredited } = row;
  /** The payee's change tokens to `to`'s holder. */
  const giveChange = async (to: 'payer' | 'payee', holder: { device: string; account: string }, tokens: readonly Token[]) => {
    changeCredited = await refund(tx, services, body.txid, { ...holder, tokens }, 'change');
    changeTo = to;
  };
  if (payer) {
    await tx.query('UPDATE opera_settlements SET payer_device = $2, payer_account = $3, payer_report = $4, released = $5 WHERE txid = $1', [body.txid, report.device, report.account, stored, body.released]);
    if (row.accepted === 1) {
      // The payee already showed this payer's release: a payer reporting it never released lies.
      if (body.released === 0) await recordFinding(tx, services, { kind: 'release-denied', txid: body.txid, device: report.device });
      // The payee released its change key; this payer, reporting, never opened the change: its value comes from the payee's change tokens.
      else if (row.change_amount > 0n && changeTo === null) await giveChange('payer', report, storedReport(row.payee_report).tokens);
    } else if (row.accepted === 0 || body.released === 0) {
      credited = await refund(tx, services, body.txid, { device: report.device, account: report.account, tokens: body.tokens });
      outcome = 'refunded';
    }
  } else {
    await tx.query('UPDATE opera_settlements SET payee_device = $2, payee_report = $3, accepted = $4 WHERE txid = $1', [body.txid, report.device, stored, body.accepted]);
    if (body.accepted === 1) {
      // It released its change key with the acceptance: a payer that reported released never opened the change.
      if (body.tokens.length > 0 && row.released === 1 && changeTo === null) await giveChange('payer', { device: row.payer_device as string, account: row.payer_account as string }, body.tokens);
      if (outcome === 'refunded') {
        // The payer reported it never released its token key and was refunded, yet its payee holds
        // the release the payer signed (checked before this): the payer's ODW lied. The payee is told
        // 'paid' but the payer's tokens are not credited here: the money already went back to the
        // payer, and the tokens the payee holds are spent, so its deposit of them is refused as a double spend.
        // The finding names the payer's device and revokes it.
        await recordFinding(tx, services, { kind: 'release-denied', txid: body.txid, device: row.payer_device as string });
        // The payer was refunded every token it paid (amount + change): the change the payee gave
        // goes back to the payee, so a lying payer that opened it cannot also deposit it.
        if (body.tokens.length > 0 && changeTo === null) await giveChange('payee', report, body.tokens);
      } else outcome = 'paid';
    } else {
      // It never took the tokens, so never released its change key: its change tokens go back to its holder.
      if (body.tokens.length > 0 && changeTo === null) await giveChange('payee', report, body.tokens);
      if (row.payer_report !== null && outcome === 'pending') {
        // The payer released and waited; its payee will never take the tokens: they go back to the payer.
        credited = await refund(tx, services, body.txid, { device: row.payer_device as string, account: row.payer_account as string, tokens: storedReport(row.payer_report).tokens });
        outcome = 'refunded';
      }
    }
  }
  await tx.query('UPDATE opera_settlements SET outcome = $2, credited = $3, change_to = $4, change_credited = $5, updated_at = $6 WHERE txid = $1', [body.txid, outcome, credited, changeTo, changeCredited, at]);
  return sideOutcome({ outcome, credited, accepted: payer ? row.accepted : body.accepted, change_to: changeTo, change_credited: changeCredited }, payer);
}
