/**
 * Settlement of OPS on the node: every payment the node hears of (from its sender's sync report, a
 * receiver's report, or a claim) is recorded under `(sender TA, P.index)`, and each device's
 * reports are reconciled against what the node knows of its flow. Evidence that a secure element
 * is broken opens a fraud case naming the device and revokes its certificate:
 * - `clone`: two different payments with the same `(sender, index)`;
 * - `rollback`: a report or a withdrawal whose counters went back (an old or cloned state): below an
 *   earlier statement of the device, or below the index of a payment the node already holds from it;
 * - `overdraft`: more paid out and withdrawn than ever deposited and collected;
 * - `offline-limit`: a payment index past the last report by more than the certificate allows;
 * - `report-inconsistent`: a report whose balance or entries cannot come from a genuine TA.
 * Runs inside the caller's transaction; the device's row is locked first, so reports of one
 * device are reconciled one at a time. Recording the entries is node-report-entries.ts's.
 */
import type { Signer } from '../../core/crypto/suite.ts';
import { bigintColumn, revokeCertificate, type TransactionHandle } from '../../issuer/plugin.ts';
import type { PaidEntry, SyncReportBody } from './messages.ts';
import { recordCollected, recordPaid } from './node-report-entries.ts';

/** The kinds of fraud settlement proves. */
export type FraudKind = 'clone' | 'overdraft' | 'offline-limit' | 'rollback' | 'report-inconsistent';

/** A fraud case opened by this reconciliation. */
export interface FraudFinding {
  readonly device: string;
  readonly kind: FraudKind;
  readonly evidence: Record<string, string | number | boolean>;
}

/** A payment as the node hears of it. */
export interface SeenPayment {
  readonly sender: string;
  readonly index: bigint;
  readonly digest: Uint8Array;
  readonly amount: bigint;
  readonly receiver: string;
}

/** What recording a payment found. */
export type IngestOutcome = 'new' | 'known' | 'conflict';

/** The node's view of one OPS device, locked for the transaction. */
export interface OpsDeviceRow {
  readonly i: bigint;
  readonly reportedI: bigint | null;
  readonly reportedJ: bigint;
  readonly reportedCollectSeq: bigint;
  readonly paidTotal: bigint;
  readonly collectedTotal: bigint;
  readonly honorUpTo: bigint | null;
  /** The highest counters the device signed in a statement the node accepted (report or withdrawal). */
  readonly signedJ: bigint;
  readonly signedCollectSeq: bigint;
}

/** Locks (creating if needed) the node's row of an OPS device. */
export async function lockOpsDevice(tx: TransactionHandle, device: string): Promise<OpsDeviceRow> {
  await tx.query('INSERT INTO ops_devices (device_key_id) VALUES ($1) ON CONFLICT DO NOTHING', [device]);
  const { rows } = await tx.query<Record<string, unknown>>(
    `SELECT i, reported_i, reported_j, reported_collect_seq, paid_total, collected_total, honor_up_to, signed_j, signed_collect_seq
     FROM ops_devices WHERE device_key_id = $1 FOR UPDATE`,
    [device],
  );
  const row = rows[0] as Record<string, unknown>;
  return {
    i: bigintColumn(row, 'i'),
    reportedI: row['reported_i'] === null ? null : bigintColumn(row, 'reported_i'),
    reportedJ: bigintColumn(row, 'reported_j'),
    reportedCollectSeq: bigintColumn(row, 'reported_collect_seq'),
    paidTotal: bigintColumn(row, 'paid_total'),
    collectedTotal: bigintColumn(row, 'collected_total'),
    honorUpTo: row['honor_up_to'] === null ? null : bigintColumn(row, 'honor_up_to'),
    signedJ: bigintColumn(row, 'signed_j'),
    signedCollectSeq: bigintColumn(row, 'signed_collect_seq'),
  };
}

/**
 * Locks (creating where needed) the rows of these devices that are registered here, in key order:
 * a transaction that will lock several devices' rows (a sync checks each sender it collected from)
 * takes them all first, in one order, so that it queues behind another rather than deadlocking with
 * it over the payments both record.
 */
export async function lockOpsDevices(tx: TransactionHandle, devices: readonly string[]): Promise<void> {
  const sorted = [...new Set(devices)].sort();
  if (sorted.length === 0) return;
  await tx.query(
    'INSERT INTO ops_devices (device_key_id) SELECT d FROM unnest($1::text[]) AS d WHERE EXISTS (SELECT 1 FROM devices WHERE key_id = d) ORDER BY d ON CONFLICT DO NOTHING',
    [sorted],
  );
  await tx.query('SELECT 1 FROM ops_devices WHERE device_key_id = ANY($1::text[]) ORDER BY device_key_id FOR UPDATE', [sorted]);
}

/** The device's certificate serial, for revocation. */
async function deviceSerial(tx: TransactionHandle, device: string): Promise<Uint8Array | null> {
  const { rows } = await tx.query<{ serial: Uint8Array }>('SELECT serial FROM devices WHERE key_id = $1', [device]);
  return rows[0] === undefined ? null : new Uint8Array(rows[0].serial);
}

/**
 * Opens a fraud case (once per device and kind), freezes the device at its last reported index and
 * revokes its certificate. Answers the finding, or null when that case was already open.
 */
export async function openFraudCase(tx: TransactionHandle, issuer: Signer, now: number, finding: FraudFinding): Promise<FraudFinding | null> {
  const opened = await tx.query(
    `INSERT INTO ops_fraud_cases (device_key_id, kind, evidence) VALUES ($1, $2, $3::text::jsonb) ON CONFLICT DO NOTHING`,
    [finding.device, finding.kind, JSON.stringify(finding.evidence)],
  );
  if (opened.rowCount === 0) return null;
  // A device of another bank (two tiers: a clone's payments collected here) has no row here: the case
  // names it, its own bank revokes it.
  await tx.query('INSERT INTO ops_devices (device_key_id) SELECT $1 WHERE EXISTS (SELECT 1 FROM devices WHERE key_id = $1) ON CONFLICT DO NOTHING', [finding.device]);
  // Payments up to the device's last own report are accounted for; the ones after it are not honoured.
  await tx.query('UPDATE ops_devices SET honor_up_to = coalesce(honor_up_to, reported_j) WHERE device_key_id = $1', [finding.device]);
  const serial = await deviceSerial(tx, finding.device);
  if (serial !== null) await revokeCertificate(tx, issuer, { serial, subjectKeyId: finding.device, role: 'device', reason: `ops fraud: ${finding.kind}` }, now);
  return finding;
}

/** The highest payment index of `device` the node has seen from anyone. */
async function highestIndex(tx: TransactionHandle, device: string): Promise<bigint | null> {
  const { rows } = await tx.query<{ n: bigint | null }>(
    `SELECT (SELECT max(index) FROM ops_payments WHERE sender_key_id = $1) AS n`,
    [device],
  );
  return rows[0]?.n === null || rows[0] === undefined ? null : bigintColumn(rows[0], 'n');
}

/**
 * Checks that no payment of `device` has an index past its last report by more than `limit`.
 * A genuine TA refuses to pay that far ahead of a sync.
 */
export async function checkOfflineLimit(tx: TransactionHandle, device: string, reportedJ: bigint, limit: number): Promise<FraudFinding | null> {
  const highest = await highestIndex(tx, device);
  if (highest === null || highest <= reportedJ + BigInt(limit)) return null;
  return { device, kind: 'offline-limit', evidence: { highestIndex: highest.toString(), lastReportedIndex: reportedJ.toString(), limit } };
}

/** The counters a device signed into a statement (a sync report, a withdraw confirmation). */
export interface SignedCounters {
  readonly j: bigint;
  readonly collectSeq: bigint;
}

/**
 * Holds a statement the device just signed against everything the node knows of it: a genuine TA's
 * counters never go below those of an earlier statement, and its payment counter is never below the
 * index of a payment it made. A statement that breaks either comes from a restored or cloned state:
 * the `rollback` finding, with what contradicts it as evidence.
 */
export async function checkSignedCounters(tx: TransactionHandle, device: string, row: OpsDeviceRow, signed: SignedCounters, statement: 'report' | 'withdrawal'): Promise<FraudFinding | null> {
  const highest = await highestIndex(tx, device);
  const earlierJ = row.signedJ > row.reportedJ ? row.signedJ : row.reportedJ;
  const earlierSeq = row.signedCollectSeq > row.reportedCollectSeq ? row.signedCollectSeq : row.reportedCollectSeq;
  const reasons: string[] = [];
  if (signed.j < earlierJ) reasons.push(`payment counter ${signed.j} is below ${earlierJ}, signed earlier`);
  if (highest !== null && signed.j < highest) reasons.push(`payment counter ${signed.j} is below payment ${highest} the node already holds from this device`);
  if (signed.collectSeq < earlierSeq) reasons.push(`collect counter ${signed.collectSeq} is below ${earlierSeq}, signed earlier`);
  if (reasons.length === 0) return null;
  return {
    device,
    kind: 'rollback',
    evidence: {
      statement,
      reason: reasons.join('; '),
      signedJ: signed.j.toString(),
      signedCollectSeq: signed.collectSeq.toString(),
      earlierJ: earlierJ.toString(),
      earlierCollectSeq: earlierSeq.toString(),
      highestKnownIndex: highest === null ? '0' : highest.toString(),
    },
  };
}

/** Records counters a device signed in an accepted statement (they only grow). */
export async function recordSignedCounters(tx: TransactionHandle, device: string, signed: SignedCounters): Promise<void> {
  await tx.query('UPDATE ops_devices SET signed_j = greatest(signed_j, $2), signed_collect_seq = greatest(signed_collect_seq, $3) WHERE device_key_id = $1', [device, signed.j, signed.collectSeq]);
}

/** What reconciling one report found and did. */
export interface ReconcileResult {
  readonly findings: FraudFinding[];
  /** The ack's bounds: everything up to these was recorded. */
  readonly paidUpTo: bigint;
  readonly collectedUpTo: bigint;
}

function contiguous(values: readonly bigint[], last: bigint): boolean {
  return values.every((v, k) => v === last - BigInt(values.length - 1 - k));
}

/**
 * Reconciles a verified sync report of `device` (whose row the caller locked as `row`): records its
 * payments and collects, checks its counters against earlier reports, its balance against its flow,
 * and its payment indices against its limit.
 */
export async function reconcileReport(
  tx: TransactionHandle,
  options: { device: string; row: OpsDeviceRow; report: SyncReportBody; offlinePaymentsMax: number; receiverOf: (entry: PaidEntry) => string },
): Promise<ReconcileResult> {
  const { device, row, report } = options;
  const findings: FraudFinding[] = [];

  // Counters only move forward in a genuine TA; going back means an old or cloned state reports.
  if (report.j < row.reportedJ || report.collectSeq < row.reportedCollectSeq || (row.reportedI !== null && report.i < row.reportedI)) {
    findings.push({
      device,
      kind: 'rollback',
      evidence: { reportedJ: report.j.toString(), previousJ: row.reportedJ.toString(), reportedCollectSeq: report.collectSeq.toString(), previousCollectSeq: row.reportedCollectSeq.toString() },
    });
    return { findings, paidUpTo: report.j, collectedUpTo: report.collectSeq };
  }
  // Nor below a withdrawal it signed, or a payment it made that the node already holds (claimed or collected).
  const behind = await checkSignedCounters(tx, device, row, report, 'report');
  if (behind !== null) {
    findings.push(behind);
    return { findings, paidUpTo: report.j, collectedUpTo: report.collectSeq };
  }
  // The TA keeps every entry since its last applied ack, so the entries end at its counters, without gaps,
  // and start no later than right after what the node already has.
  const paidIndices = report.paid.map((e) => e.index);
  const seqs = report.collected.map((e) => e.seq);
  const paidOk = contiguous(paidIndices, report.j) && (paidIndices.length === 0 ? report.j === row.reportedJ || report.j === 0n : (paidIndices[0] as bigint) <= row.reportedJ + 1n);
  const collectedOk =
    contiguous(seqs, report.collectSeq) && (seqs.length === 0 ? report.collectSeq === row.reportedCollectSeq || report.collectSeq === 0n : (seqs[0] as bigint) <= row.reportedCollectSeq + 1n);
  if (!paidOk || !collectedOk) {
    findings.push({ device, kind: 'report-inconsistent', evidence: { reason: !paidOk ? 'payment indices do not run without gaps up to j' : 'collect numbers do not run without gaps' } });
    return { findings, paidUpTo: row.reportedJ, collectedUpTo: row.reportedCollectSeq };
  }

  const paid = await recordPaid(tx, device, report.paid, options.receiverOf);
  findings.push(...paid.findings);
  const paidTotal = row.paidTotal + paid.added;

  const collected = await recordCollected(tx, device, report.collected);
  findings.push(...collected.findings);
  const collectedTotal = row.collectedTotal + collected.added;

  // The balance of a genuine TA is exactly its inflow minus its outflow.
  if (report.i <= row.i) {
    const { rows } = await tx.query<{ deposited: bigint; withdrawn: bigint }>(
      `SELECT coalesce(sum(amount) FILTER (WHERE kind = 'deposit'), 0)::numeric(20, 0) AS deposited,
              coalesce(sum(amount) FILTER (WHERE kind = 'withdraw'), 0)::numeric(20, 0) AS withdrawn
       FROM ops_counter_ops WHERE device_key_id = $1 AND i <= $2`,
      [device, report.i],
    );
    const flow = rows[0] as { deposited: bigint; withdrawn: bigint };
    const deposited = bigintColumn(flow, 'deposited');
    const withdrawn = bigintColumn(flow, 'withdrawn');
    const expected = deposited + collectedTotal - paidTotal - withdrawn;
    if (expected !== report.balance) {
      findings.push({
        device,
        kind: expected < 0n ? 'overdraft' : 'report-inconsistent',
        evidence: { deposited: deposited.toString(), collected: collectedTotal.toString(), paid: paidTotal.toString(), withdrawn: withdrawn.toString(), reportedBalance: report.balance.toString() },
      });
    }
  }

  const late = await checkOfflineLimit(tx, device, report.j, options.offlinePaymentsMax);
  if (late !== null) findings.push(late);

  await tx.query(
    `UPDATE ops_devices SET reported_i = $2, reported_j = $3, reported_collect_seq = $4, reported_balance = $5,
       paid_total = $6, collected_total = $7, last_sync_at = now() WHERE device_key_id = $1`,
    [device, report.i, report.j, report.collectSeq, report.balance, paidTotal, collectedTotal],
  );
  await recordSignedCounters(tx, device, report);
  return { findings, paidUpTo: report.j, collectedUpTo: report.collectSeq };
}

export { ingestPayment } from './node-report-entries.ts';
export { knownHolding, opsHoldings } from './node-holdings.ts';
export { retirementOf, retirementValue, type RetirementRow } from './node-escrow.ts';
