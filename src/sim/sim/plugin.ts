/**
 * The simulator's seam: what `tally sim` gives a scheme's simulation (a seeded random source, a
 * simulated clock, a real node on an in-memory database, a real Ethereum chain for a scheme that
 * settles on one, in-process secure elements kept in memory, an in-memory network with faults, the
 * invariant checks and the report, and the helpers every simulation uses to call a secure element
 * under crashes and to carry a message), and what a scheme gives back (`SimPlugin`). A scheme's
 * `sim.ts` imports only this file of the simulator.
 */
import type { PublicKey, Signer, SuiteName } from '../../core/crypto/suite.ts';
import type { CryptoProvider } from '../../core/crypto/suite.ts';
import { isTallyError } from '../../core/errors.ts';
import type { Certificate } from '../../pki/certificate.ts';
import type { CrashPoint, SecureElement } from '../../secure-element/secure-element.ts';
import type { CommandTable, TrustedApp } from '../../secure-element/trusted-app.ts';
import type { ChainClients, DeviceLimits, SchemeModule } from '../../issuer/plugin.ts';
import { CRASH_POINTS } from '../../secure-element/secure-element.ts';

/** A seeded pseudo-random source: every choice in a run is drawn from it. */
export interface SimRandom {
  /** A uniform 32-bit unsigned integer. */
  u32(): number;
  /** An integer in [0, n). */
  below(n: number): number;
  /** True with probability `p`. */
  chance(p: number): boolean;
  /** One item of a non-empty list. */
  pick<T>(items: readonly T[]): T;
  /** `n` bytes. */
  bytes(n: number): Uint8Array;
  /** A bigint in [min, max]. */
  bigint(min: bigint, max: bigint): bigint;
}

/** The simulated clock, in milliseconds since the epoch; only the simulation moves it. */
export interface SimClock {
  now(): number;
  advance(ms: number): void;
}

/** What the node's audit says, in minor units. */
export interface SimAudit {
  readonly balanced: boolean;
  readonly issued: bigint;
  readonly online: bigint;
  readonly settlement: bigint;
  /** Per offline-float account, what it holds. */
  readonly floats: ReadonlyMap<string, bigint>;
}

/** An answer of the node: its status and its JSON. */
export interface SimAnswer {
  readonly status: number;
  readonly body: unknown;
}

/** The issuer node of a run: the real node code on an in-memory database, at the simulated clock. */
export interface SimNode {
  readonly certificates: { readonly root: Certificate; readonly intermediary: Certificate; readonly issuerNode: Certificate };
  readonly deviceLimits: DeviceLimits;
  /** Minor units as the node writes amounts. */
  amount(minor: bigint): string;
  /** A request signed by `who` (or with the operator's token), carrying an idempotency key when it mutates. */
  request(who: Signer | 'operator', method: string, path: string, body?: unknown, options?: { idempotencyKey?: string | undefined }): Promise<SimAnswer>;
  /** Registers an account holder whose key is drawn from the run's random source. */
  registerUser(): Promise<{ signer: Signer; keyId: string; account: string; certificate: Uint8Array }>;
  /** Enrols an OEM (key from the random source) and allows `measurement` for `scheme`; answers its key and key id. */
  enrolOem(scheme: string, measurement: Uint8Array): Promise<{ signer: Signer; keyId: string }>;
  /**
   * Registers `user`'s device of `scheme` (`POST /v1/devices`): the key and proof its trusted app's
   * `init` gave, attested by `oem` as `model` running `measurement`; answers its key id and certificate.
   */
  registerDevice(user: Signer, oem: { signer: Signer; keyId: string }, device: { scheme: string; publicKey: PublicKey; proof: Uint8Array; model: string; measurement: Uint8Array }): Promise<{ keyId: string; certificate: Uint8Array }>;
  mint(account: string, minor: bigint): Promise<void>;
  /**
   * The node's audit. In a mixed population (several schemes on one node) it is the scheme's part:
   * issued into its holders' accounts and its float, what those accounts hold, its own float only.
   */
  audit(): Promise<SimAudit>;
  /** Stops the node process and starts it again on the same database and data folder (a fault). */
  restart(): Promise<void>;
}

/** A secure element of the simulation: an in-process host over storage and a counter kept in memory. */
export interface SimElement<C> {
  /** The host as it is now (after a crash, `reopen` gives a new one). */
  readonly se: SecureElement<C>;
  /** Makes the next committing call die at `point` (SimulatedCrash), or none. */
  crashAt(point: CrashPoint | null): void;
  /** Opens the host again on what its storage and counter hold (after a crash). */
  reopen(): Promise<void>;
  /** A second device with a copy of this one's storage and counter: a cloned secure element. */
  clone(): Promise<SimElement<C>>;
  /** The key the trusted app signs with under `label` (Ed25519 unless `suite` says), as an attacker who extracted the device's master secret holds it. */
  extractKey(label: string, suite?: SuiteName): Signer;
  /** A copy of the storage only, to restore later (the counter stays where it is). */
  snapshot(): SimSnapshot;
  /** Puts a snapshot's storage back and opens the host on it; answers the error code when the host refuses. */
  restore(snapshot: SimSnapshot): Promise<string | null>;
  close(): Promise<void>;
}

/** A copy of a secure element's storage. */
export interface SimSnapshot {
  readonly kind: 'sim-snapshot';
}

/** What the network does to one message. */
export type SimFault = 'dropped' | 'duplicated' | 'delayed';

/** A message on the in-memory network, and when it arrives. */
export interface SimMessage<T> {
  readonly payload: T;
  readonly bytes: number;
  readonly at: number;
}

/** The in-memory network between devices: each message may be dropped, duplicated or delayed (so reordered). */
export interface SimNetwork<T> {
  /** Sends `payload`; answers what the network did to it. */
  send(payload: T, bytes: number): SimFault[];
  /** The messages due at the simulated time, in order of arrival. */
  due(): SimMessage<T>[];
  /** Every message still travelling, in order of arrival. */
  pending(): readonly SimMessage<T>[];
  /** Takes every message still travelling off the network, in order of arrival. */
  drain(): SimMessage<T>[];
}

/** The run's parameters, as given on the command line. */
export interface SimParameters {
  readonly seed: number;
  readonly devices: number;
  readonly payments: number;
  /** The share of the population that attacks, 0..1. */
  readonly attackers: number;
  /** How likely each fault is at each chance of it, 0..1. */
  readonly faults: number;
  /** Check the invariants after every `checkEvery` steps (1: every step). */
  readonly checkEvery: number;
  /** A deliberately broken step, for the simulator's own tests only: the named invariant must catch it. */
  readonly sabotage?: string | undefined;
}

/** An attack and what became of it. */
export interface SimAttack {
  readonly kind: string;
  /** The simulated time it was made. */
  readonly at: number;
  /** The device it is attributed to when detected (the attacker's). */
  readonly device: string;
  /** The most it can cost, minor units. */
  readonly bound: bigint;
  outcome: 'pending' | 'refused-offline' | 'detected' | 'harmless';
  attributed: boolean;
  detectedAt: number | null;
}

/** The recorder of a run: counters, attacks and the loss over simulated time. */
export interface SimRecorder {
  /** Adds `n` to a named counter (`payments`, `faults.dropped`, ...). */
  count(name: string, n?: number): void;
  /** Records an attack; the scheme marks its outcome later. */
  attack(kind: string, device: string, bound: bigint): SimAttack;
  readonly attacks: readonly SimAttack[];
  /** Adds bytes sent for payments. */
  bytes(n: number): void;
  /** The money lost so far (value created offline and not recovered), minor units. */
  loss(minor: bigint): void;
}

/**
 * The Ethereum chain of a run (a scheme whose node part `usesChain`): a real anvil, the same empty
 * chain at the start of every run, its block time set from the simulated clock.
 */
export interface SimChain {
  readonly rpcUrl: string;
  /** A client that reads the chain. */
  readonly reader: ChainClients['publicClient'];
  /** Brings the chain and the clock together: the next block is stamped at the simulated time, or the clock moves up to the latest block's. */
  follow(): Promise<void>;
  /** Gives `address` ether for gas (the dev chain's faucet). */
  fund(address: `0x${string}`): Promise<void>;
  /** Clients that read the chain and send as the account of secp256k1 key `secret`. */
  clients(secret: Uint8Array): ChainClients;
}

/** What a scheme's simulation is handed. */
export interface SimWorld {
  readonly params: SimParameters;
  readonly random: SimRandom;
  readonly clock: SimClock;
  readonly provider: CryptoProvider;
  readonly recorder: SimRecorder;
  /**
   * Opens the run's node with the scheme's node part (on the run's chain when the part `usesChain`, its
   * bank's chain key drawn from the seed); in a mixed population, the one node of every scheme of the mix.
   */
  openNode(scheme: SchemeModule): Promise<SimNode>;
  /** The run's Ethereum chain (anvil started on first use in the process). */
  chain(): Promise<SimChain>;
  /** Provisions a secure element of `app` whose master secret comes from the random source. */
  element<S, C extends CommandTable<S>>(app: TrustedApp<S, C>): Promise<SimElement<C>>;
  /** A new in-memory network. */
  network<T>(): SimNetwork<T>;
  /**
   * Declares a step done: the invariants run (every `checkEvery` steps, and always when `force`),
   * progress moves; in a mixed population the turn may pass to another scheme before it returns.
   * @throws SimViolation when one fails
   */
  step(force?: boolean): Promise<void>;
  /** Registers an invariant, run after the steps; it answers null when it holds, else what is wrong. */
  invariant(name: string, check: () => Promise<string | null>): void;
  /** Stops the run with a violation of `name` (an invariant seen broken inside a step). @throws SimViolation always */
  violated(name: string, what: string): never;
}

/** The simulation of one scheme. */
export interface SimPlugin {
  readonly scheme: string;
  /** Runs a population of `params.devices` holders making `params.payments` payments, with faults and attacks. */
  run(world: SimWorld): Promise<void>;
}

/** An invariant found broken: the run stops and prints the command that replays it. */
export class SimViolation extends Error {
  readonly invariant: string;
  readonly step: number;
  readonly at: number;
  constructor(invariant: string, what: string, step: number, at: number) {
    super(`invariant ${invariant} broken at step ${step}: ${what}`);
    this.name = 'SimViolation';
    this.invariant = invariant;
    this.step = step;
    this.at = at;
  }
}

/** True for the crash a SimElement was told to die with. */
export function isSimCrash(e: unknown): boolean {
  return e instanceof Error && e.name === 'SimulatedCrash';
}

/** The trusted app's refusal code of an SE_REJECTED, or null for any other error. */
export function seRefusal(e: unknown): string | null {
  if (isTallyError(e, 'SE_REJECTED')) return String(e.details.reason);
  return null;
}

/**
 * A committing secure-element call that may die at a crash point (with probability `faults`): the
 * host is opened again and the same request id runs again, answered from the outbox when the crash
 * came after the commit. `giveUp.share` (0..1): how often the wallet gives up after the crash
 * instead, throwing `giveUp.error()`.
 * @throws what `run` throws, or `giveUp.error()`
 */
export async function simCommitted<T>(world: SimWorld, el: Pick<SimElement<never>, 'crashAt' | 'reopen'>, run: (requestId: Uint8Array) => Promise<T>, giveUp: { share: number; error: () => Error } | null = null): Promise<T> {
  const { random, params, recorder } = world;
  const requestId = random.bytes(16);
  if (random.chance(params.faults)) {
    el.crashAt(random.pick(CRASH_POINTS));
    try {
      return await run(requestId);
    } catch (e) {
      el.crashAt(null);
      if (!isSimCrash(e)) throw e;
      recorder.count('faults.se-crash');
      await el.reopen();
      if (giveUp !== null && random.chance(giveUp.share)) throw giveUp.error();
    }
  }
  return run(requestId);
}

/**
 * One message between two devices over `net`: answers whether it arrived within `timeoutMs` (the
 * clock moved to its arrival) and whether a duplicate follows it; a dropped or late message did not.
 */
export function simCarry<T>(world: SimWorld, net: SimNetwork<T>, message: T, bytes: number, timeoutMs: number): { arrived: boolean; duplicated: boolean } {
  const { clock, recorder } = world;
  const faults = net.send(message, bytes);
  const arrived = net.drain();
  const first = arrived[0];
  if (faults.includes('dropped') || first === undefined) return { arrived: false, duplicated: false };
  if (first.at - clock.now() > timeoutMs) {
    recorder.count('faults.timeout');
    return { arrived: false, duplicated: false };
  }
  clock.advance(first.at - clock.now());
  return { arrived: true, duplicated: arrived.length > 1 };
}

/** One relayed message: who relayed it, where it went, and what the protocol made of it. */
export interface SimRelay {
  /** The relayer's device: the attack is put to it. */
  readonly relayer: string;
  /** What was relayed to whom (`request-to-payer`, `payment-to-relayer`, ...), counted as `attacks.relay.<variant>`. */
  readonly variant: string;
  /** The party the honest payer meant to pay, whom its trusted app binds the payment to. */
  readonly meant: string;
  /** The code of the protocol check that refused the relayed message, or null when none did. */
  readonly refusal: string | null;
  /** The party the relayed message got money credited to, or null when it credited nobody. */
  readonly credited: string | null;
}

/**
 * Records a relay and judges it: refused by a protocol check, it is `refused-offline`; let through,
 * it is `harmless` only if it credited nobody or the payee the payer meant. Money credited to anyone
 * else (the relayer first of all), or credited by a message a check refused, breaks `payee-bound`.
 * @throws SimViolation payee-bound
 */
export function simRelayed(world: Pick<SimWorld, 'recorder' | 'violated'>, relay: SimRelay): SimAttack {
  const { recorder } = world;
  recorder.count(`attacks.relay.${relay.variant}`);
  const attack = recorder.attack('relay', relay.relayer, 0n);
  if (relay.credited !== null) {
    if (relay.credited === relay.relayer) world.violated('payee-bound', `a relayed ${relay.variant} credited the relayer ${relay.relayer}`);
    if (relay.credited !== relay.meant) world.violated('payee-bound', `a relayed ${relay.variant} credited ${relay.credited}, not ${relay.meant}, the payee the payer meant`);
    if (relay.refusal !== null) world.violated('payee-bound', `a relayed ${relay.variant} was refused (${relay.refusal}) and still credited ${relay.credited}`);
  }
  if (relay.refusal !== null) {
    recorder.count(`refused.relay.${relay.refusal}`);
    attack.outcome = 'refused-offline';
  } else {
    attack.outcome = 'harmless';
  }
  return attack;
}
