/** Ed25519 through @noble/curves, apart from the other curves so that its users load only this one. */
import { ed25519 } from '@noble/curves/ed25519.js';
import { randomBytes } from './hash.ts';
import { ed25519SecretKeyFromSeed } from './seed.ts';
import { checkBytes, type SignatureSuite } from './suite.ts';

/** Ed25519 (RFC 8032) through noble. */
export const nobleEd25519: SignatureSuite = {
  name: 'ed25519',
  generateSecretKey: () => randomBytes(32),
  secretKeyFromSeed: ed25519SecretKeyFromSeed,
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
