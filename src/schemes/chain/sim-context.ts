/**
 * What the parts of chain-tee's simulation share (sim.ts, sim-offline.ts, sim-online.ts,
 * sim-attacks.ts, sim-invariants.ts): the holders and the extra devices of attacks, the books the
 * invariants read (which payments a TEE credited, the deposits on chain a TEE has not credited
 * yet), and the helpers every part uses to call a trusted app under crashes and to check that a
 * message delivered again is refused with nothing changed.
 */
import type { Address } from 'viem';
import { toHex } from '../../core/bytes.ts';
import type { Infer } from '../../core/codec.ts';
import type { Signer } from '../../core/crypto/suite.ts';
import type { ChainClients } from '../../issuer/plugin.ts';
import { seRefusal, simCommitted, type SimAttack, type SimChain, type SimElement, type SimNetwork, type SimNode, type SimSnapshot, type SimWorld } from '../../sim/sim/plugin.ts';
import type { SignedAck, TxOff } from './messages.ts';
import type { chainTrustedApp, statusCodec } from './trusted-app.ts';
import { paymentHash, type Domain } from './typed-data.ts';
import type { Contracts } from './wallet-chain.ts';

export type Commands = typeof chainTrustedApp.commands;
export type Element = SimElement<Commands>;
export type Status = Infer<typeof statusCodec>;

/** How long a wallet waits for the partner's next message (session.ts's step timeout). */
export const STEP_TIMEOUT_MS = 30_000;
/** The share of SE crashes in a payment after which the wallet gives up; the others reopen and retry. */
export const GIVE_UP_AFTER_CRASH = 0.25;

/**
 * Items (payments sent and received) a TA holds before its wallet reconciles first, or, offline,
 * pays and takes no more: one session adds at most 1 + 8 resent, so a TA never holds more than
 * one upload's worth (64) and its upload lists all it holds (the conservation invariant reads it).
 */
const ITEMS_BEFORE_SYNC = 48;
/** Whether a TA has room for another session's items. */
export function roomy(s: { outgoing: number; incoming: number }): boolean {
  return s.outgoing + s.incoming < ITEMS_BEFORE_SYNC;
}

/** An account holder with a chain-tee device and an on-chain account of its own (the wallet's, for tokens and gas). */
export interface Holder {
  readonly index: number;
  readonly user: Signer;
  readonly device: string;
  readonly certificate: Uint8Array;
  readonly el: Element;
  readonly attacker: boolean;
  /** The enclave key's address (the paper's `mpk`). */
  readonly enclave: Uint8Array;
  /** The offline account, as bytes and as viem writes it. */
  readonly account: Uint8Array;
  readonly address: Address;
  /** The wallet's on-chain account and its clients. */
  readonly eoa: Address;
  readonly clients: ChainClients;
  online: boolean;
  /** The chain froze the account (a fork it proved), or the bank revoked the device. */
  frozen: boolean;
  /** The account was closed on chain and its TA cleaned. */
  closed: boolean;
  /** Deposit transactions the chain took whose receipts the TA has not credited yet (an interrupted deposit), and their amount. */
  uncredited: { transactions: `0x${string}`[]; amount: bigint };
  /** A copy made earlier (storage alone, and the whole device), which an attacker may bring back. */
  past: { storage: SimSnapshot; whole: Element } | null;
}

/** One side of a payment: a holder's own TA, or an attack's extra device (a clone, a rolled-back copy). */
export interface Party {
  readonly holder: Holder;
  readonly el: Element;
  /** The attack an extra device belongs to, or null for the holder's own TA. */
  readonly attack: SimAttack | null;
}

/** A payment was cut: the link broke or a wallet gave up, at `stage`. */
export class Cut extends Error {
  constructor(readonly stage: string) {
    super(`payment cut at ${stage}`);
  }
}

/** The state of one run of chain-tee's simulation. */
export interface ChainSim {
  readonly world: SimWorld;
  readonly node: SimNode;
  readonly chain: SimChain;
  readonly contracts: Contracts;
  /** The EIP-712 domain the TEEs sign under. */
  readonly domain: Domain;
  readonly net: SimNetwork<Uint8Array>;
  readonly holders: Holder[];
  readonly own: Map<Holder, Party>;
  /** Clones and rolled-back copies in use, and the payments each may still make. */
  readonly extras: Array<{ party: Party; left: number }>;
  /** Payments a payee's TA credited (by payment hash), and the party that credited each. */
  readonly credited: Map<string, Party>;
  /** Attacks whose payments an honest payee credited: a copy's must be found on chain. */
  readonly spentAttacks: Set<SimAttack>;
  /** tx_offs and acks seen on the network, for the replay attack. */
  readonly captured: { txOffs: TxOff[]; acks: SignedAck[] };
  /** Attacks that made a second device holding the same account (clone, rollback). */
  duplicatingAttacks: number;
  paymentsMade: number;
  /** The amount of the last payment made (for the sabotaged step of the simulator's own test). */
  lastPayment: bigint;
  /** What honest holders lost: payments credited and then taken back (a forked payer's shortfall, a forged payer). */
  lost: bigint;
  /** Accounts an attacker made up with its extracted enclave key (by address, hex), and the attack each belongs to. */
  readonly forged: Map<string, { attack: SimAttack; amount: bigint }>;
  /** Pay-outs (withdrawals, closings) the chain paid, and payments it applied, by payment hash. */
  readonly paidOut: Set<string>;
  readonly applied: Set<string>;
  /** The first block whose events are not read yet. */
  eventsFrom: bigint;
  /** How many things the node, the chain or a TA was asked: a step that asked nothing is not checked again. */
  actions: number;
}

/** The party of a holder's own TA. */
export function partyOf(sim: ChainSim, h: Holder): Party {
  return sim.own.get(h) as Party;
}

/** Every party in play: the holders' TAs and the attacks' extra devices. */
export function allParties(sim: ChainSim): Party[] {
  return [...sim.holders.map((h) => partyOf(sim, h)), ...sim.extras.map((x) => x.party)];
}

/** The error code of a node's refusal body. */
export function errorCode(body: unknown): string {
  const error = (body as { error?: { code?: string } } | null)?.error;
  return error?.code ?? 'UNKNOWN';
}

/** A payment's hash as the books key it. */
export function hashOf(txOff: TxOff): string {
  return toHex(paymentHash(txOff.payment));
}

export async function status(el: Element): Promise<Status> {
  return el.se.call('status', {});
}

/** A committing SE call that may crash at a commit point; inside a payment (`stage`) the wallet gives up a share of the time: a cut. */
export function committed<T>(sim: ChainSim, el: Element, run: (requestId: Uint8Array) => Promise<T>, stage: string | null = null): Promise<T> {
  return simCommitted(sim.world, el, run, stage === null ? null : { share: GIVE_UP_AFTER_CRASH, error: () => new Cut(stage) });
}

/** A TEE's whole status as text, to tell whether a refusal changed it. */
export function stateOf(s: Status): string {
  return JSON.stringify(s, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v instanceof Uint8Array ? toHex(v) : v));
}

/**
 * A message delivered again (a duplicate, replayed, forged): the TA must refuse it, or answer it as
 * before (`answered`: the same ack again, nothing credited), and change nothing.
 * @returns the refusal code, or 'answered-again'
 */
export async function mustNotCredit(sim: ChainSim, party: Party, run: () => Promise<{ credited?: boolean } | unknown>, what: string): Promise<string> {
  const before = stateOf(await status(party.el));
  let outcome: string;
  try {
    const answer = (await run()) as { credited?: boolean; ack?: SignedAck } | undefined;
    if (answer?.credited === true) return sim.world.violated('credited-once', `device ${party.holder.device} credited ${what}`);
    if (answer?.ack !== undefined && answer.ack.ok) outcome = 'answered-again';
    else outcome = 'ack-fail';
  } catch (e) {
    const code = seRefusal(e);
    if (code === null) throw e;
    outcome = code;
  }
  sim.world.recorder.count(`refused.offline.${outcome}`);
  if (stateOf(await status(party.el)) !== before) sim.world.violated('no-forgery', `device ${party.holder.device} changed state on ${what}`);
  return outcome;
}
