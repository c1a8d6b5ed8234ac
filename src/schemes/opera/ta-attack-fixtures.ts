/**
 * Fixtures for the attacks on the ODW trusted app (not exported): two pure ODWs driven command by
 * command, with every box that crosses between them in the hands of the test, which may hold one
 * back, replay it, flip a byte of it, or let one side's broken TA answer a message of its own
 * making, sealed in the chain as its TA would seal it (a device whose keys and state are out).
 */
import assert from 'node:assert/strict';
import { randomBytes } from '../../core/crypto/hash.ts';
import type { ChainMessage, Offer } from './exchange.ts';
import { odwSerial } from './serial.ts';
import { balance, type Caller, charge, PureOdw } from './ta-fixtures.ts';
import { receiveChain, sendChain } from './trusted-app-chain-send.ts';
import { TA_KEY_LABEL } from './trusted-app-common.ts';
import type { OperaState, TxLog } from './trusted-app-state.ts';

/** A pure ODW's SN. */
export const snOf = (odw: PureOdw): Uint8Array => odwSerial(odw.env.signer(TA_KEY_LABEL).publicKey);

/** The transaction in a state's log, which must hold one. */
export function logOf(state: OperaState): TxLog {
  assert(state.log !== undefined, 'a transaction in the log');
  return state.log;
}

/** A chain message's N_A (or N'_A), which it must carry. */
export function nonceOf(message: ChainMessage): Uint8Array {
  assert('nonce' in message, `Msg ${message.msg} carries a nonce`);
  return message.nonce;
}

/**
 * Asserts `call` is the TA's refusal `code`, as a host surfaces it (SE_REJECTED, the code in
 * details.reason), or as a codec's or the cryptography's own error code where it names one.
 */
export async function refused(call: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(call, (e: unknown) => {
    const error = e as { code?: string; details?: { reason?: string } };
    const got = error.code === 'SE_REJECTED' ? error.details?.reason : error.code;
    assert.equal(got, code, `expected ${code}, got ${String(e)}`);
    return true;
  });
}

/** Asserts the pure ODW refuses `call` with `code` and that its whole state is as it was. */
export async function refusedUnchanged(odw: PureOdw, call: () => Promise<unknown>, code: string): Promise<void> {
  const before = structuredClone(odw.state);
  await refused(call(), code);
  assert.deepEqual(odw.state, before, 'a refused command changes nothing');
}

/** What Stage 1 between a payer and a payee said on a handshake hash. */
export interface Mounted {
  readonly handshakeHash: Uint8Array;
  readonly offers: { readonly payer: Offer; readonly payee: Offer };
  readonly hellos: { readonly payer: Uint8Array; readonly payee: Uint8Array };
  readonly plans: { readonly payer: 'new' | 'resume'; readonly payee: 'new' | 'resume' };
}

async function offerOf(odw: Caller, handshakeHash: Uint8Array, role: 'payer' | 'payee', expect?: bigint): Promise<Offer> {
  return (await odw.call('mount', { handshakeHash, role, ...(expect === undefined ? {} : { expect }) })).offer;
}

/** Stage 1 up to the hellos: mount and meet on both sides. */
export async function meetPair(payer: Caller, payee: Caller, options: { handshakeHash?: Uint8Array; expect?: bigint } = {}): Promise<Omit<Mounted, 'plans'>> {
  const handshakeHash = options.handshakeHash ?? randomBytes(32);
  const offers = { payer: await offerOf(payer, handshakeHash, 'payer'), payee: await offerOf(payee, handshakeHash, 'payee', options.expect) };
  const hellos = { payer: (await payer.call('meet', { offer: offers.payee })).hello, payee: (await payee.call('meet', { offer: offers.payer })).hello };
  return { handshakeHash, offers, hellos };
}

/** Stage 1, command by command: mount, meet, greet on both sides. */
export async function mountPair(payer: Caller, payee: Caller, options: { handshakeHash?: Uint8Array; expect?: bigint } = {}): Promise<Mounted> {
  const met = await meetPair(payer, payee, options);
  const plans = { payer: (await payer.call('greet', { hello: met.hellos.payee })).plan, payee: (await payee.call('greet', { hello: met.hellos.payer })).plan };
  return { ...met, plans };
}

/**
 * Stages 2 and 3 between two pure ODWs, one box in flight at a time: `deliver` hands it to its
 * recipient and takes the answer; the test may instead replay, alter or forge what travels.
 */
export class Flight {
  /** Every box delivered so far, in order. */
  readonly delivered: Uint8Array[] = [];
  box: Uint8Array | undefined;
  to: PureOdw;

  private constructor(
    readonly payer: PureOdw,
    readonly payee: PureOdw,
    readonly mounted: Mounted,
    first: Uint8Array,
  ) {
    this.box = first;
    this.to = payee;
  }

  /** Mounts the two and sends the payer's Msg 2-1 (of `amount`, or the resumed one). */
  static async start(payer: PureOdw, payee: PureOdw, amount: bigint | undefined, options: { expect?: bigint; handshakeHash?: Uint8Array } = {}): Promise<Flight> {
    const mounted = await mountPair(payer, payee, options);
    const { box } = await payer.call('begin', amount === undefined ? {} : { amount });
    return new Flight(payer, payee, mounted, box);
  }

  /** The sender of the box in flight. */
  get from(): PureOdw {
    return this.to === this.payer ? this.payee : this.payer;
  }

  /** The message in flight, opened as its recipient's TA would open it (its state is left as it was). */
  get message(): ChainMessage {
    assert(this.box !== undefined, 'no box in flight');
    return receiveChain(this.to.state)(this.box).message;
  }

  /** Hands the box in flight to its recipient; its answer (if any) is the next box in flight. */
  async deliver(): Promise<{ ending?: 'paid' | 'returned' | undefined }> {
    const box = this.box;
    assert(box !== undefined, 'no box in flight');
    const recipient: Caller = this.to;
    const out = await recipient.call('step', { box });
    this.delivered.push(box);
    this.box = out.box;
    this.to = this.from;
    return out;
  }

  /** Delivers boxes until the one in flight is the message `msg` (and, given, with C = `counter`). */
  async until(msg: ChainMessage['msg'], counter?: number): Promise<void> {
    for (;;) {
      const m = this.message;
      if (m.msg === msg && (counter === undefined || ('counter' in m && m.counter === counter))) return;
      await this.deliver();
    }
  }

  /** Delivers every box to the end of the transaction. */
  async finish(): Promise<void> {
    while (this.box !== undefined) await this.deliver();
  }

  /**
   * The box the recipient of the box in flight would answer if its TA were broken: it opens the box
   * as usual and seals `forge(message, state)` under the next OTK instead of its own answer. Nothing
   * moves: the test hands the box on itself, and may try several at the same point.
   */
  forged(forge: (message: ChainMessage, state: OperaState) => ChainMessage): Uint8Array {
    return this.forgedAt(forge).box;
  }

  private forgedAt(forge: (message: ChainMessage, state: OperaState) => ChainMessage): { box: Uint8Array; state: OperaState } {
    assert(this.box !== undefined, 'no box in flight');
    const opened = receiveChain(this.to.state)(this.box);
    const sent = sendChain(opened.state, forge(opened.message, opened.state), 1);
    assert(sent.ok, 'the forged message seals');
    return { box: sent.output.box, state: sent.state };
  }

  /**
   * The recipient of the box in flight is broken: its TA opens the box as usual (the chain moves
   * on) but answers `forge(message, state)` instead of its own answer, sealed under the next OTK.
   */
  forge(forge: (message: ChainMessage, state: OperaState) => ChainMessage): void {
    const { box, state } = this.forgedAt(forge);
    assert(this.box !== undefined, 'no box in flight');
    this.to.state = state;
    this.delivered.push(this.box);
    this.box = box;
    this.to = this.from;
  }
}

/** A payment of `amount` from a fresh payer charged with `values` to a fresh payee, Msg 2-1 in flight. */
export async function payment(name: string, values: readonly bigint[], amount: bigint, options: { expect?: bigint } = {}): Promise<Flight> {
  const [payer, payee] = await Promise.all([PureOdw.make(`${name}-payer`), PureOdw.make(`${name}-payee`)]);
  await charge(payer, values);
  return Flight.start(payer, payee, amount, options);
}

/** The payer holds 1.00 and pays 0.77; the payee holds 0.20 + 0.02 + 0.01 and gives 0.23 back. Msg 2-1 in flight. */
export async function changePayment(name: string): Promise<Flight> {
  const [payer, payee] = await Promise.all([PureOdw.make(`${name}-payer`), PureOdw.make(`${name}-payee`)]);
  await charge(payer, [100n]);
  await charge(payee, [20n, 2n, 1n]);
  return Flight.start(payer, payee, 77n);
}

/** Delivers the rest of the payment and checks what each side holds after it. */
export async function finishes(f: Flight, balances: readonly [payer: bigint, payee: bigint]): Promise<void> {
  await f.finish();
  assert.deepEqual([await balance(f.payer), await balance(f.payee)], balances, 'the amount moved once');
}
