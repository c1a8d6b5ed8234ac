/** Key material a suite derives a secret key from (secretKeyFromSeed): at least 48 uniform bytes. */
import { checkBytes } from './suite.ts';

/** Fewest seed bytes secretKeyFromSeed takes. */
export const SEED_BYTES_MIN = 48;

/** Checks a seed's type and length. */
export function checkSeed(seed: Uint8Array): void {
  checkBytes('seed', seed);
  if (seed.length < SEED_BYTES_MIN) throw new RangeError(`seed: expected at least ${SEED_BYTES_MIN} bytes, got ${seed.length}`);
}

/** An Ed25519 secret key from a seed: its first 32 bytes (RFC 8032 hashes them again when signing). */
export function ed25519SecretKeyFromSeed(seed: Uint8Array): Uint8Array {
  checkSeed(seed);
  return seed.slice(0, 32);
}
