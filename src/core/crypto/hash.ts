/**
 * Hashes, HKDF, randomness and an AEAD from the audited @noble libraries. SM3 is in sm3.ts, apart,
 * so that code which never hashes with it does not load sm-crypto-v2.
 */
import { xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { hkdf as nobleHkdf } from '@noble/hashes/hkdf.js';
import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js';
import { keccak_256 } from '@noble/hashes/sha3.js';
import { randomBytes as nobleRandomBytes } from '@noble/hashes/utils.js';
import { concatBytes, toHex } from '../bytes.ts';
import { TallyError } from '../errors.ts';

/** A SHA-256 implementation: the bytes in, the 32-byte digest out as a plain Uint8Array. */
export type Sha256 = (data: Uint8Array) => Uint8Array;

let sha256Implementation: Sha256 = nobleSha256;

/** SHA-256 of "abc" (FIPS 180-2, appendix B.1): what an implementation given to useSha256 must answer. */
const ABC_DIGEST = 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad';

/**
 * Has core hash with `implementation` from now on: a host gives its native SHA-256 (the Node
 * provider gives node:crypto's, a few times faster on a certificate and about thirty on 6 KB of
 * events). The digest is the same function's, so nothing else changes; the pure layers stay free of
 * any host's module. An implementation that does not answer the standard's test vector is refused.
 * @throws RangeError when `implementation` is not SHA-256
 */
export function useSha256(implementation: Sha256): void {
  const abc = implementation(new Uint8Array([0x61, 0x62, 0x63]));
  if (!(abc instanceof Uint8Array) || Object.getPrototypeOf(abc) !== Uint8Array.prototype || toHex(abc) !== ABC_DIGEST) {
    throw new RangeError('useSha256: the implementation must return the SHA-256 digest as a plain Uint8Array');
  }
  sha256Implementation = implementation;
}

/** The SHA-256 implementation core hashes with now (noble's until a host gives its own). */
export function sha256InUse(): Sha256 {
  return sha256Implementation;
}

/** SHA-256 (noble's, or the host's native one given to useSha256). */
export function sha256(data: Uint8Array): Uint8Array {
  return sha256Implementation(data);
}

/** Keccak-256 as Ethereum uses it (not SHA3-256). */
export function keccak256(data: Uint8Array): Uint8Array {
  return keccak_256(data);
}

/** HKDF-SHA-256 (RFC 5869). */
export function hkdf(options: { ikm: Uint8Array; salt?: Uint8Array | undefined; info: Uint8Array | string; length: number }): Uint8Array {
  const info = typeof options.info === 'string' ? new TextEncoder().encode(options.info) : options.info;
  return nobleHkdf(nobleSha256, options.ikm, options.salt, info, options.length);
}

/** Cryptographically secure random bytes (crypto.getRandomValues). */
export function randomBytes(length: number): Uint8Array {
  return nobleRandomBytes(length);
}

/** AEAD key length (XChaCha20-Poly1305). */
export const AEAD_KEY_BYTES = 32;
const NONCE_BYTES = 24;
const TAG_BYTES = 16;

/**
 * Encrypts and authenticates with XChaCha20-Poly1305 under a fresh random nonce; returns
 * nonce ‖ ciphertext ‖ tag.
 * @throws RangeError for a key that is not 32 bytes
 */
export function aeadSeal(key: Uint8Array, plaintext: Uint8Array, associatedData: Uint8Array): Uint8Array {
  if (key.length !== AEAD_KEY_BYTES) throw new RangeError(`aead key: expected ${AEAD_KEY_BYTES} bytes, got ${key.length}`);
  const nonce = randomBytes(NONCE_BYTES);
  return concatBytes(nonce, xchacha20poly1305(key, nonce, associatedData).encrypt(plaintext));
}

/**
 * Opens what aeadSeal produced.
 * @throws TallyError AEAD_FAILED when the box, the key or the associated data do not match
 */
export function aeadOpen(key: Uint8Array, box: Uint8Array, associatedData: Uint8Array): Uint8Array {
  if (key.length !== AEAD_KEY_BYTES) throw new RangeError(`aead key: expected ${AEAD_KEY_BYTES} bytes, got ${key.length}`);
  if (box.length < NONCE_BYTES + TAG_BYTES) throw new TallyError('AEAD_FAILED', 'sealed box is too short', {});
  try {
    return xchacha20poly1305(key, box.subarray(0, NONCE_BYTES), associatedData).decrypt(box.subarray(NONCE_BYTES));
  } catch (e) {
    throw new TallyError('AEAD_FAILED', 'sealed box failed authentication (wrong key, tampered or other context)', {}, { cause: e });
  }
}
