/**
 * The `tally1...` text tokens of OPS, for payments without a link (printed, pasted, or shown as a
 * QR code): a payment request made by the payee and the payment made by the payer's TA. Each
 * token says what it is, so a request pasted where a payment is expected gets a clear error.
 */
import { bytes, taggedUnion, text } from '../core/codec.ts';
import { TallyError } from '../core/errors.ts';
import { decodeText, encodeText } from '../core/text.ts';
import { amountCodec, certificateBytesCodec, decodePayment, encodePayment, PAYMENT_BYTES_MAX, type Payment, type PaymentRequest } from '../schemes/ops/messages.ts';

const tokenCodec = taggedUnion('t', {
  'ops-request': {
    amount: amountCodec,
    receiver: certificateBytesCodec,
    memo: text({ max: 140, pattern: /^[^\p{Cc}\p{Cs}]*$/u, describe: 'text of up to 140 characters without control characters' }),
  },
  'ops-payment': { payment: bytes({ min: 1, max: PAYMENT_BYTES_MAX }) },
});

/** The token of a payment request. */
export function requestToken(request: PaymentRequest): string {
  return encodeText({ t: 'ops-request', amount: request.amount, receiver: request.receiver, memo: request.memo ?? '' });
}

/** The token of a payment. */
export function paymentToken(payment: Payment): string {
  return encodeText({ t: 'ops-payment', payment: encodePayment(payment) });
}

/** Reads a request token. @throws TallyError TEXT_*, DECODE_FAILED, or PAYMENT_INVALID for a payment token */
export function readRequestToken(token: string): PaymentRequest {
  const value = decodeText(token, tokenCodec, 'request');
  if (value.t !== 'ops-request') throw new TallyError('PAYMENT_INVALID', 'this token is a payment, not a payment request: give it to `tally accept`', { reason: 'token kind' });
  return { amount: value.amount, receiver: value.receiver, ...(value.memo === '' ? {} : { memo: value.memo }) };
}

/** Reads a payment token. @throws TallyError TEXT_*, DECODE_FAILED, or PAYMENT_INVALID for a request token */
export function readPaymentToken(token: string): Payment {
  const value = decodeText(token, tokenCodec, 'payment');
  if (value.t !== 'ops-payment') throw new TallyError('PAYMENT_INVALID', 'this token is a payment request, not a payment: give it to `tally pay`', { reason: 'token kind' });
  return decodePayment(value.payment);
}
