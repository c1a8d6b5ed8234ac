/**
 * The records the OTP scheme's trusted app and bank sign for each other, as CBOR: the bank's
 * parameters (classes, escrow and deposit keys), a TA's request for exchange keys, the bank's
 * trusted time, a deposit's receipt, a TA's report of coins in flight and the bank's settlement of
 * them. Each is signed under its own domain tag; the bank's key is the issuer node's certified key,
 * which the TA checks against the root it pinned at provisioning.
 *
 * Pure: codecs, signing and checking.
 */
import { array, bytes, oneOf, record, text, type Infer } from '../../core/codec.ts';
import { decimalText, timestampMs } from '../../core/fields.ts';
import { MESSAGE_PREFIX_LENGTH } from './blind-rsa.ts';
import { coinClassCodec, coinCodec, CLASS_ID_BYTES, SERIAL_BYTES } from './coin.ts';
import { sealedTagCodec, TAGS_MAX } from './escrow.ts';
import { X25519_KEY_BYTES } from './exchange-key.ts';
import { programCodec } from './program.ts';

/** The scheme's name, in routes and wallet folders. */
export const OTP_SCHEME = 'otp';
/** Most classes the bank publishes at once (denominations times live epochs). */
export const CLASSES_MAX = 64;
/** Most coins in one withdrawal, one deposit, one payment or one report. */
export const COINS_PER_MESSAGE_MAX = 64;
/** Most exchange keys asked for or given at once. */
export const KEYS_PER_MESSAGE_MAX = 64;
/** Bytes of a nonce a TA draws for a request it wants a fresh answer to. */
export const NONCE_BYTES = 16;

/** The domain tags of the scheme's signed records. */
export const PARAMS_TAG = 'tally/otp/params/v1';
export const KEY_REQUEST_TAG = 'tally/otp/key-request/v1';
export const TIME_TAG = 'tally/otp/time/v1';
export const DEPOSIT_RECEIPT_TAG = 'tally/otp/deposit-receipt/v1';
export const IN_FLIGHT_TAG = 'tally/otp/in-flight/v2';
export const SETTLED_TAG = 'tally/otp/settled/v2';

const signature = bytes({ min: 32, max: 256 });
const x25519 = bytes({ length: X25519_KEY_BYTES });
const nonce = bytes({ length: NONCE_BYTES });
const serial = bytes({ length: SERIAL_BYTES });
const classId = bytes({ length: CLASS_ID_BYTES });

/** A coin with the escrow tags of its offline transfers, as a TA holds it and seals it. */
export const carriedCoinCodec = record({
  coin: coinCodec,
  tags: array(sealedTagCodec, { max: TAGS_MAX }),
});
export type CarriedCoin = Infer<typeof carriedCoinCodec>;

/** A class as the bank publishes it: the signing class, its program, and the last instant its coins may be paid. */
export const classEntryCodec = record({
  coinClass: coinClassCodec,
  program: programCodec,
  /** Coins of the class may be paid offline until then (their program's checkExpiry), deposited until `depositUntil`. */
  until: timestampMs,
  depositUntil: timestampMs,
});
export type ClassEntry = Infer<typeof classEntryCodec>;

/**
 * The end of a class's claim window: a coin still in flight may be reported until then (the deposit
 * window's grace again after it), and the bank refunds it only after, to the report that carries it
 * furthest. A report after a coin was settled hears how it was.
 */
export function claimsUntil(entry: Pick<ClassEntry, 'until' | 'depositUntil'>): number {
  return entry.depositUntil + (entry.depositUntil - entry.until);
}

/** The bank's parameters, signed: what a TA needs to withdraw, check, pay and deposit coins. */
export const paramsBodyCodec = record({
  currency: text({ min: 3, max: 3, pattern: /^[A-Z]{3}$/, describe: 'an ISO 4217 code' }),
  /** The central bank's escrow key (X25519): transfer tags are sealed to it. */
  escrowKey: x25519,
  /** The bank's deposit key (X25519): coins are sealed to it when deposited. */
  depositKey: x25519,
  classes: array(classEntryCodec, { min: 1, max: CLASSES_MAX }),
  /** When the bank signed this (a trusted time for the TA). */
  at: timestampMs,
});
export type ParamsBody = Infer<typeof paramsBodyCodec>;
export const paramsCodec = record({ body: paramsBodyCodec, signature });
export type Params = Infer<typeof paramsCodec>;

/** A TA's request for exchange keys: fresh X25519 public keys, signed by its device key. */
export const keyRequestBodyCodec = record({
  publicKeys: array(x25519, { min: 0, max: KEYS_PER_MESSAGE_MAX }),
  nonce,
});
export type KeyRequestBody = Infer<typeof keyRequestBodyCodec>;
export const keyRequestCodec = record({ body: keyRequestBodyCodec, signature });
export type KeyRequest = Infer<typeof keyRequestCodec>;

/** The bank's time, bound to a TA's nonce: the TA's trusted clock moves only on these. */
export const timeBodyCodec = record({ nonce, at: timestampMs });
export const timeCodec = record({ body: timeBodyCodec, signature });
export type TrustedTime = Infer<typeof timeCodec>;

/**
 * What the bank did with each coin of a deposit. `presented`: a coin of another bank, checked under
 * that bank's published classes and presented to it as an interbank claim; the depositor is
 * credited once that bank accepted and the reserves moved, or never when it refused.
 */
export const DEPOSIT_OUTCOMES = ['credited', 'double-spend', 'refused', 'presented'] as const;
export type DepositOutcome = (typeof DEPOSIT_OUTCOMES)[number];

/** The bank's receipt of a deposit: each sealed coin (by digest) and its outcome. */
export const depositReceiptBodyCodec = record({
  coins: array(record({ digest: bytes({ length: 32 }), outcome: oneOf(DEPOSIT_OUTCOMES) }), { min: 1, max: COINS_PER_MESSAGE_MAX }),
  /** What was credited, in minor units. */
  credited: decimalText({ digits: 19 }),
});
export type DepositReceiptBody = Infer<typeof depositReceiptBodyCodec>;
export const depositReceiptCodec = record({ body: depositReceiptBodyCodec, signature });
export type DepositReceipt = Infer<typeof depositReceiptCodec>;

/**
 * A TA's report of the coins it sent and holds no ACK for, signed by its device key. Each coin comes
 * with its bank signature (prefix and signature), so the bank refunds only coins it signed, and with
 * the escrow tags it carried when this TA sent it, this TA's own tag last: the bank refunds the coin
 * to the report that carries it furthest, and opens the tags where two reports part.
 */
export const inFlightBodyCodec = record({
  coins: array(
    record({ serial, classId, prefix: bytes({ length: MESSAGE_PREFIX_LENGTH }), signature: bytes({ min: 256, max: 512 }), tags: array(sealedTagCodec, { min: 1, max: TAGS_MAX }) }),
    { max: COINS_PER_MESSAGE_MAX },
  ),
  nonce,
});
export type InFlightBody = Infer<typeof inFlightBodyCodec>;
/** Most bytes of an in-flight report (CBOR): a TA puts in as many of its coins as fit, the bank refuses more. */
export const IN_FLIGHT_REPORT_BYTES_MAX = 512 * 1024;
export const inFlightCodec = record({ body: inFlightBodyCodec, signature });
export type InFlightReport = Infer<typeof inFlightCodec>;

/**
 * How the bank settled an in-flight coin: refunded to this payer; deposited by someone; `taken`, a
 * later holder reported it in flight further along the same tags (this payer's payee took it and
 * paid it on), and was refunded; `double-spent`, the coin was paid twice before it reached this
 * payer, and another branch of it was refunded (or the branches' tags name two devices, and none is).
 */
export const SETTLED_OUTCOMES = ['refunded', 'deposited', 'taken', 'double-spent'] as const;
export type SettledOutcome = (typeof SETTLED_OUTCOMES)[number];

/** The bank's answer to an in-flight report: the coins it settled (the others stay in flight), bound to the report's nonce. */
export const settledBodyCodec = record({
  nonce,
  coins: array(record({ serial, outcome: oneOf(SETTLED_OUTCOMES) }), { max: COINS_PER_MESSAGE_MAX }),
});
export type SettledBody = Infer<typeof settledBodyCodec>;
export const settledCodec = record({ body: settledBodyCodec, signature });
export type Settled = Infer<typeof settledCodec>;

// Signing and checking are the core's, shared by every scheme's signed records.
export { checkSignedWith as checkSigned, signedWith as signed } from '../../core/crypto/record.ts';
