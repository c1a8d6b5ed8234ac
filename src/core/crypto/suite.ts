/**
 * The one signature interface the protocol code sees. Every public key names its suite, so a
 * certificate or a payment says which algorithm verifies it.
 */
import { bytes, oneOf, record, refine, type Codec } from '../codec.ts';
import { TallyError } from '../errors.ts';

/** The signature suites Tally knows. */
export const SUITE_NAMES = ['ed25519', 'p256', 'secp256k1', 'sm2'] as const;
/** A suite's name, as it appears in keys and certificates. */
export type SuiteName = (typeof SUITE_NAMES)[number];

/** Sizes per suite: secret key, public key (compressed points for ECDSA), signature. */
export const SUITE_SIZES: Readonly<Record<SuiteName, { secretKey: number; publicKey: number; signature: number }>> = {
  ed25519: { secretKey: 32, publicKey: 32, signature: 64 },
  p256: { secretKey: 32, publicKey: 33, signature: 64 },
  // 64-byte r ‖ s plus Ethereum's recovery byte v (27 or 28).
  secp256k1: { secretKey: 32, publicKey: 33, signature: 65 },
  // SM2 (GB/T 32918) with SM3: a compressed point and a plain r ‖ s, no DER.
  sm2: { secretKey: 32, publicKey: 33, signature: 64 },
};

/** A public key with its suite. */
export interface PublicKey {
  readonly suite: SuiteName;
  readonly key: Uint8Array;
}

/** One signature algorithm. Bytes in, bytes out; lengths are checked on entry. */
export interface SignatureSuite {
  readonly name: SuiteName;
  /** A fresh random secret key. */
  generateSecretKey(): Uint8Array;
  /**
   * A secret key derived from at least 48 bytes of uniform key material (an HKDF output), so the
   * same material always gives the same key.
   */
  secretKeyFromSeed(seed: Uint8Array): Uint8Array;
  /** The public key of a secret key. */
  publicKey(secretKey: Uint8Array): Uint8Array;
  /** Signs a message (the suite hashes it as its standard says). */
  sign(secretKey: Uint8Array, message: Uint8Array): Uint8Array;
  /** True only for a valid signature by `publicKey` over `message`; false for any malformed input. */
  verify(publicKey: Uint8Array, signature: Uint8Array, message: Uint8Array): boolean;
  /** True when the bytes are a valid public key of this suite (on the curve, right length). */
  isValidPublicKey(publicKey: Uint8Array): boolean;
}

/** The suites available to protocol code, injected at start-up (Node, WebCrypto or pure noble). */
export interface CryptoProvider {
  readonly name: string;
  readonly suites: Readonly<Record<SuiteName, SignatureSuite>>;
}

/**
 * The suite a public key names.
 * @throws TallyError SUITE_UNKNOWN
 */
export function suiteFor(provider: CryptoProvider, name: string): SignatureSuite {
  // Own properties only: "toString" or "constructor" must not find Object.prototype's members.
  const suite = Object.hasOwn(provider.suites, name) ? (provider.suites as Record<string, SignatureSuite | undefined>)[name] : undefined;
  if (suite === undefined) throw new TallyError('SUITE_UNKNOWN', `unknown signature suite ${JSON.stringify(name)}`, { suite: name });
  return suite;
}

/** Decodes `{ suite, key }` with the key length the suite requires. */
export const publicKeyCodec: Codec<PublicKey> = refine(
  record({ suite: oneOf(SUITE_NAMES), key: bytes({ min: 32, max: 33 }) }),
  'a public key with its suite',
  (value, path) => {
    const want = SUITE_SIZES[value.suite].publicKey;
    return bytes({ length: want }).decode(value.key, `${path}.key`) && { suite: value.suite, key: value.key };
  },
);

/** Something that can sign with a key it does not reveal: a key in memory or inside an SE. */
export interface Signer {
  readonly publicKey: PublicKey;
  sign(message: Uint8Array): Uint8Array;
}

/** A signer over a secret key held in memory. */
export function signerFromSecret(suite: SignatureSuite, secretKey: Uint8Array): Signer {
  const publicKey: PublicKey = { suite: suite.name, key: suite.publicKey(secretKey) };
  return { publicKey, sign: (message) => suite.sign(secretKey, message) };
}

/** Checks a byte argument's type and length (noble's "bytes first"). */
export function checkBytes(name: string, value: Uint8Array, length?: number): void {
  if (!(value instanceof Uint8Array)) throw new TypeError(`${name}: expected a Uint8Array`);
  if (length !== undefined && value.length !== length) throw new RangeError(`${name}: expected ${length} bytes, got ${value.length}`);
}
