/**
 * The data structures and messages of DOT-M (Yang, Zhang, Tong, "DOT-M: A Dual Offline Transaction
 * Scheme of Central Bank Digital Currency for Trusted Mobile Devices"), with codecs and the domain
 * tags their signatures cover:
 * - the currency block of §3.2.1 (Figure 3): the form of presentation signed by the central bank
 *   (Figure 4), the linked list of offline transaction records (Figure 5), the remaining amount of
 *   value and the number of offline transactions;
 * - the nine steps of §3.3.3 (Figure 7): λ (step 1), the failure notice (steps 2 and 4), σ with its
 *   transaction data tsd (step 3, Figure 8), the payee's signed notification (step 6) and the
 *   payer's success message (step 8).
 * Certificates travel as their encoded bytes, so a signature covers exactly what was sent.
 * See docs/dotm.md for how each field maps to the paper.
 */
import { AMOUNT_MINOR_MAX } from '../../core/amount.ts';
import { equalBytes } from '../../core/bytes.ts';
import { decodeCbor, encodeCbor } from '../../core/cbor.ts';
import { array, bigint, bytes, decodeFailure, oneOf, record, refine, text, uint, type Codec, type Infer } from '../../core/codec.ts';
import { sha256 } from '../../core/crypto/hash.ts';
import { SUITE_NAMES, SUITE_SIZES } from '../../core/crypto/suite.ts';
import { checkSize } from '../../core/errors.ts';
import { CERTIFICATE_BYTES_MAX, TIME_MS_MAX } from '../../pki/certificate.ts';
import { KEY_ID_BYTES } from '../../pki/key-id.ts';

/** The scheme's name: path segment of its routes and the `scheme` extension of its wallet certificates. */
export const DOTM_SCHEME = 'dotm';

/** Domain tag of the central bank's signature on a form of presentation (§3.2.1, Figure 4). */
export const PRESENTATION_TAG = 'tally/dotm/presentation/v1';
/** Domain tag of the payer's signature on an offline transaction record (§3.2.1, Figure 5). */
export const RECORD_TAG = 'tally/dotm/record/v1';
/** Domain tag of α = Sign(usk_R, tsn) (§3.3.3 step 1.1). */
export const ALPHA_TAG = 'tally/dotm/alpha/v1';
/** Domain tag of β = Sign(wsk_R, v) (§3.3.3 step 1.2). */
export const BETA_TAG = 'tally/dotm/beta/v1';
/** Domain tag of γ = Sign(wsk_P, tsd) (§3.3.3 step 3.2). */
export const GAMMA_TAG = 'tally/dotm/transaction-data/v1';
/** Domain tag of the payee's notification signed with usk_R (§3.3.3 step 6). */
export const NOTIFICATION_TAG = 'tally/dotm/notification/v1';
/**
 * Domain tag of the payer's success message signed with wsk_P (§3.3.3 step 8). The paper leaves
 * step 8 unsigned; unsigned, the payee's untrusted app could make it from its own notification
 * and close a payment the payer withdrew, so the payer's trusted app signs it.
 */
export const SUCCESS_TAG = 'tally/dotm/success/v1';

/**
 * Most offline transaction records one currency block carries before it must go online. §3.2.1
 * says the number of offline transactions "is used for the maximum limit" but gives no figure.
 * Figure 10 (§4.2) measured a single block carrying 60 earlier records (the cell n_b = 1,
 * n_d = 60), 61 with the payment's own record, so the prototype allowed at least that many. Tally
 * takes 61: a block with 60 records can still be paid (n_d ≤ RECORDS_PER_PAYMENT_MAX) and the
 * payee's copy then has 61 and must go online; every cell of Figure 10 is a payment Tally can make.
 */
export const RECORDS_PER_BLOCK_MAX = 61;
/** Most currency blocks in one payment: n_b, whose largest measured value in §4.2 (Figure 10) is 20. */
export const BLOCKS_PER_PAYMENT_MAX = 20;
/** Most earlier records in all the blocks of one payment: n_d, whose largest measured value in §4.2 is 60. */
export const RECORDS_PER_PAYMENT_MAX = 60;
/** Length of a currency serial number (Figure 4), drawn at random by the central bank. */
export const BLOCK_SERIAL_BYTES = 16;
/** Length of a transaction serial number tsn (§3.3.3 step 1.1), drawn at random by the payee. */
export const TSN_BYTES = 16;
/** Length of a digest (SHA-256): record links and message digests. */
export const DIGEST_BYTES = 32;

const SIGNATURE_MIN = Math.min(...SUITE_NAMES.map((s) => SUITE_SIZES[s].signature));
const SIGNATURE_MAX = Math.max(...SUITE_NAMES.map((s) => SUITE_SIZES[s].signature));

/** Largest encoded form of presentation: serial, value, currency, owner key id and a signature, with room. */
export const PRESENTATION_BYTES_MAX = 256;
/** Largest encoded record: two user certificates, a link, an amount, a time and a signature. */
export const RECORD_BYTES_MAX = 2 * CERTIFICATE_BYTES_MAX + 256;
/** Largest encoded currency block: its presentation and RECORDS_PER_BLOCK_MAX records. */
export const BLOCK_BYTES_MAX = PRESENTATION_BYTES_MAX + RECORDS_PER_BLOCK_MAX * RECORD_BYTES_MAX + 64;
/** Largest encoded λ: two certificates, tsn, v and two signatures. */
export const REQUEST_BYTES_MAX = 2 * CERTIFICATE_BYTES_MAX + 512;
/**
 * Largest encoded σ: every block's presentation, n_d earlier records plus one current record per
 * block, the payer's wallet certificate and the envelope (about 350 KiB at the limits).
 */
export const TRANSACTION_BYTES_MAX =
  BLOCKS_PER_PAYMENT_MAX * (PRESENTATION_BYTES_MAX + 64) + (RECORDS_PER_PAYMENT_MAX + BLOCKS_PER_PAYMENT_MAX) * RECORD_BYTES_MAX + CERTIFICATE_BYTES_MAX + 512;
/** Largest encoded notification, success or failure message. */
export const NOTICE_BYTES_MAX = 512;

/** A positive amount in minor units. */
export const amountCodec: Codec<bigint> = bigint({ min: 1n, max: AMOUNT_MINOR_MAX });
/** A remaining value in minor units (zero once a copy is spent). */
export const remainingCodec: Codec<bigint> = bigint({ min: 0n, max: AMOUNT_MINOR_MAX });
/** A signature of any suite. */
export const signatureCodec: Codec<Uint8Array> = bytes({ min: SIGNATURE_MIN, max: SIGNATURE_MAX });
/** An encoded certificate (ucert or wcert). */
export const certificateBytesCodec: Codec<Uint8Array> = bytes({ min: 1, max: CERTIFICATE_BYTES_MAX });
/** A SHA-256 digest. */
export const digestCodec: Codec<Uint8Array> = bytes({ length: DIGEST_BYTES });
/** A time in Unix milliseconds. */
export const timestampCodec: Codec<number> = uint({ max: TIME_MS_MAX });
/** A transaction serial number tsn. */
export const tsnCodec: Codec<Uint8Array> = bytes({ length: TSN_BYTES });
/** A currency code, as in certificate extensions. */
export const currencyCodec: Codec<string> = text({ max: 12, pattern: /^[A-Z][A-Z0-9]{2,11}$/, describe: 'a currency code of 3 to 12 capitals or digits' });

/**
 * Figure 4: the form of presentation, issued (signed) by the central bank C and never changed
 * offline. The original owner is the key id of the user key upk the block was issued to (not a
 * certificate: the block must outlive certificate renewals, and it travels in every payment).
 */
export const presentationCodec = record({
  /** The unique serial number of the currency. */
  serial: bytes({ length: BLOCK_SERIAL_BYTES }),
  /** The amount of value, in minor units of `currency`. */
  value: amountCodec,
  /** Tally's extended field (Figure 4 allows them): the currency `value` counts in. */
  currency: currencyCodec,
  /** The original owner: key id of its upk. */
  owner: bytes({ length: KEY_ID_BYTES }),
  /** The signature of C (pk_C verifies it) over presentationSigned. */
  signature: signatureCodec,
});
/** A form of presentation. */
export type Presentation = Infer<typeof presentationCodec>;

/**
 * Figure 5: one node of the offline transaction record list. `prev` is what Tally adds to make the
 * list a hash chain: the digest of the previous record, or of the presentation for the first one,
 * so a record signed for one chain verifies in no other (docs/dotm.md, "Data structures").
 */
export const transactionRecordCodec = record({
  /** Digest of the previous record (recordDigest) or, for the first, of the presentation. */
  prev: digestCodec,
  /** The transaction amount. */
  amount: amountCodec,
  /** The transaction timestamp, Unix milliseconds, from the payer's trusted clock. */
  timestamp: timestampCodec,
  /** ucert_P: the payer's user certificate. */
  ucertP: certificateBytesCodec,
  /** ucert_R: the payee's user certificate. */
  ucertR: certificateBytesCodec,
  /** The signature of P with usk_P over recordSigned (§3.3.3 step 4.2). */
  signature: signatureCodec,
});
/** An offline transaction record. */
export type TransactionRecord = Infer<typeof transactionRecordCodec>;

/**
 * Figure 3: a currency block as one wallet holds it. `remaining` is what this copy's holder may
 * still spend from it; `count` is the number of offline transactions, one per record.
 */
export const currencyBlockCodec = record({
  presentation: presentationCodec,
  records: array(transactionRecordCodec, { max: RECORDS_PER_BLOCK_MAX }),
  /** The remaining amount of value. */
  remaining: remainingCodec,
  /** The number of times of offline transaction. */
  count: uint({ max: RECORDS_PER_BLOCK_MAX }),
});
/** A currency block. */
export type CurrencyBlock = Infer<typeof currencyBlockCodec>;

/** Step 1: λ := (tsn ‖ v ‖ α ‖ ucert_R ‖ β ‖ wcert_R), built by the payee R. */
export const transactionRequestCodec = record({
  tsn: tsnCodec,
  /** The amount of value asked for. */
  v: amountCodec,
  /** α ← Sign(usk_R, tsn). */
  alpha: signatureCodec,
  ucertR: certificateBytesCodec,
  /** β ← Sign(wsk_R, v), here over (tsn, v). */
  beta: signatureCodec,
  wcertR: certificateBytesCodec,
});
/** λ. */
export type TransactionRequest = Infer<typeof transactionRequestCodec>;

/** Figure 8, one row: a block as the payer holds it, and the current record it appends for this payment. */
export const blockTransferCodec = record({ block: currencyBlockCodec, current: transactionRecordCodec });
/** One block of a payment with its current record. */
export type BlockTransfer = Infer<typeof blockTransferCodec>;

/**
 * Figure 8: the transaction data tsd. `nb` and `nd` are the paper's counts (§4.2): the number of
 * currency blocks, and the number of records they carry before this payment (current ones not
 * counted); both must match the blocks, and the current amounts must add up to v.
 */
export const transactionDataCodec = refine(
  record({
    tsn: tsnCodec,
    v: amountCodec,
    nb: uint({ min: 1, max: BLOCKS_PER_PAYMENT_MAX }),
    nd: uint({ max: RECORDS_PER_PAYMENT_MAX }),
    blocks: array(blockTransferCodec, { min: 1, max: BLOCKS_PER_PAYMENT_MAX }),
  }),
  'transaction data whose counts match its blocks',
  (tsd, path) => {
    if (tsd.nb !== tsd.blocks.length) return decodeFailure(`${path}.nb`, `the number of blocks (${tsd.blocks.length})`, `${tsd.nb}`);
    const nd = tsd.blocks.reduce((n, t) => n + t.block.records.length, 0);
    if (tsd.nd !== nd) return decodeFailure(`${path}.nd`, `the number of earlier records (${nd})`, `${tsd.nd}`);
    const sum = tsd.blocks.reduce((s, t) => s + t.current.amount, 0n);
    if (sum !== tsd.v) return decodeFailure(`${path}.v`, `the sum of the current records (${sum})`, `${tsd.v}`);
    // The same copy of a block twice would pay twice from one remaining value.
    const currents = tsd.blocks.map((t) => t.current.prev);
    for (let i = 1; i < currents.length; i++) {
      if (currents.slice(0, i).some((p) => equalBytes(p, currents[i] as Uint8Array))) {
        return decodeFailure(`${path}.blocks[${i}]`, 'a block not already in the payment', 'a block given twice');
      }
    }
    return tsd;
  },
);
/** tsd. */
export type TransactionData = Infer<typeof transactionDataCodec>;

/** Step 3: σ := (tsd ‖ γ ‖ wcert_P), built by the payer P. */
export const transactionMessageCodec = record({
  tsd: transactionDataCodec,
  /** γ ← Sign(wsk_P, tsd). */
  gamma: signatureCodec,
  wcertP: certificateBytesCodec,
});
/** σ. */
export type TransactionMessage = Infer<typeof transactionMessageCodec>;

/**
 * Why a party closes a transaction at step 2 or 4 ("notify ... the transaction fails"). Tally sends request-invalid, payer-declined,
 * payee-declined and transaction-invalid (the others would tell the peer about the sender's own
 * balance or limits); it still reads them all.
 */
export const FAILURE_REASONS = ['request-invalid', 'payer-declined', 'payee-declined', 'insufficient-value', 'transaction-invalid', 'limit-reached', 'internal'] as const;
/** A failure reason. */
export type FailureReason = (typeof FAILURE_REASONS)[number];

/** Steps 2 and 4: the notice that the transaction fails (unsigned: it changes no state anywhere). */
export const failureNoticeCodec = record({ tsn: tsnCodec, reason: oneOf(FAILURE_REASONS) });
/** A failure notice. */
export type FailureNotice = Infer<typeof failureNoticeCodec>;

/** Step 6: R's notification, signed with usk_R over notificationSigned, after it updated its wallet (step 5). */
export const notificationCodec = record({
  tsn: tsnCodec,
  /** Digest of the σ R accepted (transactionDigest): the receipt names exactly what was received. */
  transaction: digestCodec,
  signature: signatureCodec,
});
/** The step-6 notification. */
export type Notification = Infer<typeof notificationCodec>;

/** Step 8: P tells R the transaction is successful, after verifying the notification and updating its wallet (step 7). */
export const successNoticeCodec = record({
  tsn: tsnCodec,
  /** Digest of the notification it answers (notificationDigest). */
  notification: digestCodec,
  /** Signature of P's trusted app with wsk_P over successSigned (Tally's addition to step 8). */
  signature: signatureCodec,
});
/** The step-8 success message. */
export type SuccessNotice = Infer<typeof successNoticeCodec>;

/** The record C's signature covers: `[serial, value, currency, owner]`. */
export function presentationSigned(p: Pick<Presentation, 'serial' | 'value' | 'currency' | 'owner'>): unknown[] {
  return [p.serial, p.value, p.currency, p.owner];
}

/** The record a payer's record signature covers: `[prev, amount, timestamp, ucert_P, ucert_R]`. */
export function recordSigned(r: Pick<TransactionRecord, 'prev' | 'amount' | 'timestamp' | 'ucertP' | 'ucertR'>): unknown[] {
  return [r.prev, r.amount, r.timestamp, r.ucertP, r.ucertR];
}

/** The record α covers: `[tsn]`, as step 1.1 says. */
export function alphaSigned(r: Pick<TransactionRequest, 'tsn'>): unknown[] {
  return [r.tsn];
}

/**
 * The record β covers: `[tsn, v]`. Step 1.2 signs v alone; with tsn, a β cannot be lifted into
 * another request for the same amount.
 */
export function betaSigned(r: Pick<TransactionRequest, 'tsn' | 'v'>): unknown[] {
  return [r.tsn, r.v];
}

/** The record γ covers: tsd, whole (step 3.2). */
export function gammaSigned(tsd: TransactionData): unknown {
  return transactionDataWire(tsd);
}

/** The record the step-6 notification signature covers: `[tsn, transaction]`. */
export function notificationSigned(n: Pick<Notification, 'tsn' | 'transaction'>): unknown[] {
  return [n.tsn, n.transaction];
}

/** The record the step-8 success signature covers: `[tsn, notification]`. */
export function successSigned(n: Pick<SuccessNotice, 'tsn' | 'notification'>): unknown[] {
  return [n.tsn, n.notification];
}

/** The wire form of a presentation (exactly its fields). */
export function presentationWire(p: Presentation): Record<string, unknown> {
  return { serial: p.serial, value: p.value, currency: p.currency, owner: p.owner, signature: p.signature };
}

/** The wire form of a record (exactly its fields). */
export function recordWire(r: TransactionRecord): Record<string, unknown> {
  return { prev: r.prev, amount: r.amount, timestamp: r.timestamp, ucertP: r.ucertP, ucertR: r.ucertR, signature: r.signature };
}

/** The wire form of a block (exactly its fields). */
export function blockWire(b: CurrencyBlock): Record<string, unknown> {
  return { presentation: presentationWire(b.presentation), records: b.records.map(recordWire), remaining: b.remaining, count: b.count };
}

/** The wire form of λ. */
export function transactionRequestWire(r: TransactionRequest): Record<string, unknown> {
  return { tsn: r.tsn, v: r.v, alpha: r.alpha, ucertR: r.ucertR, beta: r.beta, wcertR: r.wcertR };
}

/** The wire form of tsd. */
export function transactionDataWire(tsd: TransactionData): Record<string, unknown> {
  return {
    tsn: tsd.tsn,
    v: tsd.v,
    nb: tsd.nb,
    nd: tsd.nd,
    blocks: tsd.blocks.map((t) => ({ block: blockWire(t.block), current: recordWire(t.current) })),
  };
}

/** The wire form of σ. */
export function transactionMessageWire(m: TransactionMessage): Record<string, unknown> {
  return { tsd: transactionDataWire(m.tsd), gamma: m.gamma, wcertP: m.wcertP };
}

/** The wire form of a step-6 notification. */
export function notificationWire(n: Notification): Record<string, unknown> {
  return { tsn: n.tsn, transaction: n.transaction, signature: n.signature };
}

/** SHA-256 of a presentation's encoding: the link the first record of its block carries. */
export function presentationDigest(p: Presentation): Uint8Array {
  return sha256(encodeCbor(presentationWire(p)));
}

/** SHA-256 of a record's encoding, signature included: the link the next record carries. */
export function recordDigest(r: TransactionRecord): Uint8Array {
  return sha256(encodeCbor(recordWire(r)));
}

/** SHA-256 of σ's encoding: what the step-6 notification acknowledges. */
export function transactionDigest(m: TransactionMessage): Uint8Array {
  return sha256(encodeCbor(transactionMessageWire(m)));
}

/** SHA-256 of a notification's encoding: what the step-8 success message answers. */
export function notificationDigest(n: Notification): Uint8Array {
  return sha256(encodeCbor(notificationWire(n)));
}

function encodeBounded(what: string, wire: unknown, max: number): Uint8Array {
  const encoded = encodeCbor(wire);
  checkSize(what, encoded.length, max);
  return encoded;
}

function decodeBounded<T>(what: string, codec: Codec<T>, encoded: Uint8Array, max: number): T {
  checkSize(what, encoded.length, max);
  return codec.decode(decodeCbor(encoded, { maxBytes: max }), what);
}

/**
 * Encodes a currency block as deterministic CBOR.
 * @throws TallyError TOO_LARGE past BLOCK_BYTES_MAX
 */
export function encodeBlock(block: CurrencyBlock): Uint8Array {
  return encodeBounded('block', blockWire(block), BLOCK_BYTES_MAX);
}

/**
 * Decodes currency block bytes (form only: verifyBlock checks signatures and links).
 * @throws TallyError TOO_LARGE, CBOR_MALFORMED, CBOR_NONCANONICAL, DECODE_FAILED
 */
export function decodeBlock(encoded: Uint8Array): CurrencyBlock {
  return decodeBounded('block', currencyBlockCodec, encoded, BLOCK_BYTES_MAX);
}

/**
 * Encodes λ.
 * @throws TallyError TOO_LARGE past REQUEST_BYTES_MAX
 */
export function encodeTransactionRequest(request: TransactionRequest): Uint8Array {
  return encodeBounded('request', transactionRequestWire(request), REQUEST_BYTES_MAX);
}

/**
 * Decodes λ.
 * @throws TallyError TOO_LARGE, CBOR_MALFORMED, CBOR_NONCANONICAL, DECODE_FAILED
 */
export function decodeTransactionRequest(encoded: Uint8Array): TransactionRequest {
  return decodeBounded('request', transactionRequestCodec, encoded, REQUEST_BYTES_MAX);
}

/**
 * Encodes σ.
 * @throws TallyError TOO_LARGE past TRANSACTION_BYTES_MAX
 */
export function encodeTransactionMessage(message: TransactionMessage): Uint8Array {
  return encodeBounded('transaction', transactionMessageWire(message), TRANSACTION_BYTES_MAX);
}

/**
 * Decodes σ.
 * @throws TallyError TOO_LARGE, CBOR_MALFORMED, CBOR_NONCANONICAL, DECODE_FAILED
 */
export function decodeTransactionMessage(encoded: Uint8Array): TransactionMessage {
  return decodeBounded('transaction', transactionMessageCodec, encoded, TRANSACTION_BYTES_MAX);
}

/**
 * Encodes a step-6 notification.
 * @throws TallyError TOO_LARGE past NOTICE_BYTES_MAX
 */
export function encodeNotification(notification: Notification): Uint8Array {
  return encodeBounded('notification', notificationWire(notification), NOTICE_BYTES_MAX);
}

/**
 * Decodes a step-6 notification.
 * @throws TallyError TOO_LARGE, CBOR_MALFORMED, CBOR_NONCANONICAL, DECODE_FAILED
 */
export function decodeNotification(encoded: Uint8Array): Notification {
  return decodeBounded('notification', notificationCodec, encoded, NOTICE_BYTES_MAX);
}

/**
 * Encodes a step-8 success message.
 * @throws TallyError TOO_LARGE past NOTICE_BYTES_MAX
 */
export function encodeSuccessNotice(notice: SuccessNotice): Uint8Array {
  return encodeBounded('success', { tsn: notice.tsn, notification: notice.notification, signature: notice.signature }, NOTICE_BYTES_MAX);
}

/**
 * Decodes a step-8 success message.
 * @throws TallyError TOO_LARGE, CBOR_MALFORMED, CBOR_NONCANONICAL, DECODE_FAILED
 */
export function decodeSuccessNotice(encoded: Uint8Array): SuccessNotice {
  return decodeBounded('success', successNoticeCodec, encoded, NOTICE_BYTES_MAX);
}

/**
 * Encodes a failure notice.
 * @throws TallyError TOO_LARGE past NOTICE_BYTES_MAX
 */
export function encodeFailureNotice(notice: FailureNotice): Uint8Array {
  return encodeBounded('failure', { tsn: notice.tsn, reason: notice.reason }, NOTICE_BYTES_MAX);
}

/**
 * Decodes a failure notice.
 * @throws TallyError TOO_LARGE, CBOR_MALFORMED, CBOR_NONCANONICAL, DECODE_FAILED
 */
export function decodeFailureNotice(encoded: Uint8Array): FailureNotice {
  return decodeBounded('failure', failureNoticeCodec, encoded, NOTICE_BYTES_MAX);
}
