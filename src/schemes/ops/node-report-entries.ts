/**
 * How a sync report's entries, and a claim's payment, are recorded under `(sender, index)`:
 * ingestPayment for one payment; recordPaid and recordCollected for a whole report, set-based, with
 * collectEntry as the one-at-a-time path a report's collects fall back to when anything is unusual.
 * What they find goes back to node-settlement.ts's reconciliation, which opens the cases.
 */
import { toHex } from '../../core/bytes.ts';
import { bigintColumn, type TransactionHandle } from '../../issuer/plugin.ts';
import type { CollectedEntry, PaidEntry } from './messages.ts';
import type { FraudFinding, IngestOutcome, SeenPayment } from './node-settlement.ts';

/** A payment's row, as recording reads it back. */
interface PaymentRow {
  digest: Uint8Array;
  amount: bigint;
  receiver_key_id: string;
  sender_reported: boolean;
  settled: string | null;
}

function equalDigest(a: Uint8Array, b: Uint8Array): boolean {
  return toHex(new Uint8Array(a)) === toHex(b);
}

/**
 * Records a payment under `(sender, index)`: new, already known with the same digest, or a
 * conflict with a different payment under the same pair (proof of a cloned or broken sender).
 */
export async function ingestPayment(tx: TransactionHandle, p: SeenPayment, extra: { payment?: Uint8Array | undefined } = {}): Promise<{ outcome: IngestOutcome; row: PaymentRow | null }> {
  const inserted = await tx.query(
    `INSERT INTO ops_payments (sender_key_id, index, digest, amount, receiver_key_id, payment)
     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING`,
    [p.sender, p.index, p.digest, p.amount, p.receiver, extra.payment ?? null],
  );
  const { rows } = await tx.query<PaymentRow>(
    'SELECT digest, amount, receiver_key_id, sender_reported, settled FROM ops_payments WHERE sender_key_id = $1 AND index = $2 FOR UPDATE',
    [p.sender, p.index],
  );
  const row = rows[0] ?? null;
  if (inserted.rowCount === 1) return { outcome: 'new', row };
  if (row === null || !equalDigest(row.digest, p.digest)) return { outcome: 'conflict', row };
  if (extra.payment !== undefined) await tx.query('UPDATE ops_payments SET payment = coalesce(payment, $3) WHERE sender_key_id = $1 AND index = $2', [p.sender, p.index, extra.payment]);
  return { outcome: 'known', row };
}

/**
 * Records the payments a device reports it made, as one statement: each new (device, index) is
 * recorded as reported by its sender, and a known one with the same digest is marked reported if it
 * was not. A known one under another digest is a clone (two payments under one index), found
 * after the statement from the rows it left alone. Answers the findings, in the report's order, and
 * what the report adds to the device's outflow (the payments it had not reported before).
 */
// Rows are written and locked in key order, so that two reports naming the same payments (a
// payer's and its payee's, synced at once) queue rather than deadlock.
export async function recordPaid(tx: TransactionHandle, device: string, entries: readonly PaidEntry[], receiverOf: (entry: PaidEntry) => string): Promise<{ findings: FraudFinding[]; added: bigint }> {
  if (entries.length === 0) return { findings: [], added: 0n };
  const marked = await tx.query<{ index: bigint }>(
    `INSERT INTO ops_payments AS p (sender_key_id, index, digest, amount, receiver_key_id, sender_reported)
     SELECT $1, i, decode(d, 'hex'), a, r, true FROM unnest($2::bigint[], $3::text[], $4::bigint[], $5::text[]) AS x(i, d, a, r) ORDER BY i
     ON CONFLICT (sender_key_id, index) DO UPDATE SET sender_reported = true WHERE p.digest = EXCLUDED.digest AND NOT p.sender_reported
     RETURNING p.index`,
    [device, entries.map((e) => e.index.toString()), entries.map((e) => toHex(e.digest)), entries.map((e) => e.amount.toString()), entries.map(receiverOf)],
  );
  const reported = new Set(marked.rows.map((r) => bigintColumn(r, 'index')));
  let added = 0n;
  for (const e of entries) if (reported.has(e.index)) added += e.amount;
  const rest = entries.filter((e) => !reported.has(e.index));
  if (rest.length === 0) return { findings: [], added };
  // Left alone: reported already (the same digest), or another payment under the index.
  const known = await tx.query<{ index: bigint; digest: Uint8Array }>('SELECT index, digest FROM ops_payments WHERE sender_key_id = $1 AND index = ANY($2::bigint[])', [
    device,
    rest.map((e) => e.index.toString()),
  ]);
  const digests = new Map(known.rows.map((r) => [bigintColumn(r, 'index'), new Uint8Array(r.digest)]));
  const findings: FraudFinding[] = [];
  for (const e of rest) {
    const digest = digests.get(e.index);
    if (digest !== undefined && equalDigest(digest, e.digest)) continue;
    findings.push({ device, kind: 'clone', evidence: { index: e.index.toString(), reported: toHex(e.digest), known: toHex(digest ?? new Uint8Array()) } });
  }
  return { findings, added };
}

/**
 * Records the collects a device reports. The usual report (new collects of payments the node holds
 * under the same digest for this receiver, or does not hold yet, from senders that are not retired)
 * is recorded set-based; anything else (a collect reported again, a payment known under another
 * digest or for another receiver, a retired sender's escrow) is undone to a savepoint and recorded
 * one collect at a time, as collectEntry judges it.
 */
export async function recordCollected(tx: TransactionHandle, device: string, entries: readonly CollectedEntry[]): Promise<{ findings: FraudFinding[]; added: bigint }> {
  if (entries.length === 0) return { findings: [], added: 0n };
  const senders = entries.map((e) => toHex(e.sender));
  const indices = entries.map((e) => e.index.toString());
  const digests = entries.map((e) => toHex(e.digest));
  const amounts = entries.map((e) => e.amount.toString());
  await tx.query('SAVEPOINT ops_collects_set');
  const inserted = await tx.query(
    `INSERT INTO ops_collects (device_key_id, seq, sender_key_id, index, digest, amount)
     SELECT $1, q, s, i, decode(d, 'hex'), a FROM unnest($2::bigint[], $3::text[], $4::bigint[], $5::text[], $6::bigint[]) AS x(q, s, i, d, a)
     ON CONFLICT DO NOTHING`,
    [device, entries.map((e) => e.seq.toString()), senders, indices, digests, amounts],
  );
  let usual = inserted.rowCount === entries.length;
  if (usual) {
    await tx.query(
      `INSERT INTO ops_payments (sender_key_id, index, digest, amount, receiver_key_id)
       SELECT s, i, decode(d, 'hex'), a, $1 FROM unnest($2::text[], $3::bigint[], $4::text[], $5::bigint[]) AS x(s, i, d, a) ORDER BY s, i
       ON CONFLICT DO NOTHING`,
      [device, senders, indices, digests, amounts],
    );
    // Every payment must now be held under the reported digest, for this device, from a sender with no escrow open.
    const held = await tx.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM (
         SELECT 1 FROM ops_payments p JOIN unnest($2::text[], $3::bigint[], $4::text[]) AS x(s, i, d) ON p.sender_key_id = x.s AND p.index = x.i
         WHERE p.digest = decode(x.d, 'hex') AND p.receiver_key_id = $1
           AND NOT EXISTS (SELECT 1 FROM ops_devices o WHERE o.device_key_id = p.sender_key_id AND o.retired_at IS NOT NULL AND NOT o.released)
         ORDER BY p.sender_key_id, p.index FOR UPDATE OF p) AS ok`,
      [device, senders, indices, digests],
    );
    usual = Number(held.rows[0]?.n) === entries.length;
  }
  if (!usual) {
    await tx.query('ROLLBACK TO SAVEPOINT ops_collects_set');
    await tx.query('RELEASE SAVEPOINT ops_collects_set');
    const findings: FraudFinding[] = [];
    let added = 0n;
    for (const entry of entries) {
      const found = await collectEntry(tx, device, entry);
      if (found.finding !== null) findings.push(found.finding);
      if (found.added) added += entry.amount;
    }
    return { findings, added };
  }
  await tx.query(
    `UPDATE ops_payments p SET settled = 'collected' FROM unnest($1::text[], $2::bigint[]) AS x(s, i) WHERE p.sender_key_id = x.s AND p.index = x.i AND p.settled IS NULL`,
    [senders, indices],
  );
  await tx.query('RELEASE SAVEPOINT ops_collects_set');
  return { findings: [], added: entries.reduce((sum, e) => sum + e.amount, 0n) };
}

/**
 * Records one collect of `device`. A payment the node knows under another digest is a clone of its
 * sender; a payment made to someone else, or the same payment collected twice, is a broken TA.
 * `added` is true when the collect is new and counts in the device's inflow.
 */
async function collectEntry(tx: TransactionHandle, device: string, entry: CollectedEntry): Promise<{ finding: FraudFinding | null; added: boolean }> {
  const sender = toHex(entry.sender);
  const existing = await tx.query<{ seq: bigint }>('SELECT seq FROM ops_collects WHERE device_key_id = $1 AND sender_key_id = $2 AND index = $3', [device, sender, entry.index]);
  const held = existing.rows[0];
  if (held !== undefined) {
    if (bigintColumn(held, 'seq') === entry.seq) return { finding: null, added: false };
    return { finding: { device, kind: 'report-inconsistent', evidence: { reason: 'collected the same payment twice', sender, index: entry.index.toString() } }, added: false };
  }
  // The collect happened in the TA whatever the node knows, so it counts in the device's inflow.
  await tx.query('INSERT INTO ops_collects (device_key_id, seq, sender_key_id, index, digest, amount) VALUES ($1, $2, $3, $4, $5, $6)', [
    device,
    entry.seq,
    sender,
    entry.index,
    entry.digest,
    entry.amount,
  ]);
  const seen = await ingestPayment(tx, { sender, index: entry.index, digest: entry.digest, amount: entry.amount, receiver: device });
  if (seen.outcome === 'conflict') {
    const known = toHex(new Uint8Array(seen.row?.digest ?? new Uint8Array()));
    return { finding: { device: sender, kind: 'clone', evidence: { index: entry.index.toString(), collectedBy: device, collected: toHex(entry.digest), known } }, added: true };
  }
  if (seen.row !== null && seen.row.receiver_key_id !== device) {
    return { finding: { device, kind: 'report-inconsistent', evidence: { reason: 'collected a payment made to another receiver', sender, index: entry.index.toString() } }, added: true };
  }
  const settled = await tx.query(`UPDATE ops_payments SET settled = 'collected' WHERE sender_key_id = $1 AND index = $2 AND settled IS NULL`, [sender, entry.index]);
  // A retired sender's payment that a payee TA took in offline comes out of the sender's escrow.
  if (settled.rowCount === 1) await tx.query('UPDATE ops_devices SET escrow = escrow - $2 WHERE device_key_id = $1 AND retired_at IS NOT NULL AND NOT released', [sender, entry.amount]);
  return { finding: null, added: true };
}
