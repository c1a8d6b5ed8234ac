/**
 * The OTP payment over a live link (paper Figure 4), anonymous on both sides: no certificate is
 * shown; the payee is shown genuine by the bank's signature on its exchange keys, the coins by the
 * bank's signature on them. In order:
 *   P → Q  hello   the boxes still waiting for an ACK (sent again)
 *   Q → P  terms   the amount asked, the denominations Q could give as change, ACKs of resent boxes
 *   P → Q  offer   the denominations P pays and the change it asks for, with its exchange keys for it
 *   Q → P  keys    one exchange key per coin P pays
 *   P → Q  coins   sealed coins, COINS_PER_ROUND at a time; Q → P acks, for each round
 *   Q → P  coins   the change, sealed to P's keys; P → Q acks
 *   P → Q  done
 * A coin is forgotten by its sender only on its ACK: a cut anywhere leaves it in flight, sent
 * again at the next session or settled by the bank. This file orders the messages and bounds
 * every wait; the roles (the trusted apps, through the wallet) do the checking. Pure.
 */
import { utf8 } from '../../core/bytes.ts';
import { array, record, taggedUnion, text, uint } from '../../core/codec.ts';
import { TallyError } from '../../core/errors.ts';
import { decimalText } from '../../core/fields.ts';
import type { Link } from '../../channel/link.ts';
import { localCode, peerRefusal, refusalSentence, type RefusingSide } from '../../channel/peer-refusal.ts';
import { exchangeKeyCodec, type ExchangeKey } from './exchange-key.ts';
import { KEYS_PER_MESSAGE_MAX } from './messages.ts';
import { ackCodec, sealedCoinCodec, type Ack, type SealedCoin } from './transfer.ts';

/** Both sides put this in their Noise prologue. */
export const OTP_LINK_PROLOGUE = utf8('tally/otp/link/v1');
/** The scheme both sides name in their link hello. */
export const OTP_LINK_SCHEME = 'otp';
/** How long each side waits for the other's next message by default. */
export const SESSION_STEP_TIMEOUT_MS = 30_000;
/** Coins sealed per message: a box with every escrow tag is under 24 KiB, so a round stays well inside a frame. */
export const COINS_PER_ROUND = 16;
/** Most coins one payment moves. */
export const COINS_PER_PAYMENT_MAX = 512;
/** Most change coins one payment asks for. */
export const CHANGE_COINS_MAX = KEYS_PER_MESSAGE_MAX;

const minor = decimalText({ digits: 19 });
const failure = { code: text({ min: 1, max: 40, pattern: /^[A-Z][A-Z0-9_]*$/, describe: 'an error code' }), message: text({ max: 300, pattern: /^[^\p{Cc}\p{Cs}]*$/u, describe: 'one line of text' }) };
const boxes = array(sealedCoinCodec, { max: COINS_PER_ROUND });
const acks = array(ackCodec, { max: COINS_PER_ROUND });

/** What the payer sends. */
export const payerMessageCodec = taggedUnion('kind', {
  hello: { resend: boxes },
  offer: { pay: array(minor, { min: 1, max: COINS_PER_PAYMENT_MAX }), change: array(minor, { max: CHANGE_COINS_MAX }), keys: array(exchangeKeyCodec, { max: CHANGE_COINS_MAX }) },
  coins: { sealed: boxes },
  acks: { acks },
  done: {},
  failure,
});

/** What the payee sends. */
export const payeeMessageCodec = taggedUnion('kind', {
  terms: { amount: minor, holdings: array(record({ denomination: minor, count: uint({ max: 100_000 }) }), { max: 64 }), acks },
  keys: { keys: array(exchangeKeyCodec, { max: COINS_PER_PAYMENT_MAX }) },
  acks: { acks },
  coins: { sealed: boxes },
  failure,
});

/** Coins by denomination (minor units). */
export type Holdings = ReadonlyMap<bigint, number>;

/** What the payer pays and asks back. */
export interface Plan {
  /** The denominations of the coins paid, one per coin. */
  readonly pay: readonly bigint[];
  /** The denominations of the change asked for, one per coin. */
  readonly change: readonly bigint[];
}

/** The payer's wallet and trusted app, as the session uses them. */
export interface PayerRole {
  /** Boxes sent earlier that still wait for their ACK. */
  inFlight(): Promise<SealedCoin[]>;
  /** Forgets the coins these ACKs acknowledge. */
  acknowledge(acks: readonly Ack[]): Promise<void>;
  /** The coins to pay `amount` with, given what the payee can give as change. Throwing sends a failure. */
  plan(amount: bigint, payee: Holdings): Promise<Plan>;
  /** Exchange keys for the change. */
  offerKeys(count: number): Promise<ExchangeKey[]>;
  /** Runs the programs of coins of these denominations to these keys: the boxes. */
  pay(items: readonly { denomination: bigint; key: ExchangeKey }[]): Promise<SealedCoin[]>;
  /** Takes change coins: their ACKs. */
  receive(sealed: readonly SealedCoin[]): Promise<Ack[]>;
}

/** The payee's wallet and trusted app, as the session uses them. */
export interface PayeeRole {
  /** What it can give as change. */
  holdings(): Promise<Holdings>;
  /** ACKs of boxes it already took; boxes sealed to its keys but not yet taken are taken now. */
  resent(sealed: readonly SealedCoin[]): Promise<Ack[]>;
  /** Checks the offer: the coins less the change make the amount. Throwing sends a failure. */
  accept(amount: bigint, plan: Plan): Promise<void>;
  offerKeys(count: number): Promise<ExchangeKey[]>;
  receive(sealed: readonly SealedCoin[]): Promise<Ack[]>;
  pay(items: readonly { denomination: bigint; key: ExchangeKey }[]): Promise<SealedCoin[]>;
  acknowledge(acks: readonly Ack[]): Promise<void>;
}

/** Timing. */
export interface SessionOptions {
  stepTimeoutMs?: number | undefined;
}

/** What a side did: the amount, the coins paid and the change. */
export interface SessionOutcome {
  readonly amount: bigint;
  readonly coins: number;
  readonly change: number;
  /** Boxes of an earlier session settled by ACKs in this one. */
  readonly resentAcknowledged: number;
}

function peerFailed(who: RefusingSide, f: { code: string; message: string }): TallyError<'PEER_REFUSED'> {
  return new TallyError('PEER_REFUSED', `the ${who} ended the payment: ${refusalSentence(who, f.code, f.message)} [${f.code}]`, { code: f.code });
}

function unexpected(wanted: string, got: string): TallyError<'PAYMENT_INVALID'> {
  return new TallyError('PAYMENT_INVALID', `expected ${wanted}, got a ${got}`, { reason: 'protocol' });
}

/** Runs a local step; a failure is told to the peer (a code and its fixed sentence) and rethrown. */
async function orFail<T>(link: Link, side: RefusingSide, step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (e) {
    try {
      link.send({ kind: 'failure', ...peerRefusal(side, e) });
    } catch {
      // The link may be gone: the peer times out.
    }
    throw e;
  }
}

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** The code of a local failure (kept on this device). */
export const failureCode = localCode;

/**
 * The payer's side.
 * @throws TallyError: the link's TIMEOUT / LINK_CLOSED / DECODE_FAILED, PEER_REFUSED, PAYMENT_INVALID,
 *   or what a role throws; coins already sealed stay in flight
 */
export async function runPayer(link: Link, expect: bigint | null, role: PayerRole, options: SessionOptions = {}): Promise<SessionOutcome> {
  const timeoutMs = options.stepTimeoutMs ?? SESSION_STEP_TIMEOUT_MS;
  const receive = async <K extends string>(kind: K, what: string) => {
    const m = await link.receive(payeeMessageCodec, { timeoutMs, what });
    if (m.kind === 'failure') throw peerFailed('payee', m);
    if (m.kind !== kind) throw unexpected(what, m.kind);
    return m as Extract<typeof m, { kind: K }>;
  };
  const resend = (await role.inFlight()).slice(0, COINS_PER_ROUND);
  link.send({ kind: 'hello', resend });
  const terms = await receive('terms', 'the terms');
  if (terms.acks.length > 0) await role.acknowledge(terms.acks);
  const amount = BigInt(terms.amount);
  if (expect !== null && amount !== expect) {
    await orFail(link, 'payer', async () => {
      throw new TallyError('PAYMENT_INVALID', `the payee asks for ${amount} minor units, not the ${expect} expected`, { reason: 'amount' });
    });
  }
  const plan = await orFail(link, 'payer', () => role.plan(amount, new Map(terms.holdings.map((h) => [BigInt(h.denomination), h.count]))));
  const changeKeys = plan.change.length === 0 ? [] : await orFail(link, 'payer', () => role.offerKeys(plan.change.length));
  link.send({ kind: 'offer', pay: plan.pay.map(String), change: plan.change.map(String), keys: changeKeys });
  const { keys } = await receive('keys', 'the exchange keys');
  if (keys.length !== plan.pay.length) throw unexpected(`${plan.pay.length} exchange keys`, `list of ${keys.length}`);
  const items = plan.pay.map((denomination, i) => ({ denomination, key: keys[i] as ExchangeKey }));
  for (const round of chunks(items, COINS_PER_ROUND)) {
    const sealed = await orFail(link, 'payer', () => role.pay(round));
    link.send({ kind: 'coins', sealed });
    const answer = await receive('acks', 'the ACKs');
    await role.acknowledge(answer.acks);
  }
  let change = 0;
  while (change < plan.change.length) {
    const { sealed } = await receive('coins', 'the change');
    const given = await orFail(link, 'payer', () => role.receive(sealed));
    link.send({ kind: 'acks', acks: given });
    change += sealed.length;
  }
  link.send({ kind: 'done' });
  return { amount, coins: plan.pay.length, change: plan.change.length, resentAcknowledged: terms.acks.length };
}

/**
 * The payee's side.
 * @throws TallyError as runPayer; coins received are kept whatever happens after
 */
export async function runPayee(link: Link, amount: bigint, role: PayeeRole, options: SessionOptions = {}): Promise<SessionOutcome> {
  const timeoutMs = options.stepTimeoutMs ?? SESSION_STEP_TIMEOUT_MS;
  const receive = async <K extends string>(kind: K, what: string) => {
    const m = await link.receive(payerMessageCodec, { timeoutMs, what });
    if (m.kind === 'failure') throw peerFailed('payer', m);
    if (m.kind !== kind) throw unexpected(what, m.kind);
    return m as Extract<typeof m, { kind: K }>;
  };
  const hello = await receive('hello', 'the hello');
  const resentAcks = hello.resend.length === 0 ? [] : await role.resent(hello.resend);
  const holdings = await role.holdings();
  link.send({ kind: 'terms', amount: amount.toString(), holdings: [...holdings].map(([d, count]) => ({ denomination: d.toString(), count })), acks: resentAcks });
  const offer = await receive('offer', 'the offer');
  const plan: Plan = { pay: offer.pay.map(BigInt), change: offer.change.map(BigInt) };
  if (offer.keys.length !== plan.change.length) throw unexpected(`${plan.change.length} exchange keys for the change`, `list of ${offer.keys.length}`);
  await orFail(link, 'payee', () => role.accept(amount, plan));
  const keys = await orFail(link, 'payee', () => role.offerKeys(plan.pay.length));
  link.send({ kind: 'keys', keys });
  let taken = 0;
  while (taken < plan.pay.length) {
    const { sealed } = await receive('coins', 'the coins');
    const given = await orFail(link, 'payee', () => role.receive(sealed));
    link.send({ kind: 'acks', acks: given });
    taken += sealed.length;
  }
  const items = plan.change.map((denomination, i) => ({ denomination, key: offer.keys[i] as ExchangeKey }));
  for (const round of chunks(items, COINS_PER_ROUND)) {
    const sealed = await orFail(link, 'payee', () => role.pay(round));
    link.send({ kind: 'coins', sealed });
    const answer = await receive('acks', 'the ACKs of the change');
    await role.acknowledge(answer.acks);
  }
  await receive('done', 'the end of the payment');
  return { amount, coins: plan.pay.length, change: plan.change.length, resentAcknowledged: resentAcks.length };
}
