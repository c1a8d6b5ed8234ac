/**
 * The payments the node keeps as evidence, read back whole: a payment recorded with its bytes is
 * answered as recorded; one recorded by its signature alone (a bulk claim whose payment carried
 * exactly the registered certificates of its sender and receiver, migration 105) is rebuilt from
 * those certificates and checked against the digest recorded with it.
 */
import { equalBytes } from '../../core/bytes.ts';
import { TallyError } from '../../core/errors.ts';
import type { Queryable } from '../../issuer/plugin.ts';
import { decodePayment, paymentDigest, type Payment } from './messages.ts';

/**
 * The payment recorded under `(sender, index)`, or null when the node holds only its digest (a
 * payment it heard of from a report, never whole).
 * @throws TallyError ASSERTION_FAILED when a rebuilt payment's digest is not the recorded one
 */
export async function storedPayment(q: Queryable, sender: string, index: bigint): Promise<Payment | null> {
  const { rows } = await q.query<{ digest: Uint8Array; amount: bigint; payment: Uint8Array | null; signature: Uint8Array | null; sender_certificate: Uint8Array | null; receiver_certificate: Uint8Array | null }>(
    `SELECT p.digest, p.amount, p.payment, p.signature,
            (SELECT certificate FROM devices WHERE key_id = p.sender_key_id) AS sender_certificate,
            coalesce((SELECT certificate FROM users WHERE key_id = p.receiver_key_id), (SELECT certificate FROM devices WHERE key_id = p.receiver_key_id)) AS receiver_certificate
     FROM ops_payments p WHERE p.sender_key_id = $1 AND p.index = $2`,
    [sender, index],
  );
  const row = rows[0];
  if (row === undefined) return null;
  if (row.payment !== null) return decodePayment(new Uint8Array(row.payment));
  if (row.signature === null || row.sender_certificate === null || row.receiver_certificate === null) return null;
  const payment: Payment = {
    amount: BigInt(row.amount),
    sender: new Uint8Array(row.sender_certificate),
    receiver: new Uint8Array(row.receiver_certificate),
    index,
    signature: new Uint8Array(row.signature),
  };
  if (!equalBytes(paymentDigest(payment), new Uint8Array(row.digest))) {
    throw new TallyError('ASSERTION_FAILED', `payment ${index} of ${sender}: rebuilt from the registered certificates, its digest is not the recorded one`, {});
  }
  return payment;
}
