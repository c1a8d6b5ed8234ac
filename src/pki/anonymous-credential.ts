/**
 * Anonymous credentials: a maker (OEM) signs, once per device, the claim "a genuine device of kind
 * `label`, running the build whose reference value is `reference`", as a BBS signature (IETF
 * draft-irtf-cfrg-bbs-signatures, BLS12-381 with SHA-256, through @digitalbazaar/bbs-signatures on
 * noble). The device keeps the signature secret and shows, at each meeting, a fresh zero-knowledge
 * proof of it bound to that meeting (`bind`, e.g. a handshake hash): the proof shows the claim and
 * the maker's key, nothing else. Two proofs from one credential cannot be linked to each other or
 * to the signature, and a proof made for one meeting does not verify for another. This is what the
 * OPERA paper's Direct Anonymous Attestation gives its wallets (§3.1, §3.3.1).
 *
 * Pure: the library computes with noble's curves; its randomness is the platform's.
 */
import { x25519 } from '@noble/curves/ed25519.js';
import { concatBytes, utf8 } from '../core/bytes.ts';
import { aeadOpen, aeadSeal, hkdf, sha256 } from '../core/crypto/hash.ts';
import { TallyError } from '../core/errors.ts';

/** The ciphersuite (bbs.CIPHERSUITES.BLS12381_SHA256). */
const SUITE = 'BLS12-381-SHA-256';

let library: Promise<typeof import('@digitalbazaar/bbs-signatures')> | undefined;

/**
 * The BBS library, loaded on first use: its BLS12-381 fields are set up when it loads (about 0.1 s
 * of CPU), which every process importing this module (each `tally` command, the node) would
 * otherwise pay without ever making or checking a credential.
 */
function bbs(): Promise<typeof import('@digitalbazaar/bbs-signatures')> {
  library ??= import('@digitalbazaar/bbs-signatures');
  return library;
}
/** The header every credential is signed under: no signature made for another purpose passes. */
const HEADER = utf8('tally/anonymous-credential/v1');
/** Both claims are shown in every proof; the holder's secret (the third message) never is. */
const DISCLOSED = [0, 1];
/** Bytes of the holder's secret. */
export const CREDENTIAL_HOLDER_BYTES = 32;

/** A maker's public key (a BLS12-381 G2 point, compressed). */
export const CREDENTIAL_PUBLIC_KEY_BYTES = 96;
/** A maker's secret key (a scalar). */
export const CREDENTIAL_SECRET_KEY_BYTES = 32;
/** A credential (a BBS signature: a G1 point and a scalar). */
export const CREDENTIAL_BYTES = 80;
/** A proof that shows both claims and hides the holder's secret: three G1 points and five scalars. */
export const CREDENTIAL_PROOF_BYTES = 304;
/** The longest claim label. */
export const CREDENTIAL_LABEL_MAX = 64;

/** What a credential says of its holder: the kind of device and the reference value of its build. */
export interface CredentialClaims {
  /** The kind of device, e.g. `tally/opera/odw/v1`. */
  readonly label: string;
  /** The reference value of the genuine build (32 bytes: the PCR value the maker checked). */
  readonly reference: Uint8Array;
}

/** A maker's key pair. */
export interface CredentialKeys {
  readonly secretKey: Uint8Array;
  readonly publicKey: Uint8Array;
}

function claimMessages(claims: CredentialClaims): Uint8Array[] {
  const label = utf8(claims.label);
  if (label.length === 0 || label.length > CREDENTIAL_LABEL_MAX) throw new RangeError(`a credential label: 1 to ${CREDENTIAL_LABEL_MAX} bytes, got ${label.length}`);
  if (claims.reference.length !== 32) throw new RangeError(`a credential's reference value: 32 bytes, got ${claims.reference.length}`);
  return [label, claims.reference];
}

/**
 * The signed messages: the claims, then the holder's secret. BBS signing is deterministic, so
 * without a message of its own every device of a build would hold the same credential (one leak
 * would be every device's); the secret makes each device's credential its own.
 */
function messagesOf(claims: CredentialClaims, holder: Uint8Array): Uint8Array[] {
  if (holder.length !== CREDENTIAL_HOLDER_BYTES) throw new RangeError(`a holder's secret: ${CREDENTIAL_HOLDER_BYTES} bytes, got ${holder.length}`);
  return [...claimMessages(claims), holder];
}

/** The presentation header of a proof: the meeting it is made for, under its own label. */
function presentation(bind: Uint8Array): Uint8Array {
  return concatBytes(utf8('tally/anonymous-credential/proof/v1\0'), bind);
}

/** A new maker key pair; `seed` (32 bytes or more) makes it deterministic (tests). */
export async function credentialKeys(seed?: Uint8Array): Promise<CredentialKeys> {
  return (await bbs()).generateKeyPair({ ciphersuite: SUITE, ...(seed === undefined ? {} : { seed }) });
}

/** The maker's credential over `claims` for the device whose secret is `holder`: given to that device, kept secret there. */
export async function issueCredential(keys: CredentialKeys, claims: CredentialClaims, holder: Uint8Array): Promise<Uint8Array> {
  return (await bbs()).sign({ secretKey: keys.secretKey, publicKey: keys.publicKey, header: HEADER, messages: messagesOf(claims, holder), ciphersuite: SUITE });
}

/** True when `credential` is the maker's signature over `claims` and the device's secret (the device checks what it is given). */
export async function checkCredential(publicKey: Uint8Array, claims: CredentialClaims, holder: Uint8Array, credential: Uint8Array): Promise<boolean> {
  if (publicKey.length !== CREDENTIAL_PUBLIC_KEY_BYTES || credential.length !== CREDENTIAL_BYTES) return false;
  try {
    return await (await bbs()).verifySignature({ publicKey, signature: credential, header: HEADER, messages: messagesOf(claims, holder), ciphersuite: SUITE });
  } catch {
    // A point off the curve, a scalar out of range: not a credential.
    return false;
  }
}

/** A fresh proof of the credential for the meeting `bind`: unlinkable to every other proof. */
export async function proveCredential(options: { publicKey: Uint8Array; credential: Uint8Array; claims: CredentialClaims; holder: Uint8Array; bind: Uint8Array }): Promise<Uint8Array> {
  return (await bbs()).deriveProof({
    publicKey: options.publicKey,
    signature: options.credential,
    header: HEADER,
    messages: messagesOf(options.claims, options.holder),
    presentationHeader: presentation(options.bind),
    disclosedMessageIndexes: DISCLOSED,
    ciphersuite: SUITE,
  });
}

/** True when `proof` shows a credential of the maker `publicKey` over `claims`, made for the meeting `bind`. */
export async function verifyCredentialProof(options: { publicKey: Uint8Array; proof: Uint8Array; claims: CredentialClaims; bind: Uint8Array }): Promise<boolean> {
  if (options.publicKey.length !== CREDENTIAL_PUBLIC_KEY_BYTES || options.proof.length !== CREDENTIAL_PROOF_BYTES) return false;
  try {
    return await (await bbs()).verifyProof({
      publicKey: options.publicKey,
      proof: options.proof,
      header: HEADER,
      presentationHeader: presentation(options.bind),
      disclosedMessages: claimMessages(options.claims),
      disclosedMessageIndexes: DISCLOSED,
      ciphersuite: SUITE,
    });
  } catch {
    return false;
  }
}

/**
 * Asking a maker for a credential. The device draws its holder secret and a one-time X25519 key;
 * the TPM quote it gives the maker carries `credentialBinding(makerNonce, holder, boxKey)` as its
 * qualifying data, so the quote vouches for exactly this request; the maker answers the credential
 * sealed to `boxKey`, so the app that carries it never holds it (only the device can prove with it).
 */
export function credentialBinding(makerNonce: Uint8Array, holder: Uint8Array, boxKey: Uint8Array): Uint8Array {
  return sha256(concatBytes(utf8('tally/anonymous-credential/request/v1\0'), makerNonce, holder, boxKey));
}

/** A one-time key pair the credential comes sealed to. */
export function credentialBoxKeys(secret: Uint8Array): { privateKey: Uint8Array; publicKey: Uint8Array } {
  return { privateKey: secret, publicKey: x25519.getPublicKey(secret) };
}

function boxKeyOf(shared: Uint8Array, ephemeral: Uint8Array, recipient: Uint8Array): Uint8Array {
  return hkdf({ ikm: shared, info: concatBytes(utf8('tally/anonymous-credential/box/v1\0'), ephemeral, recipient), length: 32 });
}

/** The maker seals a credential to the device's one-time key: ephemeral key ‖ AEAD box. */
export function sealCredential(recipient: Uint8Array, credential: Uint8Array, ephemeralSecret: Uint8Array): Uint8Array {
  const ephemeral = x25519.getPublicKey(ephemeralSecret);
  const key = boxKeyOf(x25519.getSharedSecret(ephemeralSecret, recipient), ephemeral, recipient);
  return concatBytes(ephemeral, aeadSeal(key, credential, utf8('tally/anonymous-credential/box/v1')));
}

/**
 * The device opens what sealCredential made.
 * @throws TallyError AEAD_FAILED for a box sealed to another key or altered
 */
export function openCredential(privateKey: Uint8Array, sealed: Uint8Array): Uint8Array {
  if (sealed.length < 32) throw new TallyError('AEAD_FAILED', 'a sealed credential is too short', {});
  const ephemeral = sealed.subarray(0, 32);
  const recipient = x25519.getPublicKey(privateKey);
  const key = boxKeyOf(x25519.getSharedSecret(privateKey, ephemeral), ephemeral, recipient);
  return aeadOpen(key, sealed.subarray(32), utf8('tally/anonymous-credential/box/v1'));
}
