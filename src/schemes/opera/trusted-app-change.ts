/**
 * Change inside the ODW (the paper's §3.3 moves tokens one way; this is the same Stage 2 run the
 * other way in the same mount). When the payer's tokens cannot make AMT exactly it offers tokens
 * worth AMT + c (Msg 2-1 says c); the payee, at Msg 2-1, moves tokens worth exactly c from its
 * repository to its output under its own token key PTK_B, or answers Msg 2-2 that it cannot (the
 * payment ends there: no key went out, the payer's tokens go back, nothing moves). After the
 * payer's last token the payer asks for the change (2-5) and the payee sends it token by token
 * ({Token}PTK_B, 2-6), each acknowledged (2-7) but the last, which the payer's Msg 3-1 answers.
 *
 * Stage 3 then releases the two keys in turn: the payer's PTK_A first (3-1); the payee checks the
 * payer's tokens and, in the same commit that takes them, releases PTK_B (3-2); the payer opens
 * and checks the change. A payee that stops after PTK_A has released PTK_B in its log: the next
 * mount gives it again (Msg 2-2), or the bank refunds the change's value to the payer.
 */
import { toHex } from '../../core/bytes.ts';
import { decodeCbor, encodeCbor } from '../../core/cbor.ts';
import { refuse, Refused, type TrustedEnv } from '../../secure-element/trusted-app.ts';
import type { ChainMessage } from './exchange.ts';
import { TOKENS_PER_MESSAGE_MAX } from './messages.ts';
import { openToken, PTK_BYTES, sealToken, type TokenLeg } from './otk.ts';
import { payable, PAYABLE_TAGS_MAX, tagged } from './escrow.ts';
import { tagsOf, tokenCodec, type Token } from './token.ts';
import { sendChain, type Step } from './trusted-app-chain-send.ts';
import { checkAnyToken, deviceKey, pickExact, provisioned, total } from './trusted-app-common.ts';
import { REPOSITORY_MAX, type ChangeLog, type OperaState, type TxLog } from './trusted-app-state.ts';

/** pickExact's refusals that mean the repository cannot make the amount. */
const CANNOT_MAKE = new Set(['INSUFFICIENT_FUNDS', 'OPERA_NO_EXACT_TOKENS', 'OPERA_TOO_MANY_TOKENS']);

/**
 * The payee at Msg 2-1: tokens worth exactly `change` out of its repository into its output, each
 * with this ODW's escrow tag naming the payer (`partner`) appended as a payer's are (escrow.ts), and
 * the change leg's log with a fresh PTK_B; null when its tokens cannot make it.
 */
export function changeOut(state: OperaState, change: bigint, partner: Uint8Array, env: TrustedEnv): { state: OperaState; change: ChangeLog } | null {
  // A token whose escrow chain is full waits for its deposit, as it does for a payment.
  const open = state.repository.filter(payable);
  let picked: ReturnType<typeof pickExact>;
  try {
    picked = pickExact(open, change, TOKENS_PER_MESSAGE_MAX);
  } catch (e) {
    // Only "these tokens cannot make it" means no change; anything else is a fault to report.
    if (e instanceof Refused && CANNOT_MAKE.has(e.code)) return null;
    throw e;
  }
  const outgoing = tagged(picked.picked, { payee: partner, device: deviceKey(env), escrowKey: provisioned(state).params.escrowKey, random: env.random });
  const log: ChangeLog = { amount: change, count: picked.picked.length, done: 0, ptk: env.random(PTK_BYTES) };
  return { state: { ...state, repository: [...picked.left, ...state.repository.filter((t) => !payable(t))], outgoing }, change: log };
}

/** The change leg of the log, or a refusal naming the message. */
export function changeOf(log: TxLog, what: string): ChangeLog {
  if (log.change === undefined) refuse('OPERA_MESSAGE_INVALID', `Msg ${what} in a transaction without change`);
  return log.change;
}

/** The payee sends change token `k` (1-based) as Msg 2-6; its log counts it sent. */
export function sendChange(state: OperaState, log: TxLog, k: number, nonce: Uint8Array): Step {
  const change = changeOf(log, '2-6');
  const token = state.outgoing[k - 1];
  if (token === undefined || change.ptk === undefined || k > change.count) refuse('OPERA_MESSAGE_INVALID', `no change token ${k} in the output`);
  const next: TxLog = { ...log, change: { ...change, done: Math.max(change.done, k) } };
  return sendChain({ ...state, log: next }, { msg: '2-6', token: sealToken(change.ptk, log.txid, k, encodeCbor(token), 'change'), counter: k, nonce }, log.count);
}

/** The payee's answer to the payer's 2-5 (how many change tokens it holds) or 2-7 (the ACK of the latest): the next change token. */
export function payeeChangeStep(state: OperaState, log: TxLog, message: Extract<ChainMessage, { msg: '2-5' | '2-7' }>, flipped: Uint8Array): Step {
  const change = changeOf(log, message.msg);
  if (log.accepted === 1 || log.done !== log.count) refuse('OPERA_MESSAGE_INVALID', `Msg ${message.msg} before the payer's tokens all arrived, or after they were taken`);
  // 2-5 may follow a lost 2-6 (resuming): the payer holds at most what was sent; 2-7 acknowledges the latest sent.
  const held = message.msg === '2-5' ? message.received : message.counter;
  const valid = message.msg === '2-5' ? held <= change.done : held === change.done;
  if (!valid || held >= change.count) refuse('OPERA_MESSAGE_INVALID', `the payer counts ${held} change tokens of ${change.count}, ${change.done} sent`);
  return sendChange(state, log, held + 1, flipped);
}

/**
 * The payer takes change token `message.counter` (Msg 2-6) into its buffer, still sealed under
 * PTK_B. Answers the state and whether the change is complete.
 */
export function bufferChange(state: OperaState, log: TxLog, message: Extract<ChainMessage, { msg: '2-6' }>): { state: OperaState; log: TxLog; complete: boolean } {
  const change = changeOf(log, '2-6');
  if (log.released === 1 || log.done !== log.count || message.counter !== state.buffer.length + 1 || message.counter > change.count) {
    refuse('OPERA_MESSAGE_INVALID', `C'_B is ${message.counter}, ${state.buffer.length} of ${change.count} change tokens held`);
  }
  const next: TxLog = { ...log, change: { ...change, done: message.counter } };
  return { state: { ...state, log: next, buffer: [...state.buffer, { counter: message.counter, box: message.token }] }, log: next, complete: message.counter === change.count };
}

/**
 * Opens every buffered token with the sender's key and checks them: in order, `count` of them, each
 * with the signature of the bank or of another bank this ODW takes tokens of, in the bank's currency, none held already (nor among those this ODW
 * pays), worth `worth` together, with room in the repository.
 * @throws Refused OPERA_MESSAGE_INVALID, OPERA_TOKEN_REPEATED, OPERA_REPOSITORY_FULL; TallyError AEAD_FAILED (a wrong key), OPERA_TOKEN_INVALID
 */
export function openBuffer(state: OperaState, log: TxLog, ptk: Uint8Array, leg: TokenLeg, expect: { count: number; worth: bigint }, env: TrustedEnv): Token[] {
  const what = leg === 'pay' ? 'tokens' : 'change tokens';
  if (state.buffer.length !== expect.count) refuse('OPERA_MESSAGE_INVALID', `${state.buffer.length} ${what} in the buffer, ${expect.count} expected`);
  const held = new Set([...state.repository, ...state.outgoing].map((t) => toHex(t.body.serial)));
  const tokens = state.buffer.map((b, i) => {
    if (b.counter !== i + 1) refuse('OPERA_MESSAGE_INVALID', 'the buffer is out of order');
    const token = tokenCodec.decode(decodeCbor(openToken(ptk, log.txid, b.counter, b.box, leg)), `token ${b.counter}`);
    const body = checkAnyToken(env, state, token);
    const id = toHex(body.serial);
    // Payment or change, each token arrives with its giver's escrow tag: sealed to the bank, the taker can count them, not read them.
    const hops = tagsOf(token).length;
    if (hops < 1 || hops > PAYABLE_TAGS_MAX) refuse('OPERA_TOKEN_INVALID', `token ${id} carries ${hops} escrow tags; a token paid carries 1 to ${PAYABLE_TAGS_MAX}`);
    if (held.has(id)) refuse('OPERA_TOKEN_REPEATED', `token ${id} is already held (a token read twice)`);
    held.add(id);
    return token;
  });
  if (total(tokens) !== expect.worth) refuse('OPERA_MESSAGE_INVALID', `the ${what} are worth ${total(tokens)}, not the ${expect.worth} of Msg 2-1`);
  if (state.repository.length + tokens.length > REPOSITORY_MAX) refuse('OPERA_REPOSITORY_FULL', 'the repository cannot take these tokens');
  return tokens;
}

/** The payer opens and checks the change with PTK_B (from Msg 3-2, or a resumed 2-2): the tokens to take, none without change. */
export function openChange(state: OperaState, log: TxLog, ptk: Uint8Array | undefined, env: TrustedEnv): Token[] {
  if (log.change === undefined) {
    if (ptk !== undefined) refuse('OPERA_MESSAGE_INVALID', 'a change key in a transaction without change');
    return [];
  }
  if (ptk === undefined) refuse('OPERA_MESSAGE_INVALID', "the payee's acceptance does not release the change key");
  return openBuffer(state, log, ptk, 'change', { count: log.change.count, worth: log.change.amount }, env);
}
