/**
 * Opening one sealed coin at deposit (OTP §2.7): the bank unseals it with its deposit key and makes
 * the player's pre-condition check (checkCoin) against its own live classes or, for a coin of
 * another bank, that bank's published classes. A function of its inputs alone (the key, the classes
 * and the time are given), so that the deposit route runs it on its own thread for a few coins and
 * in the node's opening workers (node-open-pool.ts) for many; both answer the same.
 */
import { toHex } from '../../core/bytes.ts';
import { decodeCbor, encodeCbor } from '../../core/cbor.ts';
import { sha256 } from '../../core/crypto/hash.ts';
import { isTallyError } from '../../core/errors.ts';
import { checkCoin } from './coin.ts';
import { carriedCoinCodec, type CarriedCoin, type ClassEntry } from './messages.ts';
import { nativePssVerify, nativeX25519 } from './node-native.ts';
import { openCoin, SEALED_COIN_BYTES_MAX, sealedCoinCodec } from './transfer.ts';

/** Largest sealed coin accepted on the wire, in bytes: the box and its small header. */
export const SEALED_COIN_WIRE_BYTES_MAX = SEALED_COIN_BYTES_MAX + 256;

/** The bank's X25519 deposit key pair, which every coin deposited here is sealed to. */
export interface DepositKeys {
  readonly privateKey: Uint8Array;
  readonly publicKey: Uint8Array;
}

/** The evidence of a claim on a coin of another bank: the coin and its escrow tags, as deposited. */
export function otpClaimEvidence(carried: CarriedCoin): Uint8Array {
  return encodeCbor(carriedCoinCodec.decode(carried, 'coin'));
}

/**
 * What opening needs to know of the classes, as plain data (it crosses to worker threads; this
 * file imports nothing of the node's shell, so that a worker loads little).
 */
export interface OpeningClasses {
  /** This bank's classes whose coins may still be deposited, by class id (hex), with their hops. */
  readonly live: ReadonlyMap<string, { readonly entry: ClassEntry; readonly hops: number }>;
  /** The classes other banks published, by class id (hex), and whether that bank is revoked. */
  readonly foreign: ReadonlyMap<string, { readonly entry: ClassEntry; readonly revoked: boolean }>;
  /** The largest claim evidence another bank is presented (the interbank bound). */
  readonly evidenceBytesMax: number;
}

/** A sealed coin as opened and checked: refused, or the coin it carried and the class (own or another bank's) it checked under. */
export type OpenedCoin =
  | { readonly digest: Uint8Array; readonly refused: true }
  | { readonly digest: Uint8Array; readonly refused: false; readonly carried: CarriedCoin; readonly classIdHex: string; readonly foreign: boolean };

/**
 * Opens and checks one sealed coin; anything that does not open, decode or check is refused. A coin
 * of a class this bank did not make is checked under the classes the other banks published: a coin
 * of a revoked bank, past its deposit window or its hops, too large to present as a claim, or of a
 * class no bank published, is refused.
 * @throws what is not a TallyError (a fault of the node, not of the coin)
 */
export function openSealedCoin(raw: Uint8Array, keys: DepositKeys, classes: OpeningClasses, now: number): OpenedCoin {
  const digest = sha256(raw);
  try {
    const sealed = sealedCoinCodec.decode(decodeCbor(raw, { maxBytes: SEALED_COIN_WIRE_BYTES_MAX }), 'coin');
    // Native X25519 and RSA-PSS (node-native.ts): the same answers as the trusted app's code, faster.
    const { carried } = openCoin(sealed, keys.privateKey, keys.publicKey, nativeX25519);
    const classIdHex = toHex(carried.coin.classId);
    const own = classes.live.get(classIdHex);
    const other = own === undefined ? classes.foreign.get(classIdHex) : undefined;
    if (other !== undefined) {
      if (other.revoked || now > other.entry.depositUntil) return { digest, refused: true };
      const theirs = checkCoin(carried.coin, (classId) => (toHex(classId) === toHex(other.entry.coinClass.classId) ? other.entry.coinClass : undefined), nativePssVerify);
      const hops = theirs.program.conditions.find((c) => c.kind === 'checkMaxHops');
      if (hops?.kind === 'checkMaxHops' && carried.tags.length > hops.hops + 1) return { digest, refused: true };
      if (otpClaimEvidence(carried).length > classes.evidenceBytesMax) return { digest, refused: true };
      return { digest, refused: false, carried, classIdHex, foreign: true };
    }
    checkCoin(carried.coin, (classId) => classes.live.get(toHex(classId))?.entry.coinClass, nativePssVerify);
    // checkCoin found the class: `own` is it. A coin past its hops could no longer be paid; the
    // depositing TA adds one last tag naming the bank. More tags than that did not come from genuine TAs.
    if (own === undefined || carried.tags.length > own.hops + 1) return { digest, refused: true };
    return { digest, refused: false, carried, classIdHex, foreign: false };
  } catch (e) {
    if (isTallyError(e)) return { digest, refused: true };
    throw e;
  }
}
