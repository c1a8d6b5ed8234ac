/** The static key of a Noise session (X25519), apart from noise.ts so that only its users load the curve. */
import { x25519 } from '@noble/curves/ed25519.js';
import { randomBytes } from '../core/crypto/hash.ts';

/** An X25519 key pair: the session's static key, which binding.ts ties to a certificate. */
export interface StaticKeyPair {
  readonly publicKey: Uint8Array;
  readonly secretKey: Uint8Array;
}

/** A fresh random static key pair. */
export function generateStaticKeyPair(): StaticKeyPair {
  const secretKey = randomBytes(32);
  return { publicKey: x25519.getPublicKey(secretKey), secretKey };
}
