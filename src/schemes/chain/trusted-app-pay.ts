/**
 * The offline transfer in the trusted app (Algorithm 3 `transfer`, `pay`, `abort`; Algorithm 4
 * `receive`, `reject`). Unlike the paper, the payer's TEE holds the amount from the moment it signs
 * `tx_off`: a lost `ack_win` must not let it spend the amount again, so the amount stays pending
 * until the payee's ack or the chain settles the payment.
 */
import { equalBytes } from '../../core/bytes.ts';
import { isTallyError } from '../../core/errors.ts';
import { bigint, boolean, bytes, optional, record, text, type Infer } from '../../core/codec.ts';
import { timestampMs } from '../../core/fields.ts';
import { decodeCertificate } from '../../pki/certificate.ts';
import { accept, command, guarded, refuse, Refused, type CommandResult, type TrustedEnv } from '../../secure-element/trusted-app.ts';
import { ackCodec, txOffCodec, type SignedAck, type TxOff } from './messages.ts';
import { accountKey, enclaveKey, ready, requireOpen, requirePayee, timeOf, type Ready } from './trusted-app-common.ts';
import { credit, INCOMING_MAX, OUTGOING_MAX, SEEN_MAX, type ChainState } from './trusted-app-state.ts';
import { buildAck, buildTxOff, checkAck, checkTxOff } from './tx-off.ts';
import { ADDRESS_BYTES, PAYMENT_KIND, paymentHash, UINT128_MAX } from './typed-data.ts';

const amount = bigint({ min: 1n, max: UINT128_MAX });
const address = bytes({ length: ADDRESS_BYTES });

/** The oldest `T_gen` (Unix seconds) whose payer's counter the TA still remembers: the drift bound before its clock. */
function seenHorizon(state: ChainState): bigint | null {
  return state.params === undefined ? null : BigInt(Math.floor(state.clock / 1000) - state.params.driftS);
}

/** Forgets the payers whose last payment is older than the drift bound of the TA's clock (such a `tx_off` is refused as stale). */
export function pruneSeen(state: ChainState): ChainState['seen'] {
  const oldest = seenHorizon(state);
  return oldest === null ? state.seen : state.seen.filter((s) => s.tGen >= oldest);
}

/** Records a payer's counter as seen. @throws Refused CHAIN_STORAGE_FULL */
function see(state: ChainState, txOff: TxOff): ChainState['seen'] {
  const { payer, counter, tGen } = txOff.payment;
  const others = pruneSeen(state).filter((s) => !equalBytes(s.payer, payer));
  if (others.length >= SEEN_MAX) refuse('CHAIN_STORAGE_FULL', 'the TA remembers as many payers as it can: sync to move its clock forward');
  return [...others, { payer, counter, tGen }];
}

/** The checks before a payee's TEE looks at the signatures: its own account, a payment, not seen, not older than what it remembers, room to keep it. */
function precheck(state: ChainState, r: Ready, txOff: TxOff): void {
  const { payment } = txOff;
  if (!equalBytes(payment.payee, r.account.address)) refuse('CHAIN_NOT_PAYEE', 'this payment is for another account');
  if (payment.kind !== PAYMENT_KIND.payment) refuse('CHAIN_TX_INVALID', 'not an offline payment');
  const last = state.seen.find((s) => equalBytes(s.payer, payment.payer));
  if (last !== undefined && payment.counter <= last.counter) refuse('CHAIN_REPLAYED', 'this payer’s counter was already used here: a replayed tx_off is never credited twice');
  // Older than what `seen` remembers: this TA may have credited it and, once the chain settled it,
  // forgotten it. An ack_fail now would give the payer back what this account was paid (and get
  // this account frozen for two acks): it neither credits nor declines it. The payer's TEE keeps it
  // held until the chain settles it (applied, or voided after the window).
  const horizon = seenHorizon(state);
  if (horizon !== null && payment.tGen < horizon) refuse('CHAIN_TX_STALE', 'this payment is older than the payers this TA remembers: it may have been taken here already, so the chain settles it');
  if (state.incoming.length >= INCOMING_MAX) refuse('CHAIN_STORAGE_FULL', 'the TA holds as many received payments as it can: reconcile first');
}

function checkContext(state: ChainState, r: Ready, env: TrustedEnv, now: number) {
  return { provider: env.provider, domain: r.domain, root: decodeCertificate(state.root as Uint8Array), intermediary: decodeCertificate(state.intermediary as Uint8Array), banks: r.params.banks ?? [], revoked: r.params.revoked, now };
}

/** The payment's ack already given, when the same `tx_off` comes again (its ack was lost on the way back). */
function answeredBefore(state: ChainState, txOff: TxOff): SignedAck | undefined {
  const hash = paymentHash(txOff.payment);
  return state.incoming.find((i) => equalBytes(i.ack.payment, hash))?.ack;
}

/** Finds the pending payment an ack answers. @throws Refused CHAIN_ACK_UNKNOWN */
function pendingFor(state: ChainState, ack: SignedAck): number {
  const index = state.outgoing.findIndex((o) => o.ack === undefined && o.txOff.payment.kind === PAYMENT_KIND.payment && equalBytes(paymentHash(o.txOff.payment), ack.payment));
  if (index < 0) refuse('CHAIN_ACK_UNKNOWN', 'no pending payment of this TA has this hash');
  return index;
}

const receiveOutput = record({ ack: ackCodec, credited: boolean, reason: optional(text({ max: 400 })) });
type ReceiveOutput = Infer<typeof receiveOutput>;

/** The transfer's commands. */
export const payCommands = {
  /** Algorithm 3 `transfer`: builds and signs `tx_off` for `amount` to `payee`; the amount is held until the ack. */
  transfer: command({
    input: record({ payee: address, amount, now: timestampMs }),
    output: record({ txOff: txOffCodec }),
    run(state: ChainState, input, env) {
      return guarded(() => {
        const r = ready(state);
        requireOpen(state);
        if (equalBytes(input.payee, r.account.address)) refuse('CHAIN_SELF_PAYMENT', 'an account does not pay itself');
        requirePayee(r, input.payee);
        if (input.amount > state.balance) refuse('INSUFFICIENT_FUNDS', `the account holds ${state.balance}, the payment is ${input.amount}`);
        if (state.outgoing.length >= OUTGOING_MAX) refuse('CHAIN_STORAGE_FULL', 'the TA holds as many unsettled payments as it can: reconcile first');
        const tGen = BigInt(Math.floor(timeOf(state, input.now) / 1000));
        const keys = { enclave: enclaveKey(env), account: accountKey(env, r.account.seed), certificate: r.certificate };
        const txOff = buildTxOff(r.domain, keys, { payee: input.payee, amount: input.amount, counter: state.counter, tGen, kind: PAYMENT_KIND.payment, balance: state.balance });
        return accept({ ...state, balance: state.balance - input.amount, counter: state.counter + 1n, outgoing: [...state.outgoing, { txOff }] }, { txOff });
      });
    },
  }),

  /** Algorithm 3 `save` + `pay`: the payee's `ack_win` settles the pending payment (the amount was held at `transfer`). */
  pay: command({
    input: record({ ack: ackCodec }),
    output: record({ payment: bytes({ length: 32 }), amount }),
    run(state: ChainState, input, env) {
      return guarded(() => {
        const r = ready(state);
        if (!input.ack.ok) refuse('CHAIN_ACK_INVALID', 'this is an ack_fail: use Abort');
        const index = pendingFor(state, input.ack);
        const entry = state.outgoing[index] as ChainState['outgoing'][number];
        checkAck(env.provider, r.domain, entry.txOff.payment, input.ack);
        const outgoing = state.outgoing.map((o, i) => (i === index ? { txOff: o.txOff, ack: input.ack } : o));
        return accept({ ...state, outgoing }, { payment: input.ack.payment, amount: entry.txOff.payment.amount });
      });
    },
  }),

  /** Algorithm 3 `abort`: the payee's `ack_fail` gives the held amount back; the ack is kept for the chain. */
  abort: command({
    input: record({ ack: ackCodec }),
    output: record({ payment: bytes({ length: 32 }), amount }),
    run(state: ChainState, input, env) {
      return guarded(() => {
        const r = ready(state);
        if (input.ack.ok) refuse('CHAIN_ACK_INVALID', 'this is an ack_win: use Pay');
        const index = pendingFor(state, input.ack);
        const entry = state.outgoing[index] as ChainState['outgoing'][number];
        checkAck(env.provider, r.domain, entry.txOff.payment, input.ack);
        const outgoing = state.outgoing.map((o, i) => (i === index ? { txOff: o.txOff, ack: input.ack } : o));
        return accept({ ...state, ...credit(state, entry.txOff.payment.amount), outgoing }, { payment: input.ack.payment, amount: entry.txOff.payment.amount });
      });
    },
  }),

  /**
   * Algorithm 4 `receive`: checks `tx_off` and credits it, answering `ack_win`; a `tx_off` it cannot
   * take is answered `ack_fail` and changes nothing. The same `tx_off` again is answered with the
   * same ack and credited once.
   */
  receive: command({
    input: record({ txOff: txOffCodec, now: timestampMs }),
    output: receiveOutput,
    run(state: ChainState, input, env): CommandResult<ChainState, ReceiveOutput> {
      return guarded(() => {
        const r = ready(state);
        requireOpen(state);
        const again = answeredBefore(state, input.txOff);
        if (again !== undefined) return accept(state, { ack: again, credited: false, reason: 'answered before' });
        precheck(state, r, input.txOff);
        const payee = accountKey(env, r.account.seed);
        const fail = (reason: string) => accept<ChainState, ReceiveOutput>(state, { ack: buildAck(r.domain, payee, input.txOff.payment, false), credited: false, reason: reason.slice(0, 400) });
        const now = timeOf(state, input.now);
        if (Math.abs(Number(input.txOff.payment.tGen) * 1000 - now) > r.params.driftS * 1000) return fail('T_gen is beyond the clock-drift bound');
        try {
          checkTxOff(checkContext(state, r, env, now), input.txOff);
        } catch (e) {
          if (e instanceof Refused || isTallyError(e)) return fail(e.message);
          throw e;
        }
        const ack = buildAck(r.domain, payee, input.txOff.payment, true);
        const seen = see(state, input.txOff);
        return accept({ ...state, ...credit(state, input.txOff.payment.amount), seen, incoming: [...state.incoming, { txOff: input.txOff, ack }] }, { ack, credited: true });
      });
    },
  }),

  /** Algorithm 4 `reject`: the payee declines an authentic `tx_off`; its `ack_fail` is kept, so it is never credited later. */
  reject: command({
    input: record({ txOff: txOffCodec, now: timestampMs }),
    output: record({ ack: ackCodec }),
    run(state: ChainState, input, env) {
      return guarded(() => {
        const r = ready(state);
        const again = answeredBefore(state, input.txOff);
        if (again !== undefined) return accept(state, { ack: again });
        precheck(state, r, input.txOff);
        checkTxOff(checkContext(state, r, env, timeOf(state, input.now)), input.txOff);
        const ack = buildAck(r.domain, accountKey(env, r.account.seed), input.txOff.payment, false);
        return accept({ ...state, seen: see(state, input.txOff), incoming: [...state.incoming, { txOff: input.txOff, ack }] }, { ack });
      });
    },
  }),
};
