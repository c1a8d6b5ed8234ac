/**
 * PayVerify (OPS Figure 8): a payment is valid when the sender's certificate chains to the central
 * bank as an OPS device of the expected currency and is not revoked, the receiver's certificate
 * chains too, and the sender TA's signature covers `[amount, sender, receiver, index]`. The
 * freshness check (the receiver's payment log) and the receiver match are the caller's: the TA's
 * Collect, the wallet's accept and the node's claim each keep their own log. Pure.
 */
import { equalBytes, toHex } from '../../core/bytes.ts';
import { verifyRecord } from '../../core/crypto/record.ts';
import type { CryptoProvider } from '../../core/crypto/suite.ts';
import { isTallyError, TallyError } from '../../core/errors.ts';
import { decodeCertificate, type Certificate } from '../../pki/certificate.ts';
import { verifyChain, type VerifiedChain } from '../../pki/chain.ts';
import { keyId } from '../../pki/key-id.ts';
import type { RevocationChecker } from '../../pki/revocation.ts';
import { OPS_SCHEME, PAYMENT_TAG, paymentDigest, paymentSigned, type Payment } from './messages.ts';

/** Options of verifyPayment. */
export interface PayVerifyOptions {
  provider: CryptoProvider;
  payment: Payment;
  /** The central bank's root certificates. */
  trustAnchors: readonly Certificate[];
  /**
   * Certificates between a device or user certificate and the root: the verifier's own
   * intermediary, and in two tiers every other intermediary the central bank certified (each leaf
   * is chained through the one that issued it).
   */
  intermediaries: readonly Certificate[];
  /** The verifier's time, Unix milliseconds (a TA passes its trusted time). */
  now: number;
  /** The verifier's revocation lists. */
  revocations?: RevocationChecker | undefined;
  /** The currency the verifier holds; the sender's certificate must name it. */
  currency: string;
  /** When given, the payment must name exactly this receiver certificate. */
  receiver?: Uint8Array | undefined;
}

/** A verified payment and what it says. */
export interface VerifiedPayment {
  readonly payment: Payment;
  readonly sender: VerifiedChain;
  readonly receiver: VerifiedChain;
  /** SHA-256 of the payment's encoding. */
  readonly digest: Uint8Array;
}

function invalid(reason: string, cause?: unknown): TallyError<'PAYMENT_INVALID'> {
  return new TallyError('PAYMENT_INVALID', `payment refused: ${reason}`, { reason }, { cause });
}

function chainOf(options: PayVerifyOptions, which: 'sender' | 'receiver', bytes: Uint8Array, memo: Set<string>): VerifiedChain {
  let certificate: Certificate;
  try {
    certificate = decodeCertificate(bytes);
  } catch (e) {
    throw invalid(`${which} certificate: ${e instanceof Error ? e.message : String(e)}`, e);
  }
  // The intermediary that issued this leaf; with none of them, the chain as given (and its error).
  const issuer = options.intermediaries.find((i) => equalBytes(keyId(i.body.subject), certificate.body.issuer));
  try {
    return verifyChain({
      provider: options.provider,
      chain: [certificate, ...(issuer === undefined ? options.intermediaries : [issuer])],
      trustAnchors: options.trustAnchors,
      now: options.now,
      revocations: options.revocations,
      leafRoles: which === 'sender' ? ['device'] : ['device', 'user'],
      verifiedSignatures: memo,
    });
  } catch (e) {
    // A revoked sender keeps its own code: payees and the node treat it apart from a forgery. So does a
    // certificate that starts after the verifier's time: a TA whose trusted time is old accepts it after a sync.
    if (isTallyError(e, 'CERT_REVOKED') || isTallyError(e, 'CERT_NOT_YET_VALID')) throw e;
    throw invalid(`${which} certificate: ${e instanceof Error ? e.message : String(e)}`, e);
  }
}

/**
 * PayVerify: checks both certificates and the sender's signature.
 * @throws TallyError PAYMENT_INVALID with a reason, CERT_REVOKED for a revoked sender or receiver,
 *   CERT_NOT_YET_VALID for a certificate that starts after `now`
 */
export function verifyPayment(options: PayVerifyOptions): VerifiedPayment {
  const { payment } = options;
  if (options.receiver !== undefined && !equalBytes(payment.receiver, options.receiver)) throw invalid('it names another receiver');
  // One memo for this payment's two chains: they share the root and the intermediary, whose
  // signatures and keys are checked once; each leaf, and every window, role and revocation, in full.
  const memo = new Set<string>();
  const sender = chainOf(options, 'sender', payment.sender, memo);
  if (sender.extensions.scheme !== OPS_SCHEME) throw invalid(`the sender's certificate is for scheme ${sender.extensions.scheme ?? '(none)'}, not ${OPS_SCHEME}`);
  if (sender.extensions.currency !== options.currency) throw invalid(`the sender holds ${sender.extensions.currency ?? '(no currency)'}, not ${options.currency}`);
  if (!verifyRecord(options.provider, sender.subject, PAYMENT_TAG, paymentSigned(payment), payment.signature)) {
    throw invalid(`the signature does not verify under the sender key ${toHex(sender.subjectKeyId)}`);
  }
  const receiver = chainOf(options, 'receiver', payment.receiver, memo);
  if (equalBytes(receiver.subjectKeyId, sender.subjectKeyId)) throw invalid('sender and receiver are the same key');
  return { payment, sender, receiver, digest: paymentDigest(payment) };
}
