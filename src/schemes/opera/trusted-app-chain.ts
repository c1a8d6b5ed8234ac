/**
 * Stages 2 and 3 inside the ODW (paper §3.3.2–3.3.3): `step` opens the partner's next message of
 * the one-time-key chain, acts on it and seals the answer. Every step commits the log first (§4.1:
 * TR_k, FLG, and the payer's release or the payee's acceptance), so a cut anywhere leaves the log
 * saying exactly how far the transaction got, and a later mount of the same two ODWs resumes it.
 *
 * The payee keeps each token sealed under the payer's PTK in its transaction buffer, unusable; only
 * Msg 3-1's PTK opens them, and only then are they checked (the bank's signature on each, the sum,
 * C_A = C_B) and moved into the repository. The payer's tokens left its repository at Msg 2-1 and
 * stay in its output until the payee's Msg 3-2, or until they come back (trusted-app-mount.ts) or
 * the bank settles the transaction (trusted-app-bank.ts).
 */
import { equalBytes, toHex } from '../../core/bytes.ts';
import { decodeCbor, encodeCbor } from '../../core/cbor.ts';
import { bytes, oneOf, optional, record, uint } from '../../core/codec.ts';
import { signRecord, verifyRecord } from '../../core/crypto/record.ts';
import { accept, command, guarded, refuse, type CommandResult, type TrustedEnv } from '../../secure-element/trusted-app.ts';
import { CHAIN_BOX_MAX, ENDINGS, flipNonce, type ChainMessage } from './exchange.ts';
import { ACCEPT_TAG, RELEASE_TAG, TOKENS_PER_MESSAGE_MAX } from './messages.ts';
import { openToken, sealToken } from './otk.ts';
import { PAYABLE_TAGS_MAX } from './escrow.ts';
import { checkToken, tagsOf, tokenCodec, type Token } from './token.ts';
import { receiveChain, sendChain, type ChainOutput } from './trusted-app-chain-send.ts';
import { claimOf, deviceKey, ended, ownSerial, provisioned, total } from './trusted-app-common.ts';
import { REPOSITORY_MAX, type Mount, type OperaState, type TxLog } from './trusted-app-state.ts';

type Step = CommandResult<OperaState, ChainOutput & { ending?: 'paid' | 'returned' }>;

function logOf(state: OperaState, mode: TxLog['mode']): TxLog {
  const log = state.log;
  if (log === undefined || log.mode !== mode) refuse('OPERA_MESSAGE_INVALID', 'no transaction of this kind in the log');
  if (log.settling === 1) refuse('OPERA_PENDING', 'this transaction is being settled online');
  return log;
}

function nonceOf(mount: Mount): Uint8Array {
  if (mount.nonce === undefined) refuse('OPERA_MESSAGE_INVALID', 'no Msg 2-1 on this mount yet');
  return mount.nonce;
}

/** The payer's Msg 2-3 for token `k` (1-based). */
function tokenMessage(state: OperaState, log: TxLog, k: number, nonce: Uint8Array): ChainMessage {
  const token = state.outgoing[k - 1];
  if (token === undefined || log.ptk === undefined) refuse('OPERA_MESSAGE_INVALID', `no token ${k} in the output`);
  return { msg: '2-3', token: sealToken(log.ptk, log.txid, k, encodeCbor(token)), counter: k, nonce };
}

/** The payer's next message after `received` tokens reached the payee: the next token, or Msg 3-1. */
function payerNext(state: OperaState, log: TxLog, received: number, env: TrustedEnv, nonce: Uint8Array): Step {
  if (received < log.count) {
    const next = { ...log, done: received + 1, flag: 0 };
    return sendChain({ ...state, log: next }, tokenMessage(state, next, received + 1, nonce), log.count);
  }
  const released = { ...log, released: 1 };
  const signature = signRecord(deviceKey(env), RELEASE_TAG, claimOf(released, ownSerial(env)));
  return sendChain({ ...state, log: released }, { msg: '3-1', ptk: log.ptk as Uint8Array, counter: log.count, sn: ownSerial(env), signature }, log.count);
}

/** The payer ends the transaction on the payee's acceptance: its tokens are gone; FIN. */
function payerDone(state: OperaState, log: TxLog, signature: Uint8Array | undefined, env: TrustedEnv): Step {
  if (signature === undefined || !verifyRecord(env.provider, log.partnerKey, ACCEPT_TAG, claimOf(log, ownSerial(env)), signature)) {
    refuse('OPERA_MESSAGE_INVALID', "the payee's acceptance does not carry its signature");
  }
  const sent = sendChain(ended(state, log.txid, 'paid'), { msg: 'fin' }, log.count);
  return sent.ok ? accept(sent.state, { ...sent.output, ending: 'paid' }) : sent;
}

function payerStep(state: OperaState, message: ChainMessage, mount: Mount, env: TrustedEnv): Step {
  const log = logOf(state, 'send');
  const nonce = nonceOf(mount);
  const flipped = flipNonce(nonce);
  switch (message.msg) {
    case '2-2': {
      if (!equalBytes(message.nonce, flipped)) refuse('OPERA_MESSAGE_INVALID', "Msg 2-2 does not carry N'_A");
      if (message.accepted === 1) return payerDone(state, log, message.accept, env);
      // Before the key went out the payee holds at most the tokens sent; after, it had every one.
      if (log.released === 1 ? message.received !== log.count : message.received > log.done) refuse('OPERA_MESSAGE_INVALID', `the payee counts ${message.received} tokens of ${log.count}, ${log.done} sent`);
      return payerNext(state, log, message.received, env, nonce);
    }
    case '2-4': {
      if (!equalBytes(message.nonce, flipped)) refuse('OPERA_MESSAGE_INVALID', "Msg 2-4 does not carry N'_A");
      if (message.counter !== log.done || log.released === 1) refuse('OPERA_MESSAGE_INVALID', `C_B is ${message.counter}, C_A ${log.done}`);
      return payerNext({ ...state, log: { ...log, flag: 1 } }, { ...log, flag: 1 }, message.counter, env, nonce);
    }
    case '3-2': {
      if (message.counter !== log.count || log.released !== 1) refuse('OPERA_MESSAGE_INVALID', `C_B is ${message.counter}, C_A ${log.count}`);
      if (!equalBytes(message.sn, log.partner)) refuse('OPERA_MESSAGE_INVALID', 'Msg 3-2 names another ODW');
      return payerDone(state, log, message.signature, env);
    }
    default:
      return refuse('OPERA_MESSAGE_INVALID', `the payer does not take Msg ${message.msg}`);
  }
}

/** The payee opens every token with the PTK, checks them, and moves them into its repository. */
function takeTokens(state: OperaState, log: TxLog, ptk: Uint8Array, env: TrustedEnv): Token[] {
  const { bank, params } = provisioned(state);
  if (state.buffer.length !== log.count) refuse('OPERA_MESSAGE_INVALID', `${state.buffer.length} tokens in the buffer, ${log.count} expected`);
  const held = new Set(state.repository.map((t) => toHex(t.body.serial)));
  const tokens = state.buffer.map((b, i) => {
    if (b.counter !== i + 1) refuse('OPERA_MESSAGE_INVALID', 'the buffer is out of order');
    const token = tokenCodec.decode(decodeCbor(openToken(ptk, log.txid, b.counter, b.box)), `token ${b.counter}`);
    const body = checkToken(env.provider, bank, params.currency, token);
    const id = toHex(body.serial);
    // The tags are sealed to the bank: the payee can count them, not read them.
    const hops = tagsOf(token).length;
    if (hops < 1 || hops > PAYABLE_TAGS_MAX) refuse('OPERA_TOKEN_INVALID', `token ${id} carries ${hops} escrow tags; a token paid carries 1 to ${PAYABLE_TAGS_MAX}`);
    if (held.has(id)) refuse('OPERA_TOKEN_REPEATED', `token ${id} is already held (a token read twice)`);
    held.add(id);
    return token;
  });
  if (total(tokens) !== log.amount) refuse('OPERA_MESSAGE_INVALID', `the tokens are worth ${total(tokens)}, not the ${log.amount} of Msg 2-1`);
  if (state.repository.length + tokens.length > REPOSITORY_MAX) refuse('OPERA_REPOSITORY_FULL', 'the repository cannot take these tokens');
  return tokens;
}

function payeeStep(state: OperaState, message: ChainMessage, mount: Mount, env: TrustedEnv): Step {
  const partner = mount.partner as NonNullable<Mount['partner']>;
  switch (message.msg) {
    case '2-1': {
      if (mount.plan !== 'new' || state.log !== undefined || mount.nonce !== undefined) refuse('OPERA_MESSAGE_INVALID', 'Msg 2-1 of a new transaction is not expected here');
      if (mount.expect !== undefined && message.amount !== mount.expect) refuse('OPERA_AMOUNT_MISMATCH', `the payer pays ${message.amount} minor units, ${mount.expect} expected`);
      const log: TxLog = { txid: message.txid, mode: 'receive', partner: partner.sn, partnerKey: partner.device, amount: message.amount, count: message.count, done: 0, flag: 0, released: 0, accepted: 0, settling: 0 };
      return sendChain({ ...state, log, buffer: [], mount: { ...mount, nonce: message.nonce } }, { msg: '2-2', nonce: flipNonce(message.nonce), received: 0, accepted: 0 }, log.count);
    }
    case '2-1r': {
      const log = logOf(state, 'receive');
      if (mount.plan !== 'resume' || !equalBytes(message.txid, log.txid) || mount.nonce !== undefined) refuse('OPERA_MESSAGE_INVALID', 'a resumed Msg 2-1 for another transaction');
      const answer: ChainMessage = { msg: '2-2', nonce: flipNonce(message.nonce), received: log.done, accepted: log.accepted, ...(log.accept === undefined ? {} : { accept: log.accept }) };
      return sendChain({ ...state, mount: { ...mount, nonce: message.nonce } }, answer, log.count);
    }
    case '2-3': {
      const log = logOf(state, 'receive');
      const nonce = nonceOf(mount);
      if (!equalBytes(message.nonce, nonce)) refuse('OPERA_MESSAGE_INVALID', 'Msg 2-3 does not carry N_A');
      if (log.accepted === 1 || message.counter !== log.done + 1 || message.counter > log.count) refuse('OPERA_MESSAGE_INVALID', `C_A is ${message.counter}, ${log.done} of ${log.count} received`);
      const next = { ...log, done: message.counter, flag: 1 };
      return sendChain({ ...state, log: next, buffer: [...state.buffer, { counter: message.counter, box: message.token }] }, { msg: '2-4', counter: message.counter, nonce: flipNonce(nonce) }, log.count);
    }
    case '3-1': {
      const log = logOf(state, 'receive');
      if (log.accepted === 1 || message.counter !== log.count || log.done !== log.count) refuse('OPERA_MESSAGE_INVALID', `C_A is ${message.counter}, C_B ${log.done} of ${log.count}`);
      if (!equalBytes(message.sn, log.partner)) refuse('OPERA_MESSAGE_INVALID', 'Msg 3-1 names another ODW');
      const claim = claimOf(log, ownSerial(env));
      if (!verifyRecord(env.provider, log.partnerKey, RELEASE_TAG, claim, message.signature)) refuse('OPERA_MESSAGE_INVALID', "Msg 3-1 does not carry the payer's signature");
      const tokens = takeTokens(state, log, message.ptk, env);
      const signature = signRecord(deviceKey(env), ACCEPT_TAG, claim);
      const accepted = { ...log, accepted: 1, release: message.signature, accept: signature };
      return sendChain({ ...state, repository: [...state.repository, ...tokens], buffer: [], log: accepted }, { msg: '3-2', counter: log.count, sn: ownSerial(env), signature }, log.count);
    }
    case 'fin': {
      const log = logOf(state, 'receive');
      if (log.accepted !== 1) refuse('OPERA_MESSAGE_INVALID', 'FIN before the tokens were taken');
      return accept(ended(state, log.txid, 'paid'), { count: log.count, ending: 'paid' });
    }
    default:
      return refuse('OPERA_MESSAGE_INVALID', `the payee does not take Msg ${message.msg}`);
  }
}

export const chainCommands = {
  /** Stages 2 and 3: takes the partner's next message and answers the next one of this ODW, if any. */
  step: command({
    input: record({ box: bytes({ max: CHAIN_BOX_MAX }) }),
    output: record({ box: optional(bytes({ max: CHAIN_BOX_MAX })), count: uint({ max: TOKENS_PER_MESSAGE_MAX }), ending: optional(oneOf(ENDINGS)) }),
    run(state: OperaState, input, env) {
      return guarded(() => {
        const { state: opened, message } = receiveChain(state)(input.box);
        const mount = opened.mount as Mount;
        return mount.role === 'payer' ? payerStep(opened, message, mount, env) : payeeStep(opened, message, mount, env);
      });
    },
  }),
};
