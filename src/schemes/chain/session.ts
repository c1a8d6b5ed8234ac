/**
 * The chain-tee payment over a live link (Algorithms 3–4 `transfer`/`receive`), over the secure
 * session (Noise XX; no certificate at the Noise layer). The payee shows its offline account bound
 * to this very session by its enclave key, so a relay that swaps the payee's address is caught.
 *   P → Q  hello
 *   Q → P  terms   the amount, the payee's account, its binding over the session hash, the enclave's certificate
 *   P → Q  pay     tx_off, and the payer's earlier payments to this account still waiting for their ack
 *   Q → P  acks    one ack for each (ack_win, or ack_fail)
 *   P → Q  done
 * A payment whose ack is lost stays held by the payer's TEE and is sent again at the next session
 * with the same payee (answered with the same ack, credited once) or settled by the chain; one the
 * payee's TEE no longer knows (the chain settled it) gets no ack and waits for the chain. This
 * file orders the messages and bounds every wait; the roles (the trusted apps, through the wallet)
 * do the checking. Pure.
 */
import { utf8 } from '../../core/bytes.ts';
import { array, bytes, taggedUnion, text } from '../../core/codec.ts';
import { TallyError } from '../../core/errors.ts';
import { decimalText } from '../../core/fields.ts';
import type { Link } from '../../channel/link.ts';
import { localCode, peerRefusal, refusalSentence, type RefusingSide } from '../../channel/peer-refusal.ts';
import { ackCodec, bindingCodec, CERTIFICATE_BYTES_MAX, txOffCodec, type Binding, type SignedAck, type TxOff } from './messages.ts';
import { ADDRESS_BYTES } from './typed-data.ts';

/** Both sides put this in their Noise prologue. */
export const CHAIN_LINK_PROLOGUE = utf8('tally/chain/link/v1');
/** The scheme both sides name in their link hello. */
export const CHAIN_LINK_SCHEME = 'chain';
/** How long each side waits for the other's next message by default. */
export const SESSION_STEP_TIMEOUT_MS = 30_000;
/** Most earlier payments sent again in one session. */
export const RESEND_MAX = 16;

const failure = { code: text({ min: 1, max: 40, pattern: /^[A-Z][A-Z0-9_]*$/, describe: 'an error code' }), message: text({ max: 300, pattern: /^[^\p{Cc}\p{Cs}]*$/u, describe: 'one line of text' }) };

/** What the payer sends. */
export const payerMessageCodec = taggedUnion('kind', {
  hello: {},
  pay: { txOff: txOffCodec, resend: array(txOffCodec, { max: RESEND_MAX }) },
  done: {},
  failure,
});

/** What the payee sends. */
export const payeeMessageCodec = taggedUnion('kind', {
  terms: { amount: decimalText({ digits: 38 }), account: bytes({ length: ADDRESS_BYTES }), binding: bindingCodec, certificate: bytes({ max: CERTIFICATE_BYTES_MAX }) },
  acks: { ack: ackCodec, resent: array(ackCodec, { max: RESEND_MAX }) },
  failure,
});

/** What the payee shows of itself. */
export interface PayeeShown {
  readonly account: Uint8Array;
  readonly binding: Binding;
  readonly certificate: Uint8Array;
}

/** The payer's wallet and trusted app, as the session uses them. */
export interface PayerRole {
  /** Checks the payee's account: its certificate chains to the root, it is not revoked, its binding names this session. Throwing sends a failure. */
  checkPayee(shown: PayeeShown): Promise<void>;
  /** Earlier payments to `account` still waiting for their ack. */
  pendingTo(account: Uint8Array): Promise<TxOff[]>;
  /** Signs `tx_off` for `amount` to `account` (the TEE holds the amount). */
  transfer(account: Uint8Array, amount: bigint): Promise<TxOff>;
  /** Settles payments by their acks (`pay` on ack_win, `abort` on ack_fail). */
  settle(acks: readonly SignedAck[]): Promise<void>;
}

/** The payee's wallet and trusted app, as the session uses them. */
export interface PayeeRole {
  /** The account, bound by the enclave key to this session. */
  show(): Promise<PayeeShown>;
  /** Answers a `tx_off`: credits it (ack_win) if it checks and its amount is `expect` (null: any), else ack_fail. */
  receive(txOff: TxOff, expect: bigint | null): Promise<{ ack: SignedAck; credited: boolean }>;
  /**
   * Answers a payment sent again (its ack was lost): the ack given before, or given now if it never
   * arrived; null when the TEE neither credits nor declines it, having forgotten it once the chain
   * settled it (the payer's TEE holds it until the chain's statement frees it).
   */
  resent(txOff: TxOff): Promise<SignedAck | null>;
}

/** Timing. */
export interface SessionOptions {
  stepTimeoutMs?: number | undefined;
}

/** What a side did. */
export interface SessionOutcome {
  readonly amount: bigint;
  /** True when the payee credited the payment (it answered ack_win). */
  readonly credited: boolean;
  /** Earlier payments settled in this session. */
  readonly resent: number;
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

/** The code of a local failure (kept on this device). */
export const failureCode = localCode;

/**
 * The payer's side. `expect` is the amount the payer agreed to pay (null: what the payee asks).
 * @throws TallyError: the link's TIMEOUT / LINK_CLOSED / DECODE_FAILED, PEER_REFUSED, PAYMENT_INVALID,
 *   or what a role throws; a payment signed and not acknowledged stays held
 */
export async function runPayer(link: Link, expect: bigint | null, role: PayerRole, options: SessionOptions = {}): Promise<SessionOutcome> {
  const timeoutMs = options.stepTimeoutMs ?? SESSION_STEP_TIMEOUT_MS;
  link.send({ kind: 'hello' });
  const terms = await link.receive(payeeMessageCodec, { timeoutMs, what: 'the terms' });
  if (terms.kind === 'failure') throw peerFailed('payee', terms);
  if (terms.kind !== 'terms') throw unexpected('the terms', terms.kind);
  const amount = BigInt(terms.amount);
  await orFail(link, 'payer', async () => {
    if (expect !== null && amount !== expect) throw new TallyError('PAYMENT_INVALID', `the payee asks for ${amount} minor units, not the ${expect} expected`, { reason: 'amount' });
    if (amount <= 0n) throw new TallyError('PAYMENT_INVALID', 'the payee asks for nothing', { reason: 'amount' });
    await role.checkPayee({ account: terms.account, binding: terms.binding, certificate: terms.certificate });
  });
  const resend = (await role.pendingTo(terms.account)).slice(0, RESEND_MAX);
  const txOff = await orFail(link, 'payer', () => role.transfer(terms.account, amount));
  link.send({ kind: 'pay', txOff, resend });
  const answer = await link.receive(payeeMessageCodec, { timeoutMs, what: 'the acks' });
  if (answer.kind === 'failure') throw peerFailed('payee', answer);
  if (answer.kind !== 'acks') throw unexpected('the acks', answer.kind);
  await role.settle([...answer.resent, answer.ack]);
  link.send({ kind: 'done' });
  return { amount, credited: answer.ack.ok, resent: answer.resent.length };
}

/**
 * The payee's side: asks for `amount`.
 * @throws TallyError as runPayer; a payment credited stays credited whatever happens after
 */
export async function runPayee(link: Link, amount: bigint, role: PayeeRole, options: SessionOptions = {}): Promise<SessionOutcome> {
  const timeoutMs = options.stepTimeoutMs ?? SESSION_STEP_TIMEOUT_MS;
  const receive = async <K extends string>(kind: K, what: string) => {
    const m = await link.receive(payerMessageCodec, { timeoutMs, what });
    if (m.kind === 'failure') throw peerFailed('payer', m);
    if (m.kind !== kind) throw unexpected(what, m.kind);
    return m as Extract<typeof m, { kind: K }>;
  };
  await receive('hello', 'the hello');
  const shown = await orFail(link, 'payee', () => role.show());
  link.send({ kind: 'terms', amount: amount.toString(), ...shown });
  const pay = await receive('pay', 'the payment');
  const resent = await orFail(link, 'payee', async () => {
    const acks: SignedAck[] = [];
    for (const earlier of pay.resend) {
      // One the payee no longer knows must not end the session: the new payment goes on, the chain settles the old one.
      const ack = await role.resent(earlier);
      if (ack !== null) acks.push(ack);
    }
    return acks;
  });
  const answer = await orFail(link, 'payee', () => role.receive(pay.txOff, amount));
  link.send({ kind: 'acks', ack: answer.ack, resent });
  await receive('done', 'the end of the payment');
  return { amount, credited: answer.credited, resent: resent.length };
}
