/**
 * What a refusal tells the peer. A device that refuses a step over the link keeps its own error
 * (with its details: the balance, the password tries left, its limits and clock) for its own user,
 * and sends the peer only a code and a fixed sentence chosen from that code. Codes about the peer's
 * own message (a bad signature, an amount or payee the payer did not agree to, a replay, a revoked
 * certificate) pass on, since the peer can see them in what it sent; every code about the refusing
 * device's own state becomes one neutral code per side: PAYER_DECLINED or PAYEE_DECLINED. Pure.
 */
import { isTallyError } from '../core/errors.ts';

/** Which side refuses. */
export type RefusingSide = 'payer' | 'payee';

/** What crosses the link: a code and a sentence fixed by that code. */
export interface PeerRefusal {
  readonly code: string;
  readonly message: string;
}

/** The payer's neutral code: it will not or cannot pay, for reasons of its own device. */
export const PAYER_DECLINED = 'PAYER_DECLINED';
/** The payee's neutral code: it will not or cannot take the payment, for reasons of its own device. */
export const PAYEE_DECLINED = 'PAYEE_DECLINED';

/** The sentences a payer sends, by code: each about the payee's request, never the payer's state. */
const PAYER_SENTENCES: Readonly<Record<string, string>> = {
  [PAYER_DECLINED]: "the payer's wallet declined to make this payment",
  AMOUNT_MISMATCH: 'the payer did not agree to pay this amount',
  PAYEE_MISMATCH: 'the request names a payee that is not the peer on this link',
  REQUEST_INVALID: 'the payment request does not verify',
  PAYMENT_INVALID: 'the payment request is not valid',
  SIGNATURE_INVALID: "a signature in the payee's message does not verify",
  CERT_REVOKED: "the payee's certificate is revoked",
  PEER_UNTRUSTED: 'the payee did not prove who it is',
  NOTIFICATION_INVALID: "the payee's notification names another transaction",
  DECODE_FAILED: 'a message from the payee could not be decoded',
  OPERA_MOUNT_REFUSED: "the payee's wallet did not prove it is a genuine wallet on this link",
  OPERA_MESSAGE_INVALID: "a message from the payee's wallet is out of order or does not verify",
  AEAD_FAILED: "a message from the payee's wallet does not open under the link's one-time key",
};

/** The sentences a payee sends, by code: each about the payer's payment, never the payee's state. */
const PAYEE_SENTENCES: Readonly<Record<string, string>> = {
  [PAYEE_DECLINED]: "the payee's wallet declined to take this payment",
  AMOUNT_MISMATCH: 'the payment is not for the amount asked',
  PAYEE_MISMATCH: 'the payment pays someone else',
  PAYMENT_INVALID: 'the payment does not verify',
  TRANSACTION_INVALID: 'the transaction does not verify',
  SIGNATURE_INVALID: "a signature in the payer's message does not verify",
  CERT_REVOKED: "the payer's certificate is revoked",
  PAYMENT_REPLAYED: 'this payment was received before',
  BLOCK_DUPLICATE: "a block of this payment is already in the payee's wallet",
  TRANSACTION_UNKNOWN: 'the transaction answers no open request of the payee',
  SUCCESS_INVALID: 'the success message answers another notification',
  PEER_UNTRUSTED: 'the payer did not prove who it is',
  DECODE_FAILED: 'a message from the payer could not be decoded',
  OPERA_MOUNT_REFUSED: "the payer's wallet did not prove it is a genuine wallet on this link",
  OPERA_MESSAGE_INVALID: "a message from the payer's wallet is out of order or does not verify",
  OPERA_AMOUNT_MISMATCH: 'the payment is not for the amount asked',
  OPERA_TOKEN_INVALID: "a token of the payment does not carry the bank's signature",
  AEAD_FAILED: "a message from the payer's wallet does not open under the link's one-time key",
};

/**
 * The code of the local error as the device knows it: a trusted app's own code for its refusals,
 * and the two payer judgements of an OPS request (amount, payee) by what they are.
 */
export function localCode(e: unknown): string {
  if (!isTallyError(e)) return 'INTERNAL';
  if (isTallyError(e, 'SE_REJECTED')) return e.details.reason;
  if (isTallyError(e, 'PAYMENT_INVALID')) {
    if (e.details.reason === 'amount') return 'AMOUNT_MISMATCH';
    if (e.details.reason === 'receiver is not the peer') return 'PAYEE_MISMATCH';
  }
  return e.code;
}

/** The refusal the peer gets for a local error: a code it may learn and that code's sentence. */
export function peerRefusal(side: RefusingSide, e: unknown): PeerRefusal {
  const sentences = side === 'payer' ? PAYER_SENTENCES : PAYEE_SENTENCES;
  const code = localCode(e);
  const sentence = sentences[code];
  if (sentence !== undefined) return { code, message: sentence };
  // A certificate that does not verify here (expired, unknown issuer, not yet valid by this
  // device's clock): the peer learns that its message does not verify, not this device's view.
  if (code.startsWith('CERT_')) {
    const invalid = side === 'payer' ? 'REQUEST_INVALID' : 'PAYMENT_INVALID';
    return { code: invalid, message: sentences[invalid] as string };
  }
  const declined = side === 'payer' ? PAYER_DECLINED : PAYEE_DECLINED;
  return { code: declined, message: sentences[declined] as string };
}

/**
 * What this side shows for a peer's refusal: its own sentence for a code it knows (a peer cannot
 * make this side print a text of its choosing), the peer's text only for a code it does not know.
 */
export function refusalSentence(side: RefusingSide, code: string, peerText: string): string {
  return (side === 'payer' ? PAYER_SENTENCES : PAYEE_SENTENCES)[code] ?? peerText;
}
