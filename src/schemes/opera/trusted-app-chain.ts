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
 * the bank settles the transaction (trusted-app-bank.ts). With change, the payee's own Stage 2 in
 * the other direction runs between the payer's last token and Msg 3-1 (trusted-app-change.ts).
 */
import { equalBytes } from '../../core/bytes.ts';
import { encodeCbor } from '../../core/cbor.ts';
import { bytes, oneOf, optional, record, uint } from '../../core/codec.ts';
import { signRecord, verifyRecord } from '../../core/crypto/record.ts';
import { accept, command, guarded, refuse, type TrustedEnv } from '../../secure-element/trusted-app.ts';
import { CHAIN_BOX_MAX, ENDINGS, flipNonce, type ChainMessage } from './exchange.ts';
import { ACCEPT_TAG, changeAmountCodec, RELEASE_TAG, TOKENS_PER_MESSAGE_MAX } from './messages.ts';
import { sealToken } from './otk.ts';
import { bufferChange, changeOut, openBuffer, openChange, payeeChangeStep } from './trusted-app-change.ts';
import { receiveChain, sendChain, type Step } from './trusted-app-chain-send.ts';
import { claimOf, deviceKey, ended, givenBack, ownSerial } from './trusted-app-common.ts';
import type { Mount, OperaState, TxLog } from './trusted-app-state.ts';

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

/** The payer's next message after `received` tokens reached the payee: the next token, the ask for change (2-5), or Msg 3-1. */
function payerNext(state: OperaState, log: TxLog, received: number, env: TrustedEnv, nonce: Uint8Array): Step {
  if (received < log.count) {
    const next = { ...log, done: received + 1, flag: 0 };
    return sendChain({ ...state, log: next }, tokenMessage(state, next, received + 1, nonce), log.count);
  }
  if (log.change !== undefined && log.released === 0 && state.buffer.length < log.change.count) return sendChain(state, { msg: '2-5', nonce, received: state.buffer.length }, log.count);
  return release(state, log, env);
}

/** Msg 3-1: the payer releases PTK_A (its tokens all arrived, and the change too). */
function release(state: OperaState, log: TxLog, env: TrustedEnv): Step {
  if (log.change !== undefined && (log.change.count === 0 || state.buffer.length !== log.change.count)) refuse('OPERA_MESSAGE_INVALID', `${state.buffer.length} of ${log.change.count} change tokens held: PTK_A stays`);
  const released = { ...log, released: 1 };
  const signature = signRecord(deviceKey(env), RELEASE_TAG, claimOf(released, ownSerial(env)));
  return sendChain({ ...state, log: released }, { msg: '3-1', ptk: log.ptk as Uint8Array, counter: log.count, sn: ownSerial(env), signature }, log.count);
}

/** The payer ends the transaction on the payee's acceptance: its tokens are gone, the change (opened with PTK_B) is taken; FIN. */
function payerDone(state: OperaState, log: TxLog, signature: Uint8Array | undefined, ptk: Uint8Array | undefined, env: TrustedEnv): Step {
  if (signature === undefined || !verifyRecord(env.provider, log.partnerKey, ACCEPT_TAG, claimOf(log, ownSerial(env)), signature)) {
    refuse('OPERA_MESSAGE_INVALID', "the payee's acceptance does not carry its signature");
  }
  const change = openChange(state, log, ptk, env);
  const done = ended(state, log.txid, 'paid');
  const sent = sendChain({ ...done, repository: [...done.repository, ...change] }, { msg: 'fin' }, log.count);
  return sent.ok ? accept(sent.state, { ...sent.output, ending: 'paid', ...(log.change === undefined ? {} : { change: log.change.amount }) }) : sent;
}

function payerStep(state: OperaState, message: ChainMessage, mount: Mount, env: TrustedEnv): Step {
  const log = logOf(state, 'send');
  const nonce = nonceOf(mount);
  const flipped = flipNonce(nonce);
  switch (message.msg) {
    case '2-2': {
      if (!equalBytes(message.nonce, flipped)) refuse('OPERA_MESSAGE_INVALID', "Msg 2-2 does not carry N'_A");
      if (message.refused === 1) {
        // The payee cannot make the change: before any token or key went out, the tokens come back.
        if (log.change === undefined || log.done > 0 || log.released === 1) refuse('OPERA_MESSAGE_INVALID', 'a refusal of change after Stage 2 began');
        return accept(givenBack(state, log.txid), { count: log.count, ending: 'returned', refused: 'OPERA_NO_CHANGE' });
      }
      if (message.accepted === 1) {
        // Only Msg 3-1 carries PTK_A, and the payer commits its release before sending it: an
        // acceptance before that is a lie, and ending here would leave the tokens to nobody.
        if (log.released !== 1) refuse('OPERA_MESSAGE_INVALID', 'the payee claims the tokens taken before PTK_A was released');
        return payerDone(state, log, message.accept, message.ptk, env);
      }
      // With change the payee says how many tokens it takes (and the same again when resuming); without, nothing.
      const known = log.change?.count ?? 0;
      if (log.change === undefined ? message.change !== undefined : message.change === undefined || (known !== 0 && message.change !== known)) refuse('OPERA_MESSAGE_INVALID', `the payee counts ${message.change ?? 0} change tokens, ${known} expected`);
      const counted: TxLog = log.change === undefined || message.change === undefined ? log : { ...log, change: { ...log.change, count: message.change } };
      // Before the key went out the payee holds at most the tokens sent; after, it had every one.
      if (log.released === 1 ? message.received !== log.count : message.received > log.done) refuse('OPERA_MESSAGE_INVALID', `the payee counts ${message.received} tokens of ${log.count}, ${log.done} sent`);
      return payerNext({ ...state, log: counted }, counted, message.received, env, nonce);
    }
    case '2-4': {
      if (!equalBytes(message.nonce, flipped)) refuse('OPERA_MESSAGE_INVALID', "Msg 2-4 does not carry N'_A");
      if (message.counter !== log.done || log.released === 1) refuse('OPERA_MESSAGE_INVALID', `C_B is ${message.counter}, C_A ${log.done}`);
      return payerNext({ ...state, log: { ...log, flag: 1 } }, { ...log, flag: 1 }, message.counter, env, nonce);
    }
    case '2-6': {
      if (!equalBytes(message.nonce, flipped)) refuse('OPERA_MESSAGE_INVALID', "Msg 2-6 does not carry N'_A");
      const taken = bufferChange(state, log, message);
      return taken.complete ? release(taken.state, taken.log, env) : sendChain(taken.state, { msg: '2-7', counter: message.counter, nonce }, log.count);
    }
    case '3-2': {
      if (message.counter !== log.count || log.released !== 1) refuse('OPERA_MESSAGE_INVALID', `C_B is ${message.counter}, C_A ${log.count}`);
      if (!equalBytes(message.sn, log.partner)) refuse('OPERA_MESSAGE_INVALID', 'Msg 3-2 names another ODW');
      return payerDone(state, log, message.signature, message.ptk, env);
    }
    default:
      return refuse('OPERA_MESSAGE_INVALID', `the payer does not take Msg ${message.msg}`);
  }
}

function payeeStep(state: OperaState, message: ChainMessage, mount: Mount, env: TrustedEnv): Step {
  const partner = mount.partner as NonNullable<Mount['partner']>;
  switch (message.msg) {
    case '2-1': {
      if (mount.plan !== 'new' || state.log !== undefined || mount.nonce !== undefined) refuse('OPERA_MESSAGE_INVALID', 'Msg 2-1 of a new transaction is not expected here');
      // A payment moves value: AMT = 0 with change would be a swap of tokens, which Stage 3 does not check.
      if (message.amount <= 0n) refuse('OPERA_AMOUNT_INVALID', 'a payment needs a positive amount');
      if (mount.expect !== undefined && message.amount !== mount.expect) refuse('OPERA_AMOUNT_MISMATCH', `the payer pays ${message.amount} minor units, ${mount.expect} expected`);
      const opened = { ...state, mount: { ...mount, nonce: message.nonce } };
      const out = message.change === undefined ? { state: opened, change: undefined } : changeOut(opened, message.change, partner.sn, env);
      // Without the change the payee ends the payment here: it took nothing and keeps no log.
      if (out === null) {
        const sent = sendChain(opened, { msg: '2-2', nonce: flipNonce(message.nonce), received: 0, accepted: 0, refused: 1 }, message.count);
        return sent.ok ? accept(sent.state, { ...sent.output, ending: 'returned', refused: 'OPERA_NO_CHANGE' }) : sent;
      }
      const log: TxLog = { txid: message.txid, mode: 'receive', partner: partner.sn, partnerKey: partner.device, amount: message.amount, count: message.count, done: 0, flag: 0, released: 0, accepted: 0, settling: 0, ...(out.change === undefined ? {} : { change: out.change }) };
      const answer: ChainMessage = { msg: '2-2', nonce: flipNonce(message.nonce), received: 0, accepted: 0, ...(out.change === undefined ? {} : { change: out.change.count }) };
      return sendChain({ ...out.state, log, buffer: [] }, answer, log.count);
    }
    case '2-1r': {
      const log = logOf(state, 'receive');
      if (mount.plan !== 'resume' || !equalBytes(message.txid, log.txid) || mount.nonce !== undefined) refuse('OPERA_MESSAGE_INVALID', 'a resumed Msg 2-1 for another transaction');
      // With change, an acceptance carries PTK_B again: the payee released it when it took the tokens.
      const change = log.change === undefined ? {} : { change: log.change.count, ...(log.accepted === 1 && log.change.ptk !== undefined ? { ptk: log.change.ptk } : {}) };
      const answer: ChainMessage = { msg: '2-2', nonce: flipNonce(message.nonce), received: log.done, accepted: log.accepted, ...(log.accept === undefined ? {} : { accept: log.accept }), ...change };
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
    case '2-5':
    case '2-7': {
      const nonce = nonceOf(mount);
      if (!equalBytes(message.nonce, nonce)) refuse('OPERA_MESSAGE_INVALID', `Msg ${message.msg} does not carry N_A`);
      return payeeChangeStep(state, logOf(state, 'receive'), message, flipNonce(nonce));
    }
    case '3-1': {
      const log = logOf(state, 'receive');
      if (log.accepted === 1 || message.counter !== log.count || log.done !== log.count) refuse('OPERA_MESSAGE_INVALID', `C_A is ${message.counter}, C_B ${log.done} of ${log.count}`);
      if (log.change !== undefined && log.change.done !== log.change.count) refuse('OPERA_MESSAGE_INVALID', `Msg 3-1 before the change: ${log.change.done} of ${log.change.count} change tokens sent`);
      if (!equalBytes(message.sn, log.partner)) refuse('OPERA_MESSAGE_INVALID', 'Msg 3-1 names another ODW');
      const claim = claimOf(log, ownSerial(env));
      if (!verifyRecord(env.provider, log.partnerKey, RELEASE_TAG, claim, message.signature)) refuse('OPERA_MESSAGE_INVALID', "Msg 3-1 does not carry the payer's signature");
      const tokens = openBuffer(state, log, message.ptk, 'pay', { count: log.count, worth: log.amount + (log.change?.amount ?? 0n) }, env);
      const signature = signRecord(deviceKey(env), ACCEPT_TAG, claim);
      // Taking the tokens and releasing PTK_B (the change's key) are one commit: never one without the other.
      const accepted = { ...log, accepted: 1, release: message.signature, accept: signature };
      const ptk = log.change?.ptk === undefined ? {} : { ptk: log.change.ptk };
      return sendChain({ ...state, repository: [...state.repository, ...tokens], buffer: [], log: accepted }, { msg: '3-2', counter: log.count, sn: ownSerial(env), signature, ...ptk }, log.count);
    }
    case 'fin': {
      const log = logOf(state, 'receive');
      if (log.accepted !== 1) refuse('OPERA_MESSAGE_INVALID', 'FIN before the tokens were taken');
      return accept(ended(state, log.txid, 'paid'), { count: log.count, ending: 'paid', ...(log.change === undefined ? {} : { change: log.change.amount }) });
    }
    default:
      return refuse('OPERA_MESSAGE_INVALID', `the payee does not take Msg ${message.msg}`);
  }
}

export const chainCommands = {
  /** Stages 2 and 3: takes the partner's next message and answers the next one of this ODW, if any. */
  step: command({
    input: record({ box: bytes({ max: CHAIN_BOX_MAX }) }),
    output: record({ box: optional(bytes({ max: CHAIN_BOX_MAX })), count: uint({ max: TOKENS_PER_MESSAGE_MAX }), ending: optional(oneOf(ENDINGS)), refused: optional(oneOf(['OPERA_NO_CHANGE'] as const)), change: optional(changeAmountCodec) }),
    run(state: OperaState, input, env) {
      return guarded(() => {
        const { state: opened, message } = receiveChain(state)(input.box);
        const mount = opened.mount as Mount;
        return mount.role === 'payer' ? payerStep(opened, message, mount, env) : payeeStep(opened, message, mount, env);
      });
    },
  }),
};
