/**
 * SM2 signatures (GB/T 32918.2, ISO/IEC 14888-3) over the SM2 recommended curve, hashing with SM3,
 * through the pure-JavaScript `sm-crypto-v2`. That library speaks hex strings and does few input
 * checks of its own, so this wrapper fixes every width, bounds every scalar and catches every throw
 * before the protocol code sees a result. The library is handed in (by sm2.ts, or on first use by
 * the Node provider), so that loading this file loads no library.
 */
import type { sm2 as Sm2Library } from 'sm-crypto-v2';
import { fromHex, toHex } from '../bytes.ts';
import { randomBytes } from './hash.ts';
import { checkBytes, SUITE_SIZES, type SignatureSuite } from './suite.ts';

/** Order n of the SM2 base point. */
export const SM2_ORDER = 0xfffffffeffffffffffffffffffffffff7203df6b21c6052b53bbf40939d54123n;

/**
 * The signer identity hashed into Z_A. Tally has no per-user identities here, so every key uses the
 * value GM/T 0009 names as the default; it is passed explicitly so that a change of the library's
 * own default cannot silently change what is signed.
 */
export const SM2_DEFAULT_USER_ID = '1234567812345678';

const SEED_BYTES_MIN = 48;
const SCALAR_HEX = 64;
const { secretKey: SECRET_BYTES, publicKey: PUBLIC_BYTES, signature: SIGNATURE_BYTES } = SUITE_SIZES.sm2;

function scalarOf(bytes: Uint8Array): bigint {
  return BigInt(`0x${toHex(bytes) || '0'}`);
}

function scalarHex(value: bigint): string {
  return value.toString(16).padStart(SCALAR_HEX, '0');
}

/**
 * The secret key as a 64-digit hex scalar.
 * @throws TypeError / RangeError for anything but 32 bytes holding d in [1, n-2]
 */
function secretKeyHex(secretKey: Uint8Array): string {
  checkBytes('secretKey', secretKey, SECRET_BYTES);
  const d = scalarOf(secretKey);
  // The signing equation divides by 1 + d, so n - 1 is no key at all (GB/T 32918.1 keeps d ≤ n - 2).
  if (d < 1n || d > SM2_ORDER - 2n) throw new RangeError('secretKey: expected a scalar in [1, n-2] of the SM2 curve');
  return toHex(secretKey);
}

/** The SM2 suite over the library's `sm2` object. */
export function sm2SuiteOver(sm2: typeof Sm2Library): SignatureSuite {
  /** The key's point, uncompressed ("04" ‖ x ‖ y, 130 hex digits). */
  function uncompressedPublicHex(secretKey: Uint8Array): string {
    return sm2.getPublicKeyFromPrivateKey(secretKeyHex(secretKey));
  }

  /** True for 33 bytes with a compression prefix whose x lies on the curve. */
  function isValidCompressedPoint(publicKey: Uint8Array): boolean {
    if (!(publicKey instanceof Uint8Array) || publicKey.length !== PUBLIC_BYTES) return false;
    if (publicKey[0] !== 0x02 && publicKey[0] !== 0x03) return false;
    try {
      return sm2.verifyPublicKey(toHex(publicKey));
    } catch {
      return false;
    }
  }

  /**
   * SM2 with SM3 and the Z_A preprocessing under SM2_DEFAULT_USER_ID. Public keys are compressed
   * points (33 bytes), signatures r ‖ s as two 32-byte big-endian integers (not DER). Each signature
   * draws a fresh random k, as the standard asks, so signing twice gives two different signatures.
   */
  const suite: SignatureSuite = {
    name: 'sm2',
    generateSecretKey: () => suite.secretKeyFromSeed(randomBytes(SEED_BYTES_MIN)),
    secretKeyFromSeed(seed) {
      checkBytes('seed', seed);
      if (seed.length < SEED_BYTES_MIN) throw new RangeError(`seed: expected at least ${SEED_BYTES_MIN} bytes, got ${seed.length}`);
      // 384 uniform bits folded onto [1, n-2]: the bias is below 2^-128, the same construction as
      // noble's hash-to-scalar but one value narrower, because n - 1 cannot sign (see secretKeyHex).
      const d = (scalarOf(seed.subarray(0, SEED_BYTES_MIN)) % (SM2_ORDER - 2n)) + 1n;
      return fromHex(scalarHex(d));
    },
    publicKey(secretKey) {
      return fromHex(sm2.compressPublicKeyHex(uncompressedPublicHex(secretKey)));
    },
    sign(secretKey, message) {
      const keyHex = secretKeyHex(secretKey);
      checkBytes('message', message);
      const signature = sm2.doSignature(message, keyHex, {
        hash: true,
        der: false,
        publicKey: sm2.getPublicKeyFromPrivateKey(keyHex),
        userId: SM2_DEFAULT_USER_ID,
      });
      if (signature.length !== 2 * SIGNATURE_BYTES) throw new Error(`sm2: the library returned ${signature.length} hex digits, expected ${2 * SIGNATURE_BYTES}`);
      return fromHex(signature);
    },
    verify(publicKey, signature, message) {
      try {
        if (!(signature instanceof Uint8Array) || signature.length !== SIGNATURE_BYTES || !(message instanceof Uint8Array)) return false;
        if (!isValidCompressedPoint(publicKey)) return false;
        // The library only refuses r + s ≡ 0; the standard's range checks on r and s are made here.
        const r = scalarOf(signature.subarray(0, SIGNATURE_BYTES / 2));
        const s = scalarOf(signature.subarray(SIGNATURE_BYTES / 2));
        if (r < 1n || r >= SM2_ORDER || s < 1n || s >= SM2_ORDER) return false;
        return sm2.doVerifySignature(message, toHex(signature), toHex(publicKey), { hash: true, der: false, userId: SM2_DEFAULT_USER_ID }) === true;
      } catch {
        return false;
      }
    },
    isValidPublicKey: isValidCompressedPoint,
  };
  return suite;
}
