/**
 * ECDSA suites over the Weierstrass curves of @noble/curves (P-256, secp256k1). The curve is handed
 * in (by noble.ts, or on first use by the Node provider), so that loading this file loads no curve.
 */
import type { p256 } from '@noble/curves/nist.js';
import type { secp256k1 } from '@noble/curves/secp256k1.js';
import { equalBytes } from '../bytes.ts';
import { keccak256 } from './hash.ts';
import { checkSeed, SEED_BYTES_MIN } from './seed.ts';
import { checkBytes, SUITE_SIZES, type SignatureSuite } from './suite.ts';

/** noble's P-256 curve object. */
export type NistCurve = typeof p256;
/** noble's secp256k1 curve object. */
export type Secp256k1Curve = typeof secp256k1;

/** The part of a noble Weierstrass curve used here. */
interface WeierstrassCurve {
  utils: { randomSecretKey(seed?: Uint8Array): Uint8Array };
  Point: { fromBytes(bytes: Uint8Array): { assertValidity(): void } };
}

/** Reduces uniform seed bytes to a valid scalar in [1, n-1] (noble's hash-to-scalar with bias ≤ 2^-64). */
function weierstrassKeyFromSeed(curve: WeierstrassCurve, seed: Uint8Array): Uint8Array {
  checkSeed(seed);
  return curve.utils.randomSecretKey(seed.slice(0, SEED_BYTES_MIN));
}

function weierstrassIsValid(curve: WeierstrassCurve, publicKey: Uint8Array): boolean {
  if (publicKey.length !== 33) return false;
  try {
    curve.Point.fromBytes(publicKey).assertValidity();
    return true;
  } catch {
    return false;
  }
}

/** ECDSA over P-256 with SHA-256; signatures are r ‖ s (64 bytes); verification accepts high s. */
export function p256SuiteOver(p256: NistCurve): SignatureSuite {
  return {
    name: 'p256',
    generateSecretKey: () => p256.utils.randomSecretKey(),
    secretKeyFromSeed: (seed) => weierstrassKeyFromSeed(p256, seed),
    publicKey(secretKey) {
      checkBytes('secretKey', secretKey, 32);
      return p256.getPublicKey(secretKey, true);
    },
    sign(secretKey, message) {
      checkBytes('secretKey', secretKey, 32);
      checkBytes('message', message);
      return p256.sign(message, secretKey, { prehash: true, lowS: false });
    },
    verify(publicKey, signature, message) {
      if (publicKey.length !== 33 || signature.length !== 64) return false;
      try {
        return p256.verify(signature, message, publicKey, { prehash: true, lowS: false });
      } catch {
        return false;
      }
    },
    isValidPublicKey: (publicKey) => weierstrassIsValid(p256, publicKey),
  };
}

/**
 * ECDSA over secp256k1 as Ethereum uses it: the message is hashed with Keccak-256, s is low, and the
 * signature is r ‖ s ‖ v with v = 27 + recovery bit, so a contract's `ecrecover` accepts it.
 */
export function secp256k1SuiteOver(secp256k1: Secp256k1Curve): SignatureSuite {
  return {
    name: 'secp256k1',
    generateSecretKey: () => secp256k1.utils.randomSecretKey(),
    secretKeyFromSeed: (seed) => weierstrassKeyFromSeed(secp256k1, seed),
    publicKey(secretKey) {
      checkBytes('secretKey', secretKey, 32);
      return secp256k1.getPublicKey(secretKey, true);
    },
    sign(secretKey, message) {
      checkBytes('secretKey', secretKey, 32);
      checkBytes('message', message);
      // noble's 'recovered' format is recovery ‖ r ‖ s; Ethereum wants r ‖ s ‖ (27 + recovery).
      const recovered = secp256k1.sign(keccak256(message), secretKey, { prehash: false, lowS: true, format: 'recovered' });
      const out = new Uint8Array(SUITE_SIZES.secp256k1.signature);
      out.set(recovered.subarray(1, 65), 0);
      out[64] = 27 + (recovered[0] as number);
      return out;
    },
    verify(publicKey, signature, message) {
      if (publicKey.length !== 33 || signature.length !== 65) return false;
      const v = signature[64] as number;
      if (v !== 27 && v !== 28) return false;
      try {
        const hash = keccak256(message);
        if (!secp256k1.verify(signature.subarray(0, 64), hash, publicKey, { prehash: false, lowS: true })) return false;
        // v must recover this very key, as `ecrecover` will: otherwise the other v would pass here too
        // (two encodings of one signature) while the contract recovers a different address.
        const recovered = secp256k1.Signature.fromBytes(signature.subarray(0, 64), 'compact').addRecoveryBit(v - 27).recoverPublicKey(hash);
        return equalBytes(recovered.toBytes(true), publicKey);
      } catch {
        return false;
      }
    },
    isValidPublicKey: (publicKey) => weierstrassIsValid(secp256k1, publicKey),
  };
}
