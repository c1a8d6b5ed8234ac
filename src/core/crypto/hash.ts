/**
 * Hashes, HKDF, randomness and an AEAD from the audited @noble libraries. SM3 is in sm3.ts, apart,
 * so that code which never hashes with it does not load sm-crypto-v2.
 */
import { xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { hkdf as nobleHkdf } from '@noble/hashes/hkdf.js';
import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js';
import { keccak_256 } from '@noble/hashes/sha3.js';
import { randomBytes as nobleRandomBytes } from '@noble/hashes/utils.js';
import { concatBytes } from '../bytes.ts';
import { TallyError } from '../errors.ts';

/** SHA-256. */
export function sha256(data: Uint8Array): Uint8Array {
  return nobleSha256(data);
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
