/**
 * RSA blind signatures, the client's side (RFC 9474): RSABSSA-SHA384-PSS-Randomized, and its
 * Deterministic sibling (the same without the random message prefix). The wallet prepares and
 * blinds a message, the bank signs the blinded message without seeing it (BlindSign, done by the
 * bank's key holder, not here), and the wallet unblinds and checks the signature (Finalize).
 * Anyone checks a finished signature with `verify`.
 *
 * Pure and synchronous: BigInt arithmetic and SHA-384 from @noble/hashes, so that a trusted app
 * can run it. Randomness comes from the caller, as a function returning bytes.
 */
import { sha384 } from '@noble/hashes/sha2.js';
import { concatBytes, equalBytes } from '../../core/bytes.ts';
import { TallyError } from '../../core/errors.ts';

/** An RSA public key: modulus `n` and public exponent `e`. */
export interface RsaPublicKey {
  readonly n: bigint;
  readonly e: bigint;
}

/** A source of random bytes: returns exactly `length` fresh bytes. */
export type RandomBytes = (length: number) => Uint8Array;

/** Randomized: a 32-byte random prefix is put before the message (RFC 9474 §4.1); Deterministic: none. */
export type BlindRsaVariant = 'randomized' | 'deterministic';

/** The RFC 9474 name of each variant, used in error details. */
export const BLIND_RSA_SUITES: Readonly<Record<BlindRsaVariant, string>> = {
  randomized: 'RSABSSA-SHA384-PSS-Randomized',
  deterministic: 'RSABSSA-SHA384-PSS-Deterministic',
};

/** Modulus sizes accepted, in bits. */
export const MODULUS_BITS_MIN = 2048;
export const MODULUS_BITS_MAX = 4096;
/** SHA-384's output length, and the PSS salt length of both variants (RFC 9474 §5). */
export const HASH_LENGTH = 48;
export const SALT_LENGTH = 48;
/** The random message prefix of the Randomized variant (RFC 9474 §4.1). */
export const MESSAGE_PREFIX_LENGTH = 32;
/** The largest exponent accepted when decoding a key, in bytes. */
const EXPONENT_BYTES_MAX = 8;

const SUITE = BLIND_RSA_SUITES.randomized;

// ---------------------------------------------------------------------------------------------
// Integers and octet strings (RFC 8017 §4)

/** OS2IP: big-endian bytes to a non-negative integer. */
export function bytesToInt(bytes: Uint8Array): bigint {
  let value = 0n;
  for (const byte of bytes) value = (value << 8n) | BigInt(byte);
  return value;
}

/** I2OSP: a non-negative integer to exactly `length` big-endian bytes; throws if it does not fit. */
export function intToBytes(value: bigint, length: number): Uint8Array {
  if (value < 0n) throw new RangeError('intToBytes: negative integer');
  const out = new Uint8Array(length);
  let rest = value;
  for (let index = length - 1; index >= 0; index--) {
    out[index] = Number(rest & 0xffn);
    rest >>= 8n;
  }
  if (rest !== 0n) throw new RangeError(`intToBytes: integer too large for ${length} bytes`);
  return out;
}

/** The number of bits of a positive integer. */
export function bitLength(value: bigint): number {
  return value === 0n ? 0 : value.toString(2).length;
}

/** base^exponent mod modulus, by square and multiply (public exponents and tests only: not constant time). */
export function modPow(base: bigint, exponent: bigint, modulus: bigint): bigint {
  let result = 1n;
  let square = ((base % modulus) + modulus) % modulus;
  let rest = exponent;
  while (rest > 0n) {
    if ((rest & 1n) === 1n) result = (result * square) % modulus;
    square = (square * square) % modulus;
    rest >>= 1n;
  }
  return modulus === 1n ? 0n : result;
}

/** The greatest common divisor and the inverse of `value` mod `modulus` (undefined when not coprime). */
export function modInverse(value: bigint, modulus: bigint): bigint | undefined {
  let [oldR, r] = [((value % modulus) + modulus) % modulus, modulus];
  let [oldS, s] = [1n, 0n];
  while (r !== 0n) {
    const quotient = oldR / r;
    [oldR, r] = [r, oldR - quotient * r];
    [oldS, s] = [s, oldS - quotient * s];
  }
  if (oldR !== 1n) return undefined;
  return ((oldS % modulus) + modulus) % modulus;
}

function gcd(a: bigint, b: bigint): bigint {
  let [x, y] = [a, b];
  while (y !== 0n) [x, y] = [y, x % y];
  return x;
}

// ---------------------------------------------------------------------------------------------
// Keys

/** The modulus length in bytes (RFC 9474's modulus_len). */
export function modulusLength(key: RsaPublicKey): number {
  return Math.ceil(bitLength(key.n) / 8);
}

/** Refuses a key outside 2048–4096 bits, with an even modulus, or with an unusable exponent. */
export function checkPublicKey(key: RsaPublicKey): RsaPublicKey {
  const bits = bitLength(key.n);
  const refuse = (reason: string): never => {
    throw new TallyError('KEY_INVALID', `RSA public key refused: ${reason}`, { suite: SUITE, reason });
  };
  if (bits < MODULUS_BITS_MIN || bits > MODULUS_BITS_MAX) refuse(`modulus of ${bits} bits, expected ${MODULUS_BITS_MIN} to ${MODULUS_BITS_MAX}`);
  if ((key.n & 1n) === 0n) refuse('even modulus');
  if (key.e < 3n || (key.e & 1n) === 0n || key.e >= key.n) refuse('public exponent not odd, at least 3 and below the modulus');
  return key;
}

/** Decodes a public key from its big-endian modulus and exponent bytes, and checks it. */
export function decodePublicKey(modulus: Uint8Array, exponent: Uint8Array): RsaPublicKey {
  if (modulus.length === 0 || modulus[0] === 0) {
    throw new TallyError('DECODE_FAILED', 'RSA modulus: expected big-endian bytes without leading zeros', {
      path: 'rsa.n',
      expected: 'minimal big-endian integer',
      got: modulus.length === 0 ? 'empty' : 'leading zero byte',
    });
  }
  if (exponent.length === 0 || exponent.length > EXPONENT_BYTES_MAX || exponent[0] === 0) {
    throw new TallyError('DECODE_FAILED', `RSA exponent: expected 1 to ${EXPONENT_BYTES_MAX} big-endian bytes without leading zeros`, {
      path: 'rsa.e',
      expected: `1..${EXPONENT_BYTES_MAX} bytes, minimal`,
      got: `${exponent.length} bytes`,
    });
  }
  return checkPublicKey({ n: bytesToInt(modulus), e: bytesToInt(exponent) });
}

/** The key's modulus and exponent as minimal big-endian bytes (the inverse of decodePublicKey). */
export function encodePublicKey(key: RsaPublicKey): { modulus: Uint8Array; exponent: Uint8Array } {
  return { modulus: intToBytes(key.n, modulusLength(key)), exponent: intToBytes(key.e, Math.ceil(bitLength(key.e) / 8)) };
}

// ---------------------------------------------------------------------------------------------
// EMSA-PSS with SHA-384 and MGF1-SHA-384 (RFC 8017 §9.1, §B.2.1)

/** MGF1 with SHA-384: `length` bytes of mask from `seed`. */
export function mgf1(seed: Uint8Array, length: number): Uint8Array {
  const out = new Uint8Array(Math.ceil(length / HASH_LENGTH) * HASH_LENGTH);
  const counter = new Uint8Array(4);
  for (let block = 0; block * HASH_LENGTH < length; block++) {
    counter[0] = block >>> 24;
    counter[1] = (block >>> 16) & 0xff;
    counter[2] = (block >>> 8) & 0xff;
    counter[3] = block & 0xff;
    out.set(sha384(concatBytes(seed, counter)), block * HASH_LENGTH);
  }
  return out.subarray(0, length);
}

/** EMSA-PSS-ENCODE(message, emBits) with a given salt of SALT_LENGTH bytes. */
export function encodePss(message: Uint8Array, emBits: number, salt: Uint8Array): Uint8Array {
  if (salt.length !== SALT_LENGTH) throw new RangeError(`encodePss: salt of ${salt.length} bytes, expected ${SALT_LENGTH}`);
  const emLength = Math.ceil(emBits / 8);
  if (emLength < HASH_LENGTH + SALT_LENGTH + 2) throw new RangeError('encodePss: encoding error (modulus too small)');
  const messageHash = sha384(message);
  const h = sha384(concatBytes(new Uint8Array(8), messageHash, salt));
  const db = new Uint8Array(emLength - HASH_LENGTH - 1);
  db[db.length - SALT_LENGTH - 1] = 0x01;
  db.set(salt, db.length - SALT_LENGTH);
  const mask = mgf1(h, db.length);
  for (let index = 0; index < db.length; index++) db[index] = (db[index] as number) ^ (mask[index] as number);
  db[0] = (db[0] as number) & (0xff >>> (8 * emLength - emBits));
  return concatBytes(db, h, Uint8Array.of(0xbc));
}

/** EMSA-PSS-VERIFY(message, encoded, emBits) with a salt of SALT_LENGTH bytes: true when consistent. */
export function verifyPss(message: Uint8Array, encoded: Uint8Array, emBits: number): boolean {
  const emLength = Math.ceil(emBits / 8);
  if (encoded.length !== emLength || emLength < HASH_LENGTH + SALT_LENGTH + 2) return false;
  if (encoded[emLength - 1] !== 0xbc) return false;
  const maskedDb = encoded.subarray(0, emLength - HASH_LENGTH - 1);
  const h = encoded.subarray(emLength - HASH_LENGTH - 1, emLength - 1);
  const topMask = 0xff >>> (8 * emLength - emBits);
  if (((maskedDb[0] as number) & ~topMask & 0xff) !== 0) return false;
  const mask = mgf1(h, maskedDb.length);
  const db = new Uint8Array(maskedDb.length);
  for (let index = 0; index < db.length; index++) db[index] = (maskedDb[index] as number) ^ (mask[index] as number);
  db[0] = (db[0] as number) & topMask;
  const zeros = emLength - HASH_LENGTH - SALT_LENGTH - 2;
  for (let index = 0; index < zeros; index++) if (db[index] !== 0) return false;
  if (db[zeros] !== 0x01) return false;
  const salt = db.subarray(db.length - SALT_LENGTH);
  return equalBytes(h, sha384(concatBytes(new Uint8Array(8), sha384(message), salt)));
}

// ---------------------------------------------------------------------------------------------
// The protocol (RFC 9474 §4)

function freshBytes(random: RandomBytes, length: number, what: string): Uint8Array {
  const bytes = random(length);
  if (!(bytes instanceof Uint8Array) || bytes.length !== length) {
    throw new RangeError(`${what}: the random source returned ${bytes instanceof Uint8Array ? `${bytes.length} bytes` : 'no bytes'}, expected ${length}`);
  }
  return bytes;
}

/** Prepare (§4.1): the Randomized variant puts 32 random bytes before the message; Deterministic keeps it. */
export function prepare(message: Uint8Array, variant: BlindRsaVariant, random: RandomBytes): Uint8Array {
  if (variant === 'deterministic') return Uint8Array.from(message);
  return concatBytes(freshBytes(random, MESSAGE_PREFIX_LENGTH, 'prepare'), message);
}

/** A blinded message for the bank, and the inverse of the blinding factor, kept secret by the client for Finalize. */
export interface Blinded {
  readonly blindedMessage: Uint8Array;
  readonly inverse: bigint;
}

/** The encoded message representative of `prepared`: EMSA-PSS-ENCODE with emBits = bit_len(n) - 1. */
export function encodeMessage(key: RsaPublicKey, prepared: Uint8Array, salt: Uint8Array): Uint8Array {
  return encodePss(prepared, bitLength(key.n) - 1, salt);
}

/** A uniform integer in [1, n), by rejection sampling over bit_len(n) bits. */
function randomBelow(n: bigint, random: RandomBytes): bigint {
  const bits = bitLength(n);
  const length = Math.ceil(bits / 8);
  const topMask = 0xff >>> (8 * length - bits);
  for (let attempt = 0; attempt < 128; attempt++) {
    const bytes = Uint8Array.from(freshBytes(random, length, 'blind'));
    bytes[0] = (bytes[0] as number) & topMask;
    const value = bytesToInt(bytes);
    if (value >= 1n && value < n) return value;
  }
  throw new RangeError('blind: the random source gave no integer below the modulus in 128 attempts');
}

/**
 * Blind (§4.2): encodes the prepared message with a fresh salt, checks the representative is
 * below and coprime to n, and multiplies it by r^e for a fresh r in [1, n). The randomness is
 * drawn in this order: the salt (48 bytes), then r (modulus_len bytes, redrawn if out of range).
 */
export function blind(key: RsaPublicKey, prepared: Uint8Array, random: RandomBytes): Blinded {
  checkPublicKey(key);
  const encoded = encodeMessage(key, prepared, freshBytes(random, SALT_LENGTH, 'blind'));
  const m = bytesToInt(encoded);
  if (m >= key.n || gcd(m, key.n) !== 1n) {
    throw new TallyError('DECODE_FAILED', 'blind: the message representative is not coprime to the modulus', {
      path: 'blind.encoded_msg',
      expected: 'an integer below and coprime to n',
      got: m >= key.n ? 'not below n' : 'shares a factor with n',
    });
  }
  const r = randomBelow(key.n, random);
  const inverse = modInverse(r, key.n);
  if (inverse === undefined) {
    throw new TallyError('DECODE_FAILED', 'blind: the blinding factor has no inverse modulo n', { path: 'blind.r', expected: 'invertible mod n', got: 'not invertible' });
  }
  const z = (m * modPow(r, key.e, key.n)) % key.n;
  return { blindedMessage: intToBytes(z, modulusLength(key)), inverse };
}

/**
 * The integer a value of modulus_len bytes stands for, refused unless it has exactly that length and
 * is below n (what RFC 9474 asks of a blinded message and of a blind signature).
 * @throws TallyError DECODE_FAILED naming `path`
 */
export function elementOf(key: RsaPublicKey, value: Uint8Array, path: string, what: string): bigint {
  const length = modulusLength(key);
  if (value.length !== length) {
    throw new TallyError('DECODE_FAILED', `${what}: expected ${length} bytes, got ${value.length}`, { path, expected: `${length} bytes`, got: `${value.length} bytes` });
  }
  const x = bytesToInt(value);
  if (x >= key.n) throw new TallyError('DECODE_FAILED', `${what}: not below the modulus`, { path, expected: 'an integer below n', got: 'not below n' });
  return x;
}

/**
 * Finalize (§4.4): unblinds the bank's blind signature with the secret inverse and checks the
 * result as an RSASSA-PSS signature on the prepared message; refuses anything else.
 */
export function finalize(key: RsaPublicKey, prepared: Uint8Array, blindSignature: Uint8Array, inverse: bigint): Uint8Array {
  checkPublicKey(key);
  const length = modulusLength(key);
  const z = elementOf(key, blindSignature, 'blind_sig', 'blind signature');
  const signature = intToBytes((z * inverse) % key.n, length);
  if (!verify(key, prepared, signature)) {
    throw new TallyError('SIGNATURE_INVALID', 'blind signature: the unblinded signature does not verify', { tag: SUITE });
  }
  return signature;
}

/**
 * RSASSA-PSS-VERIFY (RFC 8017 §8.1.2) with SHA-384, MGF1-SHA-384 and a 48-byte salt, on the
 * prepared message (for the Randomized variant: the 32-byte prefix followed by the message).
 * False for a signature of the wrong length, not below n, or not matching.
 */
export function verify(key: RsaPublicKey, prepared: Uint8Array, signature: Uint8Array): boolean {
  checkPublicKey(key);
  const length = modulusLength(key);
  if (signature.length !== length) return false;
  const s = bytesToInt(signature);
  if (s >= key.n) return false;
  const emBits = bitLength(key.n) - 1;
  const emLength = Math.ceil(emBits / 8);
  const m = modPow(s, key.e, key.n);
  if (bitLength(m) > emBits) return false;
  return verifyPss(prepared, intToBytes(m, emLength), emBits);
}
