/**
 * The issuer node's own X25519 and RSA-PSS verification, on node:crypto (OpenSSL): what a deposit
 * runs for each coin, native instead of the pure JavaScript a trusted app runs (hpke.ts,
 * blind-rsa.ts). Each answers as its pure counterpart does, which node-native.test.ts checks
 * against the RFC vectors and random inputs.
 */
import { constants, createPrivateKey, createPublicKey, diffieHellman, verify as opensslVerify, type KeyObject } from 'node:crypto';
import { equalBytes, toBase64url } from '../../core/bytes.ts';
import type { X25519 } from '../../core/crypto/hpke.ts';
import { bitLength, HASH_LENGTH, intToBytes, modulusLength, SALT_LENGTH, type RsaPublicKey } from './blind-rsa.ts';

// DER header of an X25519 private key (PKCS #8), RFC 8410, before the 32 bytes.
const PKCS8_X25519 = Uint8Array.from([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x04, 0x22, 0x04, 0x20]);

function checkLength(key: Uint8Array): Uint8Array {
  if (key.length !== 32) throw new RangeError(`X25519 key: expected 32 bytes, got ${key.length}`);
  return key;
}

/**
 * A coin's ephemeral public key, imported as a JWK: OpenSSL 3 makes it from the raw bytes, about
 * seven times faster than decoding it wrapped in SPKI DER, which cost more than the X25519 itself.
 */
function peerKey(publicKey: Uint8Array): KeyObject {
  return createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: toBase64url(checkLength(publicKey)) }, format: 'jwk' });
}

// The node opens every coin with its one deposit key: its key object is made once.
let lastPrivate: { readonly bytes: Uint8Array; readonly key: KeyObject } | undefined;

/** X25519(sk, pk) through OpenSSL; throws for a low-order point (an all-zero secret), as noble does. */
export const nativeX25519: X25519 = (privateKey, publicKey) => {
  if (lastPrivate === undefined || !equalBytes(lastPrivate.bytes, privateKey)) {
    lastPrivate = { bytes: Uint8Array.from(privateKey), key: createPrivateKey({ key: Buffer.concat([PKCS8_X25519, checkLength(privateKey)]), format: 'der', type: 'pkcs8' }) };
  }
  return new Uint8Array(diffieHellman({ privateKey: lastPrivate.key, publicKey: peerKey(publicKey) }));
};

// A bank has few coin classes: their keys' objects are kept by modulus.
const rsaKeys = new Map<bigint, KeyObject>();
const RSA_KEYS_KEPT = 256;

function rsaKeyObject(key: RsaPublicKey): KeyObject {
  let found = rsaKeys.get(key.n);
  if (found === undefined) {
    const eBytes = Math.max(1, Math.ceil(bitLength(key.e) / 8));
    found = createPublicKey({ key: { kty: 'RSA', n: toBase64url(intToBytes(key.n, modulusLength(key))), e: toBase64url(intToBytes(key.e, eBytes)) }, format: 'jwk' });
    if (rsaKeys.size >= RSA_KEYS_KEPT) rsaKeys.clear();
    rsaKeys.set(key.n, found);
  }
  return found;
}

/**
 * RSASSA-PSS verification with SHA-384, MGF1-SHA-384 and a 48-byte salt (RFC 9474's
 * RSABSSA-SHA384-PSS variants) through OpenSSL: true exactly when blind-rsa.ts's `verify` is.
 */
export function nativePssVerify(key: RsaPublicKey, prepared: Uint8Array, signature: Uint8Array): boolean {
  if (HASH_LENGTH !== 48 || SALT_LENGTH !== 48) throw new Error('nativePssVerify: written for SHA-384 and a 48-byte salt');
  if (signature.length !== modulusLength(key)) return false;
  try {
    return opensslVerify('sha384', prepared, { key: rsaKeyObject(key), padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: SALT_LENGTH }, signature);
  } catch {
    return false;
  }
}
