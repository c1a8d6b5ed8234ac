/**
 * What an OTP bank publishes to the other banks of a two-tier system (the `publication` of its
 * scheme, signed by its intermediary key and carried by the central bank's directory): the key
 * that signs its exchange keys and parameters, its escrow and deposit keys, and the classes whose
 * coins may still be paid or deposited, grouped by epoch so that the program every coin of an epoch
 * carries is written once. With it a wallet or a node of another bank checks a coin of this bank
 * (checkCoin) as this bank's own wallets do.
 *
 * Pure: the codec, encoding and the class entries a reader rebuilds from it.
 */
import { toHex } from '../../core/bytes.ts';
import { decodeCbor, encodeCbor } from '../../core/cbor.ts';
import { array, bytes, record, text, type Infer } from '../../core/codec.ts';
import { publicKeyCodec } from '../../core/crypto/suite.ts';
import { TallyError } from '../../core/errors.ts';
import { decimalText, timestampMs } from '../../core/fields.ts';
import { CLASS_ID_BYTES, programDigest } from './coin.ts';
import { X25519_KEY_BYTES } from './exchange-key.ts';
import { CLASSES_MAX, type ClassEntry } from './messages.ts';
import { programCodec } from './program.ts';

/** Largest publication body, in bytes (the two tiers carry at most 16 KiB per scheme and bank). */
export const OTP_PUBLICATION_BYTES_MAX = 16 * 1024;
/**
 * Most epochs a publication names: a class lives two epochs and a grace no longer than an epoch, so
 * at most three epochs have classes whose coins may still be deposited (15 classes of 2048-bit keys
 * each: about 15.7 KB for three).
 */
export const PUBLISHED_EPOCHS_MAX = 3;

const x25519 = bytes({ length: X25519_KEY_BYTES });

/** One class of a published epoch: what is not shared with the other classes of its epoch. */
const publishedClassCodec = record({
  classId: bytes({ length: CLASS_ID_BYTES }),
  denomination: decimalText({ digits: 19 }),
  modulus: bytes({ min: 256, max: 512 }),
  exponent: bytes({ min: 1, max: 8 }),
});

/** The classes of one epoch, with the program and the windows they share. */
const publishedEpochCodec = record({
  program: programCodec,
  until: timestampMs,
  depositUntil: timestampMs,
  classes: array(publishedClassCodec, { min: 1, max: CLASSES_MAX }),
});

/** An OTP bank's public parameters as it publishes them to the other banks. */
export const otpPublicationCodec = record({
  currency: text({ min: 3, max: 3, pattern: /^[A-Z]{3}$/, describe: 'an ISO 4217 code' }),
  /** The bank's issuer-node key: it signs the bank's exchange keys, parameters and receipts. */
  issuerNode: publicKeyCodec,
  /** Transfer tags of this bank's coins are sealed to it, so that this bank can name a double spender. */
  escrowKey: x25519,
  depositKey: x25519,
  epochs: array(publishedEpochCodec, { max: PUBLISHED_EPOCHS_MAX }),
});
export type OtpPublication = Infer<typeof otpPublicationCodec>;

/**
 * A bank's live class entries as a publication: grouped by epoch (classes that share a program and
 * windows), newest first. Past PUBLISHED_EPOCHS_MAX epochs, or past OTP_PUBLICATION_BYTES_MAX, the
 * oldest epochs are left out (their coins are the nearest to the end of their deposit window).
 * @throws TallyError TOO_LARGE when even the newest epoch alone is over OTP_PUBLICATION_BYTES_MAX
 */
export function encodeOtpPublication(head: Omit<OtpPublication, 'epochs'>, entries: readonly ClassEntry[]): Uint8Array {
  const epochs = new Map<string, OtpPublication['epochs'][number]>();
  for (const e of entries) {
    const key = `${e.until}/${e.depositUntil}/${toHex(e.coinClass.programDigest)}`;
    const group = epochs.get(key) ?? { program: e.program, until: e.until, depositUntil: e.depositUntil, classes: [] };
    group.classes.push({ classId: e.coinClass.classId, denomination: e.coinClass.denomination, modulus: e.coinClass.modulus, exponent: e.coinClass.exponent });
    epochs.set(key, group);
  }
  const newest = [...epochs.values()].sort((a, b) => b.until - a.until).slice(0, PUBLISHED_EPOCHS_MAX);
  let encoded: Uint8Array = new Uint8Array();
  for (let count = newest.length; count >= 0; count--) {
    encoded = encodeCbor(otpPublicationCodec.decode({ ...head, epochs: newest.slice(0, count) }, 'publication'));
    if (encoded.length <= OTP_PUBLICATION_BYTES_MAX) {
      if (count === 0 && newest.length > 0) break;
      return encoded;
    }
  }
  throw new TallyError('TOO_LARGE', `the newest OTP epoch alone is over ${OTP_PUBLICATION_BYTES_MAX} bytes`, { what: 'OTP publication', size: encoded.length, max: OTP_PUBLICATION_BYTES_MAX });
}

/** Decodes a publication body. @throws TallyError DECODE_FAILED, CBOR_*, TOO_LARGE */
export function decodeOtpPublication(body: Uint8Array): OtpPublication {
  return otpPublicationCodec.decode(decodeCbor(body, { maxBytes: OTP_PUBLICATION_BYTES_MAX }), 'publication');
}

/** The class entries a publication names, as a bank's own parameters carry them. */
export function publishedEntries(publication: OtpPublication): ClassEntry[] {
  return publication.epochs.flatMap((epoch) => {
    const digest = programDigest(epoch.program);
    return epoch.classes.map((c) => ({
      coinClass: { classId: c.classId, denomination: c.denomination, currency: publication.currency, programDigest: digest, modulus: c.modulus, exponent: c.exponent },
      program: epoch.program,
      until: epoch.until,
      depositUntil: epoch.depositUntil,
    }));
  });
}
