/**
 * What the parts of OTP's simulation share (sim.ts, sim-exchange.ts, sim-bank.ts, sim-attacks.ts,
 * sim-invariants.ts): the holders and the extra devices of attacks, the books the invariants read
 * (which boxes a trusted app took, a coin's value by its class), and the helpers every part
 * uses to call a trusted app under crashes, carry a message over the network and check that a
 * message delivered twice is refused with nothing changed.
 */
import { toHex } from '../../core/bytes.ts';
import type { Infer } from '../../core/codec.ts';
import type { Signer } from '../../core/crypto/suite.ts';
import { seRefusal, simCarry, simCommitted, type SimAttack, type SimElement, type SimNetwork, type SimNode, type SimSnapshot, type SimWorld } from '../../sim/sim/plugin.ts';
import type { Params } from './messages.ts';
import { sealedDigest, type Ack, type SealedCoin } from './transfer.ts';
import type { otpTrustedApp, statusCodec } from './trusted-app.ts';

export type Commands = typeof otpTrustedApp.commands;
export type Element = SimElement<Commands>;
export type Status = Infer<typeof statusCodec>;

/** How long a wallet waits for the partner's next message (session.ts's SESSION_STEP_TIMEOUT_MS). */
export const STEP_TIMEOUT_MS = 30_000;
/** The share of SE crashes in an exchange after which the wallet gives up; the others reopen and retry. */
export const GIVE_UP_AFTER_CRASH = 0.25;

/** An account holder with an OTP trusted app. */
export interface Holder {
  readonly index: number;
  readonly user: Signer;
  readonly account: string;
  readonly device: string;
  readonly el: Element;
  readonly attacker: boolean;
  online: boolean;
  revoked: boolean;
  /** A copy made earlier (storage alone, and the whole device), which an attacker may bring back. */
  past: { storage: SimSnapshot; whole: Element } | null;
}

/** One side of an exchange: a holder's own TA, or an attack's extra device (a clone, a rolled-back copy). */
export interface Party {
  readonly holder: Holder;
  readonly el: Element;
  /** The attack an extra device belongs to, or null for the holder's own TA. */
  readonly attack: SimAttack | null;
  /** The last partner it paid and may still owe ACKs to (its boxes are sent again to it). */
  partner: Party | null;
}

/** The exchange was cut: the link broke or a wallet gave up, at `stage`. */
export class Cut extends Error {
  constructor(readonly stage: string) {
    super(`exchange cut at ${stage}`);
  }
}

/** The state of one run of OTP's simulation. */
export interface OtpSim {
  readonly world: SimWorld;
  readonly node: SimNode;
  readonly net: SimNetwork<Uint8Array>;
  readonly holders: Holder[];
  readonly own: Map<Holder, Party>;
  /** Clones and rolled-back copies in use, and the payments each may still make. */
  readonly extras: Array<{ party: Party; left: number }>;
  /** The bank's parameters as the TAs took them. */
  bankParams: Params;
  /** The boxes a trusted app took (by digest): their coin has moved on, whatever the payer's in-flight list says. */
  readonly received: Set<string>;
  /** Attacks whose copies a payee took: each must be found at deposit. */
  readonly spentAttacks: Set<SimAttack>;
  /** Boxes and ACKs seen on the network, and deposits the node credited, for the replay attack. */
  readonly captured: { boxes: SealedCoin[]; acks: Ack[]; deposits: Array<{ holder: Holder; coins: string[] }> };
  /** Attacks that made a second device holding the same coins (clone, rollback). */
  duplicatingAttacks: number;
  paymentsMade: number;
  /** The amount of the last payment made (for the sabotaged step of the simulator's own test). */
  lastPayment: bigint;
  /** What honest holders lost to double spends (a copy deposited second is worth nothing). */
  lost: bigint;
  /** How many of the node's findings were judged (it lists them newest first). */
  findingsSeen: number;
  /** How many things the node or a TA was asked: a step that asked nothing is not checked again. */
  actions: number;
}

/** The party of a holder's own TA. */
export function partyOf(sim: OtpSim, h: Holder): Party {
  return sim.own.get(h) as Party;
}

/** Every party in play: the holders' TAs and the attacks' extra devices. */
export function allParties(sim: OtpSim): Party[] {
  return [...sim.holders.map((h) => partyOf(sim, h)), ...sim.extras.map((x) => x.party)];
}

/** The TA's refusal code of an SE_REJECTED, or null for any other error. */
export const refusal = seRefusal;

/** The error code of a node's refusal body. */
export function errorCode(body: unknown): string {
  const error = (body as { error?: { code?: string } } | null)?.error;
  return error?.code ?? 'UNKNOWN';
}

/** The value of a coin of `classId` in the bank's parameters, minor units (0 for a class not in them). */
export function classValue(sim: OtpSim, classId: Uint8Array): bigint {
  const entry = sim.bankParams.body.classes.find((c) => toHex(c.coinClass.classId) === toHex(classId));
  return entry === undefined ? 0n : BigInt(entry.coinClass.denomination);
}

export function digestOf(sealed: SealedCoin): string {
  return toHex(sealedDigest(sealed));
}

export async function status(el: Element): Promise<Status> {
  return el.se.call('status', {});
}

/**
 * A committing SE call, which may crash at a commit point: the host reopens and the same request id
 * runs again (answered from the outbox when the crash came after the commit); inside an exchange
 * (`stage` given) the wallet gives up instead a share of the time: a cut.
 */
export function committed<T>(sim: OtpSim, el: Element, run: (requestId: Uint8Array) => Promise<T>, stage: string | null = null): Promise<T> {
  return simCommitted(sim.world, el, run, stage === null ? null : { share: GIVE_UP_AFTER_CRASH, error: () => new Cut(stage) });
}

/** One message between two devices: dropped, or late past the wallet's wait, cuts the exchange; answers whether a duplicate follows it. */
export function carry(sim: OtpSim, message: Uint8Array, stage: string): { duplicated: boolean } {
  const { arrived, duplicated } = simCarry(sim.world, sim.net, message, message.length, STEP_TIMEOUT_MS);
  if (!arrived) throw new Cut(stage);
  return { duplicated };
}

/** A TA's whole status as text, to tell whether a refusal changed it. */
export function stateOf(s: Status): string {
  return JSON.stringify(s, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v instanceof Uint8Array ? toHex(v) : v));
}

/** A message delivered again (a duplicate, replayed, altered, forged): the TA must refuse it and change nothing. */
export async function mustRefuse(sim: OtpSim, party: Party, run: () => Promise<unknown>, what: string): Promise<string> {
  const before = stateOf(await status(party.el));
  try {
    await run();
  } catch (e) {
    const code = refusal(e);
    if (code === null) throw e;
    sim.world.recorder.count(`refused.offline.${code}`);
    if (stateOf(await status(party.el)) !== before) sim.world.violated('no-forgery', `device ${party.holder.device} changed state on refusing ${what}`);
    return code;
  }
  return sim.world.violated('no-forgery', `device ${party.holder.device} took ${what}`);
}
