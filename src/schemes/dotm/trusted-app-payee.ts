/**
 * The payee's side of the dual offline transaction in the trusted app (DOT-M §3.3.3): `request`
 * (step 1, λ), `accept` (steps 4–6: verify σ, link the current records, sign the notification),
 * `complete` (step 9 with a success message signed by wsk_P) and `rollback` (step 9 timed out, or a
 * reboot between steps 5 and 9). Pure.
 */
import { equalBytes } from '../../core/bytes.ts';
import { record } from '../../core/codec.ts';
import { signRecord, verifyRecord } from '../../core/crypto/record.ts';
import { isTallyError } from '../../core/errors.ts';
import { type VerifiedChain } from '../../pki/chain.ts';
import { accept, command, reject } from '../../secure-element/trusted-app.ts';
import { appendRecord, verifyBlock } from './block.ts';
import {
  ALPHA_TAG,
  alphaSigned,
  amountCodec,
  BETA_TAG,
  betaSigned,
  GAMMA_TAG,
  gammaSigned,
  notificationCodec,
  NOTIFICATION_TAG,
  notificationDigest,
  notificationSigned,
  successNoticeCodec,
  SUCCESS_TAG,
  successSigned,
  transactionDigest,
  transactionMessageCodec,
  transactionRequestCodec,
  TSN_BYTES,
  type Notification,
  type TransactionRequest,
} from './messages.ts';
import { WALLET_BLOCKS_MAX, type DotmState } from './trusted-app-state.ts';
import {
  usk,
  wsk,
  certified,
  NOT_CERTIFIED,
  checksOf,
  blockOptions,
  chainOf,
  walletChainFor,
  Refusal,
  guarded,
  clock,
  sameCopy,
  busy,
  withEvent,
  timeInput,
  closedOutput,
  eventRoom,
} from './trusted-app-common.ts';

const requestInput = record({ v: amountCodec, now: timeInput });
const acceptInput = record({ transaction: transactionMessageCodec, now: timeInput });
const completeInput = record({ success: successNoticeCodec });

/** The payee commands of the DOT-M trusted app. */
export const payeeCommands = {
  /** Step 1: λ = (tsn, v, α, ucert_R, β, wcert_R); tsn comes from the SE's generator. */
  request: command({
    input: requestInput,
    output: transactionRequestCodec,
    run(state: DotmState, input, env) {
      const c = certified(state);
      if (c === null) return NOT_CERTIFIED();
      const open = busy(state) ?? eventRoom(state);
      if (open !== null) return reject('WALLET_BUSY', open);
      const tsn = env.random(TSN_BYTES);
      const fields = { tsn, v: input.v };
      const request: TransactionRequest = {
        tsn,
        v: input.v,
        alpha: signRecord(usk(env), ALPHA_TAG, alphaSigned(fields)),
        ucertR: c.ucert,
        beta: signRecord(wsk(env), BETA_TAG, betaSigned(fields)),
        wcertR: c.wcert,
      };
      return accept({ ...state, requested: { tsn, v: input.v }, trustedTime: clock(state, input.now) }, request);
    },
  }),

  /** Steps 4–6: verify σ (γ, every record of every block, C's signature), link the current records, sign the notification. */
  accept: command({
    input: acceptInput,
    output: notificationCodec,
    run(state: DotmState, input, env) {
      const c = certified(state);
      if (c === null) return NOT_CERTIFIED();
      const asked = state.requested;
      const { tsd } = input.transaction;
      if (asked === undefined || !equalBytes(asked.tsn, tsd.tsn)) return reject('TRANSACTION_UNKNOWN', 'σ answers no open request of this wallet (replayed or for another transaction)');
      if (tsd.v !== asked.v) return reject('AMOUNT_MISMATCH', `σ pays ${tsd.v}, the request asked ${asked.v}`);
      const open = busy(state) ?? eventRoom(state);
      if (open !== null) return reject('WALLET_BUSY', open);
      return guarded(() => {
        const now = clock(state, input.now);
        // Each distinct certificate of σ is verified once in this accept, not once per record that names it.
        const checks = checksOf(state);
        // 4.1: γ under wpk_P, and wcert_P bound to the payer's ucert.
        const first = tsd.blocks[0]?.current;
        if (first === undefined) return reject('TRANSACTION_INVALID', 'σ carries no block');
        let payer: VerifiedChain;
        let wallet: VerifiedChain;
        try {
          payer = chainOf(checks, c, env, first.ucertP, now, 'user');
          wallet = walletChainFor(checks, c, env, input.transaction.wcertP, payer, now);
        } catch (e) {
          if (e instanceof Refusal || isTallyError(e, 'CERT_REVOKED')) throw e;
          return reject('TRANSACTION_INVALID', `the payer's certificates do not verify: ${e instanceof Error ? e.message : String(e)}`);
        }
        if (!verifyRecord(env.provider, wallet.subject, GAMMA_TAG, gammaSigned(tsd), input.transaction.gamma)) return reject('SIGNATURE_INVALID', 'γ does not verify under wpk_P');
        // 4.2 and 4.3: each block with its current record, whole, from C's signature to the new record.
        const blocks = [...state.blocks];
        const options = blockOptions(state, checks, c, env, now);
        for (const [k, { block, current }] of tsd.blocks.entries()) {
          if (!equalBytes(current.ucertP, first.ucertP)) return reject('TRANSACTION_INVALID', `block ${k}: its current record has another payer`);
          if (!equalBytes(current.ucertR, c.ucert)) return reject('PAYEE_MISMATCH', `block ${k}: its current record pays someone else`);
          const received = appendRecord(block, current);
          verifyBlock(received, options);
          if (blocks.some((b) => sameCopy(b, received))) return reject('BLOCK_DUPLICATE', `block ${k} is already in this wallet`);
          blocks.push(received);
        }
        if (blocks.length > WALLET_BLOCKS_MAX) return reject('WALLET_FULL', `the wallet would hold ${blocks.length} blocks, more than ${WALLET_BLOCKS_MAX}`);
        // Step 5 done; step 6: the notification, a receipt for exactly this σ.
        const transaction = transactionDigest(input.transaction);
        const fields = { tsn: tsd.tsn, transaction };
        const notification: Notification = { ...fields, signature: signRecord(usk(env), NOTIFICATION_TAG, notificationSigned(fields)) };
        const { requested: _done, ...rest } = state;
        const next: DotmState = { ...rest, blocks, receiving: { tsn: tsd.tsn, transaction, v: tsd.v, parts: tsd.blocks, notification, payerWallet: wallet.subject }, trustedTime: now };
        return accept(next, notification);
      });
    },
  }),

  /** Step 9 with the success message, verified under wpk_P from σ: the transaction is closed and stays. */
  complete: command({
    input: completeInput,
    output: closedOutput,
    run(state: DotmState, input, env) {
      const open = state.receiving;
      if (open === undefined) return reject('TRANSACTION_UNKNOWN', 'no received transaction is open');
      const { success } = input;
      if (!equalBytes(success.tsn, open.tsn) || !equalBytes(success.notification, notificationDigest(open.notification))) {
        return reject('SUCCESS_INVALID', 'the success message answers another notification');
      }
      return guarded(() => {
        // Only the payer's trusted app holds wsk_P: the payee's own app cannot make this message.
        if (open.payerWallet === undefined) return reject('SUCCESS_INVALID', 'this transaction was received before step 8 was signed: roll it back');
        if (!verifyRecord(env.provider, open.payerWallet, SUCCESS_TAG, successSigned(success), success.signature)) return reject('SIGNATURE_INVALID', 'the success message does not verify under wpk_P');
        const { receiving: _closed, ...rest } = state;
        const next = withEvent(rest, env, state.trustedTime, { kind: 'received', tsn: open.tsn, transaction: open.transaction, amount: open.v, parts: open.parts, notification: open.notification });
        return accept(next, { tsn: open.tsn, amount: open.v, seq: next.seq });
      });
    },
  }),

  /** Step 9 without it (timeout, or a reboot between steps 5 and 9): the copies of step 5 are taken out again. */
  rollback: command({
    input: record({}),
    output: closedOutput,
    run(state: DotmState, _input, env) {
      const open = state.receiving;
      if (open === undefined) return reject('TRANSACTION_UNKNOWN', 'no received transaction is open');
      const added = open.parts.map((p) => (p.current === undefined ? p.block : appendRecord(p.block, p.current)));
      const blocks = state.blocks.filter((b) => !added.some((a) => sameCopy(a, b)));
      const { receiving: _closed, ...rest } = state;
      const next = withEvent({ ...rest, blocks }, env, state.trustedTime, { kind: 'rolled-back', tsn: open.tsn, transaction: open.transaction, amount: open.v, parts: open.parts });
      return accept(next, { tsn: open.tsn, amount: open.v, seq: next.seq });
    },
  }),
};
