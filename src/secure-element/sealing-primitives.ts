/**
 * The primitives a secure element host seals its state with: SHA-256 (the records' hash chain),
 * HKDF-SHA-256 (the device's keys), randomness (nonces, request ids, the trusted app's draws) and
 * XChaCha20-Poly1305 (every sealed record and head). The default is the @noble libraries of
 * core/crypto/hash.ts, which run anywhere; a Node host injects the same functions computed by
 * node:crypto (providers/node-sealing.ts), which must give the very same bytes. Pure: no I/O.
 */
import { aeadOpen, aeadSeal, hkdf, randomBytes, sha256 } from '../core/crypto/hash.ts';

/** What a host seals with; every implementation gives byte-identical results for the same inputs. */
export interface SealingPrimitives {
  readonly name: string;
  /** SHA-256. */
  sha256(data: Uint8Array): Uint8Array;
  /** HKDF-SHA-256 (RFC 5869); no salt means HashLen zero bytes. */
  hkdf(options: { ikm: Uint8Array; salt?: Uint8Array | undefined; info: Uint8Array | string; length: number }): Uint8Array;
  /** Cryptographically secure random bytes. */
  randomBytes(length: number): Uint8Array;
  /**
   * XChaCha20-Poly1305 under a fresh random nonce: nonce ‖ ciphertext ‖ tag.
   * @throws RangeError for a key that is not 32 bytes
   */
  aeadSeal(key: Uint8Array, plaintext: Uint8Array, associatedData: Uint8Array): Uint8Array;
  /**
   * Opens what aeadSeal produced.
   * @throws TallyError AEAD_FAILED when the box, the key or the associated data do not match
   * @throws RangeError for a key that is not 32 bytes
   */
  aeadOpen(key: Uint8Array, box: Uint8Array, associatedData: Uint8Array): Uint8Array;
}

/** The @noble implementations, the default of every host. */
export const nobleSealing: SealingPrimitives = { name: 'noble', sha256, hkdf, randomBytes, aeadSeal, aeadOpen };
