/**
 * The payer's side of the dual offline transaction in the trusted app (DOT-M §3.3.3): `pay` (steps
 * 2–3: check λ and pwd, choose the blocks, sign the records with usk_P and tsd with wsk_P),
 * `confirm` (step 7: verify the notification, deduct; step 8's message signed with wsk_P) and
 * `abandon` (no notification came: the offer is withdrawn). Pure.
 */
import { equalBytes, toHex } from '../../core/bytes.ts';
import { oneOf, optional, record, text, uint, type Infer } from '../../core/codec.ts';
import { signRecord, verifyRecord } from '../../core/crypto/record.ts';
import { isTallyError } from '../../core/errors.ts';
import { decodeCertificate } from '../../pki/certificate.ts';
import { type VerifiedChain } from '../../pki/chain.ts';
import { accept, command, reject, type TrustedEnv } from '../../secure-element/trusted-app.ts';
import { blockTip, deductRemaining, splitForPayment } from './block.ts';
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
  RECORD_TAG,
  recordSigned,
  successNoticeCodec,
  SUCCESS_TAG,
  successSigned,
  transactionDigest,
  transactionMessageCodec,
  transactionRequestCodec,
  type TransactionData,
  type TransactionMessage,
  type TransactionRecord,
  type TransactionRequest,
} from './messages.ts';
import { PASSWORD_CHARS_MAX, PASSWORD_TRIES_MAX, type DotmState, type Offer } from './trusted-app-state.ts';
import {
  usk,
  wsk,
  type Certified,
  certified,
  NOT_CERTIFIED,
  checksOf,
  chainOf,
  walletChainFor,
  Refusal,
  refusal,
  guarded,
  clock,
  sameCopy,
  balanceOf,
  busy,
  withEvent,
  timeInput,
  keyIdInput,
  closedOutput,
  eventRoom,
} from './trusted-app-common.ts';
import { checkPassword } from './trusted-app-password.ts';

const payInput = record({
  request: transactionRequestCodec,
  password: text({ max: PASSWORD_CHARS_MAX }),
  /** Step 2.3: the payer's intention; the amount and, when given, the payee's user key id. */
  expect: record({ v: amountCodec, payee: optional(keyIdInput) }),
  now: timeInput,
});
const payOutput = record({
  kind: oneOf(['transaction', 'wrong-password'] as const),
  transaction: optional(transactionMessageCodec),
  triesLeft: uint({ max: PASSWORD_TRIES_MAX }),
});
const confirmInput = record({ notification: notificationCodec });
/** Step 2: the payer's checks of λ. Throws a Refusal naming the failed check. */
function checkRequest(state: DotmState, c: Certified, env: TrustedEnv, request: TransactionRequest, expect: { v: bigint; payee?: Uint8Array | undefined }, now: number): VerifiedChain {
  let user: VerifiedChain;
  let wallet: VerifiedChain;
  try {
    const checks = checksOf(state);
    user = chainOf(checks, c, env, request.ucertR, now, 'user');
    wallet = walletChainFor(checks, c, env, request.wcertR, user, now);
  } catch (e) {
    if (e instanceof Refusal) throw e;
    if (isTallyError(e, 'CERT_REVOKED')) throw refusal('CERT_REVOKED', `the payee's certificate is revoked: ${e.message}`);
    throw refusal('REQUEST_INVALID', `the payee's certificates do not verify: ${e instanceof Error ? e.message : String(e)}`);
  }
  // 2.1 and 2.2.
  if (!verifyRecord(env.provider, user.subject, ALPHA_TAG, alphaSigned(request), request.alpha)) throw refusal('SIGNATURE_INVALID', 'α does not verify under upk_R');
  if (!verifyRecord(env.provider, wallet.subject, BETA_TAG, betaSigned(request), request.beta)) throw refusal('SIGNATURE_INVALID', 'β does not verify under wpk_R');
  // 2.3: what the payer meant to pay, and to whom.
  if (request.v !== expect.v) throw refusal('AMOUNT_MISMATCH', 'the payee asks for another amount than the payer agreed to');
  if (expect.payee !== undefined && !equalBytes(expect.payee, user.subjectKeyId)) {
    throw refusal('PAYEE_MISMATCH', `the payee is ${toHex(user.subjectKeyId)}, not the ${toHex(expect.payee)} the payer meant to pay`);
  }
  if (equalBytes(request.ucertR, c.ucert)) throw refusal('PAYEE_MISMATCH', 'a wallet cannot pay its own user');
  return user;
}

/** Step 3.1: the records, signed with usk_P, appended to the chosen blocks. */
function buildTransactionData(state: DotmState, c: Certified, env: TrustedEnv, request: TransactionRequest, now: number): TransactionData {
  // 2.4: the remaining value must cover v.
  const plan = splitForPayment(state.blocks, request.v);
  if (!plan.ok) {
    const held = balanceOf(state.blocks);
    if (held < request.v) throw refusal('INSUFFICIENT_FUNDS', 'the wallet holds less than the amount to pay');
    throw refusal('LIMIT_REACHED', "the wallet holds enough, but not in blocks one offline payment may use (too many blocks or records, or blocks that must go online first)");
  }
  const signer = usk(env);
  const blocks = plan.parts.map(({ block, amount }) => {
    const fields = { prev: blockTip(block), amount, timestamp: now, ucertP: c.ucert, ucertR: request.ucertR };
    const current: TransactionRecord = { ...fields, signature: signRecord(signer, RECORD_TAG, recordSigned(fields)) };
    return { block, current };
  });
  return { tsn: request.tsn, v: request.v, nb: blocks.length, nd: blocks.reduce((n, t) => n + t.block.records.length, 0), blocks };
}


/** The payer commands of the DOT-M trusted app. */
export const payerCommands = {
  /** Steps 2–3: pwd, the checks of λ, then σ = (tsd, γ, wcert_P); the blocks are held until step 7 or abandon. */
  pay: command<DotmState, Infer<typeof payInput>, Infer<typeof payOutput>>({
    input: payInput,
    output: payOutput,
    run(state: DotmState, input, env) {
      const c = certified(state);
      if (c === null) return NOT_CERTIFIED();
      const pwd = checkPassword(state, input.password);
      if (pwd.kind === 'refused') return pwd.result;
      if (pwd.kind === 'wrong') return accept(pwd.state, { kind: 'wrong-password', triesLeft: pwd.triesLeft });
      const open = busy(state) ?? eventRoom(state);
      if (open !== null) return reject('WALLET_BUSY', open);
      return guarded(() => {
        const now = clock(state, input.now);
        checkRequest(state, c, env, input.request, input.expect, now);
        const tsd = buildTransactionData(state, c, env, input.request, now);
        const transaction: TransactionMessage = { tsd, gamma: signRecord(wsk(env), GAMMA_TAG, gammaSigned(tsd)), wcertP: c.wcert };
        const offer: Offer = { tsn: tsd.tsn, transaction: transactionDigest(transaction), v: tsd.v, ucertR: input.request.ucertR, parts: tsd.blocks };
        const next: DotmState = { ...pwd.state, offer, trustedTime: now };
        return accept(next, { kind: 'transaction', transaction, triesLeft: PASSWORD_TRIES_MAX });
      });
    },
  }),

  /** Step 7: the notification verified under upk_R from λ; the held blocks are deducted; step 8's message, signed with wsk_P. */
  confirm: command({
    input: confirmInput,
    output: successNoticeCodec,
    run(state: DotmState, input, env) {
      const offer = state.offer;
      if (offer === undefined) return reject('TRANSACTION_UNKNOWN', 'no payment offer is open');
      const n = input.notification;
      if (!equalBytes(n.tsn, offer.tsn) || !equalBytes(n.transaction, offer.transaction)) return reject('NOTIFICATION_INVALID', 'the notification names another transaction');
      return guarded(() => {
        const payee = decodeCertificate(offer.ucertR).body.subject;
        if (!verifyRecord(env.provider, payee, NOTIFICATION_TAG, notificationSigned(n), n.signature)) return reject('SIGNATURE_INVALID', 'the notification does not verify under upk_R');
        let blocks = [...state.blocks];
        for (const { block, current } of offer.parts) {
          const at = blocks.findIndex((b) => sameCopy(b, block));
          const held = blocks[at];
          if (held === undefined || current === undefined) return reject('TRANSACTION_INVALID', 'a block of the offer is no longer in the wallet');
          const left = deductRemaining(held, current.amount);
          blocks = left.remaining === 0n ? blocks.filter((_, i) => i !== at) : blocks.map((b, i) => (i === at ? left : b));
        }
        const { offer: _closed, ...rest } = state;
        const next = withEvent({ ...rest, blocks }, env, state.trustedTime, { kind: 'sent', tsn: offer.tsn, transaction: offer.transaction, amount: offer.v, parts: offer.parts, notification: n });
        const fields = { tsn: offer.tsn, notification: notificationDigest(n) };
        return accept(next, { ...fields, signature: signRecord(wsk(env), SUCCESS_TAG, successSigned(fields)) });
      });
    },
  }),

  /** The payer gives up an offer no notification answered (exceptional situations 1 and 4): nothing was paid. */
  abandon: command({
    input: record({}),
    output: closedOutput,
    run(state: DotmState, _input, env) {
      const offer = state.offer;
      if (offer === undefined) return reject('TRANSACTION_UNKNOWN', 'no payment offer is open');
      const { offer: _closed, ...rest } = state;
      const next = withEvent(rest, env, state.trustedTime, { kind: 'abandoned', tsn: offer.tsn, transaction: offer.transaction, amount: offer.v, parts: offer.parts });
      return accept(next, { tsn: offer.tsn, amount: offer.v, seq: next.seq });
    },
  }),
};
