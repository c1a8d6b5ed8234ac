/**
 * The ODW's online commands, each a request the TA signs and the bank's signed answer it takes:
 * charging tokens from the holder's account, depositing tokens back, and settling online a
 * transaction the two ODWs never finished (the project's addition to the paper, whose §4.1 needs
 * the same two ODWs to meet again). A request under way is kept in the state; its answer must carry
 * the request's nonce.
 */
import { equalBytes, toHex } from '../../core/bytes.ts';
import { encodeCbor } from '../../core/cbor.ts';
import { array, oneOf, optional, record, uint } from '../../core/codec.ts';
import { accept, command, guarded, refuse, reject, type CommandResult } from '../../secure-element/trusted-app.ts';
import {
  amountCodec,
  chargeBodyCodec,
  chargeCodec,
  chargeRequestBodyCodec,
  chargeRequestCodec,
  CHARGE_REQUEST_TAG,
  CHARGE_TAG,
  checkSigned,
  DENOMINATIONS_MAX,
  depositReceiptBodyCodec,
  depositReceiptCodec,
  depositRequestBodyCodec,
  depositRequestCodec,
  DEPOSIT_RECEIPT_TAG,
  DEPOSIT_REQUEST_TAG,
  NONCE_BYTES,
  settledBodyCodec,
  settledCodec,
  settleReportBodyCodec,
  settleReportCodec,
  SETTLED_OUTCOMES,
  SETTLED_TAG,
  SETTLE_REPORT_TAG,
  signed,
  tokenCountCodec,
  TOKENS_PER_MESSAGE_MAX,
  TOKENS_REQUEST_BYTES_MAX,
  type SettledOutcome,
  type TokenCount,
} from './messages.ts';
import { bankPayee, tagged } from './escrow.ts';
import { bare, checkToken, type Token } from './token.ts';
import { deviceKey, ended, ownSerial, pickExact, provisioned, total } from './trusted-app-common.ts';
import { REPOSITORY_MAX, type OperaState } from './trusted-app-state.ts';

const count = uint({ max: TOKENS_PER_MESSAGE_MAX });
/** Room in a deposit request for its nonce, its signature and the CBOR around them. */
const REQUEST_ROOM_BYTES = 512;

/**
 * The tokens of a deposit that fit one request (TOKENS_REQUEST_BYTES_MAX): all of an exact amount,
 * or the first ones of a deposit of everything (the rest stay for the next).
 * @throws Refused OPERA_TOO_MANY_TOKENS when an exact amount's tokens do not fit
 */
function fitRequest(tokens: readonly Token[], exact: boolean): Token[] {
  let bytes = REQUEST_ROOM_BYTES;
  for (let i = 0; i < tokens.length; i++) {
    bytes += encodeCbor(tokens[i] as Token).length;
    if (bytes > TOKENS_REQUEST_BYTES_MAX) {
      if (exact || i === 0) refuse('OPERA_TOO_MANY_TOKENS', `these tokens and their escrow tags take more than the ${TOKENS_REQUEST_BYTES_MAX} bytes of one deposit: deposit a smaller amount`);
      return tokens.slice(0, i);
    }
  }
  return [...tokens];
}

/** `amount` in the bank's denominations, the largest first. @throws Refused OPERA_AMOUNT_INVALID */
function split(amount: bigint, denominations: readonly bigint[]): TokenCount[] {
  const out: TokenCount[] = [];
  let rest = amount;
  for (const value of [...denominations].sort((a, b) => (a > b ? -1 : a < b ? 1 : 0))) {
    const n = rest / value;
    if (n > 0n) {
      out.push({ value, count: Number(n) });
      rest -= n * value;
    }
  }
  if (rest !== 0n || out.length === 0) refuse('OPERA_AMOUNT_INVALID', `${amount} minor units cannot be made of the denominations ${denominations.join(', ')}`);
  return out;
}

export const bankCommands = {
  /** Asks the bank for tokens worth `amount` (by default in the fewest tokens of its denominations). */
  chargeRequest: command({
    input: record({ amount: amountCodec, tokens: optional(array(tokenCountCodec, { min: 1, max: DENOMINATIONS_MAX })) }),
    output: record({ request: chargeRequestCodec }),
    run(state: OperaState, input, env) {
      if (state.charge !== undefined) return reject('OPERA_CHARGE_PENDING', 'a charge is under way: take its answer first');
      return guarded(() => {
        const { params } = provisioned(state);
        if (input.amount <= 0n) refuse('OPERA_AMOUNT_INVALID', 'a charge must be of a positive amount');
        const tokens = input.tokens ?? split(input.amount, params.denominations);
        for (const t of tokens) if (!params.denominations.includes(t.value)) refuse('OPERA_AMOUNT_INVALID', `${t.value} is not one of the bank's denominations`);
        const n = tokens.reduce((s, t) => s + t.count, 0);
        if (tokens.reduce((s, t) => s + t.value * BigInt(t.count), 0n) !== input.amount) refuse('OPERA_AMOUNT_INVALID', `the tokens asked for are not worth ${input.amount}`);
        if (n > TOKENS_PER_MESSAGE_MAX) refuse('OPERA_TOO_MANY_TOKENS', `${n} tokens: a charge carries at most ${TOKENS_PER_MESSAGE_MAX}`);
        if (state.repository.length + n > REPOSITORY_MAX) refuse('OPERA_REPOSITORY_FULL', `the ODW holds ${state.repository.length} tokens; ${n} more would pass its ${REPOSITORY_MAX}`);
        const body = { nonce: env.random(NONCE_BYTES), amount: input.amount, tokens };
        return accept({ ...state, charge: body }, { request: signed(chargeRequestBodyCodec, deviceKey(env), CHARGE_REQUEST_TAG, body) });
      });
    },
  }),

  /** Takes the bank's tokens for the charge under way into the repository. */
  chargeTake: command({
    input: record({ charge: chargeCodec }),
    output: record({ amount: amountCodec, tokens: count }),
    run(state: OperaState, input, env) {
      const pending = state.charge;
      if (pending === undefined) return reject('OPERA_NO_CHARGE', 'no charge is under way');
      return guarded(() => {
        const { bank, params } = provisioned(state);
        const body = checkSigned(env.provider, bank, chargeBodyCodec, CHARGE_TAG, input.charge);
        if (!equalBytes(body.nonce, pending.nonce)) refuse('OPERA_ANSWER_STALE', 'the charge answers another request');
        const seen = new Set(state.repository.map((t) => toHex(t.body.serial)));
        const asked = new Map(pending.tokens.map((t) => [t.value, t.count]));
        for (const token of body.tokens) {
          const t = checkToken(env.provider, bank, params.currency, token);
          const id = toHex(t.serial);
          if (seen.has(id)) refuse('OPERA_TOKEN_REPEATED', `token ${id} is already held`);
          seen.add(id);
          asked.set(t.value, (asked.get(t.value) ?? 0) - 1);
        }
        if ([...asked.values()].some((n) => n !== 0)) refuse('OPERA_CHARGE_MISMATCH', 'the tokens are not those asked for');
        const { charge: _done, ...rest } = state;
        return accept({ ...rest, repository: [...state.repository, ...body.tokens] }, { amount: total(body.tokens), tokens: body.tokens.length });
      });
    },
  }),

  /** Moves tokens worth `amount` (all, when absent) out of the repository into a deposit the TA signs. */
  depositRequest: command({
    input: record({ amount: optional(amountCodec) }),
    output: record({ request: depositRequestCodec }),
    run(state: OperaState, input, env) {
      if (state.deposit !== undefined) return reject('OPERA_DEPOSIT_PENDING', 'a deposit is under way: take its receipt first');
      return guarded(() => {
        if (state.repository.length === 0) refuse('INSUFFICIENT_FUNDS', 'the ODW holds no tokens');
        const { bank, params } = provisioned(state);
        const { picked, left } = input.amount === undefined ? { picked: state.repository.slice(0, TOKENS_PER_MESSAGE_MAX), left: state.repository.slice(TOKENS_PER_MESSAGE_MAX) } : pickExact(state.repository, input.amount, TOKENS_PER_MESSAGE_MAX);
        // Each token deposited gets its last tag, naming this ODW and the bank (escrow.ts).
        const tokens = tagged(picked, { payee: bankPayee(bank), device: deviceKey(env), escrowKey: params.escrowKey, random: env.random });
        const fitting = fitRequest(tokens, input.amount !== undefined);
        const body = { nonce: env.random(NONCE_BYTES), tokens: fitting };
        const back = picked.slice(fitting.length);
        return accept({ ...state, repository: [...back, ...left], deposit: body }, { request: signed(depositRequestBodyCodec, deviceKey(env), DEPOSIT_REQUEST_TAG, body) });
      });
    },
  }),

  /** Takes the bank's receipt of the deposit under way. */
  depositTake: command({
    input: record({ receipt: depositReceiptCodec }),
    output: record({ credited: amountCodec, doubleSpent: count, refused: count, presented: count }),
    run(state: OperaState, input, env) {
      const pending = state.deposit;
      if (pending === undefined) return reject('OPERA_NO_DEPOSIT', 'no deposit is under way');
      return guarded(() => {
        const { bank } = provisioned(state);
        const body = checkSigned(env.provider, bank, depositReceiptBodyCodec, DEPOSIT_RECEIPT_TAG, input.receipt);
        if (!equalBytes(body.nonce, pending.nonce)) refuse('OPERA_ANSWER_STALE', 'the receipt answers another deposit');
        const { deposit: _done, ...rest } = state;
        const counted = (outcome: string) => body.tokens.filter((t) => t.outcome === outcome).length;
        // `presented`: another bank's tokens, claimed from it for the holder's account (credited once settled).
        return accept(rest, { credited: body.credited, doubleSpent: counted('double-spend'), refused: counted('refused'), presented: counted('presented') });
      });
    },
  }),

  /**
   * Gives up finishing the logged transaction offline and reports it to the bank. From here on the
   * payer never releases its token key for it and the payee never takes its tokens: what the bank
   * decides is final. Sent again (a fresh nonce) after a `pending` answer.
   */
  settleReport: command({
    input: record({}),
    output: record({ report: settleReportCodec }),
    run(state: OperaState, _input, env) {
      const log = state.log;
      if (log === undefined) return reject('OPERA_NOTHING_PENDING', 'no transaction waits in the log');
      return guarded(() => {
        const body = {
          nonce: env.random(NONCE_BYTES),
          txid: log.txid,
          mode: log.mode,
          self: ownSerial(env),
          partner: log.partner,
          amount: log.amount,
          ...(log.change === undefined ? {} : { change: log.change.amount }),
          count: log.count,
          done: log.done,
          flag: log.flag,
          released: log.released,
          accepted: log.accepted,
          // The payer's tokens, or the payee's change: what a refund of this side is worth. The bank
          // refunds by serial: the escrow tags stay in the ODW (a refund names no payee).
          tokens: state.outgoing.map(bare),
          ...(log.accepted === 1 && log.release !== undefined ? { release: log.release } : {}),
        };
        return accept({ ...state, log: { ...log, settling: 1 }, settle: body.nonce }, { report: signed(settleReportBodyCodec, deviceKey(env), SETTLE_REPORT_TAG, body) });
      });
    },
  }),

  /** Takes the bank's answer to the report: the transaction ends, unless the bank says it is pending. */
  settleTake: command({
    input: record({ settled: settledCodec }),
    output: record({ outcome: oneOf(SETTLED_OUTCOMES), credited: amountCodec }),
    run(state: OperaState, input, env) {
      const log = state.log;
      if (log === undefined || state.settle === undefined) return reject('OPERA_NOTHING_PENDING', 'no settlement report is under way');
      const nonce = state.settle;
      return guarded((): CommandResult<OperaState, { outcome: SettledOutcome; credited: bigint }> => {
        const { bank } = provisioned(state);
        const body = checkSigned(env.provider, bank, settledBodyCodec, SETTLED_TAG, input.settled);
        if (!equalBytes(body.nonce, nonce) || !equalBytes(body.txid, log.txid)) refuse('OPERA_ANSWER_STALE', 'the answer is for another report');
        if (body.outcome === 'pending') return accept(state, { outcome: body.outcome, credited: body.credited });
        if (body.outcome === 'paid' && log.mode === 'receive' && log.accepted !== 1) refuse('OPERA_ANSWER_INVALID', 'the bank says paid, but this ODW never took the tokens');
        return accept(ended(state, log.txid, body.outcome === 'paid' ? 'paid' : 'returned'), { outcome: body.outcome, credited: body.credited });
      });
    },
  }),
};
