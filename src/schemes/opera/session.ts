/**
 * The OPERA payment over a live link (paper Figure 4), run by each wallet app for its ODW. The link
 * is an anonymous Noise handshake (no certificate either way); its handshake hash binds the two
 * ODWs' anonymous proofs and salts their SEED. The wallet apps only carry what their ODWs say:
 *   B → A   ask     the amount the payee asks (the payer's app pays it, or refuses what it did not expect)
 *   both    offer   Stage 1: ephemeral key and anonymous proof (in the clear)
 *   both    hello   Stage 1: sealed under the mount's SEED (SN, log)
 *   both    ready   the plan each ODW chose: a new transaction or the resumed one
 *   A → B   step    Msg 2-1, then each side answers each step of the other, sealed under the OTKs,
 *                   until the payer's FIN (or the payee's 2-2 saying it cannot make the change:
 *                   both sides end with OPERA_NO_CHANGE, nothing moved)
 * Any local failure is told to the peer (a code and its fixed sentence) and ends the session; the
 * ODWs' logs keep how far the transaction got. Pure.
 */
import { utf8 } from '../../core/bytes.ts';
import { bytes, oneOf, taggedUnion, text } from '../../core/codec.ts';
import { TallyError } from '../../core/errors.ts';
import { decimalText } from '../../core/fields.ts';
import type { Link } from '../../channel/link.ts';
import { peerRefusal, refusalSentence, type RefusingSide } from '../../channel/peer-refusal.ts';
import { CHAIN_BOX_MAX, HELLO_BOX_MAX, offerCodec, type Ending, type Offer, type Role } from './exchange.ts';

/** Both sides put this in their Noise prologue. */
export const OPERA_LINK_PROLOGUE = utf8('tally/opera/link/v1');
/** The scheme both sides name in their link hello. */
export const OPERA_LINK_SCHEME = 'opera';
/** How long each side waits for the other's next message by default. */
export const SESSION_STEP_TIMEOUT_MS = 30_000;

const PLANS = ['new', 'resume'] as const;
type Plan = (typeof PLANS)[number];

const failure = { code: text({ min: 1, max: 40, pattern: /^[A-Z][A-Z0-9_]*$/, describe: 'an error code' }), message: text({ max: 300, pattern: /^[^\p{Cc}\p{Cs}]*$/u, describe: 'one line of text' }) };

/** What either side sends. */
export const operaMessageCodec = taggedUnion('kind', {
  ask: { amount: decimalText({ digits: 19 }) },
  offer: { offer: offerCodec },
  hello: { hello: bytes({ max: HELLO_BOX_MAX }) },
  ready: { plan: oneOf(PLANS) },
  step: { box: bytes({ max: CHAIN_BOX_MAX }) },
  failure,
});

/** The ODW as the session drives it (its trusted app's commands, through the wallet). */
export interface Odw {
  mount(handshakeHash: Uint8Array, role: Role, expect: bigint | undefined): Promise<Offer>;
  meet(offer: Offer): Promise<Uint8Array>;
  greet(hello: Uint8Array): Promise<{ plan: Plan; settled?: Ending | undefined }>;
  begin(amount: bigint | undefined): Promise<{ box: Uint8Array; count: number }>;
  step(box: Uint8Array): Promise<{ box?: Uint8Array | undefined; count: number; ending?: Ending | undefined; refused?: 'OPERA_NO_CHANGE' | undefined; change?: bigint | undefined }>;
}

/** What a side asks of the session. */
export interface SessionOptions {
  /** The payee's amount (minor units), asked of the payer; the payer's, if it names one (it refuses any other). */
  amount?: bigint | undefined;
  stepTimeoutMs?: number | undefined;
  /** Called after each step with the messages exchanged so far and the transaction's token count. */
  progress?: ((steps: number, count: number) => void) | undefined;
}

/** What a side did. */
export interface SessionOutcome {
  /** A new transaction, or the interrupted one finished. */
  readonly plan: Plan;
  /** How an interrupted transaction was set in order in Stage 1 without resuming it (it ended there). */
  readonly settled?: Ending | undefined;
  readonly ending: Ending;
  /** The tokens the transaction moved. */
  readonly count: number;
  /** The change the payee gave back in the transaction (minor units), if any. */
  readonly change?: bigint | undefined;
}

/** The code of a local failure (kept on this device). */
export { localCode as failureCode } from '../../channel/peer-refusal.ts';

function peerFailed(who: RefusingSide, f: { code: string; message: string }): TallyError<'PEER_REFUSED'> {
  return new TallyError('PEER_REFUSED', `the ${who} ended the payment: ${refusalSentence(who, f.code, f.message)} [${f.code}]`, { code: f.code });
}

/**
 * Runs one side of an OPERA payment on `link`: the payee asks `options.amount`.
 * @throws TallyError: the link's TIMEOUT / LINK_CLOSED / DECODE_FAILED, PEER_REFUSED, PAYMENT_INVALID, OPERA_NO_CHANGE,
 *   or what the ODW refused (SE_REJECTED); the log keeps how far the transaction got
 */
export async function runOdw(link: Link, handshakeHash: Uint8Array, role: Role, odw: Odw, options: SessionOptions = {}): Promise<SessionOutcome> {
  const timeoutMs = options.stepTimeoutMs ?? SESSION_STEP_TIMEOUT_MS;
  const peer: RefusingSide = role === 'payer' ? 'payee' : 'payer';
  const receive = async <K extends 'ask' | 'offer' | 'hello' | 'ready' | 'step'>(kind: K, what: string) => {
    const m = await link.receive(operaMessageCodec, { timeoutMs, what });
    if (m.kind === 'failure') throw peerFailed(peer, m);
    if (m.kind !== kind) throw new TallyError('PAYMENT_INVALID', `expected ${what}, got a ${m.kind}`, { reason: 'protocol' });
    return m as Extract<typeof m, { kind: K }>;
  };
  const orFail = async <T>(step: () => Promise<T>): Promise<T> => {
    try {
      return await step();
    } catch (e) {
      try {
        link.send({ kind: 'failure', ...peerRefusal(role, e) });
      } catch {
        // The link may be gone: the peer times out.
      }
      throw e;
    }
  };

  let amount = options.amount;
  if (role === 'payee') {
    if (amount === undefined) throw new RangeError('the payee asks for an amount');
    link.send({ kind: 'ask', amount: amount.toString() });
  } else {
    const asked = BigInt((await receive('ask', 'the amount asked')).amount);
    if (amount !== undefined && asked !== amount) {
      await orFail(async () => {
        throw new TallyError('PAYMENT_INVALID', `the payee asks for ${asked} minor units, not the ${amount} expected`, { reason: 'amount' });
      });
    }
    amount = asked;
  }
  const offer = await orFail(() => odw.mount(handshakeHash, role, role === 'payee' ? amount : undefined));
  link.send({ kind: 'offer', offer });
  const theirs = await receive('offer', "the partner's proof");
  link.send({ kind: 'hello', hello: await orFail(() => odw.meet(theirs.offer)) });
  const hello = await receive('hello', "the partner's hello");
  const greeted = await orFail(() => odw.greet(hello.hello));
  link.send({ kind: 'ready', plan: greeted.plan });
  const ready = await receive('ready', "the partner's plan");
  if (ready.plan !== greeted.plan) {
    await orFail(async () => {
      throw new TallyError('PAYMENT_INVALID', `the two wallets disagree on the interrupted payment (${greeted.plan} here, ${ready.plan} there)`, { reason: 'protocol' });
    });
  }
  let steps = 0;
  let count = 0;
  if (role === 'payer') {
    const first = await orFail(() => odw.begin(greeted.plan === 'new' ? amount : undefined));
    link.send({ kind: 'step', box: first.box });
    count = first.count;
  }
  for (;;) {
    const { box } = await receive('step', 'the next message of the payment');
    const answer = await orFail(() => odw.step(box));
    steps += 1;
    count = answer.count;
    options.progress?.(steps, count);
    if (answer.box !== undefined) link.send({ kind: 'step', box: answer.box });
    if (answer.refused !== undefined) {
      throw new TallyError('OPERA_NO_CHANGE', role === 'payee' ? "the payer's tokens cannot make the amount exactly and this wallet's tokens cannot make the change: nothing moved" : "the payee's tokens cannot make the change: nothing moved", {});
    }
    if (answer.ending !== undefined) return { plan: greeted.plan, ...(greeted.settled === undefined ? {} : { settled: greeted.settled }), ending: answer.ending, count, ...(answer.change === undefined ? {} : { change: answer.change }) };
  }
}
