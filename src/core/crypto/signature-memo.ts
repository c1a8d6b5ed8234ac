/**
 * A memo of signature checks that passed, so that a verifier shown the same signed bytes again
 * (the same certificate in every payment of a user, the same block in the payer's and the payee's
 * upload) does not verify them twice. An entry is a digest of everything the check reads: the
 * suite, the public key, the signed bytes and the signature; only a check that passed is added, so
 * finding an entry answers exactly what verifying again would. What is not a signature (roles,
 * validity windows, revocation, amounts) is never memoised by it.
 *
 * A memo kept for a request is a plain Set; one kept across requests is a SignatureMemo, which
 * forgets its least recently used entries past a bound.
 */
import { concatBytes, toHex, utf8 } from '../bytes.ts';
import { sha256 } from './hash.ts';
import { signedBytes } from './record.ts';
import { suiteFor, type CryptoProvider, type PublicKey } from './suite.ts';

/** Entries a SignatureMemo keeps by default: about 6 MB of digests. */
export const SIGNATURE_MEMO_ENTRIES_MAX = 65_536;

/** A Set of memo entries that keeps at most `max`, forgetting the least recently used first. */
export class SignatureMemo extends Set<string> {
  readonly max: number;

  constructor(max = SIGNATURE_MEMO_ENTRIES_MAX) {
    super();
    if (!Number.isSafeInteger(max) || max < 1) throw new RangeError(`max: expected a positive integer, got ${max}`);
    this.max = max;
  }

  /** Moves a found entry to the newest end, so that what is used often is kept. */
  touch(entry: string): void {
    if (super.delete(entry)) super.add(entry);
  }

  override add(entry: string): this {
    if (this.has(entry)) return this;
    super.add(entry);
    if (this.size > this.max) {
      const oldest = this.values().next();
      if (oldest.done !== true) this.delete(oldest.value);
    }
    return this;
  }
}

/** The memo entry of one signature check: SHA-256 over the suite, the key, the message and the signature, each length-prefixed. */
export function signatureEntry(publicKey: PublicKey, message: Uint8Array, signature: Uint8Array): string {
  const suite = utf8(publicKey.suite);
  const framed = (bytes: Uint8Array) => concatBytes(new Uint8Array([bytes.length >>> 24, (bytes.length >>> 16) & 0xff, (bytes.length >>> 8) & 0xff, bytes.length & 0xff]), bytes);
  return `sig:${toHex(sha256(concatBytes(framed(suite), framed(publicKey.key), framed(message), framed(signature))))}`;
}

/** Verifies `signature` over `message`, answering from `memo` when this check passed before, and adding it when it passes. */
export function verifyWithMemo(provider: CryptoProvider, memo: Set<string> | undefined, publicKey: PublicKey, message: Uint8Array, signature: Uint8Array): boolean {
  if (memo === undefined) return suiteFor(provider, publicKey.suite).verify(publicKey.key, signature, message);
  const entry = signatureEntry(publicKey, message, signature);
  if (memo.has(entry)) {
    if (memo instanceof SignatureMemo) memo.touch(entry);
    return true;
  }
  if (!suiteFor(provider, publicKey.suite).verify(publicKey.key, signature, message)) return false;
  memo.add(entry);
  return true;
}

/** verifyRecord (a signature over `[tag, record]`) through a memo. */
export function verifyRecordWithMemo(provider: CryptoProvider, memo: Set<string> | undefined, publicKey: PublicKey, tag: string, record: unknown, signature: Uint8Array): boolean {
  return verifyWithMemo(provider, memo, publicKey, signedBytes(tag, record), signature);
}
