/**
 * DOT-M's short messages (§3.3.3): the failure notice of steps 2 and 4, the payee's notification of
 * step 6 (signed with usk_R) and the payer's success message of step 8 (signed with wsk_P, Tally's
 * addition: unsigned, the payee's untrusted app could make it). Pure.
 */
import { encodeCbor } from '../../core/cbor.ts';
import { oneOf, record, type Infer } from '../../core/codec.ts';
import { sha256 } from '../../core/crypto/hash.ts';
import { NOTICE_BYTES_MAX, signatureCodec, digestCodec, tsnCodec, encodeBounded, decodeBounded } from './messages-fields.ts';

/** Domain tag of the payee's notification signed with usk_R (§3.3.3 step 6). */
export const NOTIFICATION_TAG = 'tally/dotm/notification/v1';

/**
 * Domain tag of the payer's success message signed with wsk_P (§3.3.3 step 8). The paper leaves
 * step 8 unsigned; unsigned, the payee's untrusted app could make it from its own notification
 * and close a payment the payer withdrew, so the payer's trusted app signs it.
 */
export const SUCCESS_TAG = 'tally/dotm/success/v1';

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

/** The record the step-6 notification signature covers: `[tsn, transaction]`. */
export function notificationSigned(n: Pick<Notification, 'tsn' | 'transaction'>): unknown[] {
  return [n.tsn, n.transaction];
}

/** The record the step-8 success signature covers: `[tsn, notification]`. */
export function successSigned(n: Pick<SuccessNotice, 'tsn' | 'notification'>): unknown[] {
  return [n.tsn, n.notification];
}

/** The wire form of a step-6 notification. */
export function notificationWire(n: Notification): Record<string, unknown> {
  return { tsn: n.tsn, transaction: n.transaction, signature: n.signature };
}

/** SHA-256 of a notification's encoding: what the step-8 success message answers. */
export function notificationDigest(n: Notification): Uint8Array {
  return sha256(encodeCbor(notificationWire(n)));
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
