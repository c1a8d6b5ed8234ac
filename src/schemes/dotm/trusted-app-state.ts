/**
 * The state of the DOT-M trusted app (the Wallet Trustlet of §3.1.1 with the wallet and user data
 * structures of §3.2.2 and §3.2.3), with its codec and bounds. The keys usk and wsk are not in it:
 * the secure element derives them from its master secret under their labels whenever they sign.
 */
import { array, bytes, optional, record, text, uint, type Infer } from '../../core/codec.ts';
import { publicKeyCodec } from '../../core/crypto/suite.ts';
import { KEY_ID_BYTES } from '../../pki/key-id.ts';
import { EVENTS_MAX, eventPartCodec, walletEventCodec } from './online.ts';
import { amountCodec, BLOCKS_PER_PAYMENT_MAX, certificateBytesCodec, currencyBlockCodec, digestCodec, notificationCodec, tsnCodec } from './messages.ts';

/** Most block copies one wallet holds (§3.2.2 allows several; a bound keeps the sealed state small). */
export const WALLET_BLOCKS_MAX = 64;
/** Wrong payment passwords in a row before the wallet locks (the paper sets a retry limit but no number). */
export const PASSWORD_TRIES_MAX = 5;
/** Longest payment password, in characters. */
export const PASSWORD_CHARS_MAX = 128;
/** Largest revocation list the TA keeps, encoded. */
export const TA_CRL_BYTES_MAX = 64 * 1024;

const timeCodec = uint({ max: Number.MAX_SAFE_INTEGER });

/** pwd as the TA keeps it: a salted digest and the count of wrong tries since the last right one. */
export const passwordCodec = record({ salt: bytes({ length: 16 }), digest: digestCodec, failures: uint({ max: PASSWORD_TRIES_MAX }) });

/** The payee's open request (step 1): what σ must answer. */
export const requestedCodec = record({ tsn: tsnCodec, v: amountCodec });

/** The payer's offer between step 3 and step 7: the blocks it put into σ, held back from other payments. */
export const offerCodec = record({
  tsn: tsnCodec,
  /** Digest of σ: the notification must name it. */
  transaction: digestCodec,
  v: amountCodec,
  /** ucert_R from λ, whose key verifies the notification (step 7). */
  ucertR: certificateBytesCodec,
  parts: array(eventPartCodec, { min: 1, max: BLOCKS_PER_PAYMENT_MAX }),
});
/** The payer's open offer. */
export type Offer = Infer<typeof offerCodec>;

/** The payee's transaction between step 5 and step 9: what to undo if step 8 never comes. */
export const receivingCodec = record({
  tsn: tsnCodec,
  transaction: digestCodec,
  v: amountCodec,
  /** tsd's rows: the payer's blocks and the current records. */
  parts: array(eventPartCodec, { min: 1, max: BLOCKS_PER_PAYMENT_MAX }),
  notification: notificationCodec,
  /**
   * wpk_P from the wcert_P verified at step 4.1: the key step 8's success message must verify
   * under. Absent only in a state sealed before step 8 was signed: such a transaction can only
   * be rolled back.
   */
  payerWallet: optional(publicKeyCodec),
});
/** The payee's open transaction. */
export type Receiving = Infer<typeof receivingCodec>;

/** Most other banks' intermediary certificates the TA holds. */
export const PEERS_MAX = 32;

/** The TA's state. */
export const dotmStateCodec = record({
  /** The pinned root certificate: its key is the central bank's, pk_C (§3.1.3). */
  root: optional(certificateBytesCodec),
  intermediary: optional(certificateBytesCodec),
  /** The issuer node's certificate, whose key signs acks. */
  issuerNode: optional(certificateBytesCodec),
  /** Key id of the account key the wallet was registered for. */
  account: optional(bytes({ length: KEY_ID_BYTES })),
  ucert: optional(certificateBytesCodec),
  wcert: optional(certificateBytesCodec),
  currency: text({ max: 12 }),
  password: optional(passwordCodec),
  /** The wallet's currency block copies (§3.2.2), keyed by (serial, tip). */
  blocks: array(currencyBlockCodec, { max: WALLET_BLOCKS_MAX }),
  requested: optional(requestedCodec),
  offer: optional(offerCodec),
  receiving: optional(receivingCodec),
  /** Events not yet acknowledged by the node, oldest first. */
  events: array(walletEventCodec, { max: EVENTS_MAX }),
  /** The last event's number. */
  seq: timeCodec,
  /** The latest time vouched for (certificate starts, acks, the wallet's clock never backwards). */
  trustedTime: timeCodec,
  crl: optional(bytes({ max: TA_CRL_BYTES_MAX })),
  /**
   * Several operators: the intermediary certificates of other banks, each verified under the pinned
   * root as an intermediary in this currency when it was taken (docs/dotm.md, "Several operators").
   * Their keys sign those banks' blocks and their customers' certificates chain through them.
   */
  peers: optional(array(certificateBytesCodec, { max: PEERS_MAX })),
  /** How many unlock tickets the TA took (absent: none); the next ticket must carry this plus one. */
  unlocks: optional(timeCodec),
});
/** The TA's state. */
export type DotmState = Infer<typeof dotmStateCodec>;

/** The first state. */
export function initialDotmState(): DotmState {
  return { currency: '', blocks: [], events: [], seq: 0, trustedTime: 0 };
}
