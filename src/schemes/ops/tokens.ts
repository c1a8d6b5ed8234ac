/**
 * The `tally1...` text tokens of OPS, for payments without a link (printed, pasted, or shown as a
 * QR code): a payment request made and signed by the payee (request.ts) and the payment made by
 * the payer's TA. Each token says what it is, so a request pasted where a payment is expected gets
 * a clear error. A request of an earlier version (`ops-request`, unsigned) is read only to be refused.
 */
import { bytes, taggedUnion, text, uint } from '../../core/codec.ts';
import { TallyError } from '../../core/errors.ts';
import { decodeText, encodeText } from '../../core/text.ts';
import { amountCodec, certificateBytesCodec, decodePayment, encodePayment, PAYMENT_BYTES_MAX, signatureCodec, type Payment } from './messages.ts';
import { REQUEST_NONCE_BYTES, type SignedRequest } from './request.ts';

const memoCodec = text({ max: 140, pattern: /^[^\p{Cc}\p{Cs}]*$/u, describe: 'text of up to 140 characters without control characters' });

/** The codec of every OPS token: its `t` says which. */
export const tokenCodec = taggedUnion('t', {
  'ops-request': { amount: amountCodec, receiver: certificateBytesCodec, memo: memoCodec },
  'ops-signed-request': {
    amount: amountCodec,
    receiver: certificateBytesCodec,
    memo: memoCodec,
    /** The payee's user certificate, or an empty string when the receiver is that certificate. */
    payee: bytes({ max: 2048 }),
    nonce: bytes({ length: REQUEST_NONCE_BYTES }),
    created: uint({ max: Number.MAX_SAFE_INTEGER }),
    signature: signatureCodec,
  },
  'ops-payment': { payment: bytes({ min: 1, max: PAYMENT_BYTES_MAX }) },
});

/** The token of a signed payment request. */
export function requestToken(request: SignedRequest): string {
  return encodeText({
    t: 'ops-signed-request',
    amount: request.amount,
    receiver: request.receiver,
    memo: request.memo ?? '',
    payee: request.payee ?? new Uint8Array(0),
    nonce: request.nonce,
    created: request.created,
    signature: request.signature,
  });
}

/** The token of a payment. */
export function paymentToken(payment: Payment): string {
  return encodeText({ t: 'ops-payment', payment: encodePayment(payment) });
}

/**
 * Reads a request token (its signature is the payer's to verify: verifyRequest).
 * @throws TallyError TEXT_*, DECODE_FAILED, or PAYMENT_INVALID for a payment token or an unsigned request
 */
export function readRequestToken(token: string): SignedRequest {
  const value = decodeText(token, tokenCodec, 'request');
  if (value.t === 'ops-payment') throw new TallyError('PAYMENT_INVALID', 'this token is a payment, not a payment request: give it to `tally accept`', { reason: 'token kind' });
  if (value.t === 'ops-request') {
    throw new TallyError('PAYMENT_INVALID', 'this payment request is not signed by its payee (an earlier version made it), so whoever passed it on could have changed the receiver: ask the payee for a new request', { reason: 'unsigned request' });
  }
  return {
    amount: value.amount,
    receiver: value.receiver,
    ...(value.memo === '' ? {} : { memo: value.memo }),
    ...(value.payee.length === 0 ? {} : { payee: certificateBytesCodec.decode(value.payee, 'request.payee') }),
    nonce: value.nonce,
    created: value.created,
    signature: value.signature,
  };
}

/** Reads a payment token. @throws TallyError TEXT_*, DECODE_FAILED, or PAYMENT_INVALID for a request token */
export function readPaymentToken(token: string): Payment {
  const value = decodeText(token, tokenCodec, 'payment');
  if (value.t !== 'ops-payment') throw new TallyError('PAYMENT_INVALID', 'this token is a payment request, not a payment: give it to `tally pay`', { reason: 'token kind' });
  return decodePayment(value.payment);
}
