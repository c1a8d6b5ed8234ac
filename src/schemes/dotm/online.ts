/**
 * The messages between a DOT-M wallet and the issuer node: account synchronization (§3.3.2, the
 * node issues currency blocks out of the online balance) and online data updating (§3.3.4, each
 * wallet uploads what it did offline). Both sides' uploads are the trusted app's own log, one event
 * per offline transaction or redemption, each signed with wsk so the node knows the secure element
 * wrote it; the node's signed ack lets the TA forget what was taken.
 *
 * Event kinds:
 * - `sent`: the payer's TA deducted the blocks at step 7 (it holds R's notification);
 * - `received`: the payee's TA closed the transaction at step 9;
 * - `rolled-back`: the payee's TA undid step 5 (step 9 timed out, or it rebooted mid-transaction);
 * - `abandoned`: the payer's TA released the blocks it had offered without a notification (the
 *   transaction failed before step 7, exceptional situations 1 and 4);
 * - `redeemed`: the TA gave copies up to be credited to the holder's online account.
 * `parts` are the blocks as the payer held them and the current record of each (tsd's rows); for a
 * redemption the copies given up, each with no current record.
 */
import { array, bytes, oneOf, optional, record, uint, type Infer } from '../../core/codec.ts';
import { sha256 } from '../../core/crypto/hash.ts';
import { encodeCbor } from '../../core/cbor.ts';
import { KEY_ID_BYTES } from '../../pki/key-id.ts';
import {
  amountCodec,
  blockWire,
  BLOCKS_PER_PAYMENT_MAX,
  currencyBlockCodec,
  digestCodec,
  notificationCodec,
  notificationWire,
  recordWire,
  signatureCodec,
  timestampCodec,
  transactionRecordCodec,
  tsnCodec,
} from './messages.ts';

/** Domain tag of a wallet event (signed with wsk). */
export const EVENT_TAG = 'tally/dotm/event/v1';
/** Domain tag of the node's ack of events (signed by the issuer node key). */
export const EVENT_ACK_TAG = 'tally/dotm/event-ack/v1';
/** Domain tag of an unlock ticket (signed by the issuer node key). */
export const UNLOCK_TICKET_TAG = 'tally/dotm/unlock-ticket/v1';
/** Most events the TA keeps before it must go online (it refuses new transactions past it). */
export const EVENTS_MAX = 32;
/** Most copies given up in one redemption. */
export const REDEEM_BLOCKS_MAX = BLOCKS_PER_PAYMENT_MAX;

/** What an event records. */
export const EVENT_KINDS = ['sent', 'received', 'rolled-back', 'abandoned', 'redeemed'] as const;
/** An event kind. */
export type EventKind = (typeof EVENT_KINDS)[number];

const sequenceCodec = uint({ min: 1, max: Number.MAX_SAFE_INTEGER });

/** A block of an event and, for a transaction, the current record appended to it. */
export const eventPartCodec = record({ block: currencyBlockCodec, current: optional(transactionRecordCodec) });
/** One part of an event. */
export type EventPart = Infer<typeof eventPartCodec>;

/** The body of a wallet event. */
export const eventBodyCodec = record({
  /** Key id of wpk: the wallet that wrote it. */
  wallet: bytes({ length: KEY_ID_BYTES }),
  /** 1, 2, 3, … per wallet, without gaps. */
  seq: sequenceCodec,
  kind: oneOf(EVENT_KINDS),
  /** The transaction serial number, or for a redemption 16 random bytes. */
  tsn: tsnCodec,
  /** Digest of σ (transactionDigest); for a redemption, of the parts. */
  transaction: digestCodec,
  /** The value moved: v, or the redeemed total. */
  amount: amountCodec,
  /** The TA's time when it wrote the event. */
  time: timestampCodec,
  parts: array(eventPartCodec, { min: 1, max: BLOCKS_PER_PAYMENT_MAX }),
  /** For `sent` and `received`: R's step-6 notification, the receipt both sides agree on. */
  notification: optional(notificationCodec),
});
/** An event body. */
export type EventBody = Infer<typeof eventBodyCodec>;

/** A wallet event with its wsk signature. */
export const walletEventCodec = record({ body: eventBodyCodec, signature: signatureCodec });
/** A signed wallet event. */
export type WalletEvent = Infer<typeof walletEventCodec>;

/** The node's ack: the wallet's events up to `upTo` are taken; `time` is the node's clock. */
export const eventAckBodyCodec = record({
  wallet: bytes({ length: KEY_ID_BYTES }),
  upTo: uint({ max: Number.MAX_SAFE_INTEGER }),
  time: timestampCodec,
});
/** An ack body. */
export type EventAckBody = Infer<typeof eventAckBodyCodec>;

/** A signed ack. */
export const eventAckCodec = record({ body: eventAckBodyCodec, signature: signatureCodec });
/** A signed ack. */
export type EventAck = Infer<typeof eventAckCodec>;

/**
 * The node's unlock ticket: the account holder of `wallet` asked (in a request signed with its
 * account key) that the wallet's count of wrong payment passwords be reset. `unlock` is the
 * wallet's next unlock number (its TA's count of unlocks plus one), so a ticket opens one lock
 * once. Tally's addition: the paper has a retry limit but no way back from it.
 */
export const unlockTicketBodyCodec = record({
  wallet: bytes({ length: KEY_ID_BYTES }),
  unlock: uint({ min: 1, max: Number.MAX_SAFE_INTEGER }),
  time: timestampCodec,
});
/** An unlock ticket body. */
export type UnlockTicketBody = Infer<typeof unlockTicketBodyCodec>;

/** A signed unlock ticket. */
export const unlockTicketCodec = record({ body: unlockTicketBodyCodec, signature: signatureCodec });
/** A signed unlock ticket. */
export type UnlockTicket = Infer<typeof unlockTicketCodec>;

/** The record an unlock ticket signature covers. */
export function unlockTicketBodyWire(b: UnlockTicketBody): Record<string, unknown> {
  return { wallet: b.wallet, unlock: b.unlock, time: b.time };
}

/** The wire form of an event part. */
export function eventPartWire(p: EventPart): Record<string, unknown> {
  return { block: blockWire(p.block), ...(p.current === undefined ? {} : { current: recordWire(p.current) }) };
}

/** The record an event signature covers: the body, whole. */
export function eventBodyWire(b: EventBody): Record<string, unknown> {
  return {
    wallet: b.wallet,
    seq: b.seq,
    kind: b.kind,
    tsn: b.tsn,
    transaction: b.transaction,
    amount: b.amount,
    time: b.time,
    parts: b.parts.map(eventPartWire),
    ...(b.notification === undefined ? {} : { notification: notificationWire(b.notification) }),
  };
}

/** The wire form of a signed event. */
export function walletEventWire(e: WalletEvent): Record<string, unknown> {
  return { body: eventBodyWire(e.body), signature: e.signature };
}

/** The record an ack signature covers. */
export function eventAckBodyWire(b: EventAckBody): Record<string, unknown> {
  return { wallet: b.wallet, upTo: b.upTo, time: b.time };
}

/** Digest naming the parts of a redemption (its `transaction` field). */
export function partsDigest(parts: readonly EventPart[]): Uint8Array {
  return sha256(encodeCbor(parts.map(eventPartWire)));
}
