/**
 * Exchange keys (OTP paper §2.7): a payee sends one per coin it asks to receive, each issued
 * (signed) by the bank and handed to the wallet while it is online. Here an exchange key is the
 * payee trusted app's one-time X25519 public key for one coin: the payer's TA seals the coin to it,
 * so a coin intercepted or copied on the way is of use to no one but that TA. The bank's signature
 * shows the payee genuine without naming it; the key may carry a payee category (a merchant class)
 * that a coin's program can require, and a validity window.
 *
 * Pure: building, signing and checking the record.
 */
import { concatBytes, utf8 } from '../../core/bytes.ts';
import { bytes, record, text, type Infer } from '../../core/codec.ts';
import { sha256 } from '../../core/crypto/hash.ts';
import { requireRecordSignature, signRecord } from '../../core/crypto/record.ts';
import type { CryptoProvider, PublicKey, Signer } from '../../core/crypto/suite.ts';
import { TallyError } from '../../core/errors.ts';
import { nullable as nullableCodec, timestampMs } from '../../core/fields.ts';
import { CATEGORY_CHARS_MAX } from './program.ts';

/** The domain tag of the bank's signature over an exchange key. */
export const EXCHANGE_KEY_TAG = 'tally/otp/exchange-key/v1';
/** Bytes of an X25519 public key. */
export const X25519_KEY_BYTES = 32;
/** Longest validity window the bank gives a key (ms): 400 days. */
export const EXCHANGE_KEY_WINDOW_MAX = 400 * 86_400_000;

const category = text({ min: 1, max: CATEGORY_CHARS_MAX, pattern: /^[a-z0-9][a-z0-9-]*$/, describe: 'a category (lower-case letters, digits, dashes)' });

/** What the bank signs. */
export const exchangeKeyBody = record({
  /** The payee TA's one-time X25519 public key. */
  publicKey: bytes({ length: X25519_KEY_BYTES }),
  /** The payee's category, when the account holder has one (set by the operator), else null. */
  category: nullableCodec(category),
  notBefore: timestampMs,
  notAfter: timestampMs,
});
export type ExchangeKeyBody = Infer<typeof exchangeKeyBody>;

/** An exchange key as a payee sends it: the body and the bank's signature. */
export const exchangeKeyCodec = record({
  body: exchangeKeyBody,
  signature: bytes({ min: 32, max: 256 }),
});
export type ExchangeKey = Infer<typeof exchangeKeyCodec>;

/** A key's id: the first 16 bytes of SHA-256 over a label and the public key. */
export function exchangeKeyId(publicKey: Uint8Array): Uint8Array {
  return sha256(concatBytes(utf8('tally/otp/exchange-key-id/v1'), publicKey)).subarray(0, 16);
}

/**
 * The bank's side: signs a payee TA's public key for a window.
 * @throws RangeError for a window that is empty, reversed or longer than EXCHANGE_KEY_WINDOW_MAX
 */
export function issueExchangeKey(bank: Signer, body: ExchangeKeyBody): ExchangeKey {
  const checked = exchangeKeyBody.decode(body, 'exchange key');
  if (checked.notAfter <= checked.notBefore || checked.notAfter - checked.notBefore > EXCHANGE_KEY_WINDOW_MAX) {
    throw new RangeError(`an exchange key's window must be positive and at most ${EXCHANGE_KEY_WINDOW_MAX} ms`);
  }
  return { body: checked, signature: signRecord(bank, EXCHANGE_KEY_TAG, checked) };
}

/**
 * The payer's side: the bank signed this key, and it had not ended by `now` (the payer TA's trusted
 * time, ms). Without a trusted time a key is not taken.
 * @throws TallyError SIGNATURE_INVALID (not the bank's), OTP_EXCHANGE_KEY_INVALID (expired, no trusted time)
 */
export function checkExchangeKey(provider: CryptoProvider, bank: PublicKey, key: ExchangeKey, now: number | null): ExchangeKeyBody {
  const body = exchangeKeyBody.decode(key.body, 'exchange key');
  requireRecordSignature(provider, bank, EXCHANGE_KEY_TAG, body, key.signature);
  if (now === null) throw new TallyError('OTP_EXCHANGE_KEY_INVALID', 'the wallet has no trusted time yet to check an exchange key against: sync first', { reason: 'no-time' });
  // The TA's trusted time is the latest the bank signed for it, a lower bound of the real time: a
  // key issued since (notBefore after it) may well be valid, and only an end before it is sure.
  if (now > body.notAfter) throw new TallyError('OTP_EXCHANGE_KEY_INVALID', `the exchange key expired at ${new Date(body.notAfter).toISOString()}`, { reason: 'expired' });
  return body;
}
