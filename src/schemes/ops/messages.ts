/**
 * The messages of OPS (Christodorescu et al., "Towards a Two-Tier Hierarchical Infrastructure: An
 * Offline Payment System for CBDC"), with codecs and the domain tags their signatures cover:
 * - the deposit confirmation `[T.vk, x, i]` signed by the server (Figure 5);
 * - the withdraw confirmation `[x, i]` signed by the trusted app (Figure 6), to which Tally adds the
 *   TA's payment and collect counters `j` and `collectSeq` at signing time, so that the node can hold
 *   every withdrawal against the payments it already knows of that device (a restored, older state
 *   signs lower counters than payments it made before);
 * - the payment request `[RequestPayment, x, receiver]` and the payment `P` with
 *   `P.sig = Sign([P.amount, P.sender, P.receiver, P.index], T.sk)` (Figure 7);
 * - what Tally adds for settlement: the device's signed sync report and the node's signed ack.
 * Certificates travel as their encoded bytes, so a signature covers exactly what was sent.
 */
import { AMOUNT_MINOR_MAX } from '../../core/amount.ts';
import { array, bigint, bytes, optional, record, text, uint, type Codec, type Infer } from '../../core/codec.ts';
import { sha256 } from '../../core/crypto/hash.ts';
import { decodeCbor, encodeCbor } from '../../core/cbor.ts';
import { checkSize } from '../../core/errors.ts';
import { publicKeyCodec, SUITE_NAMES, SUITE_SIZES } from '../../core/crypto/suite.ts';
import { CERTIFICATE_BYTES_MAX } from '../../pki/certificate.ts';
import { KEY_ID_BYTES } from '../../pki/key-id.ts';

/** The scheme's name: path segment of its routes and the `scheme` extension of its device certificates. */
export const OPS_SCHEME = 'ops';

/** Domain tag of the server's deposit confirmation (Figure 5). */
export const DEPOSIT_TAG = 'tally/ops/deposit/v1';
/** Domain tag of the trusted app's withdraw confirmation (Figure 6). */
export const WITHDRAW_TAG = 'tally/ops/withdraw/v2';
/** Domain tag of a payment (Figure 7). */
export const PAYMENT_TAG = 'tally/ops/payment/v1';
/** Domain tag of the trusted app's signed balance (Get-Balance, Figure 4). */
export const BALANCE_TAG = 'tally/ops/balance/v1';
/** Domain tag of a device's sync report. */
export const SYNC_REPORT_TAG = 'tally/ops/sync-report/v1';
/** Domain tag of the node's acknowledgement of a sync report. */
export const SYNC_ACK_TAG = 'tally/ops/sync-ack/v1';

/** Largest counter value (`i`, `j`, collect sequence). */
export const COUNTER_MAX = 2n ** 53n - 1n;
/**
 * Most payments, and most collects, one sync report carries; a TA holds no more between syncs.
 * Both lists full encode to about 36 KiB, inside SYNC_REPORT_BYTES_MAX and the node's body limit.
 */
export const REPORT_ENTRIES_MAX = 128;
/** Largest encoded payment: two certificates and the envelope. */
export const PAYMENT_BYTES_MAX = 2 * CERTIFICATE_BYTES_MAX + 512;

const SIGNATURE_MIN = Math.min(...SUITE_NAMES.map((s) => SUITE_SIZES[s].signature));
const SIGNATURE_MAX = Math.max(...SUITE_NAMES.map((s) => SUITE_SIZES[s].signature));

/** A positive amount in minor units. */
export const amountCodec: Codec<bigint> = bigint({ min: 1n, max: AMOUNT_MINOR_MAX });
/** A balance in minor units. */
export const balanceCodec: Codec<bigint> = bigint({ min: 0n, max: AMOUNT_MINOR_MAX });
/** A counter: `i`, `j`, or a collect sequence number. */
export const counterCodec: Codec<bigint> = bigint({ min: 0n, max: COUNTER_MAX });
/** A signature of any suite. */
export const signatureCodec: Codec<Uint8Array> = bytes({ min: SIGNATURE_MIN, max: SIGNATURE_MAX });
/** An encoded certificate. */
export const certificateBytesCodec: Codec<Uint8Array> = bytes({ min: 1, max: CERTIFICATE_BYTES_MAX });
/** A key id. */
export const keyIdBytesCodec: Codec<Uint8Array> = bytes({ length: KEY_ID_BYTES });

/** Figure 5: the server's confirmation that `amount` left the online balance for the TA `taKey`, as deposit number `i`. */
export const depositConfirmationCodec = record({
  taKey: publicKeyCodec,
  amount: amountCodec,
  i: counterCodec,
  signature: signatureCodec,
});
/** A deposit confirmation. */
export type DepositConfirmation = Infer<typeof depositConfirmationCodec>;

/**
 * Figure 6: the TA's confirmation that `amount` left its balance, as operation number `i`; `j` and
 * `collectSeq` are the TA's counters when it signed (a Tally addition the node checks for rollback).
 */
export const withdrawConfirmationCodec = record({
  amount: amountCodec,
  i: counterCodec,
  j: counterCodec,
  collectSeq: counterCodec,
  signature: signatureCodec,
});
/** A withdraw confirmation. */
export type WithdrawConfirmation = Infer<typeof withdrawConfirmationCodec>;

/** Figure 7: the receiver asks for `amount`, naming itself by its certificate (a TA's or a client's). */
export const paymentRequestCodec = record({
  amount: amountCodec,
  receiver: certificateBytesCodec,
  memo: optional(text({ max: 140, pattern: /^[^\p{Cc}\p{Cs}]*$/u, describe: 'text of up to 140 characters without control characters' })),
});
/** A payment request. */
export type PaymentRequest = Infer<typeof paymentRequestCodec>;

/** Figure 7: the payment `P`, signed by the sender TA over `[amount, sender, receiver, index]`. */
export const paymentCodec = record({
  amount: amountCodec,
  sender: certificateBytesCodec,
  receiver: certificateBytesCodec,
  index: bigint({ min: 1n, max: COUNTER_MAX }),
  signature: signatureCodec,
});
/** A payment. */
export type Payment = Infer<typeof paymentCodec>;

/** The record a payment signature covers (Figure 4, Pay step 5). */
export function paymentSigned(p: Pick<Payment, 'amount' | 'sender' | 'receiver' | 'index'>): unknown[] {
  return [p.amount, p.sender, p.receiver, p.index];
}

/** The record a deposit confirmation signature covers: `[T.vk, x, i]`. */
export function depositSigned(c: Pick<DepositConfirmation, 'taKey' | 'amount' | 'i'>): unknown[] {
  return [{ suite: c.taKey.suite, key: c.taKey.key }, c.amount, c.i];
}

/** The record a withdraw confirmation signature covers: `[x, i, j, collectSeq]`. */
export function withdrawSigned(c: Pick<WithdrawConfirmation, 'amount' | 'i' | 'j' | 'collectSeq'>): unknown[] {
  return [c.amount, c.i, c.j, c.collectSeq];
}

/** The wire form of a withdraw confirmation (exactly its fields). */
export function withdrawConfirmationWire(c: WithdrawConfirmation): Record<string, unknown> {
  return { amount: c.amount, i: c.i, j: c.j, collectSeq: c.collectSeq, signature: c.signature };
}

/** The wire form of a payment (exactly its fields). */
export function paymentWire(p: Payment): Record<string, unknown> {
  return { amount: p.amount, sender: p.sender, receiver: p.receiver, index: p.index, signature: p.signature };
}

/** SHA-256 of a payment's encoding: what tells two payments with the same `(sender, index)` apart. */
export function paymentDigest(p: Payment): Uint8Array {
  return sha256(encodeCbor(paymentWire(p)));
}

/** A payment the device made since its last acknowledged sync. */
export const paidEntryCodec = record({
  index: bigint({ min: 1n, max: COUNTER_MAX }),
  amount: amountCodec,
  receiver: keyIdBytesCodec,
  digest: bytes({ length: 32 }),
});
/** A paid entry. */
export type PaidEntry = Infer<typeof paidEntryCodec>;

/** A payment the device collected since its last acknowledged sync, numbered by its collect sequence. */
export const collectedEntryCodec = record({
  seq: bigint({ min: 1n, max: COUNTER_MAX }),
  sender: keyIdBytesCodec,
  index: bigint({ min: 1n, max: COUNTER_MAX }),
  amount: amountCodec,
  digest: bytes({ length: 32 }),
});
/** A collected entry. */
export type CollectedEntry = Infer<typeof collectedEntryCodec>;

/** The body of a sync report: the device's counters and balance, and its flow since the last ack. */
export const syncReportBodyCodec = record({
  device: keyIdBytesCodec,
  balance: balanceCodec,
  i: counterCodec,
  j: counterCodec,
  collectSeq: counterCodec,
  paid: array(paidEntryCodec, { max: REPORT_ENTRIES_MAX }),
  collected: array(collectedEntryCodec, { max: REPORT_ENTRIES_MAX }),
});
/** A sync report body. */
export type SyncReportBody = Infer<typeof syncReportBodyCodec>;

/** A sync report signed by the TA. */
export const syncReportCodec = record({ body: syncReportBodyCodec, signature: signatureCodec });
/** A signed sync report. */
export type SyncReport = Infer<typeof syncReportCodec>;

/** The node's acknowledgement: the device may forget what it reported up to `paidUpTo` and `collectedUpTo`. */
export const syncAckBodyCodec = record({
  device: keyIdBytesCodec,
  paidUpTo: counterCodec,
  collectedUpTo: counterCodec,
  /** When the node signed the ack, Unix milliseconds: the TA's only trusted clock. */
  time: uint({ max: Number.MAX_SAFE_INTEGER }),
});
/** An ack body. */
export type SyncAckBody = Infer<typeof syncAckBodyCodec>;

/** An ack signed by the issuer node. */
export const syncAckCodec = record({ body: syncAckBodyCodec, signature: signatureCodec });
/** A signed ack. */
export type SyncAck = Infer<typeof syncAckCodec>;

/** The wire form of a report body. */
export function syncReportBodyWire(b: SyncReportBody): Record<string, unknown> {
  return {
    device: b.device,
    balance: b.balance,
    i: b.i,
    j: b.j,
    collectSeq: b.collectSeq,
    paid: b.paid.map((e) => ({ index: e.index, amount: e.amount, receiver: e.receiver, digest: e.digest })),
    collected: b.collected.map((e) => ({ seq: e.seq, sender: e.sender, index: e.index, amount: e.amount, digest: e.digest })),
  };
}

/** The wire form of an ack body. */
export function syncAckBodyWire(b: SyncAckBody): Record<string, unknown> {
  return { device: b.device, paidUpTo: b.paidUpTo, collectedUpTo: b.collectedUpTo, time: b.time };
}

/**
 * Encodes a payment as deterministic CBOR (what a `tally1…` token or a frame carries).
 * @throws TallyError TOO_LARGE past PAYMENT_BYTES_MAX
 */
export function encodePayment(p: Payment): Uint8Array {
  const encoded = encodeCbor(paymentWire(p));
  checkSize('payment', encoded.length, PAYMENT_BYTES_MAX);
  return encoded;
}

/**
 * Decodes payment bytes.
 * @throws TallyError TOO_LARGE, CBOR_MALFORMED, CBOR_NONCANONICAL, DECODE_FAILED
 */
export function decodePayment(bytes: Uint8Array): Payment {
  checkSize('payment', bytes.length, PAYMENT_BYTES_MAX);
  return paymentCodec.decode(decodeCbor(bytes, { maxBytes: PAYMENT_BYTES_MAX }), 'payment');
}
