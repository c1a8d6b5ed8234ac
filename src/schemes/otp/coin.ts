/**
 * A coin: the static section of a one-time program (OTP paper §2.7: the coin's identification code
 * and its parameters) with the bank's signature, and the behavioural section it runs.
 *
 * The bank signs blindly (RFC 9474, blind-rsa.ts), so it never sees what it signs: what a blind
 * signature can bind is only the key that made it. Each signing key is therefore a *class* the bank
 * publishes: its denomination, its currency and the digest of the one program its coins carry. A
 * coin names its class; the player checks that the program is the class's, that the program passes
 * its checks, and that the class's key signed the coin's serial (checkTokenFormat and the bank
 * signature of the pre-condition check). The bank learns at withdrawal only which classes were
 * asked for, and at deposit a serial it has never seen: the two cannot be linked.
 */
import { encodeCbor } from '../../core/cbor.ts';
import { bytes, record, text, type Infer } from '../../core/codec.ts';
import { equalBytes } from '../../core/bytes.ts';
import { sha256 } from '../../core/crypto/hash.ts';
import { TallyError } from '../../core/errors.ts';
import { decimalText } from '../../core/fields.ts';
import { decodePublicKey, MESSAGE_PREFIX_LENGTH, verify, type RsaPublicKey } from './blind-rsa.ts';
import { checkProgram, programCodec, type CheckedProgram, type Program } from './program.ts';

/** The label of the message a class key signs for a coin. */
export const COIN_TAG = 'tally/otp/coin/v1';
/** Bytes of a serial (the coin's identification code), drawn by the withdrawing TA. */
export const SERIAL_BYTES = 32;
/** Bytes of a class id. */
export const CLASS_ID_BYTES = 16;

/** A signing class as the bank publishes it. */
export const coinClassCodec = record({
  classId: bytes({ length: CLASS_ID_BYTES }),
  /** The value of each coin, in minor units. */
  denomination: decimalText({ digits: 19 }),
  currency: text({ min: 3, max: 3, pattern: /^[A-Z]{3}$/, describe: 'an ISO 4217 code' }),
  /** SHA-256 of the deterministic CBOR of the program every coin of the class carries. */
  programDigest: bytes({ length: 32 }),
  /** The class key (RSA, 2048 to 4096 bits). */
  modulus: bytes({ min: 256, max: 512 }),
  exponent: bytes({ min: 1, max: 8 }),
});
export type CoinClass = Infer<typeof coinClassCodec>;

/** A coin as it travels (inside a sealed box, see hpke.ts). */
export const coinCodec = record({
  serial: bytes({ length: SERIAL_BYTES }),
  classId: bytes({ length: CLASS_ID_BYTES }),
  /** RFC 9474's random message prefix (Randomized variant). */
  prefix: bytes({ length: MESSAGE_PREFIX_LENGTH }),
  signature: bytes({ min: 256, max: 512 }),
  program: programCodec,
});
export type Coin = Infer<typeof coinCodec>;

/** Why a coin is refused (details of OTP_COIN_INVALID). */
export type CoinFault = 'class-unknown' | 'program' | 'signature';

/** The digest a class publishes for its program. */
export function programDigest(program: Program): Uint8Array {
  return sha256(encodeCbor(program));
}

/** The message a class key signs for a serial (before RFC 9474's prefix). */
export function coinMessage(serial: Uint8Array, classId: Uint8Array): Uint8Array {
  return encodeCbor([COIN_TAG, serial, classId]);
}

/** RFC 9474's prepared message of a coin: its prefix, then its message. */
export function preparedCoinMessage(coin: Pick<Coin, 'serial' | 'classId' | 'prefix'>): Uint8Array {
  const message = coinMessage(coin.serial, coin.classId);
  const out = new Uint8Array(coin.prefix.length + message.length);
  out.set(coin.prefix);
  out.set(message, coin.prefix.length);
  return out;
}

/** A class's key as RSA numbers. @throws TallyError KEY_INVALID, DECODE_FAILED */
export function classKey(coinClass: CoinClass): RsaPublicKey {
  return decodePublicKey(coinClass.modulus, coinClass.exponent);
}

function refuse(fault: CoinFault, message: string): never {
  throw new TallyError('OTP_COIN_INVALID', `the coin is refused: ${message}`, { fault });
}

/** A coin that passed `checkCoin`: its class and its checked program. */
export interface CheckedCoin {
  readonly coinClass: CoinClass;
  readonly program: CheckedProgram;
}

/**
 * The player's pre-condition check of a coin: its class is one the bank publishes, its program is
 * the class's and passes checkProgram, and the class key signed its serial.
 * @throws TallyError OTP_COIN_INVALID with the fault, OTP_PROGRAM_INVALID
 */
export function checkCoin(coin: Coin, classOf: (classId: Uint8Array) => CoinClass | undefined, verifySignature: (key: RsaPublicKey, prepared: Uint8Array, signature: Uint8Array) => boolean = verify): CheckedCoin {
  const coinClass = classOf(coin.classId);
  if (coinClass === undefined || !equalBytes(coinClass.classId, coin.classId)) refuse('class-unknown', 'its class is not one the bank publishes');
  if (!equalBytes(programDigest(coin.program), coinClass.programDigest)) refuse('program', "its program is not its class's");
  const program = checkProgram(coin.program);
  if (!verifySignature(classKey(coinClass), preparedCoinMessage(coin), coin.signature)) refuse('signature', 'the class key did not sign it');
  return { coinClass, program };
}
