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

/** What each side is told: the payer by the transaction's outcome, the payee by whether it took the tokens. */
function sideOutcome(row: Pick<SettlementRow, 'outcome' | 'credited' | 'accepted'>, payer: boolean): SideOutcome {
  if (!payer) return { outcome: row.accepted === 1 ? 'paid' : 'abandoned', credited: 0n };
  return { outcome: row.outcome, credited: row.outcome === 'refunded' ? row.credited : 0n };
}

/** A report's body without its nonce: what two reports of one side must agree on. */
function substance(body: SettleReportBody): Uint8Array {
  return encodeCbor({ ...body, nonce: new Uint8Array(NONCE_BYTES) });
}

/**
 * Gives the payer's tokens back to its holder's account from the float, each once: a token already
 * deposited or refunded is not credited, and found. Answers what was credited.
 */
async function refund(tx: TransactionHandle, services: IssuerServices, txid: Uint8Array, payer: { device: string; account: string; tokens: readonly Token[] }): Promise<bigint> {
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
      idempotencyKey: `opera-refund:${toHex(txid)}`,
      debit: OPERA_FLOAT_ACCOUNT,
      credit: payer.account,
      amount: credited,
      kind: 'opera-refund',
      reference: { txid: toHex(txid), device: payer.device },
      currency: services.currency,
    });
    // Thrown: the tokens spent above roll back with the missing credit.
    if (!moved.ok) throw new ApiProblem(moved.code, `the refund cannot be credited: ${moved.message}`);
  }
  return credited;
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
    'INSERT INTO opera_settlements (txid, payer_sn, payee_sn, amount, count, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (txid) DO NOTHING',
    [body.txid, payerSn, payeeSn, body.amount, body.count, at],
  );
  const { rows } = await tx.query<SettlementRow>(
    `SELECT payer_sn, payee_sn, amount, count, payer_device, payer_account, payer_report, released, payee_report, accepted, outcome, credited
     FROM opera_settlements WHERE txid = $1 FOR UPDATE`,
    [body.txid],
  );
  const found = rows[0];
  assert(found !== undefined, `settlement ${toHex(body.txid)} was inserted or held in this transaction`);
  const row: SettlementRow = { ...found, amount: bigintColumn(found, 'amount'), credited: bigintColumn(found, 'credited') };
  const txid = toHex(body.txid);
  if (!equalBytes(new Uint8Array(row.payer_sn), payerSn) || !equalBytes(new Uint8Array(row.payee_sn), payeeSn)) {
    throw new ApiProblem('OPERA_REPORT_MISMATCH', `transaction ${txid} was reported between other ODWs (payer ${toHex(new Uint8Array(row.payer_sn))}, payee ${toHex(new Uint8Array(row.payee_sn))})`, { field: 'sn' });
  }
  if (row.amount !== body.amount || row.count !== body.count) {
    throw new ApiProblem('OPERA_REPORT_MISMATCH', `transaction ${txid} was reported as ${row.count} tokens worth ${row.amount}, not ${body.count} worth ${body.amount}`, { field: 'amount' });
  }
  const earlier = payer ? row.payer_report : row.payee_report;
  if (earlier !== null) {
    const first = settleReportCodec.decode(decodeCbor(new Uint8Array(earlier)), 'report');
    if (!equalBytes(substance(first.body), substance(body))) throw new ApiProblem('OPERA_REPORT_MISMATCH', `the ${payer ? 'payer' : 'payee'} of transaction ${txid} already reported it otherwise`, { field: 'report' });
    return sideOutcome(row, payer);
  }
  const stored = encodeCbor(report.report);
  let { outcome, credited } = row;
  if (payer) {
    await tx.query('UPDATE opera_settlements SET payer_device = $2, payer_account = $3, payer_report = $4, released = $5 WHERE txid = $1', [body.txid, report.device, report.account, stored, body.released]);
    if (row.accepted === 1) {
      // The payee already showed this payer's release: a payer reporting it never released lies.
      if (body.released === 0) await recordFinding(tx, services, { kind: 'release-denied', txid: body.txid, device: report.device });
    } else if (row.accepted === 0 || body.released === 0) {
      credited = await refund(tx, services, body.txid, { device: report.device, account: report.account, tokens: body.tokens });
      outcome = 'refunded';
    }
  } else {
    await tx.query('UPDATE opera_settlements SET payee_device = $2, payee_report = $3, accepted = $4 WHERE txid = $1', [body.txid, report.device, stored, body.accepted]);
    if (body.accepted === 1) {
      if (outcome === 'refunded') {
        // The payer reported it never released its token key and was refunded, yet its payee holds
        // the release the payer signed (checked before this): the payer's ODW lied. The payee is told
        // 'paid' but nothing is credited here: the money already went back to the payer, and the
        // tokens the payee holds are spent, so its deposit of them is refused as a double spend.
        // The finding names the payer's device and revokes it.
        await recordFinding(tx, services, { kind: 'release-denied', txid: body.txid, device: row.payer_device as string });
      } else outcome = 'paid';
    } else if (row.payer_report !== null && outcome === 'pending') {
      // The payer released and waited; its payee will never take the tokens: they go back to the payer.
      const payerReport = settleReportCodec.decode(decodeCbor(new Uint8Array(row.payer_report)), 'payer report');
      credited = await refund(tx, services, body.txid, { device: row.payer_device as string, account: row.payer_account as string, tokens: payerReport.body.tokens });
      outcome = 'refunded';
    }
  }
  await tx.query('UPDATE opera_settlements SET outcome = $2, credited = $3, updated_at = $4 WHERE txid = $1', [body.txid, outcome, credited, at]);
  return sideOutcome({ outcome, credited, accepted: payer ? row.accepted : body.accepted }, payer);
}
