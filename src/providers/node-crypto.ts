/**
 * The Node crypto provider: Ed25519 and ECDSA P-256 through `node:crypto` (OpenSSL), several times
 * faster than pure JavaScript; secp256k1 stays with noble and SM2 with sm-crypto-v2. Injected at
 * start-up by Node faces and hosts; pure layers only ever see the CryptoProvider interface.
 */
import { createPrivateKey, createPublicKey, sign as nodeSign, verify as nodeVerify, type KeyObject } from 'node:crypto';
import { ed25519 } from '@noble/curves/ed25519.js';
import { p256 } from '@noble/curves/nist.js';
import { concatBytes, fromHex } from '../core/bytes.ts';
import { nobleEd25519, nobleP256, nobleSecp256k1 } from '../core/crypto/noble.ts';
import { sm2Suite } from '../core/crypto/sm2.ts';
import { checkBytes, type CryptoProvider, type SignatureSuite } from '../core/crypto/suite.ts';

// DER prefixes that wrap raw Ed25519 keys as PKCS#8 / SPKI (RFC 8410).
const ED25519_PKCS8_PREFIX = fromHex('302e020100300506032b657004220420');
const ED25519_SPKI_PREFIX = fromHex('302a300506032b6570032100');
// SPKI prefix for a compressed P-256 point (id-ecPublicKey, prime256v1).
const P256_SPKI_COMPRESSED_PREFIX = fromHex('3039301306072a8648ce3d020106082a8648ce3d030107032200');

/** A small bounded cache of parsed key objects: parsing costs as much as a verification. */
class KeyCache {
  private readonly entries = new Map<string, KeyObject>();
  constructor(private readonly max: number) {}

  get(bytes: Uint8Array, make: () => KeyObject): KeyObject {
    const id = Buffer.from(bytes).toString('base64');
    let key = this.entries.get(id);
    if (key === undefined) {
      key = make();
      if (this.entries.size >= this.max) this.entries.delete(this.entries.keys().next().value as string);
      this.entries.set(id, key);
    }
    return key;
  }
}

const KEY_CACHE_ENTRIES_MAX = 1024;

function nodeEd25519(): SignatureSuite {
  const secrets = new KeyCache(KEY_CACHE_ENTRIES_MAX);
  const publics = new KeyCache(KEY_CACHE_ENTRIES_MAX);
  const secretKeyObject = (secretKey: Uint8Array) =>
    secrets.get(secretKey, () => createPrivateKey({ key: Buffer.from(concatBytes(ED25519_PKCS8_PREFIX, secretKey)), format: 'der', type: 'pkcs8' }));
  return {
    ...nobleEd25519,
    publicKey(secretKey) {
      checkBytes('secretKey', secretKey, 32);
      const spki = createPublicKey(secretKeyObject(secretKey)).export({ format: 'der', type: 'spki' });
      return new Uint8Array(spki.subarray(ED25519_SPKI_PREFIX.length));
    },
    sign(secretKey, message) {
      checkBytes('secretKey', secretKey, 32);
      checkBytes('message', message);
      return new Uint8Array(nodeSign(null, message, secretKeyObject(secretKey)));
    },
    verify(publicKey, signature, message) {
      if (publicKey.length !== 32 || signature.length !== 64) return false;
      let accepted: boolean;
      try {
        const key = publics.get(publicKey, () => {
          // OpenSSL takes any key that decodes, small-order points included (for which anyone can
          // forge a signature); noble's strict RFC 8032 check refuses them, and both must agree.
          const point = ed25519.Point.fromBytes(publicKey, false);
          if (point.isSmallOrder()) throw new RangeError('ed25519 public key of small order');
          return createPublicKey({ key: Buffer.from(concatBytes(ED25519_SPKI_PREFIX, publicKey)), format: 'der', type: 'spki' });
        });
        accepted = nodeVerify(null, message, key, signature);
      } catch {
        return false;
      }
      // OpenSSL checks [S]B = R + [k]A, noble the cofactored [8][S]B = [8]R + [8][k]A, which also
      // holds when R has a small-order part. Ask noble before refusing, so that a payee verifying
      // with noble and an issuer verifying here never disagree; valid signatures stay on OpenSSL.
      return accepted || nobleEd25519.verify(publicKey, signature, message);
    },
  };
}

function nodeP256(): SignatureSuite {
  const secrets = new KeyCache(KEY_CACHE_ENTRIES_MAX);
  const publics = new KeyCache(KEY_CACHE_ENTRIES_MAX);
  const b64url = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64url');
  const secretKeyObject = (secretKey: Uint8Array) =>
    secrets.get(secretKey, () => {
      const point = p256.getPublicKey(secretKey, false);
      return createPrivateKey({
        key: { kty: 'EC', crv: 'P-256', d: b64url(secretKey), x: b64url(point.subarray(1, 33)), y: b64url(point.subarray(33, 65)) },
        format: 'jwk',
      });
    });
  return {
    ...nobleP256,
    sign(secretKey, message) {
      checkBytes('secretKey', secretKey, 32);
      checkBytes('message', message);
      return new Uint8Array(nodeSign('sha256', message, { key: secretKeyObject(secretKey), dsaEncoding: 'ieee-p1363' }));
    },
    verify(publicKey, signature, message) {
      if (publicKey.length !== 33 || signature.length !== 64) return false;
      try {
        const key = publics.get(publicKey, () =>
          createPublicKey({ key: Buffer.from(concatBytes(P256_SPKI_COMPRESSED_PREFIX, publicKey)), format: 'der', type: 'spki' }),
        );
        return nodeVerify('sha256', message, { key, dsaEncoding: 'ieee-p1363' }, signature);
      } catch {
        return false;
      }
    },
  };
}

/** Creates the Node provider (each instance has its own key caches). */
export function createNodeProvider(): CryptoProvider {
  // SM2 stays pure too: Node's OpenSSL knows the SM2 curve but signs with it as plain ECDSA.
  return { name: 'node', suites: { ed25519: nodeEd25519(), p256: nodeP256(), secp256k1: nobleSecp256k1, sm2: sm2Suite } };
}

/** A shared Node provider for processes that need one. */
export const nodeProvider: CryptoProvider = createNodeProvider();
