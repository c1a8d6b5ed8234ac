/**
 * The trusted app's side of the chain (Algorithm 3 `deposit`, `onchainUpdate`, `finalize`, `freeze`,
 * `logout`, `clean`, and the withdrawal of the dynamic balance exchange). The TEE never reads the
 * chain: it credits a deposit, frees what was reconciled and freezes only on a receipt the issuer
 * node signed after reading the chain (docs/chain.md).
 */
import { equalBytes, toHex } from '../../core/bytes.ts';
import { array, bigint, bytes, oneOf, optional, record, uint, type Infer } from '../../core/codec.ts';
import { timestampMs } from '../../core/fields.ts';
import { accept, command, guarded, refuse, type CommandResult } from '../../secure-element/trusted-app.ts';
import { ackCodec, checkSigned, depositBodyCodec, depositReceiptCodec, DEPOSIT_TAG, statementBodyCodec, statementCodec, STATEMENT_TAG, txOffCodec, UPLOAD_ITEMS_MAX, type StatementBody } from './messages.ts';
import { accountKey, enclaveKey, ready, requireOpen, requirePayee, timeOf, type Ready } from './trusted-app-common.ts';
import { pruneSeen } from './trusted-app-pay.ts';
import { charge, credit, OUTGOING_MAX, TA_STATUSES, type ChainState } from './trusted-app-state.ts';
import { buildTxOff } from './tx-off.ts';
import { ACK_STATUS, ADDRESS_BYTES, PAYMENT_KIND, type AckStatus, paymentHash, signingInput, UINT128_MAX, uploadHash, uploadItems, type PaymentKind } from './typed-data.ts';

const address = bytes({ length: ADDRESS_BYTES });
const uint128 = bigint({ min: 0n, max: UINT128_MAX });
const count = uint({ max: 1_000_000 });

/** Refuses a chain record for another chain, contract or account. */
function requireMine(r: Ready, body: { chainId: bigint; contract: Uint8Array; account: Uint8Array }): void {
  if (body.chainId !== r.params.chainId || !equalBytes(body.contract, r.params.contract)) refuse('CHAIN_MISMATCH', 'this receipt is for another chain or contract');
  if (!equalBytes(body.account, r.account.address)) refuse('CHAIN_MISMATCH', 'this receipt is for another account');
}

/** Signs an outgoing payment to an on-chain address (a withdrawal or a closing) and holds its amount. */
function onChainPayment(state: ChainState, r: Ready, env: Parameters<typeof enclaveKey>[0], to: Uint8Array, amount: bigint, kind: PaymentKind, now: number) {
  requirePayee(r, to);
  if (state.outgoing.length >= OUTGOING_MAX) refuse('CHAIN_STORAGE_FULL', 'the TA holds as many unsettled payments as it can: reconcile first');
  const keys = { enclave: enclaveKey(env), account: accountKey(env, r.account.seed), certificate: r.certificate };
  const txOff = buildTxOff(r.domain, keys, { payee: to, amount, counter: state.counter, tGen: BigInt(Math.floor(timeOf(state, now) / 1000)), kind, balance: state.balance });
  return { txOff, state: { ...state, balance: state.balance - amount, counter: state.counter + 1n, outgoing: [...state.outgoing, { txOff }] } };
}

/** What a statement does to the TA: which stored payments the chain settled, what comes back, what is charged. */
function applyStatement(state: ChainState, statement: StatementBody) {
  const verdicts = new Map(statement.payments.map((p) => [toHex(p.payment), p]));
  const verdictOf = (hash: Uint8Array) => verdicts.get(toHex(hash));
  let money: Pick<ChainState, 'balance' | 'debt'> = { balance: state.balance, debt: state.debt };
  let restored = 0n;
  let charged = 0n;
  let closed = false;
  const outgoing = state.outgoing.filter((o) => {
    const verdict = verdictOf(paymentHash(o.txOff.payment));
    if (verdict === undefined || verdict.state === 'unknown' || verdict.state === 'recorded') return true;
    const amount = o.txOff.payment.amount;
    // A payment without an ack that the chain failed or voided never reached a payee: the amount comes back.
    if ((verdict.state === 'failed' || verdict.state === 'voided') && o.ack === undefined) {
      money = credit({ ...state, ...money }, amount);
      restored += amount;
    }
    if (verdict.state === 'applied' && o.txOff.payment.kind === PAYMENT_KIND.closing) closed = true;
    return false;
  });
  const incoming = state.incoming.filter((i) => {
    const verdict = verdictOf(i.ack.payment);
    if (verdict === undefined || verdict.state === 'unknown' || verdict.state === 'recorded') return true;
    if (i.ack.ok) {
      // What was credited and the chain did not honour (a voided payment, a forked payer's shortfall) is taken back.
      const lost = verdict.state === 'applied' ? (verdict.missing < i.txOff.payment.amount ? verdict.missing : i.txOff.payment.amount) : i.txOff.payment.amount;
      if (lost > 0n) {
        money = charge(money, lost);
        charged += lost;
      }
    }
    return false;
  });
  return { outgoing, incoming, money, restored, charged, closed, freed: state.outgoing.length - outgoing.length + state.incoming.length - incoming.length };
}

/** What the upload signature covers of an item: its payment's hash and its ack status. */
export function uploadItemOf(item: { txOff: { payment: Parameters<typeof paymentHash>[0] }; ack?: { ok: boolean } | undefined }): { payment: Uint8Array; ack: AckStatus } {
  return { payment: paymentHash(item.txOff.payment), ack: item.ack === undefined ? ACK_STATUS.none : item.ack.ok ? ACK_STATUS.win : ACK_STATUS.fail };
}

const uploadItemCodec = record({ txOff: txOffCodec, ack: optional(ackCodec) });
const logoutOutput = record({ txOff: optional(txOffCodec), amount: uint128 });

/** The chain commands. */
export const chainCommands = {
  /** Algorithm 3 `deposit`: credits an on-chain deposit into this account, against the node's receipt of it, once, in order. */
  deposit: command({
    input: record({ receipt: depositReceiptCodec }),
    output: record({ index: count, amount: uint128, balance: uint128 }),
    run(state: ChainState, input, env) {
      return guarded(() => {
        const r = ready(state);
        if (state.bank === undefined) refuse('NOT_CERTIFIED', 'no node key');
        const body = checkSigned(env.provider, state.bank, depositBodyCodec, DEPOSIT_TAG, input.receipt);
        requireMine(r, body);
        if (body.index < state.deposits) refuse('CHAIN_REPLAYED', `deposit ${body.index} is already credited`);
        if (body.index > state.deposits) refuse('CHAIN_DEPOSIT_GAP', `deposit ${state.deposits} comes first`);
        const money = credit(state, body.amount);
        return accept({ ...state, ...money, deposits: state.deposits + 1, clock: Math.max(state.clock, body.at) }, { index: body.index, amount: body.amount, balance: money.balance });
      });
    },
  }),

  /** Algorithm 3 `onchainUpdate`: what the TA stored for the chain (received first, then its own in counter order), signed by the enclave key. */
  onchainUpdate: command({
    input: record({}),
    output: record({ account: address, items: array(uploadItemCodec, { max: UPLOAD_ITEMS_MAX }), signature: bytes({ length: 65 }) }),
    readOnly: true,
    run(state: ChainState, _input, env) {
      return guarded(() => {
        const r = ready(state);
        const own = [...state.outgoing].sort((a, b) => (a.txOff.payment.counter < b.txOff.payment.counter ? -1 : 1));
        const items = [...state.incoming, ...own].slice(0, UPLOAD_ITEMS_MAX).map((i) => (i.ack === undefined ? { txOff: i.txOff } : { txOff: i.txOff, ack: i.ack }));
        const digest = uploadHash({ account: r.account.address, items: uploadItems(items.map(uploadItemOf)) });
        return accept(state, { account: r.account.address, items, signature: enclaveKey(env).sign(signingInput(r.domain, digest)) });
      });
    },
  }),

  /**
   * Algorithm 3 `finalize` and `freeze`: takes the node's statement of the account after a
   * reconciliation; frees what the chain settled, gives back what it failed or voided, takes back
   * what it did not honour, and freezes when the chain froze the account.
   */
  finalize: command({
    input: record({ statement: statementCodec }),
    output: record({ freed: count, restored: uint128, charged: uint128, status: oneOf(TA_STATUSES), balance: uint128 }),
    run(state: ChainState, input, env) {
      return guarded(() => {
        const r = ready(state);
        if (state.bank === undefined) refuse('NOT_CERTIFIED', 'no node key');
        const body = checkSigned(env.provider, state.bank, statementBodyCodec, STATEMENT_TAG, input.statement);
        requireMine(r, body);
        if (body.block < state.block) refuse('CHAIN_STALE', 'this statement is older than one the TA took');
        const applied = applyStatement(state, body);
        const status = body.status === 'frozen' ? 'frozen' : body.status === 'closed' && (applied.closed || state.status === 'closing') ? 'closed' : state.status;
        const next: ChainState = { ...state, ...applied.money, outgoing: applied.outgoing, incoming: applied.incoming, status, block: body.block, clock: Math.max(state.clock, body.at) };
        return accept({ ...next, seen: pruneSeen(next) }, { freed: applied.freed, restored: applied.restored, charged: applied.charged, status, balance: applied.money.balance });
      });
    },
  }),

  /** The dynamic balance exchange's withdrawal: signs a payment of `amount` to the on-chain address `to`; the chain pays it out when uploaded. */
  withdraw: command({
    input: record({ to: address, amount: bigint({ min: 1n, max: UINT128_MAX }), now: timestampMs }),
    output: record({ txOff: txOffCodec }),
    run(state: ChainState, input, env) {
      return guarded(() => {
        const r = ready(state);
        requireOpen(state);
        if (input.amount > state.balance) refuse('INSUFFICIENT_FUNDS', `the account holds ${state.balance}, the withdrawal is ${input.amount}`);
        const made = onChainPayment(state, r, env, input.to, input.amount, PAYMENT_KIND.withdrawal, input.now);
        return accept(made.state, { txOff: made.txOff });
      });
    },
  }),

  /**
   * Algorithm 3 `logout`: signs the closing of the account, its whole balance to the on-chain address
   * `to`. Refused while a payment waits for its ack (its amount is neither the payer's nor the payee's yet).
   */
  logout: command({
    input: record({ to: address, now: timestampMs }),
    output: logoutOutput,
    run(state: ChainState, input, env): CommandResult<ChainState, Infer<typeof logoutOutput>> {
      return guarded(() => {
        const r = ready(state);
        requireOpen(state);
        if (state.outgoing.some((o) => o.ack === undefined && o.txOff.payment.kind === PAYMENT_KIND.payment)) refuse('CHAIN_PENDING', 'a payment waits for its ack: finish it (or void it on chain) before closing');
        if (state.debt > 0n) refuse('CHAIN_DEBT', 'the account owes what the chain took back');
        if (state.balance === 0n) {
          // Nothing to move: the account closes once nothing it stored waits for the chain.
          if (state.outgoing.length + state.incoming.length > 0) refuse('CHAIN_PENDING', 'reconcile first: payments wait for the chain');
          return accept<ChainState, Infer<typeof logoutOutput>>({ ...state, status: 'closed' }, { amount: 0n });
        }
        const amount = state.balance;
        const made = onChainPayment(state, r, env, input.to, amount, PAYMENT_KIND.closing, input.now);
        return accept<ChainState, Infer<typeof logoutOutput>>({ ...made.state, status: 'closing' }, { txOff: made.txOff, amount });
      });
    },
  }),

  /** Algorithm 3 `clean`: deletes the account key once the chain closed the account and nothing waits for it. */
  clean: command({
    input: record({}),
    output: record({ account: address }),
    run(state: ChainState) {
      return guarded(() => {
        if (state.account === undefined) refuse('CHAIN_NO_ACCOUNT', 'no offline account');
        if (state.status !== 'closed') refuse('CHAIN_NOT_CLOSED', 'the chain has not closed the account yet: reconcile the closing first');
        if (state.outgoing.length + state.incoming.length > 0) refuse('CHAIN_PENDING', 'payments still wait for the chain');
        const { account, ...rest } = state;
        return accept({ ...rest, balance: 0n, counter: 0n, deposits: 0 }, { account: account.address });
      });
    },
  }),
};
