/**
 * What the ODW's commands share: its device key and SN, the bank's key and parameters, picking the
 * tokens of an amount, the claim both sides sign in Stage 3, and how a transaction's end is kept.
 */
import { equalBytes, toHex } from '../../core/bytes.ts';
import type { Signer } from '../../core/crypto/suite.ts';
import { refuse, type TrustedEnv } from '../../secure-element/trusted-app.ts';
import type { Ending } from './exchange.ts';
import type { Maker, ParamsBody, TransferClaim } from './messages.ts';
import { odwSerial } from './serial.ts';
import { checkToken, type Token, type TokenBody } from './token.ts';
import { FINISHED_MAX, type OperaState, type TxLog } from './trusted-app-state.ts';

/** The label of the TA's device key under the SE's master secret. */
export const TA_KEY_LABEL = 'opera/ta';

/** The TA's device key. */
export function deviceKey(env: TrustedEnv): Signer {
  return env.signer(TA_KEY_LABEL);
}

/** The TA's SN. */
export function ownSerial(env: TrustedEnv): Uint8Array {
  return odwSerial(deviceKey(env).publicKey);
}

/** The bank's key and parameters. @throws Refused NOT_CERTIFIED before provisioning and the first sync */
export function provisioned(state: OperaState): { bank: NonNullable<OperaState['bank']>; params: ParamsBody } {
  if (state.bank === undefined) refuse('NOT_CERTIFIED', 'the ODW has no bank key: run Init and CertInit first');
  if (state.params === undefined) refuse('NOT_CERTIFIED', 'the ODW has no bank parameters yet: sync first');
  return { bank: state.bank, params: state.params };
}

/**
 * Checks a token under the bank's key or, failing that, under the key of another bank this ODW
 * takes tokens of (all in the bank's currency).
 * @throws TallyError OPERA_TOKEN_INVALID when no bank's key verifies it
 */
export function checkAnyToken(env: TrustedEnv, state: OperaState, token: Token): TokenBody {
  const { bank, params } = provisioned(state);
  try {
    return checkToken(env.provider, bank, params.currency, token);
  } catch (e) {
    for (const peer of state.peers ?? []) {
      try {
        return checkToken(env.provider, peer.bank, params.currency, token);
      } catch {
        // Not this bank's either.
      }
    }
    throw e;
  }
}

/** The makers whose credentials mark genuine ODWs: the bank's, then those of the other banks, once each. */
export function knownMakers(state: OperaState): Maker[] {
  const { params } = provisioned(state);
  const seen = new Set<string>();
  const all: Maker[] = [];
  for (const m of [...params.makers, ...(state.peers ?? []).flatMap((p) => p.makers)]) {
    const id = `${toHex(m.publicKey)}/${toHex(m.reference)}`;
    if (seen.has(id)) continue;
    seen.add(id);
    all.push(m);
  }
  return all;
}

/** The greedy choice, the largest first: the tokens (by index) worth at most `amount`, and what it leaves short. */
function greedy(repository: readonly Token[], amount: bigint): { chosen: Set<number>; rest: bigint } {
  const held = total(repository);
  if (held < amount) refuse('INSUFFICIENT_FUNDS', `the ODW holds ${held} minor units, ${amount} asked`);
  const order = repository.map((t, i) => ({ t, i })).sort((a, b) => (a.t.body.value > b.t.body.value ? -1 : a.t.body.value < b.t.body.value ? 1 : a.i - b.i));
  const chosen = new Set<number>();
  let rest = amount;
  for (const { t, i } of order) {
    if (rest === 0n) break;
    if (t.body.value <= rest) {
      chosen.add(i);
      rest -= t.body.value;
    }
  }
  return { chosen, rest };
}

function split(repository: readonly Token[], chosen: Set<number>, amount: bigint, max: number): { picked: Token[]; left: Token[] } {
  if (chosen.size > max) refuse('OPERA_TOO_MANY_TOKENS', `${amount} minor units take ${chosen.size} tokens; one payment moves at most ${max}`);
  return { picked: repository.filter((_, i) => chosen.has(i)), left: repository.filter((_, i) => !chosen.has(i)) };
}

/**
 * Tokens of the repository worth exactly `amount`, the largest first (the bank's denominations are
 * such that this finds a way whenever the tokens held allow one of the usual kind).
 * @throws Refused INSUFFICIENT_FUNDS, OPERA_NO_EXACT_TOKENS, OPERA_TOO_MANY_TOKENS
 */
export function pickExact(repository: readonly Token[], amount: bigint, max: number): { picked: Token[]; left: Token[] } {
  const { chosen, rest } = greedy(repository, amount);
  if (rest !== 0n) refuse('OPERA_NO_EXACT_TOKENS', `the tokens held cannot make exactly ${amount} minor units (${rest} short in small values): charge smaller denominations`);
  return split(repository, chosen, amount, max);
}

/**
 * Tokens worth `amount`, or when they cannot make it exactly, worth `amount + change` with the
 * smallest change this finds: the greedy choice, then the smallest token left that covers what it
 * leaves short, then the largest chosen tokens the overpayment covers taken back.
 * @throws Refused INSUFFICIENT_FUNDS, OPERA_TOO_MANY_TOKENS
 */
export function pickCovering(repository: readonly Token[], amount: bigint, max: number): { picked: Token[]; left: Token[]; change: bigint } {
  const { chosen, rest } = greedy(repository, amount);
  if (rest === 0n) return { ...split(repository, chosen, amount, max), change: 0n };
  // Every token the greedy choice skipped is worth more than what it leaves short, and one is left.
  const cover = repository.map((t, i) => ({ t, i })).filter(({ i }) => !chosen.has(i)).reduce((a, b) => (b.t.body.value < a.t.body.value ? b : a));
  chosen.add(cover.i);
  let change = cover.t.body.value - rest;
  for (const { t, i } of repository.map((t, i) => ({ t, i })).filter(({ i }) => chosen.has(i) && i !== cover.i).sort((a, b) => (a.t.body.value > b.t.body.value ? -1 : a.t.body.value < b.t.body.value ? 1 : 0))) {
    if (t.body.value <= change) {
      chosen.delete(i);
      change -= t.body.value;
    }
  }
  return { ...split(repository, chosen, amount + change, max), change };
}

/** The claim of a transaction both sides sign in Stage 3. */
export function claimOf(log: TxLog, self: Uint8Array): TransferClaim {
  const [payer, payee] = log.mode === 'send' ? [self, log.partner] : [log.partner, self];
  return { txid: log.txid, payer, payee, amount: log.amount, count: log.count, ...(log.change === undefined ? {} : { change: log.change.amount }) };
}

/** The state with the transaction ended: its log gone, its end remembered (newest first). */
export function ended(state: OperaState, txid: Uint8Array, ending: Ending): OperaState {
  // A settlement report under way ends with the transaction (found paid offline after it was sent).
  const { log: _log, settle: _settle, ...rest } = state;
  return { ...rest, outgoing: [], buffer: [], finished: [{ txid, ending }, ...state.finished.filter((f) => !equalBytes(f.txid, txid))].slice(0, FINISHED_MAX) };
}

/** The state with the transaction ended as never taken: the tokens this ODW was paying (the payer's, or the payee's change) back in its repository. */
export function givenBack(state: OperaState, txid: Uint8Array): OperaState {
  return { ...ended(state, txid, 'returned'), repository: [...state.repository, ...state.outgoing] };
}

/** The sum of tokens' values. */
export function total(tokens: readonly Token[]): bigint {
  return tokens.reduce((s, t) => s + t.body.value, 0n);
}
