/**
 * OPS Figure 9 on the node: a receiver without a TA claims a payment made to its client
 * certificate, one at a time or in a batch judged payment by payment in one transaction. In two
 * tiers, a payment from a device of another bank is presented to that bank through the central
 * bank, which judges it with the same checks (judgeOpsInterbankClaim).
 */
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { equalBytes, toHex } from '../../core/bytes.ts';
import { encodeCbor } from '../../core/cbor.ts';
import { isTallyError } from '../../core/errors.ts';
import {
  ApiProblem,
  base64urlOf,
  errorBody,
  formatMinor,
  idempotent,
  isSubjectRevoked,
  json,
  peerIntermediaries,
  presentInterbankClaim,
  refusal,
  requireUser,
  transfer,
  transferJson,
  validBody,
  type ApiErrorCode,
  type InterbankClaim,
  type InterbankJudgement,
  type IssuerEnv,
  type IssuerServices,
  type JsonValue,
  type PeerIntermediary,
  type TransactionHandle,
} from '../../issuer/plugin.ts';
import { decodeCertificate } from '../../pki/certificate.ts';
import type { VerifiedChain } from '../../pki/chain.ts';
import { keyId } from '../../pki/key-id.ts';
import { decodePayment, encodePayment, OPS_SCHEME, PAYMENT_BYTES_MAX, paymentCodec, type Payment } from './messages.ts';
import { verifyPayment } from './pay-verify.ts';
import { ingestPayment, lockOpsDevice, retirementOf } from './node-settlement.ts';
import { OPS_FLOAT_ACCOUNT, answer, decodeCborField, openCases, senderLimitFinding } from './node-common.ts';

/** Largest base64url text of one claimed payment (single or batched). */
export const CLAIM_PAYMENT_CHARS_MAX = 8192;

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
export async function claimerCertificate(services: IssuerServices, user: string): Promise<Uint8Array> {
  const mine = await services.db.query<{ certificate: Uint8Array }>('SELECT certificate FROM users WHERE key_id = $1', [user]);
  return new Uint8Array((mine.rows[0] as { certificate: Uint8Array }).certificate);
}

/** A claimed payment that passed PayVerify and names the claimer: what the transaction settles. */
export interface VerifiedClaim {
  readonly payment: Payment;
  readonly sender: string;
  readonly digest: Uint8Array;
  /** The key id of the intermediary that certified the sender, when it is another bank: the payment is presented there. */
  readonly payerBank: string | null;
}

/**
 * Figure 9, the part without the database: S checks the payment is valid and made to the claimer's
 * client certificate. The sender's chain reaches the root through this node's intermediary
 * certificate or, in two tiers, through another bank's that the central bank certified and has not
 * revoked. Answers the refusal as the single route throws it.
 */
export function checkClaim(services: IssuerServices, payment: Payment, claimer: Uint8Array, peers: readonly PeerIntermediary[]): (VerifiedClaim & { chains: { sender: VerifiedChain; receiver: VerifiedChain } }) | { problem: ApiProblem } {
  const { identity } = services;
  const own = identity.intermediary.certificate;
  try {
    const revokedBank = peers.find((p) => p.revoked && equalBytes(keyId(p.certificate.body.subject), decodeCertificate(payment.sender).body.issuer));
    if (revokedBank !== undefined) return { problem: new ApiProblem('CERT_REVOKED', `the sender's bank ${revokedBank.name} (${revokedBank.keyId}) is revoked by the central bank`, { bank: revokedBank.keyId }) };
    const verified = verifyPayment({
      provider: services.provider,
      payment,
      trustAnchors: [identity.root.certificate],
      intermediaries: [own, ...peers.filter((p) => !p.revoked).map((p) => p.certificate)],
      now: services.now(),
      currency: services.currency.code,
    });
    if (!equalBytes(payment.receiver, claimer)) {
      return { problem: new ApiProblem('PAYMENT_INVALID', 'the payment is not made to the caller\'s client certificate (a payment to a TA is collected, not claimed)', {}) };
    }
    const bank = issuingBank(verified.sender);
    return {
      payment,
      sender: toHex(verified.sender.subjectKeyId),
      digest: verified.digest,
      payerBank: bank === toHex(keyId(own.body.subject)) ? null : bank,
      chains: { sender: verified.sender, receiver: verified.receiver },
    };
  } catch (e) {
    if (isTallyError(e, 'PAYMENT_INVALID')) return { problem: new ApiProblem('PAYMENT_INVALID', e.message, { reason: e.details.reason }) };
    if (isTallyError(e, 'DECODE_FAILED') || isTallyError(e, 'CBOR_MALFORMED') || isTallyError(e, 'CBOR_NONCANONICAL') || isTallyError(e, 'CERT_MALFORMED')) {
      return { problem: new ApiProblem('PAYMENT_INVALID', `payment refused: sender certificate: ${e.message}`, {}) };
    }
    throw e;
  }
}

/** The key id (hex) of the intermediary in a verified chain: the bank that certified its leaf. */
function issuingBank(chain: VerifiedChain): string {
  const intermediary = chain.path[1];
  if (intermediary === undefined || intermediary.body.role !== 'intermediary') throw new ApiProblem('PAYMENT_INVALID', 'the certificate chain has no intermediary', {});
  return toHex(keyId(intermediary.body.subject));
}

/** What settling one claim did: credited the claimer, or refused with a stable code. */
export type ClaimOutcome =
  | { readonly credited: { sender: string; index: string; amount: string; transfer: { [key: string]: JsonValue } } }
  | { readonly refused: { code: ApiErrorCode; message: string } };

/**
 * Figure 9, the part in the ledger: the sender is not revoked past its last report, the payment is
 * fresh in the node's log (a different payment under its `(sender, index)` proves a clone), the
 * sender is within its offline limit; then `float:ops` pays the claimer. Runs in the caller's
 * transaction; a refusal keeps what it recorded (the payment, a fraud case), as evidence.
 */
export async function settleClaim(
  tx: TransactionHandle,
  services: IssuerServices,
  claimer: { keyId: string; accountId: string },
  claim: Pick<VerifiedClaim, 'payment' | 'sender' | 'digest'>,
  options: { kind: string; claimId?: string } = { kind: 'ops-claim' },
): Promise<ClaimOutcome> {
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
    kind: options.kind,
    reference: { sender, index: payment.index.toString(), ...(options.claimId === undefined ? {} : { claim: options.claimId }) },
    currency: services.currency,
  });
  if (!moved.ok) return refused(moved.code, moved.message);
  await tx.query(`UPDATE ops_payments SET settled = 'claimed' WHERE sender_key_id = $1 AND index = $2`, [sender, payment.index]);
  if (retired !== null) await tx.query('UPDATE ops_devices SET escrow = escrow - $2 WHERE device_key_id = $1', [sender, payment.amount]);
  return { credited: { sender, index: payment.index.toString(), amount: formatMinor(services.currency, payment.amount), transfer: transferJson(services.currency, moved.transfer) } };
}

/** Presents a verified payment from another bank's device as an interbank claim for `claimer`. */
export async function presentClaim(tx: TransactionHandle, services: IssuerServices, claimer: { keyId: string; accountId: string }, claim: VerifiedClaim, payerBank: string): Promise<{ [key: string]: JsonValue }> {
  const presented = await presentInterbankClaim(tx, services, { scheme: OPS_SCHEME, payerBank, amount: claim.payment.amount, evidence: encodePayment(claim.payment), payee: claimer });
  return { sender: claim.sender, index: claim.payment.index.toString(), amount: formatMinor(services.currency, claim.payment.amount), claim: { ...presented } };
}

/**
 * At the payer's bank: judges a claim another bank presented through the central bank, on a payment
 * one of this node's devices made to a customer of that bank. PayVerify with both banks'
 * certificates; the sender must be this bank's device, the receiver a customer of the presenting
 * bank, the amount the claimed one; then the checks of every claim here (revocation, the payment
 * log that catches a clone's second payment and opens its fraud case, replay, the offline limit),
 * and `float:ops` pays `payTo`, the reserve the central bank moves the money from.
 */
export async function judgeOpsInterbankClaim(tx: TransactionHandle, services: IssuerServices, claim: InterbankClaim, payTo: string): Promise<InterbankJudgement> {
  const refuse = (code: string, reason: string): InterbankJudgement => ({ accepted: false, code, reason });
  const { identity } = services;
  const own = identity.intermediary.certificate;
  const payee = (await peerIntermediaries(services, tx)).find((p) => p.keyId === claim.payeeBank);
  if (payee === undefined) return refuse('BANK_UNKNOWN', `the presenting bank ${claim.payeeBank} is not in this bank's directory of intermediaries`);
  if (payee.revoked) return refuse('CERT_REVOKED', `the presenting bank ${payee.name} is revoked by the central bank`);
  let payment: Payment;
  let verified: ReturnType<typeof verifyPayment>;
  try {
    payment = decodePayment(claim.evidence);
    verified = verifyPayment({ provider: services.provider, payment, trustAnchors: [identity.root.certificate], intermediaries: [own, payee.certificate], now: services.now(), currency: services.currency.code });
  } catch (e) {
    if (isTallyError(e)) return refuse(e.code === 'CERT_REVOKED' || e.code === 'PAYMENT_INVALID' ? e.code : 'PAYMENT_INVALID', e.message);
    throw e;
  }
  if (issuingBank(verified.sender) !== toHex(keyId(own.body.subject))) return refuse('PAYMENT_INVALID', 'the payment was not made by a device of this bank');
  if (issuingBank(verified.receiver) !== claim.payeeBank) return refuse('PAYMENT_INVALID', `the payment is not made to a customer of the presenting bank ${payee.name}`);
  if (payment.amount !== claim.amount) return refuse('CLAIM_INVALID', `the claim asks ${formatMinor(services.currency, claim.amount)}, the payment is of ${formatMinor(services.currency, payment.amount)}`);
  const receiver = toHex(verified.receiver.subjectKeyId);
  const outcome = await settleClaim(tx, services, { keyId: receiver, accountId: payTo }, { payment, sender: toHex(verified.sender.subjectKeyId), digest: verified.digest }, { kind: 'ops-interbank', claimId: claim.claimId });
  return 'refused' in outcome ? refuse(outcome.refused.code, outcome.refused.message) : { accepted: true };
}

/** One refused payment of a batch. */
type BatchRefusal = { readonly status: 'refused'; readonly code: string; readonly message: string };

function batchRefusal(code: ApiErrorCode, message: string): BatchRefusal {
  return { status: 'refused', code, message: message.slice(0, BATCH_MESSAGE_CHARS_MAX) };
}

const claimRoute = createRoute({
  method: 'post',
  path: '/claims',
  description: "OPS Figure 9: a receiver without a TA claims a payment made to its client certificate. A payment from another bank's device is presented to that bank as an interbank claim.",
  request: { body: json(claimBody) },
  responses: {
    200: answer('Claimed', z.object({ sender: z.string(), index: z.string(), amount: z.string() })),
    202: answer("Made by a device of another bank: presented to that bank through the central bank; credited once settled", z.object({ sender: z.string(), index: z.string(), amount: z.string(), claim: z.object({ claimId: z.string(), status: z.string() }).passthrough() })),
    409: { description: 'Replayed or double spent', ...errorBody },
  },
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
            z.object({ status: z.literal('presented'), claim: z.object({ claimId: z.string(), status: z.string() }).passthrough() }).passthrough(),
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
    const checked = checkClaim(services, payment, await claimerCertificate(services, user.keyId), await peerIntermediaries(services));
    if ('problem' in checked) throw checked.problem;
    return idempotent(services, c, 'ops/claims', user.keyId, async (tx) => {
      // A device of another bank: the claim goes to that bank through the central bank; the
      // claimer is credited once it is settled (202 now, its state at GET /v1/interbank/claims/{id}).
      if (checked.payerBank !== null) return { status: 202, body: await presentClaim(tx, services, user, checked, checked.payerBank) };
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
    const peers = await peerIntermediaries(services);
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
      const checked = checkClaim(services, payment, mine, peers);
      return 'problem' in checked ? batchRefusal(checked.problem.code, checked.problem.message) : checked;
    });
    return idempotent(services, c, 'ops/claims/batch', user.keyId, async (tx) => {
      // Every sender's row is locked up front, in key order, so two batches (or a batch and a
      // single claim) naming the same senders in another order queue instead of deadlocking.
      // (A device of another bank has no row here: its bank judges it.)
      const senders = [...new Set(judged.flatMap((j) => ('sender' in j && j.payerBank === null ? [j.sender] : [])))].sort();
      for (const sender of senders) await lockOpsDevice(tx, sender);
      const results: Array<{ [key: string]: JsonValue }> = [];
      // In the request's order: a payment repeated in one batch is credited once, then replayed.
      for (const item of judged) {
        if (!('sender' in item)) {
          results.push(item);
          continue;
        }
        if (item.payerBank !== null) {
          results.push({ status: 'presented', ...(await presentClaim(tx, services, user, item, item.payerBank)) });
          continue;
        }
        const outcome = await settleClaim(tx, services, user, item);
        results.push('refused' in outcome ? batchRefusal(outcome.refused.code, outcome.refused.message) : { status: 'credited', ...outcome.credited });
      }
      return { status: 200, body: { results } };
    });
  });
}
