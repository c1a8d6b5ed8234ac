/**
 * HPKE (RFC 9180), base mode only, for one suite: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256 and
 * ChaCha20-Poly1305. Synchronous, built from the @noble primitives, so that a trusted app (whose
 * commands return results, not promises) can seal to a key: OTP seals a coin to the payee's one-time
 * exchange key, and the escrow tags (pki/escrow-tags.ts) are sealed to the central bank's escrow key.
 *
 * Section numbers in comments are those of RFC 9180.
 *
 * Errors: a ciphertext that does not open (wrong key, tampered enc, ciphertext, aad or info, too
 * short) is TallyError AEAD_FAILED; a public key or enc of the wrong length, or a low-order
 * X25519 point (all-zero shared secret, §7.1.4), is TallyError KEY_INVALID; a local argument of the
 * wrong type or length (a private key, an ikm, an export length) is a TypeError or RangeError.
 */
import { x25519 } from '@noble/curves/ed25519.js';
import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { expand, extract } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { concatBytes, utf8 } from '../bytes.ts';
import { randomBytes } from './hash.ts';
import { checkSize, TallyError } from '../errors.ts';

/** The suite's identifiers (§7): KEM, KDF and AEAD. */
export const HPKE_KEM_ID = 0x0020;
export const HPKE_KDF_ID = 0x0001;
export const HPKE_AEAD_ID = 0x0003;
/** The suite's name in errors. */
export const HPKE_SUITE_NAME = 'DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20Poly1305';

/** Byte lengths of the suite (§7.1, §7.2, §7.3): Npk = Nenc = Nsk = Nsecret = Nh = Nk = 32. */
export const HPKE_PUBLIC_KEY_BYTES = 32;
export const HPKE_PRIVATE_KEY_BYTES = 32;
export const HPKE_ENC_BYTES = 32;
const SECRET_BYTES = 32;
const HASH_BYTES = 32;
const KEY_BYTES = 32;
const NONCE_BYTES = 12;
/** The Poly1305 tag: every ciphertext is this much longer than its plaintext. */
export const HPKE_TAG_BYTES = 16;

/** Limits on the caller's context strings (§7.2.1 asks for at least 64 bytes). */
export const HPKE_INFO_BYTES_MAX = 4096;
export const HPKE_AAD_BYTES_MAX = 4096;
export const HPKE_EXPORTER_CONTEXT_BYTES_MAX = 4096;
/** The largest Export length: 255 · Nh (§5.3, HKDF-Expand's limit). */
export const HPKE_EXPORT_BYTES_MAX = 255 * HASH_BYTES;
/** The last sequence number a context uses; far below 2^96 − 1 (§5.2), and exact in a JS number. */
const SEQUENCE_MAX = Number.MAX_SAFE_INTEGER;

const MODE_BASE = 0x00;
const VERSION_LABEL = utf8('HPKE-v1');
const EMPTY = new Uint8Array(0);

/** I2OSP(n, w) (§4): n as w big-endian bytes. */
function i2osp(n: number, w: number): Uint8Array {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`i2osp: expected a non-negative safe integer, got ${n}`);
  const out = new Uint8Array(w);
  let rest = n;
  for (let i = w - 1; i >= 0 && rest > 0; i--) {
    out[i] = rest % 256;
    rest = Math.floor(rest / 256);
  }
  if (rest > 0) throw new RangeError(`i2osp: ${n} does not fit in ${w} bytes`);
  return out;
}

const KEM_SUITE_ID = concatBytes(utf8('KEM'), i2osp(HPKE_KEM_ID, 2));
const HPKE_SUITE_ID = concatBytes(utf8('HPKE'), i2osp(HPKE_KEM_ID, 2), i2osp(HPKE_KDF_ID, 2), i2osp(HPKE_AEAD_ID, 2));

/** LabeledExtract (§4): Extract(salt, "HPKE-v1" ‖ suite_id ‖ label ‖ ikm). */
function labeledExtract(suiteId: Uint8Array, salt: Uint8Array, label: string, ikm: Uint8Array): Uint8Array {
  return extract(sha256, concatBytes(VERSION_LABEL, suiteId, utf8(label), ikm), salt);
}

/** LabeledExpand (§4): Expand(prk, I2OSP(L, 2) ‖ "HPKE-v1" ‖ suite_id ‖ label ‖ info, L). */
function labeledExpand(suiteId: Uint8Array, prk: Uint8Array, label: string, info: Uint8Array, length: number): Uint8Array {
  return expand(sha256, prk, concatBytes(i2osp(length, 2), VERSION_LABEL, suiteId, utf8(label), info), length);
}

function checkType(name: string, value: unknown): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array)) throw new TypeError(`hpke ${name}: expected a Uint8Array`);
}

/** A local secret of the wrong length is the caller's bug: RangeError. */
function checkLength(name: string, value: unknown, length: number): asserts value is Uint8Array {
  checkType(name, value);
  if (value.length !== length) throw new RangeError(`hpke ${name}: expected ${length} bytes, got ${value.length}`);
}

/** A public key or enc arrives from a peer: a wrong length is refused as an invalid key. */
function checkPeerKey(name: string, value: unknown): asserts value is Uint8Array {
  checkType(name, value);
  if (value.length !== HPKE_PUBLIC_KEY_BYTES) {
    throw new TallyError('KEY_INVALID', `hpke ${name}: expected ${HPKE_PUBLIC_KEY_BYTES} bytes, got ${value.length}`, {
      suite: HPKE_SUITE_NAME,
      reason: `${name} of ${value.length} bytes`,
    });
  }
}

function checkContext(name: string, value: unknown, max: number): asserts value is Uint8Array {
  checkType(name, value);
  checkSize(`hpke ${name}`, value.length, max);
}

/**
 * DH(sk, pk) for X25519 with the check of §7.1.4 (RFC 7748 §6.1): a low-order point, whose
 * shared secret is all zero, is refused.
 */
function dh(privateKey: Uint8Array, publicKey: Uint8Array, name: string, scalarMult: X25519 = nobleX25519): Uint8Array {
  let shared: Uint8Array;
  try {
    // noble refuses the low-order points by list before running the ladder (OpenSSL refuses the
    // all-zero secret); the check below holds whichever ran.
    shared = scalarMult(privateKey, publicKey);
  } catch (e) {
    throw new TallyError('KEY_INVALID', `hpke ${name}: a low-order X25519 point (the shared secret would be all zero)`, { suite: HPKE_SUITE_NAME, reason: 'low-order point' }, { cause: e });
  }
  let any = 0;
  for (const b of shared) any |= b;
  if (any === 0) throw new TallyError('KEY_INVALID', `hpke ${name}: the X25519 shared secret is all zero`, { suite: HPKE_SUITE_NAME, reason: 'low-order point' });
  return shared;
}

/**
 * X25519(sk, pk): the shared point's u-coordinate (RFC 7748 §5). The default is noble's, which a
 * trusted app runs; a host may give a native one (the issuer node's, on node:crypto).
 */
export type X25519 = (privateKey: Uint8Array, publicKey: Uint8Array) => Uint8Array;

const nobleX25519: X25519 = (privateKey, publicKey) => x25519.scalarMult(privateKey, publicKey);

/** An X25519 key pair. */
export interface HpkeKeyPair {
  readonly privateKey: Uint8Array;
  readonly publicKey: Uint8Array;
}

/** A source of random bytes; a trusted app passes its `env.random`. */
export type RandomSource = (length: number) => Uint8Array;

/**
 * The public key of a private key (SerializePublicKey(pk(sk)), §7.1.1).
 * @throws RangeError for a private key that is not 32 bytes
 */
export function publicKeyOf(privateKey: Uint8Array): Uint8Array {
  checkLength('private key', privateKey, HPKE_PRIVATE_KEY_BYTES);
  return x25519.scalarMultBase(privateKey);
}

/** GenerateKeyPair (§4): a fresh random key pair. */
export function generateKeyPair(random: RandomSource = randomBytes): HpkeKeyPair {
  const privateKey = random(HPKE_PRIVATE_KEY_BYTES);
  checkLength('random private key', privateKey, HPKE_PRIVATE_KEY_BYTES);
  return { privateKey, publicKey: publicKeyOf(privateKey) };
}

/**
 * DeriveKeyPair (§7.1.3, X25519): the key pair determined by `ikm` (at least Nsk = 32 bytes of entropy).
 * @throws RangeError for an ikm shorter than 32 bytes
 */
export function deriveKeyPair(ikm: Uint8Array): HpkeKeyPair {
  checkType('ikm', ikm);
  if (ikm.length < HPKE_PRIVATE_KEY_BYTES) throw new RangeError(`hpke ikm: expected at least ${HPKE_PRIVATE_KEY_BYTES} bytes, got ${ikm.length}`);
  const dkpPrk = labeledExtract(KEM_SUITE_ID, EMPTY, 'dkp_prk', ikm);
  const privateKey = labeledExpand(KEM_SUITE_ID, dkpPrk, 'sk', EMPTY, HPKE_PRIVATE_KEY_BYTES);
  return { privateKey, publicKey: publicKeyOf(privateKey) };
}

/** ExtractAndExpand (§4.1). */
function extractAndExpand(dhShared: Uint8Array, kemContext: Uint8Array): Uint8Array {
  const eaePrk = labeledExtract(KEM_SUITE_ID, EMPTY, 'eae_prk', dhShared);
  return labeledExpand(KEM_SUITE_ID, eaePrk, 'shared_secret', kemContext, SECRET_BYTES);
}

/** What Encap returns (§4.1): the KEM shared secret and its encapsulation. */
export interface HpkeEncapsulation {
  readonly sharedSecret: Uint8Array;
  readonly enc: Uint8Array;
}

function encapWith(recipientPublicKey: Uint8Array, ephemeral: HpkeKeyPair): HpkeEncapsulation {
  checkPeerKey('recipient public key', recipientPublicKey);
  const dhShared = dh(ephemeral.privateKey, recipientPublicKey, 'recipient public key');
  const enc = ephemeral.publicKey;
  return { sharedSecret: extractAndExpand(dhShared, concatBytes(enc, recipientPublicKey)), enc };
}

/**
 * Encap (§4.1) under a fresh ephemeral key.
 * @throws TallyError KEY_INVALID for a public key of the wrong length or of low order
 */
export function encap(recipientPublicKey: Uint8Array, random: RandomSource = randomBytes): HpkeEncapsulation {
  return encapWith(recipientPublicKey, generateKeyPair(random));
}

/**
 * Encap (§4.1) with the ephemeral key derived from `ikmE`, as the RFC's test vectors do.
 * For test vectors only: an ephemeral key used twice breaks the confidentiality of both messages.
 * @throws TallyError KEY_INVALID for a public key of the wrong length or of low order
 */
export function encapDeterministicForTests(recipientPublicKey: Uint8Array, ikmE: Uint8Array): HpkeEncapsulation {
  return encapWith(recipientPublicKey, deriveKeyPair(ikmE));
}

/**
 * Decap (§4.1).
 * @throws TallyError KEY_INVALID for an enc of the wrong length or of low order
 * @throws RangeError for a private key that is not 32 bytes
 */
export function decap(enc: Uint8Array, recipientPrivateKey: Uint8Array, known: { publicKey?: Uint8Array | undefined; scalarMult?: X25519 | undefined } = {}): Uint8Array {
  checkPeerKey('enc', enc);
  // The recipient's public key when the caller holds it (one X25519 operation instead of two): a
  // wrong one only derives another secret, so the ciphertext fails to open.
  const recipientPublicKey = known.publicKey ?? publicKeyOf(recipientPrivateKey);
  checkLength('recipient public key', recipientPublicKey, HPKE_PUBLIC_KEY_BYTES);
  const dhShared = dh(recipientPrivateKey, enc, 'enc', known.scalarMult);
  return extractAndExpand(dhShared, concatBytes(enc, recipientPublicKey));
}

/** The values KeySchedule derives (§5.1); exported for the test vectors, not for protocol code. */
export interface HpkeKeySchedule {
  readonly keyScheduleContext: Uint8Array;
  readonly secret: Uint8Array;
  readonly key: Uint8Array;
  readonly baseNonce: Uint8Array;
  readonly exporterSecret: Uint8Array;
}

/**
 * KeySchedule (§5.1) in base mode: no PSK, so psk and psk_id are empty.
 * @throws TallyError TOO_LARGE for an info over HPKE_INFO_BYTES_MAX
 */
export function keyScheduleBase(sharedSecret: Uint8Array, info: Uint8Array): HpkeKeySchedule {
  checkLength('shared secret', sharedSecret, SECRET_BYTES);
  checkContext('info', info, HPKE_INFO_BYTES_MAX);
  const pskIdHash = labeledExtract(HPKE_SUITE_ID, EMPTY, 'psk_id_hash', EMPTY);
  const infoHash = labeledExtract(HPKE_SUITE_ID, EMPTY, 'info_hash', info);
  const keyScheduleContext = concatBytes(Uint8Array.of(MODE_BASE), pskIdHash, infoHash);
  const secret = labeledExtract(HPKE_SUITE_ID, sharedSecret, 'secret', EMPTY);
  return {
    keyScheduleContext,
    secret,
    key: labeledExpand(HPKE_SUITE_ID, secret, 'key', keyScheduleContext, KEY_BYTES),
    baseNonce: labeledExpand(HPKE_SUITE_ID, secret, 'base_nonce', keyScheduleContext, NONCE_BYTES),
    exporterSecret: labeledExpand(HPKE_SUITE_ID, secret, 'exp', keyScheduleContext, HASH_BYTES),
  };
}

/** ComputeNonce (§5.2): base_nonce XOR I2OSP(seq, Nn). */
function computeNonce(baseNonce: Uint8Array, seq: number): Uint8Array {
  const seqBytes = i2osp(seq, NONCE_BYTES);
  const nonce = new Uint8Array(NONCE_BYTES);
  for (let i = 0; i < NONCE_BYTES; i++) nonce[i] = (baseNonce[i] as number) ^ (seqBytes[i] as number);
  return nonce;
}

/** Export (§5.3): LabeledExpand(exporter_secret, "sec", exporter_context, L). */
function exportFrom(exporterSecret: Uint8Array, exporterContext: Uint8Array, length: number): Uint8Array {
  checkContext('exporter context', exporterContext, HPKE_EXPORTER_CONTEXT_BYTES_MAX);
  if (!Number.isInteger(length) || length < 1 || length > HPKE_EXPORT_BYTES_MAX) {
    throw new RangeError(`hpke export length: expected an integer from 1 to ${HPKE_EXPORT_BYTES_MAX}, got ${length}`);
  }
  return labeledExpand(HPKE_SUITE_ID, exporterSecret, 'sec', exporterContext, length);
}

/** The state shared by both ends of a context (§5.2): key, base nonce, sequence number, exporter secret. */
abstract class HpkeContext {
  readonly #key: Uint8Array;
  readonly #baseNonce: Uint8Array;
  readonly #exporterSecret: Uint8Array;
  #seq = 0;

  protected constructor(schedule: HpkeKeySchedule) {
    this.#key = schedule.key;
    this.#baseNonce = schedule.baseNonce;
    this.#exporterSecret = schedule.exporterSecret;
  }

  /** The sequence number the next seal or open uses. */
  get seq(): number {
    return this.#seq;
  }

  /**
   * Export (§5.3): `length` bytes of secret bound to this context and `exporterContext`.
   * @throws RangeError for a length outside 1..HPKE_EXPORT_BYTES_MAX
   * @throws TallyError TOO_LARGE for an exporter context over HPKE_EXPORTER_CONTEXT_BYTES_MAX
   */
  export(exporterContext: Uint8Array, length: number): Uint8Array {
    return exportFrom(this.#exporterSecret, exporterContext, length);
  }

  /** The AEAD under the current nonce; the caller advances the sequence after success. */
  protected cipher(aad: Uint8Array): ReturnType<typeof chacha20poly1305> {
    checkContext('aad', aad, HPKE_AAD_BYTES_MAX);
    if (this.#seq >= SEQUENCE_MAX) {
      throw new TallyError('TOO_LARGE', 'hpke context: the message limit is reached', { what: 'hpke sequence number', size: this.#seq, max: SEQUENCE_MAX - 1 });
    }
    return chacha20poly1305(this.#key, computeNonce(this.#baseNonce, this.#seq), aad);
  }

  /** IncrementSeq (§5.2). */
  protected advance(): void {
    this.#seq += 1;
  }
}

/** The sender's context (§5.2): seals messages in order, sequence 0, 1, 2, … */
export class HpkeSenderContext extends HpkeContext {
  /** The encapsulated key the recipient needs to set up its context. */
  readonly enc: Uint8Array;

  /** Built by setupBaseS; exported for its type only. */
  constructor(enc: Uint8Array, schedule: HpkeKeySchedule) {
    super(schedule);
    this.enc = enc;
  }

  /**
   * ContextS.Seal (§5.2): encrypts `plaintext` bound to `aad` under the next sequence number.
   * @throws TallyError TOO_LARGE for an aad over HPKE_AAD_BYTES_MAX
   */
  seal(plaintext: Uint8Array, aad: Uint8Array = EMPTY): Uint8Array {
    checkType('plaintext', plaintext);
    const ciphertext = this.cipher(aad).encrypt(plaintext);
    this.advance();
    return ciphertext;
  }
}

/** The recipient's context (§5.2): opens messages in the order they were sealed. */
export class HpkeRecipientContext extends HpkeContext {
  /** Built by setupBaseR; exported for its type only. */
  constructor(schedule: HpkeKeySchedule) {
    super(schedule);
  }

  /**
   * ContextR.Open (§5.2): decrypts the next message; the sequence advances only on success.
   * @throws TallyError AEAD_FAILED when the ciphertext does not open (wrong key, tampered, other info or aad, out of order)
   */
  open(ciphertext: Uint8Array, aad: Uint8Array = EMPTY): Uint8Array {
    checkType('ciphertext', ciphertext);
    if (ciphertext.length < HPKE_TAG_BYTES) {
      throw new TallyError('AEAD_FAILED', `hpke ciphertext of ${ciphertext.length} bytes is shorter than its ${HPKE_TAG_BYTES}-byte tag`, {});
    }
    const cipher = this.cipher(aad);
    let plaintext: Uint8Array;
    try {
      plaintext = cipher.decrypt(ciphertext);
    } catch (e) {
      throw new TallyError('AEAD_FAILED', 'hpke ciphertext failed authentication (wrong key, tampered, or other info or aad)', {}, { cause: e });
    }
    this.advance();
    return plaintext;
  }
}

/** Options of setupBaseS and sealBase. */
export interface HpkeSenderOptions {
  readonly recipientPublicKey: Uint8Array;
  /** Application context bound into the key schedule; empty when absent. */
  readonly info?: Uint8Array | undefined;
  /** Randomness for the ephemeral key; a trusted app passes `env.random`. */
  readonly random?: RandomSource | undefined;
}

/** Options of setupBaseR and openBase. */
export interface HpkeRecipientOptions {
  readonly recipientPrivateKey: Uint8Array;
  readonly enc: Uint8Array;
  readonly info?: Uint8Array | undefined;
  /** The recipient's public key, when the caller holds it: saves deriving it again. */
  readonly recipientPublicKey?: Uint8Array | undefined;
  /** Another X25519 than noble's (a host's native one). */
  readonly scalarMult?: X25519 | undefined;
}

/**
 * SetupBaseS (§5.1.1): a sender context for the recipient's public key, and the enc to send.
 * @throws TallyError KEY_INVALID for a public key of the wrong length or of low order
 * @throws TallyError TOO_LARGE for an info over HPKE_INFO_BYTES_MAX
 */
export function setupBaseS(options: HpkeSenderOptions): HpkeSenderContext {
  const info = options.info ?? EMPTY;
  checkContext('info', info, HPKE_INFO_BYTES_MAX);
  const { sharedSecret, enc } = encap(options.recipientPublicKey, options.random ?? randomBytes);
  return new HpkeSenderContext(enc, keyScheduleBase(sharedSecret, info));
}

/**
 * SetupBaseS (§5.1.1) with the ephemeral key derived from `ikmE`. For test vectors only: an
 * ephemeral key used twice breaks the confidentiality of both messages.
 * @throws TallyError KEY_INVALID for a public key of the wrong length or of low order
 */
export function setupBaseSDeterministicForTests(options: { recipientPublicKey: Uint8Array; info?: Uint8Array | undefined; ikmE: Uint8Array }): HpkeSenderContext {
  const info = options.info ?? EMPTY;
  checkContext('info', info, HPKE_INFO_BYTES_MAX);
  const { sharedSecret, enc } = encapDeterministicForTests(options.recipientPublicKey, options.ikmE);
  return new HpkeSenderContext(enc, keyScheduleBase(sharedSecret, info));
}

/**
 * SetupBaseR (§5.1.1): the recipient context for an enc received.
 * @throws TallyError KEY_INVALID for an enc of the wrong length or of low order
 * @throws TallyError TOO_LARGE for an info over HPKE_INFO_BYTES_MAX
 * @throws RangeError for a private key that is not 32 bytes
 */
export function setupBaseR(options: HpkeRecipientOptions): HpkeRecipientContext {
  const info = options.info ?? EMPTY;
  checkContext('info', info, HPKE_INFO_BYTES_MAX);
  return new HpkeRecipientContext(keyScheduleBase(decap(options.enc, options.recipientPrivateKey, { publicKey: options.recipientPublicKey, scalarMult: options.scalarMult }), info));
}

/**
 * Single-shot Seal in base mode (§6.1): one message to the recipient's public key.
 * @throws TallyError KEY_INVALID for a public key of the wrong length or of low order
 * @throws TallyError TOO_LARGE for an info or aad over its limit
 */
export function sealBase(options: HpkeSenderOptions & { aad?: Uint8Array | undefined; plaintext: Uint8Array }): { enc: Uint8Array; ciphertext: Uint8Array } {
  const context = setupBaseS(options);
  return { enc: context.enc, ciphertext: context.seal(options.plaintext, options.aad ?? EMPTY) };
}

/**
 * Single-shot Open in base mode (§6.1).
 * @throws TallyError AEAD_FAILED when the ciphertext does not open (wrong key, tampered enc, ciphertext, aad or info)
 * @throws TallyError KEY_INVALID for an enc of the wrong length or of low order
 */
export function openBase(options: HpkeRecipientOptions & { aad?: Uint8Array | undefined; ciphertext: Uint8Array }): Uint8Array {
  return setupBaseR(options).open(options.ciphertext, options.aad ?? EMPTY);
}

/**
 * Single-shot secret export, sender side (§6.2): the enc to send and `length` bytes of secret.
 * @throws TallyError KEY_INVALID for a public key of the wrong length or of low order
 */
export function sendExportBase(options: HpkeSenderOptions & { exporterContext: Uint8Array; length: number }): { enc: Uint8Array; exported: Uint8Array } {
  const context = setupBaseS(options);
  return { enc: context.enc, exported: context.export(options.exporterContext, options.length) };
}

/**
 * Single-shot secret export, recipient side (§6.2): the same bytes the sender exported.
 * @throws TallyError KEY_INVALID for an enc of the wrong length or of low order
 */
export function receiveExportBase(options: HpkeRecipientOptions & { exporterContext: Uint8Array; length: number }): Uint8Array {
  return setupBaseR(options).export(options.exporterContext, options.length);
}
