/**
 * The state of the OTP trusted app (the player of the paper's §2.7 and its sandbox), with its codec
 * and bounds: the coins it holds, the coins it sent and holds no ACK for, its exchange keys, what it
 * received (so a box is never taken twice), a withdrawal or a deposit under way, and its trusted time.
 */
import { array, bytes, optional, record, uint, type Infer } from '../../core/codec.ts';
import { publicKeyCodec } from '../../core/crypto/suite.ts';
import { timestampMs } from '../../core/fields.ts';
import { CLASS_ID_BYTES, SERIAL_BYTES } from './coin.ts';
import { sealedTagCodec, TAGS_MAX } from './escrow.ts';
import { exchangeKeyCodec } from './exchange-key.ts';
import { HPKE_PRIVATE_KEY_BYTES } from '../../core/crypto/hpke.ts';
import { carriedCoinCodec, CLASSES_MAX, classEntryCodec, COINS_PER_MESSAGE_MAX, KEYS_PER_MESSAGE_MAX, NONCE_BYTES, paramsBodyCodec } from './messages.ts';
import { ACK_BYTES, sealedCoinCodec } from './transfer.ts';

/** Most coins a TA holds. */
export const COINS_HELD_MAX = 1024;
/** Most coins in flight (sent, no ACK yet). */
export const IN_FLIGHT_MAX = 256;
/** Most exchange keys a TA keeps (signed, not yet used): as many as one payment's coins (session.ts COINS_PER_PAYMENT_MAX), each sealed to its own key. */
export const KEYS_HELD_MAX = 512;
/** Most other banks whose coins a TA takes (two tiers). */
export const PEERS_MAX = 16;

/**
 * Another bank of the two tiers, as its publication (checked in the TA to the pinned root) names
 * it: its key id, the key that signs its exchange keys, the escrow key its coins' tags are sealed
 * to, and its classes.
 */
export const peerBankCodec = record({
  bank: bytes({ length: 32 }),
  issuerNode: publicKeyCodec,
  escrowKey: bytes({ length: 32 }),
  classes: array(classEntryCodec, { max: CLASSES_MAX }),
});
export type PeerBank = Infer<typeof peerBankCodec>;

/** Most boxes a TA remembers having received (a box sent again is answered with its ACK, never taken twice). */
export const RECEIVED_MAX = 2048;

const privateKey = bytes({ length: HPKE_PRIVATE_KEY_BYTES });
const nonce = bytes({ length: NONCE_BYTES });

/** A coin sent and not yet acknowledged: the box, the secret its ACK is checked with, and the coin with its tags (for a refund report). */
export const inFlightCodec = record({
  sealed: sealedCoinCodec,
  ackSecret: bytes({ length: ACK_BYTES }),
  serial: bytes({ length: SERIAL_BYTES }),
  classId: bytes({ length: CLASS_ID_BYTES }),
  /** The coin's RFC 9474 prefix and the bank's signature: what shows the bank it signed the coin reported. */
  prefix: bytes({ length: 32 }),
  signature: bytes({ min: 256, max: 512 }),
  /** When it was sent, on the TA's trusted clock (null before the first sync). */
  at: optional(timestampMs),
  /** The coin's escrow tags as sent, this TA's own last: what shows the bank how far the coin went. */
  tags: array(sealedTagCodec, { min: 1, max: TAGS_MAX }),
});
export type InFlight = Infer<typeof inFlightCodec>;

/** An exchange key of this TA, signed by the bank: its private half, and whether it was given to a payer. */
export const heldKeyCodec = record({
  privateKey,
  key: exchangeKeyCodec,
  offered: uint({ max: 1 }),
});
export type HeldKey = Infer<typeof heldKeyCodec>;

/** A box received: its digest and the ACK given for it. */
export const receivedCodec = record({ digest: bytes({ length: 32 }), mac: bytes({ length: ACK_BYTES }) });
export type Received = Infer<typeof receivedCodec>;

/** A blinded coin of a withdrawal under way: what finalizing its signature needs. */
export const blindedCoinCodec = record({
  classId: bytes({ length: CLASS_ID_BYTES }),
  serial: bytes({ length: SERIAL_BYTES }),
  prefix: bytes({ length: 32 }),
  /** The blinding inverse, big-endian. */
  inverse: bytes({ min: 1, max: 512 }),
  blinded: bytes({ min: 256, max: 512 }),
});
export type BlindedCoin = Infer<typeof blindedCoinCodec>;

/** The TA's state. */
export const otpStateCodec = record({
  /** The pinned root certificate (Init). */
  root: optional(bytes({ max: 4096 })),
  /** Key id of the account holder this TA was registered for. */
  owner: optional(bytes({ length: 32 })),
  /** The bank's key (the issuer node's), checked to the root at CertInit. */
  bank: optional(publicKeyCodec),
  /** The bank's latest parameters (classes, escrow and deposit keys). */
  params: optional(paramsBodyCodec),
  /** The TA's trusted time: the latest time the bank signed for it (a lower bound of the real time). */
  time: optional(timestampMs),
  coins: array(carriedCoinCodec, { max: COINS_HELD_MAX }),
  inFlight: array(inFlightCodec, { max: IN_FLIGHT_MAX }),
  keys: array(heldKeyCodec, { max: KEYS_HELD_MAX }),
  /** Private keys sent to the bank for signing, with the request's nonce. */
  pendingKeys: optional(record({ nonce, privateKeys: array(privateKey, { min: 0, max: KEYS_PER_MESSAGE_MAX }) })),
  received: array(receivedCodec, { max: RECEIVED_MAX }),
  /** A withdrawal under way: the node debited the account once it signed; the coins are finished with its answer. */
  withdrawal: optional(record({ requestId: bytes({ length: 16 }), coins: array(blindedCoinCodec, { min: 1, max: COINS_PER_MESSAGE_MAX }) })),
  /** A deposit under way: the boxes sent to the bank, until its receipt. */
  deposit: optional(record({ requestId: bytes({ length: 16 }), boxes: array(record({ sealed: sealedCoinCodec, classId: bytes({ length: CLASS_ID_BYTES }) }), { min: 1, max: COINS_PER_MESSAGE_MAX }) })),
  /** The other banks whose coins this TA takes and pays on (two tiers), as their publications named them. */
  peers: optional(array(peerBankCodec, { max: PEERS_MAX })),
  /** The nonce of the latest in-flight report, until the bank's answer to it. */
  reportNonce: optional(nonce),
});
export type OtpState = Infer<typeof otpStateCodec>;

/** The first state. */
export function initialState(): OtpState {
  return { coins: [], inFlight: [], keys: [], received: [] };
}

