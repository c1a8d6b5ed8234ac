/**
 * The Node crypto provider: Ed25519 and ECDSA P-256 through `node:crypto` (OpenSSL), several times
 * faster than pure JavaScript; secp256k1 stays with noble and SM2 with sm-crypto-v2. Injected at
 * start-up by Node faces and hosts; pure layers only ever see the CryptoProvider interface.
 *
 * The JavaScript libraries are loaded on first use, not with this file: a command that signs with
 * Ed25519 never loads SM2, secp256k1 or the P-256 curve, each tens of milliseconds of start-up.
 */
import { createPrivateKey, createPublicKey, hash as nodeHash, sign as nodeSign, verify as nodeVerify, type KeyObject } from 'node:crypto';
import { createRequire } from 'node:module';
import type { ed25519 as NobleEd25519Curve } from '@noble/curves/ed25519.js';
import type { sm2 as Sm2Library } from 'sm-crypto-v2';
import { concatBytes, fromHex, toBase64url } from '../core/bytes.ts';
import { randomBytes, useSha256, type Sha256 } from '../core/crypto/hash.ts';
import { p256SuiteOver, secp256k1SuiteOver, type NistCurve, type Secp256k1Curve } from '../core/crypto/noble-weierstrass.ts';
import { ed25519SecretKeyFromSeed } from '../core/crypto/seed.ts';
import { sm2SuiteOver } from '../core/crypto/sm2-suite.ts';
import { checkBytes, type CryptoProvider, type SignatureSuite } from '../core/crypto/suite.ts';

const require = createRequire(import.meta.url);

/**
 * Core's SHA-256 becomes node:crypto's as soon as this provider is loaded, in every Node process that
 * uses it (the node, its worker threads, the CLI, wallets, hosts). The digest is copied out of the
 * Buffer node:crypto returns, so that callers keep getting a plain Uint8Array.
 */
export const nodeSha256: Sha256 = (data) => new Uint8Array(nodeHash('sha256', data, 'buffer'));
useSha256(nodeSha256);

/** A value made on first use (a library loaded synchronously, then kept). */
function once<T>(make: () => T): () => T {
  let value: T | undefined;
  return () => (value ??= make());
}

// The libraries, each loaded the first time a suite needs it (require of an ES module: Node >= 20.19).
const nobleEd25519Curve = once(() => (require('@noble/curves/ed25519.js') as { ed25519: typeof NobleEd25519Curve }).ed25519);
const nistCurve = once(() => (require('@noble/curves/nist.js') as { p256: NistCurve }).p256);
const nobleP256 = once(() => p256SuiteOver(nistCurve()));
const nobleSecp256k1 = once(() => secp256k1SuiteOver((require('@noble/curves/secp256k1.js') as { secp256k1: Secp256k1Curve }).secp256k1));
const sm2Suite = once(() => sm2SuiteOver((require('sm-crypto-v2') as { sm2: typeof Sm2Library }).sm2));

/** A suite whose implementation is made on first use. */
function lazySuite(name: SignatureSuite['name'], load: () => SignatureSuite): SignatureSuite {
  return {
    name,
    generateSecretKey: () => load().generateSecretKey(),
    secretKeyFromSeed: (seed) => load().secretKeyFromSeed(seed),
    publicKey: (secretKey) => load().publicKey(secretKey),
    sign: (secretKey, message) => load().sign(secretKey, message),
    verify: (publicKey, signature, message) => load().verify(publicKey, signature, message),
    isValidPublicKey: (publicKey) => load().isValidPublicKey(publicKey),
  };
}

/** noble's strict RFC 8032 Ed25519 verification (no cofactor shortcut, canonical encodings only). */
function nobleEd25519Verify(publicKey: Uint8Array, signature: Uint8Array, message: Uint8Array): boolean {
  if (publicKey.length !== 32 || signature.length !== 64) return false;
  try {
    return nobleEd25519Curve().verify(signature, message, publicKey, { zip215: false });
  } catch {
    return false;
  }
}

// DER prefixes that wrap raw Ed25519 keys as PKCS#8 / SPKI (RFC 8410).
const ED25519_PKCS8_PREFIX = fromHex('302e020100300506032b657004220420');
const ED25519_SPKI_PREFIX = fromHex('302a300506032b6570032100');
// SPKI prefix for a compressed P-256 point (id-ecPublicKey, prime256v1).
const P256_SPKI_COMPRESSED_PREFIX = fromHex('3039301306072a8648ce3d020106082a8648ce3d030107032200');

/**
 * The key object of a raw Ed25519 public key, imported as a JWK: OpenSSL 3 makes it from the raw
 * bytes directly, about eight times faster than decoding the same key wrapped in SPKI DER (which
 * goes through OpenSSL's decoder lookup and costs about as much as a verification). Both give the
 * same key (node-crypto.test.ts).
 */
export function ed25519PublicKeyObject(publicKey: Uint8Array): KeyObject {
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: toBase64url(publicKey) }, format: 'jwk' });
}

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

/**
 * The keys a strict decode has found valid (a point on the curve), by their bytes: a valid key stays
 * valid, and checking one costs more than a verification. Only a key that passed is kept; a key that
 * failed is checked again each time. Bounded: the oldest is dropped first.
 */
class ValidKeys {
  private readonly ids = new Set<string>();
  constructor(private readonly max: number) {}

  check(bytes: Uint8Array, strictlyValid: () => boolean): boolean {
    const id = Buffer.from(bytes).toString('base64');
    if (this.ids.has(id)) return true;
    if (!strictlyValid()) return false;
    if (this.ids.size >= this.max) this.ids.delete(this.ids.values().next().value as string);
    this.ids.add(id);
    return true;
  }
}

function nodeEd25519(): SignatureSuite {
  const secrets = new KeyCache(KEY_CACHE_ENTRIES_MAX);
  const publics = new KeyCache(KEY_CACHE_ENTRIES_MAX);
  const validKeys = new ValidKeys(KEY_CACHE_ENTRIES_MAX);
  const secretKeyObject = (secretKey: Uint8Array) =>
    secrets.get(secretKey, () => createPrivateKey({ key: Buffer.from(concatBytes(ED25519_PKCS8_PREFIX, secretKey)), format: 'der', type: 'pkcs8' }));
  return {
    name: 'ed25519',
    generateSecretKey: () => randomBytes(32),
    secretKeyFromSeed: ed25519SecretKeyFromSeed,
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
          const point = nobleEd25519Curve().Point.fromBytes(publicKey, false);
          if (point.isSmallOrder()) throw new RangeError('ed25519 public key of small order');
          return ed25519PublicKeyObject(publicKey);
        });
        accepted = nodeVerify(null, message, key, signature);
      } catch {
        return false;
      }
      // OpenSSL checks [S]B = R + [k]A, noble the cofactored [8][S]B = [8]R + [8][k]A, which also
      // holds when R has a small-order part. Ask noble before refusing, so that a payee verifying
      // with noble and an issuer verifying here never disagree; valid signatures stay on OpenSSL.
      return accepted || nobleEd25519Verify(publicKey, signature, message);
    },
    isValidPublicKey(publicKey) {
      if (publicKey.length !== 32) return false;
      return validKeys.check(publicKey, () => {
        try {
          nobleEd25519Curve().Point.fromBytes(publicKey);
          return true;
        } catch {
          return false;
        }
      });
    },
  };
}

function nodeP256(): SignatureSuite {
  const secrets = new KeyCache(KEY_CACHE_ENTRIES_MAX);
  const publics = new KeyCache(KEY_CACHE_ENTRIES_MAX);
  const b64url = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64url');
  const secretKeyObject = (secretKey: Uint8Array) =>
    secrets.get(secretKey, () => {
      const point = nistCurve().getPublicKey(secretKey, false);
      return createPrivateKey({
        key: { kty: 'EC', crv: 'P-256', d: b64url(secretKey), x: b64url(point.subarray(1, 33)), y: b64url(point.subarray(33, 65)) },
        format: 'jwk',
      });
    });
  const noble = lazySuite('p256', nobleP256);
  return {
    ...noble,
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
  return { name: 'node', suites: { ed25519: nodeEd25519(), p256: nodeP256(), secp256k1: lazySuite('secp256k1', nobleSecp256k1), sm2: lazySuite('sm2', sm2Suite) } };
}

/** A shared Node provider for processes that need one. */
export const nodeProvider: CryptoProvider = createNodeProvider();
