/**
 * One coin's transfer (OTP paper Figure 4 and §3.3): the payer's TA seals the coin to the payee
 * TA's exchange key (HPKE base mode, hpke.ts) and keeps it in flight; the payee's TA opens it and
 * answers an ACK; the payer's TA checks the ACK and only then destroys its copy.
 *
 * The exchange key's private half lives only in the payee's TA, so a sealed coin intercepted or
 * copied to anyone else cannot be opened. The ACK cannot be signed with an X25519 key: it is a MAC
 * under a secret both TAs draw from the HPKE context (its exporter, §5.3 of RFC 9180), which no one
 * but the holder of the exchange key can derive; the payer keeps that secret while the coin is in
 * flight. The HPKE `info` binds the exchange key id and the label, the AAD the coin's class, so a
 * box cannot be replayed under another key or taken for another kind of message.
 */
import { hmac } from '@noble/hashes/hmac.js';
import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js';
import { concatBytes, equalBytes, utf8 } from '../../core/bytes.ts';
import { decodeCbor, encodeCbor } from '../../core/cbor.ts';
import { bytes, record, type Infer } from '../../core/codec.ts';
import { sha256 } from '../../core/crypto/hash.ts';
import { TallyError } from '../../core/errors.ts';
import { CLASS_ID_BYTES } from './coin.ts';
import { carriedCoinCodec, type CarriedCoin } from './messages.ts';
import { exchangeKeyId } from './exchange-key.ts';
import { HPKE_ENC_BYTES, setupBaseR, setupBaseS, type RandomSource, type X25519 } from '../../core/crypto/hpke.ts';

const INFO_LABEL = 'tally/otp/transfer/v1';
const ACK_LABEL = utf8('tally/otp/ack/v1');
/** Bytes of the ACK secret and of an ACK. */
export const ACK_BYTES = 32;
/** Largest sealed coin: a coin is under 2 KB, and each escrow tag adds about 300 bytes (TAGS_MAX of them at most). */
export const SEALED_COIN_BYTES_MAX = 24 * 1024;

/** A coin sealed to one exchange key, as it goes over the link. */
export const sealedCoinCodec = record({
  /** The exchange key it is sealed to (exchangeKeyId). */
  keyId: bytes({ length: 16 }),
  /** The coin's class, in the clear: the payee's TA needs no more to know what it is offered. */
  classId: bytes({ length: CLASS_ID_BYTES }),
  enc: bytes({ length: HPKE_ENC_BYTES }),
  ciphertext: bytes({ min: 16, max: SEALED_COIN_BYTES_MAX }),
});
export type SealedCoin = Infer<typeof sealedCoinCodec>;

/** A payee's ACK of one sealed coin. */
export const ackCodec = record({
  /** SHA-256 of the sealed coin's CBOR. */
  digest: bytes({ length: 32 }),
  mac: bytes({ length: ACK_BYTES }),
});
export type Ack = Infer<typeof ackCodec>;

function info(keyId: Uint8Array): Uint8Array {
  return encodeCbor([INFO_LABEL, keyId]);
}

/** SHA-256 of a sealed coin's wire form: what its ACK names. */
export function sealedDigest(sealed: SealedCoin): Uint8Array {
  return sha256(encodeCbor(sealed));
}

function mac(secret: Uint8Array, digest: Uint8Array): Uint8Array {
  return hmac(nobleSha256, secret, concatBytes(ACK_LABEL, digest));
}

/**
 * The payer's TA: seals `coin` to the payee's exchange key. Returns the box and the secret its ACK
 * will be checked with (kept with the in-flight coin, never sent).
 * @throws TallyError KEY_INVALID for a public key that is not a usable X25519 key
 */
export function sealCoin(carried: CarriedCoin, exchangePublicKey: Uint8Array, random?: RandomSource): { sealed: SealedCoin; ackSecret: Uint8Array } {
  const keyId = exchangeKeyId(exchangePublicKey);
  const context = setupBaseS({ recipientPublicKey: exchangePublicKey, info: info(keyId), ...(random === undefined ? {} : { random }) });
  const { classId } = carried.coin;
  const ciphertext = context.seal(encodeCbor(carriedCoinCodec.decode(carried, 'coin')), classId);
  return { sealed: { keyId, classId, enc: context.enc, ciphertext }, ackSecret: context.export(ACK_LABEL, ACK_BYTES) };
}

/**
 * The payee's TA: opens a coin sealed to its exchange key and makes the ACK. The coin still has to
 * pass checkCoin before it is kept.
 * @throws TallyError AEAD_FAILED (not sealed to this key, altered), KEY_INVALID, CBOR_*, DECODE_FAILED
 */
export function openCoin(sealed: SealedCoin, exchangePrivateKey: Uint8Array, exchangePublicKey: Uint8Array, scalarMult?: X25519): { carried: CarriedCoin; ack: Ack } {
  const keyId = exchangeKeyId(exchangePublicKey);
  if (!equalBytes(keyId, sealed.keyId)) throw new TallyError('AEAD_FAILED', 'the coin is sealed to another exchange key', {});
  // The public key is the one the coin was sealed to (its key id matched): not derived again.
  const context = setupBaseR({ recipientPrivateKey: exchangePrivateKey, recipientPublicKey: exchangePublicKey, enc: sealed.enc, info: info(keyId), scalarMult });
  const carried = carriedCoinCodec.decode(decodeCbor(context.open(sealed.ciphertext, sealed.classId), { maxBytes: SEALED_COIN_BYTES_MAX }), 'coin');
  if (!equalBytes(carried.coin.classId, sealed.classId)) throw new TallyError('AEAD_FAILED', 'the coin inside is of another class than its box says', {});
  const digest = sealedDigest(sealed);
  return { carried, ack: { digest, mac: mac(context.export(ACK_LABEL, ACK_BYTES), digest) } };
}

/** The payer's TA: whether `ack` acknowledges this sealed coin, under the secret kept when it was sealed. */
export function ackMatches(sealed: SealedCoin, ackSecret: Uint8Array, ack: Ack): boolean {
  const digest = sealedDigest(sealed);
  return equalBytes(ack.digest, digest) && equalBytes(ack.mac, mac(ackSecret, digest));
}
