/**
 * The pure-JavaScript crypto provider, from @noble/curves: runs anywhere (browser, worker, Node).
 */
import { ed25519 } from '@noble/curves/ed25519.js';
import { p256 } from '@noble/curves/nist.js';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { equalBytes } from '../bytes.ts';
import { keccak256, randomBytes } from './hash.ts';
import { sm2Suite } from './sm2.ts';
import { checkBytes, SUITE_SIZES, type CryptoProvider, type SignatureSuite } from './suite.ts';

const SEED_BYTES_MIN = 48;

function checkSeed(seed: Uint8Array): void {
  checkBytes('seed', seed);
  if (seed.length < SEED_BYTES_MIN) throw new RangeError(`seed: expected at least ${SEED_BYTES_MIN} bytes, got ${seed.length}`);
}

/** Ed25519 (RFC 8032) through noble. */
export const nobleEd25519: SignatureSuite = {
  name: 'ed25519',
  generateSecretKey: () => randomBytes(32),
  secretKeyFromSeed(seed) {
    checkSeed(seed);
    return seed.slice(0, 32);
  },
  publicKey(secretKey) {
    checkBytes('secretKey', secretKey, 32);
    return ed25519.getPublicKey(secretKey);
  },
  sign(secretKey, message) {
    checkBytes('secretKey', secretKey, 32);
    checkBytes('message', message);
    return ed25519.sign(message, secretKey);
  },
  verify(publicKey, signature, message) {
    if (publicKey.length !== 32 || signature.length !== 64) return false;
    try {
      return ed25519.verify(signature, message, publicKey, { zip215: false });
    } catch {
      return false;
    }
  },
  isValidPublicKey(publicKey) {
    if (publicKey.length !== 32) return false;
    try {
      ed25519.Point.fromBytes(publicKey);
      return true;
    } catch {
      return false;
    }
  },
};

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
export const nobleP256: SignatureSuite = {
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

/**
 * ECDSA over secp256k1 as Ethereum uses it: the message is hashed with Keccak-256, s is low, and the
 * signature is r ‖ s ‖ v with v = 27 + recovery bit, so a contract's `ecrecover` accepts it.
 */
export const nobleSecp256k1: SignatureSuite = {
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

/** The pure provider: every suite in JavaScript, through noble (and sm-crypto-v2 for SM2). */
export const nobleProvider: CryptoProvider = {
  name: 'noble',
  suites: { ed25519: nobleEd25519, p256: nobleP256, secp256k1: nobleSecp256k1, sm2: sm2Suite },
};
