/**
 * OPS Figure 9 on the node: a receiver without a TA claims a payment made to its client
 * certificate, one at a time or in a batch judged payment by payment in one transaction.
 */
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { equalBytes, toHex } from '../../core/bytes.ts';
import { encodeCbor } from '../../core/cbor.ts';
import { isTallyError } from '../../core/errors.ts';
import { ApiProblem, base64urlOf, errorBody, formatMinor, idempotent, isSubjectRevoked, json, refusal, requireUser, transfer, transferJson, validBody, type ApiErrorCode, type IssuerEnv, type IssuerServices, type JsonValue, type TransactionHandle } from '../../issuer/plugin.ts';
import { PAYMENT_BYTES_MAX, paymentCodec, type Payment } from './messages.ts';
import { verifyPayment } from './pay-verify.ts';
import { ingestPayment, lockOpsDevice, retirementOf } from './node-settlement.ts';
import { OPS_FLOAT_ACCOUNT, answer, decodeCborField, openCases, senderLimitFinding } from './node-common.ts';

/** Largest base64url text of one claimed payment (single or batched). */
const CLAIM_PAYMENT_CHARS_MAX = 8192;

/**
 * Most payments in one `POST /v1/ops/claims/batch`. The request body limit (BODY_BYTES_MAX, 64 KiB)
 * also applies and binds first for ordinary payments: one to a client certificate is about 1,140
 * characters of base64url, so about 57 fit.
 */
export const CLAIMS_BATCH_PAYMENTS_MAX = 64;

/** Longest message of one refused payment in a batch answer, so that a full answer stays storable. */
const BATCH_MESSAGE_CHARS_MAX = 240;

const claimBody = z.strictObject({ payment: base64urlOf(CLAIM_PAYMENT_CHARS_MAX) });

const claimsBatchBody = z.strictObject({ payments: z.array(base64urlOf(CLAIM_PAYMENT_CHARS_MAX)).min(1).max(CLAIMS_BATCH_PAYMENTS_MAX) });

/** The caller's client certificate: what a claimable payment names as its receiver. */
async function claimerCertificate(services: IssuerServices, user: string): Promise<Uint8Array> {
  const mine = await services.db.query<{ certificate: Uint8Array }>('SELECT certificate FROM users WHERE key_id = $1', [user]);
  return new Uint8Array((mine.rows[0] as { certificate: Uint8Array }).certificate);
}

/** A claimed payment that passed PayVerify and names the claimer: what the transaction settles. */
interface VerifiedClaim {
  readonly payment: Payment;
  readonly sender: string;
  readonly digest: Uint8Array;
}

/**
 * Figure 9, the part without the database: S checks the payment is valid and made to the claimer's
 * client certificate. Answers the refusal as the single route throws it.
 */
function checkClaim(services: IssuerServices, payment: Payment, claimer: Uint8Array): VerifiedClaim | { problem: ApiProblem } {
  const { identity } = services;
  try {
    const verified = verifyPayment({
      provider: services.provider,
      payment,
      trustAnchors: [identity.root.certificate],
      intermediaries: [identity.intermediary.certificate],
      now: services.now(),
      currency: services.currency.code,
    });
    if (!equalBytes(payment.receiver, claimer)) {
      return { problem: new ApiProblem('PAYMENT_INVALID', 'the payment is not made to the caller\'s client certificate (a payment to a TA is collected, not claimed)', {}) };
    }
    return { payment, sender: toHex(verified.sender.subjectKeyId), digest: verified.digest };
  } catch (e) {
    if (isTallyError(e, 'PAYMENT_INVALID')) return { problem: new ApiProblem('PAYMENT_INVALID', e.message, { reason: e.details.reason }) };
    throw e;
  }
}

/** What settling one claim did: credited the claimer, or refused with a stable code. */
type ClaimOutcome =
  | { readonly credited: { sender: string; index: string; amount: string; transfer: { [key: string]: JsonValue } } }
  | { readonly refused: { code: ApiErrorCode; message: string } };

/**
 * Figure 9, the part in the ledger: the sender is not revoked past its last report, the payment is
 * fresh in the node's log (a different payment under its `(sender, index)` proves a clone), the
 * sender is within its offline limit; then `float:ops` pays the claimer. Runs in the caller's
 * transaction; a refusal keeps what it recorded (the payment, a fraud case), as evidence.
 */
async function settleClaim(tx: TransactionHandle, services: IssuerServices, claimer: { keyId: string; accountId: string }, claim: VerifiedClaim): Promise<ClaimOutcome> {
  const { payment, sender, digest } = claim;
  const refused = (code: ApiErrorCode, message: string): ClaimOutcome => ({ refused: { code, message } });
  const row = await lockOpsDevice(tx, sender);
  const retired = await retirementOf(tx, sender);
  if (retired !== null) {
    // A retired device's payments are paid from its escrow, while it lasts and before it is released.
    if (retired.released || retired.escrow < payment.amount) return refused('CERT_REVOKED', `the sender ${sender} was retired by its owner and what the node held for its payments does not cover payment ${payment.index}`);
  } else if (await isSubjectRevoked(tx, sender)) {
    if (row.honorUpTo === null || payment.index > row.honorUpTo) return refused('CERT_REVOKED', `the sender ${sender} is revoked and payment ${payment.index} came after its last settled report`);
  }
  const seen = await ingestPayment(tx, { sender, index: payment.index, digest, amount: payment.amount, receiver: claimer.keyId }, { payment: encodeCbor({ ...payment }) });
  if (seen.outcome === 'conflict') {
    await openCases(tx, services, [{ device: sender, kind: 'clone', evidence: { index: payment.index.toString(), claimed: toHex(digest), known: toHex(new Uint8Array(seen.row?.digest ?? new Uint8Array())) } }]);
    return refused('DOUBLE_SPEND', `sender ${sender} signed another payment with index ${payment.index}: its device is cloned or broken and has been revoked`);
  }
  if (seen.row?.settled !== null && seen.row?.settled !== undefined) return refused('PAYMENT_REPLAYED', `payment ${payment.index} of ${sender} was already ${seen.row.settled}`);
  const late = await senderLimitFinding(tx, sender);
  if (late !== null) {
    await openCases(tx, services, [late]);
    return refused('FRAUD_DETECTED', `sender ${sender} paid past its offline limit; its device has been revoked`);
  }
  const moved = await transfer(tx, {
    idempotencyKey: `ops-claim:${sender}:${payment.index}`,
    debit: OPS_FLOAT_ACCOUNT,
    credit: claimer.accountId,
    amount: payment.amount,
    kind: 'ops-claim',
    reference: { sender, index: payment.index.toString() },
    currency: services.currency,
  });
  if (!moved.ok) return refused(moved.code, moved.message);
  await tx.query(`UPDATE ops_payments SET settled = 'claimed' WHERE sender_key_id = $1 AND index = $2`, [sender, payment.index]);
  if (retired !== null) await tx.query('UPDATE ops_devices SET escrow = escrow - $2 WHERE device_key_id = $1', [sender, payment.amount]);
  return { credited: { sender, index: payment.index.toString(), amount: formatMinor(services.currency, payment.amount), transfer: transferJson(services.currency, moved.transfer) } };
}

/** One refused payment of a batch. */
type BatchRefusal = { readonly status: 'refused'; readonly code: string; readonly message: string };

function batchRefusal(code: ApiErrorCode, message: string): BatchRefusal {
  return { status: 'refused', code, message: message.slice(0, BATCH_MESSAGE_CHARS_MAX) };
}

const claimRoute = createRoute({
  method: 'post',
  path: '/claims',
  description: 'OPS Figure 9: a receiver without a TA claims a payment made to its client certificate.',
  request: { body: json(claimBody) },
  responses: { 200: answer('Claimed', z.object({ sender: z.string(), index: z.string(), amount: z.string() })), 409: { description: 'Replayed or double spent', ...errorBody } },
});

const claimsBatchRoute = createRoute({
  method: 'post',
  path: '/claims/batch',
  description: `Up to ${CLAIMS_BATCH_PAYMENTS_MAX} claims in one request and one transaction; each payment is judged as POST /claims judges it and answers its own result.`,
  request: { body: json(claimsBatchBody) },
  responses: {
    200: answer(
      'One result per payment, in order',
      z.object({
        results: z.array(
          z.union([
            z.object({ status: z.literal('credited'), sender: z.string(), index: z.string(), amount: z.string() }).passthrough(),
            z.object({ status: z.literal('refused'), code: z.string(), message: z.string() }),
          ]),
        ),
      }),
    ),
  },
});

/** Adds `POST /claims` and `POST /claims/batch`. */
export function registerClaims(app: OpenAPIHono<IssuerEnv>, services: IssuerServices): void {
  app.openAPIRegistry.registerPath(claimRoute);
  app.post(claimRoute.path, async (c) => {
    const user = requireUser(c.get('caller'));
    const body = validBody(c, claimBody);
    const payment = decodeCborField('payment', body.payment, paymentCodec, PAYMENT_BYTES_MAX);
    const checked = checkClaim(services, payment, await claimerCertificate(services, user.keyId));
    if ('problem' in checked) throw checked.problem;
    return idempotent(services, c, 'ops/claims', user.keyId, async (tx) => {
      const outcome = await settleClaim(tx, services, user, checked);
      if ('refused' in outcome) return refusal(outcome.refused.code, outcome.refused.message);
      return { status: 200, body: outcome.credited };
    });
  });

  app.openAPIRegistry.registerPath(claimsBatchRoute);
  app.post(claimsBatchRoute.path, async (c) => {
    const user = requireUser(c.get('caller'));
    const body = validBody(c, claimsBatchBody);
    const mine = await claimerCertificate(services, user.keyId);
    // Decoding and PayVerify need no database: every payment is judged before the transaction,
    // as the single route does, but a refusal here is that payment's result, not the request's.
    const judged = body.payments.map((text, k): VerifiedClaim | BatchRefusal => {
      let payment: Payment;
      try {
        payment = decodeCborField(`payments.${k}`, text, paymentCodec, PAYMENT_BYTES_MAX);
      } catch (e) {
        if (e instanceof ApiProblem) return batchRefusal(e.code, e.message);
        throw e;
      }
      const checked = checkClaim(services, payment, mine);
      return 'problem' in checked ? batchRefusal(checked.problem.code, checked.problem.message) : checked;
    });
    return idempotent(services, c, 'ops/claims/batch', user.keyId, async (tx) => {
      // Every sender's row is locked up front, in key order, so two batches (or a batch and a
      // single claim) naming the same senders in another order queue instead of deadlocking.
      const senders = [...new Set(judged.flatMap((j) => ('sender' in j ? [j.sender] : [])))].sort();
      for (const sender of senders) await lockOpsDevice(tx, sender);
      const results: Array<{ [key: string]: JsonValue }> = [];
      // In the request's order: a payment repeated in one batch is credited once, then replayed.
      for (const item of judged) {
        if (!('sender' in item)) {
          results.push(item);
          continue;
        }
        const outcome = await settleClaim(tx, services, user, item);
        results.push('refused' in outcome ? batchRefusal(outcome.refused.code, outcome.refused.message) : { status: 'credited', ...outcome.credited });
      }
      return { status: 200, body: { results } };
    });
  });
}
