/**
 * The state of the chain-tee trusted app (the paper's `state_offchain` and `Storage[P]`), with its
 * codec and bounds: the offline account, its balance and counter, the payments it made and received
 * that the chain has not settled yet, the payers' counters it has seen (so a `tx_off` is never
 * credited twice), and what it pinned: the root, the node's key, the chain's parameters.
 */
import { array, bigint, bytes, oneOf, optional, record, uint, type Infer } from '../../core/codec.ts';
import { publicKeyCodec } from '../../core/crypto/suite.ts';
import { timestampMs } from '../../core/fields.ts';
import { ackCodec, CERTIFICATE_BYTES_MAX, paramsBodyCodec, txOffCodec } from './messages.ts';
import { ADDRESS_BYTES, UINT128_MAX, UINT64_MAX } from './typed-data.ts';

/** Most payments made and not yet settled on chain (pending, acknowledged, withdrawals). */
export const OUTGOING_MAX = 256;
/** Most payments received and not yet settled on chain. */
export const INCOMING_MAX = 256;
/** Most payers whose last counter the TA remembers. */
export const SEEN_MAX = 1024;
/** Bytes of the seed the account key is derived under (deleting it deletes the key). */
export const ACCOUNT_SEED_BYTES = 16;

const address = bytes({ length: ADDRESS_BYTES });
const uint128 = bigint({ min: 0n, max: UINT128_MAX });
const uint64 = bigint({ min: 0n, max: UINT64_MAX });
const certificate = bytes({ max: CERTIFICATE_BYTES_MAX });

/** A payment this account made: pending until its ack (or the chain) settles it; a withdrawal or closing carries none. */
export const outgoingCodec = record({ txOff: txOffCodec, ack: optional(ackCodec) });
export type Outgoing = Infer<typeof outgoingCodec>;
/** A payment this account received, with the ack it answered (`ack_win` when credited, `ack_fail` when refused). */
export const incomingCodec = record({ txOff: txOffCodec, ack: ackCodec });
export type Incoming = Infer<typeof incomingCodec>;

/** Open; frozen by the chain (no new `σ_att`); closing (its closing sent); closed (keys may be deleted). */
export const TA_STATUSES = ['open', 'frozen', 'closing', 'closed'] as const;
export type TaStatus = (typeof TA_STATUSES)[number];

export const chainStateCodec = record({
  root: optional(certificate),
  owner: optional(bytes({ length: 32 })),
  intermediary: optional(certificate),
  /** The issuer node's key: it signs the chain receipts. */
  bank: optional(publicKeyCodec),
  /** The enclave key's device certificate (carried in every `tx_off`). */
  certificate: optional(certificate),
  params: optional(paramsBodyCodec),
  /** The offline account (Algorithm 2), until it is cleaned. */
  account: optional(record({ seed: bytes({ length: ACCOUNT_SEED_BYTES }), address })),
  status: oneOf(TA_STATUSES),
  /** What the account may spend offline. */
  balance: uint128,
  /** What the chain took back beyond the balance (a payment it honoured in part), paid first from later credits. */
  debt: uint128,
  /** The next outgoing counter. */
  counter: uint64,
  /** The next deposit index the TA credits. */
  deposits: uint({ max: 2 ** 32 }),
  outgoing: array(outgoingCodec, { max: OUTGOING_MAX }),
  incoming: array(incomingCodec, { max: INCOMING_MAX }),
  /**
   * Each payer's highest counter this TA credited or refused, with that payment's `T_gen`: an entry
   * may go once its `T_gen` is beyond the drift bound of the TA's clock, since a `tx_off` that old is
   * refused as stale anyway.
   */
  seen: array(record({ payer: address, counter: uint64, tGen: uint64 }), { max: SEEN_MAX }),
  /** A lower bound on the time (Unix ms): the latest chain time the node signed. */
  clock: timestampMs,
  /** The latest block a statement was read at. */
  block: uint64,
});
export type ChainState = Infer<typeof chainStateCodec>;

/** The state of a new TA. */
export function initialState(): ChainState {
  return { status: 'open', balance: 0n, debt: 0n, counter: 0n, deposits: 0, outgoing: [], incoming: [], seen: [], clock: 0, block: 0n };
}

/** Credits `amount`, paying any debt first. */
export function credit(state: ChainState, amount: bigint): Pick<ChainState, 'balance' | 'debt'> {
  const paid = amount < state.debt ? amount : state.debt;
  return { debt: state.debt - paid, balance: state.balance + amount - paid };
}

/** Takes `amount` back (the chain did not honour what was credited); what the balance lacks becomes debt. */
export function charge(state: Pick<ChainState, 'balance' | 'debt'>, amount: bigint): Pick<ChainState, 'balance' | 'debt'> {
  if (amount <= state.balance) return { balance: state.balance - amount, debt: state.debt };
  return { balance: 0n, debt: state.debt + amount - state.balance };
}

/** What is held for payments sent and not yet acknowledged. */
export function pendingOf(state: ChainState): bigint {
  return state.outgoing.filter((o) => o.ack === undefined && o.txOff.payment.kind === 0).reduce((sum, o) => sum + o.txOff.payment.amount, 0n);
}
