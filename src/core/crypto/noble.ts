/**
 * The pure-JavaScript crypto provider, from @noble/curves: runs anywhere (browser, worker, Node).
 * Importing it loads every curve; a user of one suite imports that suite's file instead.
 */
import { p256 } from '@noble/curves/nist.js';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { nobleEd25519 } from './noble-ed25519.ts';
import { p256SuiteOver, secp256k1SuiteOver } from './noble-weierstrass.ts';
import { sm2Suite } from './sm2.ts';
import type { CryptoProvider, SignatureSuite } from './suite.ts';

export { nobleEd25519 } from './noble-ed25519.ts';

/** ECDSA over P-256 with SHA-256; signatures are r ‖ s (64 bytes); verification accepts high s. */
export const nobleP256: SignatureSuite = p256SuiteOver(p256);

/** ECDSA over secp256k1 as Ethereum uses it (Keccak-256, low s, r ‖ s ‖ v). */
export const nobleSecp256k1: SignatureSuite = secp256k1SuiteOver(secp256k1);

/** The pure provider: every suite in JavaScript, through noble (and sm-crypto-v2 for SM2). */
export const nobleProvider: CryptoProvider = {
  name: 'noble',
  suites: { ed25519: nobleEd25519, p256: nobleP256, secp256k1: nobleSecp256k1, sm2: sm2Suite },
};
