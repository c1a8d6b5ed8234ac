/**
 * The payee's signed payment request, for payments without a link. OPS Figure 7's
 * `[RequestPayment, x, receiver]` travels as a token that anyone may relay; a checksum alone would
 * let a relay put its own receiver in. So the payee signs the request with its user key (the key of
 * its user certificate, which the node certified for its account), over the amount, the receiver,
 * the memo, a fresh nonce and the time it was made. When the receiver is the payee's device (its
 * OPS TA), the request carries the payee's user certificate too, and the device certificate must
 * name that user as its owner: the same binding the link checks between a peer and a receiver.
 *
 * The user key, not the TA's: it is the payee's identity (it also binds the payee's end of a link),
 * it exists with or without a secure element, and the TA's key is kept to sign money (payments,
 * withdrawals, reports) only. The payer checks the signature, shows whom it pays, and remembers
 * the nonce of every request it paid (see the wallet). Pure.
 */
import { equalBytes, toHex } from '../../core/bytes.ts';
import { bytes, optional, record, text, uint, type Infer } from '../../core/codec.ts';
import { signRecord, verifyRecord } from '../../core/crypto/record.ts';
import type { CryptoProvider, Signer } from '../../core/crypto/suite.ts';
import { isTallyError, TallyError } from '../../core/errors.ts';
import { decodeCertificate, type Certificate } from '../../pki/certificate.ts';
import { verifyChain, type VerifiedChain } from '../../pki/chain.ts';
import { keyId } from '../../pki/key-id.ts';
import type { RevocationChecker } from '../../pki/revocation.ts';
import { amountCodec, certificateBytesCodec, OPS_SCHEME, signatureCodec, type PaymentRequest } from './messages.ts';

/** Domain tag of the payee's signature on a request. */
export const REQUEST_TAG = 'tally/ops/request/v1';
/** Length of a request's nonce. */
export const REQUEST_NONCE_BYTES = 16;
/** How long a request may be paid after it was made: a payer keeps the nonces it paid at least this long. */
export const REQUEST_AGE_MAX_MS = 30 * 24 * 60 * 60 * 1000;
/** How far ahead of the payer's clock a request's time may be (clocks drift). */
export const REQUEST_CLOCK_SKEW_MS = 10 * 60 * 1000;

/** The memo a request may carry: printable text of up to 140 characters. */
const memoCodec = text({ max: 140, pattern: /^[^\p{Cc}\p{Cs}]*$/u, describe: 'text of up to 140 characters without control characters' });

/** A request signed by its payee. */
export const signedRequestCodec = record({
  amount: amountCodec,
  /** The certificate the payment will name: the payee's device, or its user certificate itself. */
  receiver: certificateBytesCodec,
  memo: optional(memoCodec),
  /** The payee's user certificate, when the receiver is its device; absent when the receiver is the user. */
  payee: optional(certificateBytesCodec),
  nonce: bytes({ length: REQUEST_NONCE_BYTES }),
  /** When the payee made it, Unix milliseconds. */
  created: uint({ max: Number.MAX_SAFE_INTEGER }),
  signature: signatureCodec,
});
/** A signed request. */
export type SignedRequest = Infer<typeof signedRequestCodec>;

/** The record the payee's signature covers. */
export function requestSigned(r: Omit<SignedRequest, 'signature'>): unknown[] {
  return [r.amount, r.receiver, r.memo ?? '', r.payee ?? null, r.nonce, r.created];
}

/** Signs a request with the payee's user key (`payee` present when `receiver` is the payee's device). */
export function signRequest(user: Signer, fields: Omit<SignedRequest, 'signature'>): SignedRequest {
  return { ...fields, signature: signRecord(user, REQUEST_TAG, requestSigned(fields)) };
}

/** The request the TA's Pay takes (Figure 7), without what only the payer's wallet checks. */
export function plainRequest(r: SignedRequest): PaymentRequest {
  return { amount: r.amount, receiver: r.receiver, ...(r.memo === undefined ? {} : { memo: r.memo }) };
}

/** Options of verifyRequest. */
export interface VerifyRequestOptions {
  provider: CryptoProvider;
  request: SignedRequest;
  trustAnchors: readonly Certificate[];
  intermediaries: readonly Certificate[];
  /** The payer's time, Unix milliseconds. */
  now: number;
  revocations?: RevocationChecker | undefined;
}

/** Who a verified request pays. */
export interface VerifiedRequest {
  /** The payee's user certificate, whose key signed the request. */
  readonly payee: VerifiedChain;
  /** The receiver certificate the payment will name (the payee's own, or its device's). */
  readonly receiver: VerifiedChain;
}

function invalid(reason: string, message: string, cause?: unknown): TallyError<'PAYMENT_INVALID'> {
  return new TallyError('PAYMENT_INVALID', `payment request refused: ${message}`, { reason }, { cause });
}

function chainOf(options: VerifyRequestOptions, which: 'payee' | 'receiver', encoded: Uint8Array, roles: readonly ('user' | 'device')[]): VerifiedChain {
  try {
    // The intermediary that issued this certificate (in two tiers, possibly another bank's); with none of them, the chain as given.
    const leaf = decodeCertificate(encoded);
    const issuer = options.intermediaries.find((i) => equalBytes(keyId(i.body.subject), leaf.body.issuer));
    return verifyChain({ provider: options.provider, chain: [leaf, ...(issuer === undefined ? options.intermediaries : [issuer])], trustAnchors: options.trustAnchors, now: options.now, revocations: options.revocations, leafRoles: roles });
  } catch (e) {
    if (isTallyError(e, 'CERT_REVOKED')) throw e;
    throw invalid(which, `the ${which} certificate: ${e instanceof Error ? e.message : String(e)}`, e);
  }
}

/**
 * Checks a request before paying it: the payee's user certificate chains to the central bank, its
 * key signed exactly this request, the receiver is that user or a device it owns, and the request
 * is neither from the future nor older than REQUEST_AGE_MAX_MS. Whether it was paid before is the
 * payer's log to say.
 * @throws TallyError PAYMENT_INVALID (reason payee, receiver, signature, owner, time), CERT_REVOKED
 */
export function verifyRequest(options: VerifyRequestOptions): VerifiedRequest {
  const { request } = options;
  const payee = chainOf(options, 'payee', request.payee ?? request.receiver, ['user']);
  if (!verifyRecord(options.provider, payee.subject, REQUEST_TAG, requestSigned(request), request.signature)) {
    throw invalid('signature', `it is not signed by the payee it names (user key ${toHex(payee.subjectKeyId)}): it was altered or relayed with another receiver`);
  }
  let receiver = payee;
  if (request.payee !== undefined) {
    receiver = chainOf(options, 'receiver', request.receiver, ['device']);
    const owner = receiver.extensions.owner;
    if (receiver.extensions.scheme !== OPS_SCHEME || owner === undefined || !equalBytes(owner, payee.subjectKeyId)) {
      throw invalid('owner', `the receiver device ${toHex(receiver.subjectKeyId)} is not an OPS device of the payee ${toHex(payee.subjectKeyId)}`);
    }
  }
  if (request.created > options.now + REQUEST_CLOCK_SKEW_MS) {
    throw invalid('time', `it was made at ${new Date(request.created).toISOString()}, after the payer's clock (${new Date(options.now).toISOString()}); check the clocks`);
  }
  if (options.now - request.created > REQUEST_AGE_MAX_MS) {
    throw invalid('time', `it was made at ${new Date(request.created).toISOString()}, more than ${REQUEST_AGE_MAX_MS / 86_400_000} days ago; ask the payee for a new one`);
  }
  return { payee, receiver };
}

/**
 * The payer's check that a verified request comes from the payee it means to pay: `meant` is that
 * user's key id, or its first 8 or more hex digits (lower case). A request some relay took from
 * another payee verifies (it is that payee's own) and is refused here.
 * @throws TallyError PAYMENT_INVALID (reason payee)
 */
export function checkMeantPayee(verified: VerifiedRequest, meant: string): void {
  const signer = toHex(verified.payee.subjectKeyId);
  if (!signer.startsWith(meant)) {
    throw invalid('payee', `it was signed by user ${signer}, not the ${meant} you meant to pay`);
  }
}
