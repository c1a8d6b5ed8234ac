/**
 * One-time keys (paper §3.3.1, Equation 1): `OTK_0 = Hash(SEED)`, `OTK_n = Hash(OTK_{n-1} ‖ Msg†)`
 * where Msg† is the previous message. Every Stage 2 and Stage 3 message is sealed under its own
 * OTK, so the messages form a chain: a message replayed, dropped, reordered or altered breaks it,
 * and the next one fails to open. The hash is SHA-256 by default; SHA-1 is the paper's own choice
 * (its prototype used it, §3.3.1) and is kept as an option for comparison.
 *
 * Here Msg† is the previous message's plaintext (the bytes both sides hold after opening it). An
 * OTK is at most 32 bytes (20 with SHA-1); each message is sealed with XChaCha20-Poly1305 under a
 * key drawn from its OTK by HKDF-SHA-256, with the message's index and direction as associated data.
 *
 * Also here: the seed of a mount, and the token key `PTK` that seals each token of Stage 2.
 * Pure.
 */
import { sha1 } from '@noble/hashes/legacy.js';
import { concatBytes, utf8 } from '../../core/bytes.ts';
import { aeadOpen, aeadSeal, hkdf, sha256 } from '../../core/crypto/hash.ts';

/** The hash of the OTK chain. */
export type OtkHash = 'sha256' | 'sha1';
export const OTK_HASHES: readonly OtkHash[] = ['sha256', 'sha1'];
/** Bytes of a mount's seed. */
export const SEED_BYTES = 32;
/** Bytes of a token key. */
export const PTK_BYTES = 32;
/** Bytes an AEAD box adds to its plaintext (nonce and tag). */
export const BOX_OVERHEAD_BYTES = 40;

function hash(algorithm: OtkHash, data: Uint8Array): Uint8Array {
  return algorithm === 'sha1' ? sha1(data) : sha256(data);
}

/** `OTK_0 = Hash(SEED)`. */
export function firstOtk(algorithm: OtkHash, seed: Uint8Array): Uint8Array {
  return hash(algorithm, seed);
}

/** `OTK_n = Hash(OTK_{n-1} ‖ Msg†)`, Msg† the previous message's plaintext. */
export function nextOtk(algorithm: OtkHash, otk: Uint8Array, previous: Uint8Array): Uint8Array {
  return hash(algorithm, concatBytes(otk, previous));
}

function boxKey(otk: Uint8Array): Uint8Array {
  return hkdf({ ikm: otk, info: 'tally/opera/otk-box/v1', length: 32 });
}

function context(index: number, from: 'payer' | 'payee'): Uint8Array {
  return utf8(`tally/opera/message/v1\0${index}\0${from}`);
}

/** Seals the `index`-th message of a mount, sent by `from`, under its OTK. */
export function sealMessage(otk: Uint8Array, index: number, from: 'payer' | 'payee', plaintext: Uint8Array): Uint8Array {
  return aeadSeal(boxKey(otk), plaintext, context(index, from));
}

/**
 * Opens the `index`-th message of a mount, sent by `from`.
 * @throws TallyError AEAD_FAILED for a message sealed under another key (replayed, reordered, altered)
 */
export function openMessage(otk: Uint8Array, index: number, from: 'payer' | 'payee', box: Uint8Array): Uint8Array {
  return aeadOpen(boxKey(otk), box, context(index, from));
}

/**
 * A mount's SEED: from the two ODWs' ephemeral X25519 agreement, salted with the link's handshake
 * hash and bound to both ephemeral keys, so that neither wallet app (which sees the handshake) can
 * compute it.
 */
export function mountSeed(shared: Uint8Array, handshakeHash: Uint8Array, payerKey: Uint8Array, payeeKey: Uint8Array): Uint8Array {
  return hkdf({ ikm: shared, salt: handshakeHash, info: concatBytes(utf8('tally/opera/seed/v1\0'), payerKey, payeeKey), length: SEED_BYTES });
}

/** The key that seals the hello each side sends in Stage 1 (its SN, inside the secure mount). */
export function helloKey(seed: Uint8Array, from: 'payer' | 'payee'): Uint8Array {
  return hkdf({ ikm: seed, info: `tally/opera/hello/v1\0${from}`, length: 32 });
}

/** Which way a token goes: the payer's payment (under PTK_A) or the payee's change (under PTK_B). */
export type TokenLeg = 'pay' | 'change';

function tokenContext(txid: Uint8Array, counter: number, leg: TokenLeg): Uint8Array {
  return concatBytes(utf8(`tally/opera/${leg === 'pay' ? 'token' : 'change'}-box/v1\0${counter}\0`), txid);
}

/** `{Token}PTK_A` (or the change's `{Token}PTK_B`): the `counter`-th token of transaction `txid`, sealed under the sender's token key. */
export function sealToken(ptk: Uint8Array, txid: Uint8Array, counter: number, token: Uint8Array, leg: TokenLeg = 'pay'): Uint8Array {
  return aeadSeal(ptk, token, tokenContext(txid, counter, leg));
}

/**
 * Opens a token sealed by sealToken.
 * @throws TallyError AEAD_FAILED under a wrong PTK, another transaction, another position or the other leg
 */
export function openToken(ptk: Uint8Array, txid: Uint8Array, counter: number, box: Uint8Array, leg: TokenLeg = 'pay'): Uint8Array {
  return aeadOpen(ptk, box, tokenContext(txid, counter, leg));
}
