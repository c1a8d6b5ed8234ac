/**
 * Key ids: a certificate names its issuer, and a revocation list its signer, by the SHA-256 of the
 * deterministic CBOR of the public key `{ suite, key }`, so the same bytes under two suites are two ids.
 */
import { bytes, type Codec } from '../core/codec.ts';
import { encodeCbor } from '../core/cbor.ts';
import { sha256 } from '../core/crypto/hash.ts';
import { checkBytes, type PublicKey } from '../core/crypto/suite.ts';

/** Length of a key id in bytes. */
export const KEY_ID_BYTES = 32;

/** Decodes a key id. */
export const keyIdCodec: Codec<Uint8Array> = bytes({ length: KEY_ID_BYTES });

/** Key ids of keys frozen by a certificate cache (pki/certificate-cache.ts), computed once each. */
const frozenKeyIds = new WeakMap<PublicKey, Uint8Array>();

/**
 * Makes `keyId` remember the id of this key object, which must be frozen and hold bytes no one
 * else can write (a certificate cache decodes from its own copy): its id cannot change.
 */
export function rememberKeyId(publicKey: PublicKey): void {
  if (!Object.isFrozen(publicKey)) throw new TypeError('rememberKeyId: the key object must be frozen');
  frozenKeyIds.set(publicKey, keyId(publicKey));
}

/** The key id of a public key: SHA-256 of the deterministic CBOR of `{ suite, key }`. @throws TypeError for a key that is not bytes */
export function keyId(publicKey: PublicKey): Uint8Array {
  const kept = frozenKeyIds.get(publicKey);
  // A copy: the caller may keep or change what it is given.
  if (kept !== undefined) return kept.slice();
  checkBytes('publicKey.key', publicKey.key);
  return sha256(encodeCbor({ suite: publicKey.suite, key: publicKey.key }));
}
