/**
 * Signed records: a signature covers the deterministic CBOR of `[tag, record]`, where the tag names
 * the kind of message (`"tally/ops/payment/v1"`), so no signature can pass for another kind.
 */
import { encodeCbor } from '../cbor.ts';
import type { Codec } from '../codec.ts';
import { TallyError } from '../errors.ts';
import { suiteFor, type CryptoProvider, type PublicKey, type Signer } from './suite.ts';

const TAG_PATTERN = /^tally\/[a-z0-9-]+(\/[a-z0-9-]+)*\/v[0-9]+$/;

/** The bytes a record signature covers. @throws RangeError for a malformed domain tag */
export function signedBytes(tag: string, record: unknown): Uint8Array {
  if (!TAG_PATTERN.test(tag)) throw new RangeError(`domain tag: expected "tally/<area>/<name>/v<n>", got ${JSON.stringify(tag)}`);
  return encodeCbor([tag, record]);
}

/** Signs a record under a domain tag. */
export function signRecord(signer: Signer, tag: string, record: unknown): Uint8Array {
  return signer.sign(signedBytes(tag, record));
}

/** True when `signature` is `publicKey`'s signature over `[tag, record]`. */
export function verifyRecord(provider: CryptoProvider, publicKey: PublicKey, tag: string, record: unknown, signature: Uint8Array): boolean {
  return suiteFor(provider, publicKey.suite).verify(publicKey.key, signature, signedBytes(tag, record));
}

/**
 * Like verifyRecord, but throws.
 * @throws TallyError SIGNATURE_INVALID
 */
export function requireRecordSignature(
  provider: CryptoProvider,
  publicKey: PublicKey,
  tag: string,
  record: unknown,
  signature: Uint8Array,
): void {
  if (!verifyRecord(provider, publicKey, tag, record, signature)) {
    throw new TallyError('SIGNATURE_INVALID', `signature over ${tag} does not verify`, { tag });
  }
}

/** A body checked by its codec and signed under a tag (either side of a scheme's signed records). */
export function signedWith<B>(codec: Codec<B>, signer: Signer, tag: string, body: NoInfer<B>): { body: B; signature: Uint8Array } {
  const checked = codec.decode(body, tag);
  return { body: checked, signature: signRecord(signer, tag, checked) };
}

/**
 * Checks a signed record against its signer's key and answers its body, decoded.
 * @throws TallyError DECODE_FAILED, SIGNATURE_INVALID
 */
export function checkSignedWith<B>(provider: CryptoProvider, key: PublicKey, codec: Codec<B>, tag: string, value: { body: unknown; signature: Uint8Array }): B {
  const body = codec.decode(value.body, tag);
  requireRecordSignature(provider, key, tag, body, value.signature);
  return body;
}
