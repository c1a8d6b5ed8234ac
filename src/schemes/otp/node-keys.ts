/**
 * The OTP bank's own keys, derived from the node's identity so that nothing new has to be stored
 * or backed up: the escrow key (transfer tags are sealed to it, escrow.ts), the deposit key (coins
 * are sealed to it when deposited, transfer.ts) and the key that wraps the class keys in the
 * database. Each comes from the root key's signature over a label: Ed25519 signs deterministically,
 * so the same identity gives the same keys at every start. A root that signs with fresh randomness
 * (SM2, ECDSA) cannot be used this way: the keys then come from a random master seed the node keeps
 * in its database (`otp_secrets`), made once, so the database's access control protects them.
 */
import { createCipheriv, createDecipheriv, randomBytes as nodeRandomBytes } from 'node:crypto';
import { concatBytes, equalBytes, utf8 } from '../../core/bytes.ts';
import { encodeCbor } from '../../core/cbor.ts';
import { sha256 } from '../../core/crypto/hash.ts';
import { signRecord } from '../../core/crypto/record.ts';
import type { Signer } from '../../core/crypto/suite.ts';
import { TallyError } from '../../core/errors.ts';
import { storedSecret, type IssuerServices } from '../../issuer/plugin.ts';
import { deriveKeyPair, type HpkeKeyPair } from '../../core/crypto/hpke.ts';

const ESCROW_SEED = 'tally/otp/escrow-seed/v1';
const DEPOSIT_SEED = 'tally/otp/deposit-seed/v1';
const CLASS_WRAP_SEED = 'tally/otp/class-wrap/v1';
const CLASS_WRAP_AAD = 'tally/otp/class-key/v1';
const GCM_IV_BYTES = 12;
const GCM_TAG_BYTES = 16;

/** The bank's derived keys. */
export interface OtpBankKeys {
  /** Opens transfer tags when a serial is deposited twice. */
  readonly escrow: HpkeKeyPair;
  /** Opens coins sealed for deposit. */
  readonly deposit: HpkeKeyPair;
  /** AES-256-GCM key of the class keys at rest. */
  readonly classWrap: Uint8Array;
}

/** 32 bytes for `label` from a master source: the root's deterministic signature, or a stored seed. */
type Seeds = (label: string) => Uint8Array;

/** The root's signatures as seeds, or null when they are randomized (two over the same label differ). */
function signatureSeeds(root: Signer): Seeds | null {
  const first = signRecord(root, ESCROW_SEED, {});
  const second = signRecord(root, ESCROW_SEED, {});
  if (!equalBytes(first, second)) return null;
  return (label) => sha256(signRecord(root, label, {}));
}

/** The stored master seed (made once, under the row's uniqueness), as seeds. */
async function storedSeeds(services: Pick<IssuerServices, 'db'>): Promise<Seeds> {
  const secret = await storedSecret(services.db, 'otp_secrets', 'master');
  return (label) => sha256(concatBytes(utf8(label), secret));
}

const derived = new WeakMap<IssuerServices['identity'], OtpBankKeys>();

/** Makes the bank's keys for this node's identity (at start: `prepare`), from the root's signatures or the stored seed. */
export async function loadOtpBankKeys(services: Pick<IssuerServices, 'identity' | 'db'>): Promise<OtpBankKeys> {
  const held = derived.get(services.identity);
  if (held !== undefined) return held;
  // An intermediary holds no root key: its seed is stored, as on a root whose signatures are randomized.
  const root = services.identity.root.signer;
  const seeds = (root === undefined ? null : signatureSeeds(root)) ?? (await storedSeeds(services));
  const keys: OtpBankKeys = { escrow: deriveKeyPair(seeds(ESCROW_SEED)), deposit: deriveKeyPair(seeds(DEPOSIT_SEED)), classWrap: seeds(CLASS_WRAP_SEED) };
  derived.set(services.identity, keys);
  return keys;
}

/**
 * The bank's keys, made at start by loadOtpBankKeys.
 * @throws TallyError ASSERTION_FAILED when the node part's prepare has not run
 */
export function otpBankKeys(services: Pick<IssuerServices, 'identity'>): OtpBankKeys {
  const held = derived.get(services.identity);
  if (held === undefined) throw new TallyError('ASSERTION_FAILED', "the OTP bank keys are made by the node part's prepare, which has not run", {});
  return held;
}

function wrapAad(classId: Uint8Array): Uint8Array {
  return encodeCbor([CLASS_WRAP_AAD, classId]);
}

/** Encrypts a class's private key (PKCS#8 DER) for its row: iv ‖ ciphertext ‖ tag, bound to the class id. */
export function wrapClassKey(wrapKey: Uint8Array, classId: Uint8Array, pkcs8: Uint8Array): Uint8Array {
  const iv = new Uint8Array(nodeRandomBytes(GCM_IV_BYTES));
  const cipher = createCipheriv('aes-256-gcm', wrapKey, iv);
  cipher.setAAD(wrapAad(classId));
  const ciphertext = concatBytes(new Uint8Array(cipher.update(pkcs8)), new Uint8Array(cipher.final()));
  return concatBytes(iv, ciphertext, new Uint8Array(cipher.getAuthTag()));
}

/**
 * Decrypts what wrapClassKey wrote.
 * @throws TallyError AEAD_FAILED for another key, another class or altered bytes
 */
export function unwrapClassKey(wrapKey: Uint8Array, classId: Uint8Array, wrapped: Uint8Array): Uint8Array {
  if (wrapped.length < GCM_IV_BYTES + GCM_TAG_BYTES + 1) throw new TallyError('AEAD_FAILED', 'a wrapped class key is too short', {});
  try {
    const decipher = createDecipheriv('aes-256-gcm', wrapKey, wrapped.subarray(0, GCM_IV_BYTES));
    decipher.setAAD(wrapAad(classId));
    decipher.setAuthTag(wrapped.subarray(wrapped.length - GCM_TAG_BYTES));
    return concatBytes(new Uint8Array(decipher.update(wrapped.subarray(GCM_IV_BYTES, wrapped.length - GCM_TAG_BYTES))), new Uint8Array(decipher.final()));
  } catch (e) {
    throw new TallyError('AEAD_FAILED', 'a class key does not open under this node\'s wrapping key (another identity, or altered)', {}, { cause: e });
  }
}
