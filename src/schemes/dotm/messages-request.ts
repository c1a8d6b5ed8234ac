/**
 * DOT-M step 1 (§3.3.3): the payee's initial transaction information λ = (tsn ‖ v ‖ α ‖ ucert_R ‖ β
 * ‖ wcert_R), with α = Sign(usk_R, tsn) and β = Sign(wsk_R, v). Pure.
 */
import { record, type Infer } from '../../core/codec.ts';
import { REQUEST_BYTES_MAX, amountCodec, signatureCodec, certificateBytesCodec, tsnCodec, encodeBounded, decodeBounded } from './messages-fields.ts';

/** Domain tag of α = Sign(usk_R, tsn) (§3.3.3 step 1.1). */
export const ALPHA_TAG = 'tally/dotm/alpha/v1';

/** Domain tag of β = Sign(wsk_R, v) (§3.3.3 step 1.2). */
export const BETA_TAG = 'tally/dotm/beta/v1';

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

/** The wire form of λ. */
export function transactionRequestWire(r: TransactionRequest): Record<string, unknown> {
  return { tsn: r.tsn, v: r.v, alpha: r.alpha, ucertR: r.ucertR, beta: r.beta, wcertR: r.wcertR };
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
