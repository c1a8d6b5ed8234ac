/**
 * RSA blind signatures, the bank's side (RFC 9474 §4.3 BlindSign), over node:crypto: the raw
 * private-key operation m^d mod n through OpenSSL (RSA_NO_PADDING), with the RFC's checks around
 * it — the blinded message must be below n, and the result is checked against the public key
 * before it leaves (a fault in the private operation must not leak the key).
 */
import { constants, createPrivateKey, createPublicKey, generateKeyPairSync, privateDecrypt, type KeyObject } from 'node:crypto';
import { fromBase64url, toBase64url } from '../../core/bytes.ts';
import { TallyError } from '../../core/errors.ts';
import { bitLength, bytesToInt, checkPublicKey, decodePublicKey, elementOf, intToBytes, modInverse, modPow, modulusLength, type RsaPublicKey } from './blind-rsa.ts';

/** The bank's key size and public exponent. */
export const RSA_MODULUS_BITS = 2048;
export const RSA_PUBLIC_EXPONENT = 65537;

/** A fresh RSA private key (2048 bits, e = 65537 unless told otherwise). */
export function generateRsaKey(modulusBits: number = RSA_MODULUS_BITS): KeyObject {
  return generateKeyPairSync('rsa', { modulusLength: modulusBits, publicExponent: RSA_PUBLIC_EXPONENT }).privateKey;
}

function jwkField(jwk: { [key: string]: unknown }, name: string): Uint8Array {
  const value = jwk[name];
  if (typeof value !== 'string') {
    throw new TallyError('DECODE_FAILED', `RSA key: field ${name} missing`, { path: `jwk.${name}`, expected: 'base64url string', got: typeof value });
  }
  return fromBase64url(value);
}

/** The public half { n, e } of an RSA key (private or public), checked for size. */
export function rsaPublicKeyOf(key: KeyObject): RsaPublicKey {
  if (key.asymmetricKeyType !== 'rsa') {
    throw new TallyError('KEY_INVALID', `RSA key expected, got ${key.asymmetricKeyType ?? 'a secret key'}`, { suite: 'RSABSSA', reason: 'not an RSA key' });
  }
  const jwk = createPublicKey(key).export({ format: 'jwk' });
  return decodePublicKey(jwkField(jwk, 'n'), jwkField(jwk, 'e'));
}

/** The components of an RSA private key, as integers. */
export interface RsaPrivateParts {
  readonly n: bigint;
  readonly e: bigint;
  readonly d: bigint;
  readonly p: bigint;
  readonly q: bigint;
}

function base64urlOf(value: bigint): string {
  return toBase64url(intToBytes(value, Math.max(1, Math.ceil(bitLength(value) / 8))));
}

/** Imports an RSA private key from n, e, d, p, q (the CRT values are derived), after checking they agree. */
export function importRsaPrivateKey(parts: RsaPrivateParts): KeyObject {
  const { n, e, d, p, q } = parts;
  const qInverse = modInverse(q, p);
  if (p * q !== n || qInverse === undefined || modPow(modPow(2n, e, n), d, n) !== 2n) {
    throw new TallyError('KEY_INVALID', 'RSA private key: n, e, d, p and q do not agree', { suite: 'RSABSSA', reason: 'inconsistent components' });
  }
  checkPublicKey({ n, e });
  return createPrivateKey({
    format: 'jwk',
    key: {
      kty: 'RSA',
      n: base64urlOf(n),
      e: base64urlOf(e),
      d: base64urlOf(d),
      p: base64urlOf(p),
      q: base64urlOf(q),
      dp: base64urlOf(d % (p - 1n)),
      dq: base64urlOf(d % (q - 1n)),
      qi: base64urlOf(qInverse),
    },
  });
}

/**
 * BlindSign (RFC 9474 §4.3): s = m^d mod n for the blinded message m, refused unless m has
 * exactly modulus_len bytes and is below n; s is checked by s^e mod n == m before it is returned.
 * Give `publicKey` (from rsaPublicKeyOf) to skip re-exporting it on every call.
 */
export function blindSign(privateKey: KeyObject, blinded: Uint8Array, publicKey: RsaPublicKey = rsaPublicKeyOf(privateKey)): Uint8Array {
  const length = modulusLength(publicKey);
  const m = elementOf(publicKey, blinded, 'blinded_msg', 'blinded message');
  const signature = new Uint8Array(privateDecrypt({ key: privateKey, padding: constants.RSA_NO_PADDING }, blinded));
  if (signature.length !== length || modPow(bytesToInt(signature), publicKey.e, publicKey.n) !== m) {
    throw new TallyError('SIGNATURE_INVALID', 'blind signing failed its own check (s^e mod n differs from the blinded message)', { tag: 'RSABSSA.BlindSign' });
  }
  return signature;
}
