/**
 * The offline payment of OPS Figure 7 over a live link: the payee sends its `RequestPayment
 * [x, receiver]`, the payer's TA answers with the payment, the payee runs PayVerify and answers a
 * receipt (the payment's digest). Either side may answer a refusal instead: a code and that code's
 * fixed sentence (channel/peer-refusal.ts), so the details of a refusal stay on the device that refused.
 * Three messages; the same records travel as `tally1` tokens when there is no link.
 *
 * Who checks what stays with the caller: the payer's `pay` judges the request (is the receiver
 * the peer it meant to pay?) and runs its TA; the payee's `accept` verifies and stores. This file
 * only orders the messages and bounds every wait. Pure.
 */
import { bytes, text, taggedUnion, type Infer } from '../../core/codec.ts';
import { equalBytes, utf8 } from '../../core/bytes.ts';
import { isTallyError, TallyError } from '../../core/errors.ts';
import type { Link } from '../../channel/link.ts';
import { peerRefusal, refusalSentence, type RefusingSide } from '../../channel/peer-refusal.ts';
import { amountCodec, certificateBytesCodec, decodePayment, encodePayment, PAYMENT_BYTES_MAX, paymentDigest, type Payment, type PaymentRequest } from './messages.ts';

/** Both sides put this in their Noise prologue: a link opened for another protocol fails the handshake. */
export const OPS_LINK_PROLOGUE = utf8('tally/ops/link/v1');
/** The scheme both sides name in their link hello: a DOT-M peer is told apart before the handshake. */
export const OPS_LINK_SCHEME = 'ops';
/** How long each side waits for the other's next message by default. */
export const SESSION_STEP_TIMEOUT_MS = 30_000;

const refusal = {
  code: text({ min: 1, max: 40, pattern: /^[A-Z][A-Z0-9_]*$/, describe: 'an error code' }),
  message: text({ max: 300, pattern: /^[^\p{Cc}\p{Cs}]*$/u, describe: 'one line of text' }),
};

/** What the payee sends: the request, then the receipt (or a refusal). */
export const payeeMessageCodec = taggedUnion('kind', {
  request: {
    amount: amountCodec,
    receiver: certificateBytesCodec,
    memo: text({ max: 140, pattern: /^[^\p{Cc}\p{Cs}]*$/u, describe: 'text of up to 140 characters without control characters' }),
  },
  receipt: { digest: bytes({ length: 32 }) },
  refusal,
});
export type PayeeMessage = Infer<typeof payeeMessageCodec>;

/** What the payer sends: the payment (or a refusal). */
export const payerMessageCodec = taggedUnion('kind', {
  payment: { payment: bytes({ min: 1, max: PAYMENT_BYTES_MAX }) },
  refusal,
});
export type PayerMessage = Infer<typeof payerMessageCodec>;

/** The payer's part. */
export interface PayerRole {
  /** Judges the request and makes the payment (the TA's Pay); throwing sends a refusal. */
  pay(request: PaymentRequest): Promise<Payment>;
}

/** The payee's part. */
export interface PayeeRole {
  readonly request: PaymentRequest;
  /** Verifies and stores the payment (PayVerify + the payee's log); throwing sends a refusal. */
  accept(payment: Payment): Promise<void>;
}

/** How long to wait for each message. */
export interface SessionOptions {
  stepTimeoutMs?: number | undefined;
}

/**
 * Runs a step; if it throws, tells the peer a code and that code's fixed sentence (never the local
 * message, which may name this device's balance or limits) before rethrowing the local error.
 */
async function orRefuse<T>(link: Link, side: RefusingSide, step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (e) {
    try {
      link.send({ kind: 'refusal', ...peerRefusal(side, e) });
    } catch {
      // The link may be gone already; the refusal is a courtesy.
    }
    throw e;
  }
}

function peerRefused(who: RefusingSide, r: { code: string; message: string }): TallyError<'PEER_REFUSED'> {
  return new TallyError('PEER_REFUSED', `the ${who} refused: ${refusalSentence(who, r.code, r.message)} [${r.code}]`, { code: r.code });
}

/**
 * Runs the payer's side: waits for the request, pays, waits for the receipt.
 * The payment is returned even when the receipt never comes (`receipt: null` and `error`): the
 * TA has paid, so the caller must keep the payment and may deliver it again later as a token.
 * @throws TallyError TIMEOUT / LINK_CLOSED / DECODE_FAILED before the payment was made (nothing
 * paid), PEER_REFUSED when the payee refuses before paying, or whatever `pay` throws
 */
export async function runPayer(link: Link, role: PayerRole, options: SessionOptions = {}): Promise<{ request: PaymentRequest; payment: Payment; receipt: Uint8Array | null; error?: TallyError }> {
  const timeoutMs = options.stepTimeoutMs ?? SESSION_STEP_TIMEOUT_MS;
  const first = await link.receive(payeeMessageCodec, { timeoutMs, what: 'payment request' });
  if (first.kind === 'refusal') throw peerRefused('payee', first);
  const request: PaymentRequest = await orRefuse(link, 'payer', async () => {
    if (first.kind !== 'request') throw new TallyError('PAYMENT_INVALID', `expected a payment request, got a ${first.kind}`, { reason: 'protocol' });
    return { amount: first.amount, receiver: first.receiver, ...(first.memo === '' ? {} : { memo: first.memo }) };
  });
  const payment = await orRefuse(link, 'payer', () => role.pay(request));
  try {
    link.send({ kind: 'payment', payment: encodePayment(payment) });
    const answer = await link.receive(payeeMessageCodec, { timeoutMs, what: 'receipt' });
    if (answer.kind === 'refusal') return { request, payment, receipt: null, error: peerRefused('payee', answer) };
    if (answer.kind !== 'receipt') return { request, payment, receipt: null, error: new TallyError('PAYMENT_INVALID', `expected a receipt, got a ${answer.kind}`, { reason: 'protocol' }) };
    const digest = paymentDigest(payment);
    if (!equalBytes(answer.digest, digest)) {
      return { request, payment, receipt: null, error: new TallyError('PAYMENT_INVALID', 'the receipt names another payment', { reason: 'receipt digest' }) };
    }
    return { request, payment, receipt: digest };
  } catch (e) {
    if (!isTallyError(e)) throw e;
    return { request, payment, receipt: null, error: e };
  }
}

/**
 * Runs the payee's side: sends the request, waits for the payment, accepts it, sends the receipt.
 * @throws TallyError TIMEOUT / LINK_CLOSED / DECODE_FAILED, PEER_REFUSED when the payer refuses,
 * or whatever `accept` throws (after the refusal was sent)
 */
export async function runPayee(link: Link, role: PayeeRole, options: SessionOptions = {}): Promise<{ payment: Payment }> {
  const timeoutMs = options.stepTimeoutMs ?? SESSION_STEP_TIMEOUT_MS;
  link.send({ kind: 'request', amount: role.request.amount, receiver: role.request.receiver, memo: role.request.memo ?? '' });
  const answer = await link.receive(payerMessageCodec, { timeoutMs, what: 'payment' });
  if (answer.kind === 'refusal') throw peerRefused('payer', answer);
  const payment = await orRefuse(link, 'payee', async () => {
    const decoded = decodePayment(answer.payment);
    await role.accept(decoded);
    return decoded;
  });
  try {
    link.send({ kind: 'receipt', digest: paymentDigest(payment) });
  } catch {
    // Accepted and stored: a receipt that cannot be sent changes nothing for the payee.
  }
  return { payment };
}
