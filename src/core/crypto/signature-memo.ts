/**
 * A memo of signature checks that passed, so that a verifier shown the same signed bytes again
 * (the same certificate in every payment of a user, the same block in the payer's and the payee's
 * upload) does not verify them twice. An entry is a digest of everything the check reads: the
 * suite, the public key, the signed bytes and the signature; only a check that passed is added, so
 * finding an entry answers exactly what verifying again would. What is not a signature (roles,
 * validity windows, revocation, amounts) is never memoised by it.
 *
 * A memo kept for a request is a plain Set; one kept across requests is a SignatureMemo, which
 * forgets the entries it has not used for longest past a bound, in two generations.
 */
import { toHex, utf8 } from '../bytes.ts';
import { sha256 } from './hash.ts';
import { signedBytes } from './record.ts';
import { suiteFor, type CryptoProvider, type PublicKey } from './suite.ts';

/** Entries a SignatureMemo keeps at most by default: about 8 MB of digests. */
export const SIGNATURE_MEMO_ENTRIES_MAX = 65_536;

/**
 * A memo of entries that keeps at most `max`, in two generations of up to `max / 2` each: an entry
 * is added to the young one; when it is full, the old generation is dropped whole and the young
 * one becomes old. An entry found in the old generation is moved to the young one, so what is used
 * often is kept. Every operation is O(1): deleting entries one by one from the front of a large
 * JavaScript Set makes each later walk to its oldest entry step over the holes, at about 70 µs an
 * entry once 65,536 are held.
 */
export class SignatureMemo {
  readonly max: number;
  #young = new Set<string>();
  #old = new Set<string>();

  constructor(max = SIGNATURE_MEMO_ENTRIES_MAX) {
    if (!Number.isSafeInteger(max) || max < 2) throw new RangeError(`max: expected an integer of at least 2, got ${max}`);
    this.max = max;
  }

  /** Entries held (both generations). */
  get size(): number {
    return this.#young.size + this.#old.size;
  }

  has(entry: string): boolean {
    return this.#young.has(entry) || this.#old.has(entry);
  }

  /** Moves an entry of the old generation to the young one, so that what is used often is kept. */
  touch(entry: string): void {
    if (this.#old.delete(entry)) this.add(entry);
  }

  add(entry: string): this {
    if (this.#young.has(entry)) return this;
    this.#old.delete(entry);
    if (this.#young.size >= Math.floor(this.max / 2)) {
      this.#old = this.#young;
      this.#young = new Set();
    }
    this.#young.add(entry);
    return this;
  }
}

/** What a memo needs: a plain Set for one unit of work, or a SignatureMemo kept across many. */
export interface MemoOfChecks {
  has(entry: string): boolean;
  add(entry: string): unknown;
}

/** The memo entry of one signature check: SHA-256 over the suite, the key, the message and the signature, each length-prefixed. */
export function signatureEntry(publicKey: PublicKey, message: Uint8Array, signature: Uint8Array): string {
  const parts = [utf8(publicKey.suite), publicKey.key, message, signature];
  // Written into one buffer: each part after its length, 4 bytes big-endian.
  const framed = new Uint8Array(parts.reduce((sum, part) => sum + 4 + part.length, 0));
  const view = new DataView(framed.buffer);
  let at = 0;
  for (const part of parts) {
    view.setUint32(at, part.length);
    framed.set(part, at + 4);
    at += 4 + part.length;
  }
  return `sig:${toHex(sha256(framed))}`;
}

/** Verifies `signature` over `message`, answering from `memo` when this check passed before, and adding it when it passes. */
export function verifyWithMemo(provider: CryptoProvider, memo: MemoOfChecks | undefined, publicKey: PublicKey, message: Uint8Array, signature: Uint8Array): boolean {
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
export function verifyRecordWithMemo(provider: CryptoProvider, memo: MemoOfChecks | undefined, publicKey: PublicKey, tag: string, record: unknown, signature: Uint8Array): boolean {
  return verifyWithMemo(provider, memo, publicKey, signedBytes(tag, record), signature);
}
