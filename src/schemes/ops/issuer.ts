/**
 * OPS on the issuer node, mounted under `/v1/ops/`: deposit (Figure 5), withdraw (Figure 6), claim
 * (Figure 9) and the sync that reconciles each device's flow (see settlement.ts). Value out on
 * devices sits in the `float:ops` account: deposits move it there from the holder's account,
 * withdrawals and claims move it back out; payments between devices leave it where it is.
 */
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { equalBytes, toBase64url, toHex } from '../../core/bytes.ts';
import { decodeCbor, encodeCbor } from '../../core/cbor.ts';
import type { Codec } from '../../core/codec.ts';
import { signRecord, verifyRecord } from '../../core/crypto/record.ts';
import type { PublicKey, SuiteName } from '../../core/crypto/suite.ts';
import { isTallyError } from '../../core/errors.ts';
import { decodeCertificate, type Certificate } from '../../pki/certificate.ts';
import { keyId } from '../../pki/key-id.ts';
import { ApiProblem, amountText, base64url, base64urlOf, bigintColumn, currentRevocationList, decodeField, ensureAccount, errorBody, formatMinor, idempotent, isSubjectRevoked, json, keyIdHex, parseAmount, refusal, requireOperator, requireUser, revokeCertificate, transfer, transferJson, validBody, type ApiErrorCode, type IssuerEnv, type IssuerServices, type JsonValue, type SchemeModule, type TransactionHandle } from '../../issuer/plugin.ts';
import {
  depositSigned,
  DEPOSIT_TAG,
  OPS_SCHEME,
  PAYMENT_BYTES_MAX,
  paymentCodec,
  syncAckBodyWire,
  syncReportBodyWire,
  syncReportCodec,
  SYNC_ACK_TAG,
  SYNC_REPORT_TAG,
  withdrawConfirmationCodec,
  withdrawSigned,
  WITHDRAW_TAG,
  type DepositConfirmation,
  type Payment,
  type SyncAck,
} from './messages.ts';
import { verifyPayment } from './pay-verify.ts';
import { checkOfflineLimit, checkSignedCounters, ingestPayment, lockOpsDevice, openFraudCase, opsHoldings, reconcileReport, recordSignedCounters, retirementOf, retirementValue, type FraudFinding } from './settlement.ts';

/** The ledger account holding what is out on OPS devices. */
export const OPS_FLOAT_ACCOUNT = 'float:ops';
/** Largest encoded sync report accepted. */
export const SYNC_REPORT_BYTES_MAX = 40 * 1024;

const depositBody = z.strictObject({ device: keyIdHex, amount: amountText });
const withdrawBody = z.strictObject({ device: keyIdHex, confirmation: base64url });
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
const retireBody = z.strictObject({ reason: z.string().max(200).regex(/^[^\p{Cc}\p{Cs}]*$/u, 'text without control characters').optional() });
const claimsBatchBody = z.strictObject({ payments: z.array(base64urlOf(CLAIM_PAYMENT_CHARS_MAX)).min(1).max(CLAIMS_BATCH_PAYMENTS_MAX) });
const syncBody = z.strictObject({ device: keyIdHex, report: base64urlOf(Math.ceil((SYNC_REPORT_BYTES_MAX * 4) / 3)) });

const answer = (description: string, schema: z.ZodType) => ({ description, content: { 'application/json': { schema } } });

const routes = {
  deposit: createRoute({
    method: 'post',
    path: '/deposits',
    description: 'OPS Figure 5: moves online funds to the caller\'s TA; answers the server-signed confirmation [T.vk, x, i].',
    request: { body: json(depositBody) },
    responses: { 200: answer('Deposited', z.object({ device: z.string(), amount: z.string(), i: z.string(), confirmation: z.string() })), 422: { description: 'Refused', ...errorBody } },
  }),
  withdraw: createRoute({
    method: 'post',
    path: '/withdrawals',
    description: 'OPS Figure 6: credits the caller\'s account with a TA-signed withdraw confirmation [x, i].',
    request: { body: json(withdrawBody) },
    responses: { 200: answer('Withdrawn', z.object({ device: z.string(), amount: z.string(), i: z.string() })), 409: { description: 'Counter out of sync', ...errorBody } },
  }),
  claim: createRoute({
    method: 'post',
    path: '/claims',
    description: 'OPS Figure 9: a receiver without a TA claims a payment made to its client certificate.',
    request: { body: json(claimBody) },
    responses: { 200: answer('Claimed', z.object({ sender: z.string(), index: z.string(), amount: z.string() })), 409: { description: 'Replayed or double spent', ...errorBody } },
  }),
  claimsBatch: createRoute({
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
  }),
  sync: createRoute({
    method: 'post',
    path: '/sync',
    description: 'A device\'s signed report of what it paid and collected; answers the node\'s ack and the current revocation list.',
    request: { body: json(syncBody) },
    responses: { 200: answer('Reconciled', z.object({ ack: z.string(), crl: z.string(), crlVersion: z.number().int(), fraud: z.array(z.object({ device: z.string(), kind: z.string() })) })) },
  }),
  device: createRoute({
    method: 'get',
    path: '/devices/{keyId}',
    description: 'The node\'s view of an OPS device: S.i, the last report, fraud cases (owner or operator).',
    request: { params: z.object({ keyId: keyIdHex }) },
    responses: { 200: answer('The device', z.object({ keyId: z.string() }).passthrough()) },
  }),
  retire: createRoute({
    method: 'post',
    path: '/devices/{keyId}/retire',
    description:
      'The owner retires a device whose secure element is lost or refuses to run: the node revokes it and holds what it knows the device held in escrow; the device\'s payments that surface are paid from it, and the rest goes to the owner when the same call is made after the hold.',
    request: { params: z.object({ keyId: keyIdHex }), body: json(retireBody) },
    responses: { 200: answer('Retired (held), or released', z.object({ device: z.string(), status: z.string(), escrow: z.string(), releaseAt: z.string() }).passthrough()), 403: { description: 'Revoked', ...errorBody } },
  }),
  fraud: createRoute({
    method: 'get',
    path: '/fraud',
    description: 'Every fraud case settlement opened (operator).',
    responses: { 200: answer('Fraud cases', z.object({ cases: z.array(z.object({ device: z.string(), kind: z.string() }).passthrough()) })) },
  }),
};

interface DeviceRow {
  suite: SuiteName;
  public_key: Uint8Array;
  owner_key_id: string;
  scheme: string;
  certificate: Uint8Array;
}

/**
 * The caller's OPS device, or a stored refusal. A revoked device is refused unless `allowRevoked`
 * (its sync reports are still evidence).
 */
async function ownDevice(
  tx: TransactionHandle,
  device: string,
  owner: string,
  options: { allowRevoked?: boolean } = {},
): Promise<{ key: PublicKey; certificate: Certificate } | { refused: ReturnType<typeof refusal> }> {
  const { rows } = await tx.query<DeviceRow>('SELECT suite, public_key, owner_key_id, scheme, certificate FROM devices WHERE key_id = $1', [device]);
  const row = rows[0];
  if (row === undefined || row.owner_key_id !== owner) return { refused: refusal('DEVICE_UNKNOWN', `the caller has no device ${device}`) };
  if (row.scheme !== OPS_SCHEME) return { refused: refusal('DEVICE_UNKNOWN', `device ${device} is registered for ${row.scheme}, not ${OPS_SCHEME}`) };
  if (options.allowRevoked !== true && (await isSubjectRevoked(tx, device))) return { refused: refusal('CERT_REVOKED', `device ${device} is revoked`) };
  return { key: { suite: row.suite, key: new Uint8Array(row.public_key) }, certificate: decodeCertificate(new Uint8Array(row.certificate)) };
}

/** Decodes a base64url CBOR field of the body with `codec`. @throws ApiProblem BODY_INVALID, TOO_LARGE */
function decodeCborField<T>(field: string, text: string, codec: Codec<T>, max: number): T {
  const bytes = decodeField(`body.${field}`, text);
  if (bytes.length > max) throw new ApiProblem('TOO_LARGE', `body.${field} of ${bytes.length} bytes is over the limit of ${max}`, { max });
  try {
    return codec.decode(decodeCbor(bytes, { maxBytes: max }), field);
  } catch (e) {
    if (isTallyError(e)) throw new ApiProblem('BODY_INVALID', `body.${field}: ${e.message}`, {});
    throw e;
  }
}

/** Opens the findings as fraud cases (each revokes its device); answers those newly opened. */
async function openCases(tx: TransactionHandle, services: IssuerServices, findings: readonly FraudFinding[]): Promise<FraudFinding[]> {
  const opened: FraudFinding[] = [];
  for (const finding of findings) {
    const done = await openFraudCase(tx, services.identity.intermediary.signer, services.now(), finding);
    if (done !== null) opened.push(done);
  }
  return opened;
}

/**
 * How long the node holds a retired device's value before it goes to the owner: the payments the
 * device made offline and nobody reported yet surface meanwhile (a payee claims, or its TA's collect
 * is reported) and are paid from it.
 */
export const RETIREMENT_HOLD_MS = 30 * 24 * 3600 * 1000;

/** A retired device's escrow as the API shows it. */
function retirementJson(services: IssuerServices, device: string, held: { escrow: bigint; releaseAt: number; released: boolean }, transferred: { [key: string]: JsonValue } | null): { [key: string]: JsonValue } {
  return {
    device,
    status: held.released ? 'released' : 'held',
    escrow: formatMinor(services.currency, held.escrow),
    currency: services.currency.code,
    releaseAt: new Date(held.releaseAt).toISOString(),
    ...(transferred === null ? {} : { refund: transferred }),
  };
}

/** The offline payment limit in a device's certificate. */
async function limitOf(tx: TransactionHandle, device: string): Promise<number | null> {
  const { rows } = await tx.query<{ certificate: Uint8Array }>('SELECT certificate FROM devices WHERE key_id = $1', [device]);
  if (rows[0] === undefined) return null;
  return decodeCertificate(new Uint8Array(rows[0].certificate)).body.extensions.offlinePaymentsMax ?? null;
}

/** The offline-limit check for a payment's sender, against the sender's own last report. */
async function senderLimitFinding(tx: TransactionHandle, sender: string): Promise<FraudFinding | null> {
  const limit = await limitOf(tx, sender);
  if (limit === null) return null;
  const row = await lockOpsDevice(tx, sender);
  return checkOfflineLimit(tx, sender, row.reportedJ, limit);
}

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

/** The OPS scheme's module for the issuer node. */
export const opsIssuerModule: SchemeModule = {
  name: OPS_SCHEME,
  migrationsDir: new URL('./migrations/', import.meta.url),

  holdings: (q) => opsHoldings(q, OPS_FLOAT_ACCOUNT),

  async prepare(services) {
    const opened = await services.db.transaction((tx) => ensureAccount(tx, { id: OPS_FLOAT_ACCOUNT, kind: 'offline-float', currency: services.currency.code }));
    if (!opened.ok) throw new Error(`cannot open ${OPS_FLOAT_ACCOUNT}: ${opened.message}`);
  },

  register(app: OpenAPIHono<IssuerEnv>, services: IssuerServices) {
    const { identity } = services;

    app.openAPIRegistry.registerPath(routes.deposit);
    app.post(routes.deposit.path, async (c) => {
      const user = requireUser(c.get('caller'));
      const body = validBody(c, depositBody);
      const amount = parseAmount(services, body.amount).minor;
      return idempotent(services, c, 'ops/deposits', user.keyId, async (tx) => {
        const device = await ownDevice(tx, body.device, user.keyId);
        if ('refused' in device) return device.refused;
        const limit = device.certificate.body.extensions.holdingLimit;
        if (limit !== undefined && amount > limit) {
          return refusal('HOLDING_LIMIT', `${body.amount} ${services.currency.code} is over the device's holding limit of ${formatMinor(services.currency, limit)} ${services.currency.code}`);
        }
        const row = await lockOpsDevice(tx, body.device);
        const i = row.i + 1n;
        const moved = await transfer(tx, {
          idempotencyKey: `ops-deposit:${body.device}:${i}`,
          debit: user.accountId,
          credit: OPS_FLOAT_ACCOUNT,
          amount,
          kind: 'ops-deposit',
          reference: { device: body.device, i: i.toString() },
          currency: services.currency,
        });
        if (!moved.ok) return refusal(moved.code, moved.message);
        await tx.query('INSERT INTO ops_counter_ops (device_key_id, i, kind, amount) VALUES ($1, $2, $3, $4)', [body.device, i, 'deposit', amount]);
        await tx.query('UPDATE ops_devices SET i = $2 WHERE device_key_id = $1', [body.device, i]);
        const unsigned = { taKey: device.key, amount, i };
        const confirmation: DepositConfirmation = { ...unsigned, signature: signRecord(identity.issuerNode.signer, DEPOSIT_TAG, depositSigned(unsigned)) };
        const encoded = encodeCbor({ taKey: { suite: device.key.suite, key: device.key.key }, amount, i, signature: confirmation.signature });
        return { status: 200, body: { device: body.device, amount: formatMinor(services.currency, amount), i: i.toString(), confirmation: toBase64url(encoded), transfer: transferJson(services.currency, moved.transfer) } };
      });
    });

    app.openAPIRegistry.registerPath(routes.withdraw);
    app.post(routes.withdraw.path, async (c) => {
      const user = requireUser(c.get('caller'));
      const body = validBody(c, withdrawBody);
      const confirmation = decodeCborField('confirmation', body.confirmation, withdrawConfirmationCodec, 512);
      return idempotent(services, c, 'ops/withdrawals', user.keyId, async (tx) => {
        const device = await ownDevice(tx, body.device, user.keyId);
        if ('refused' in device) return device.refused;
        if (!verifyRecord(services.provider, device.key, WITHDRAW_TAG, withdrawSigned(confirmation), confirmation.signature)) {
          return refusal('SIGNATURE_INVALID', 'the withdraw confirmation is not signed by this device');
        }
        const row = await lockOpsDevice(tx, body.device);
        // Held against what the node knows of the device: counters below an earlier statement or below a
        // payment it already made are a restored or cloned state, which would withdraw value it paid away.
        const behind = await checkSignedCounters(tx, body.device, row, confirmation, 'withdrawal');
        if (behind !== null) {
          await openCases(tx, services, [behind]);
          return refusal('FRAUD_DETECTED', `withdrawal refused: device ${body.device} signed it from an older state (${String(behind.evidence['reason'])}); the device has been revoked`, { device: behind.device, kind: behind.kind });
        }
        if (confirmation.i <= row.i) {
          const done = await tx.query<{ kind: string; amount: bigint }>('SELECT kind, amount FROM ops_counter_ops WHERE device_key_id = $1 AND i = $2', [body.device, confirmation.i]);
          const op = done.rows[0];
          if (op !== undefined && op.kind === 'withdraw' && bigintColumn(op, 'amount') === confirmation.amount) {
            // The same withdrawal again (replayed, or signed again with newer counters): credited once, not twice.
            await recordSignedCounters(tx, body.device, confirmation);
            const message = `withdrawal ${confirmation.i} of ${formatMinor(services.currency, confirmation.amount)} ${services.currency.code} was already credited; nothing more is credited`;
            return refusal('COUNTER_MISMATCH', message, { reason: 'already-credited', i: confirmation.i.toString() });
          }
          if (op !== undefined && op.kind === 'withdraw') {
            // A genuine TA numbers each withdrawal once: two amounts under one i come from two states.
            const finding: FraudFinding = {
              device: body.device,
              kind: 'rollback',
              evidence: { statement: 'withdrawal', reason: `withdrawal ${confirmation.i} was signed for two amounts`, i: confirmation.i.toString(), credited: bigintColumn(op, 'amount').toString(), signed: confirmation.amount.toString() },
            };
            await openCases(tx, services, [finding]);
            return refusal('FRAUD_DETECTED', `withdrawal refused: device ${body.device} signed withdrawal ${confirmation.i} twice, for different amounts; the device has been revoked`, { device: finding.device, kind: finding.kind });
          }
        }
        // Figure 6: S.i must be one behind the TA's i, or the confirmation is a replay (or from the future).
        if (confirmation.i !== row.i + 1n) return refusal('COUNTER_MISMATCH', `withdraw number ${confirmation.i} is not the next one (S.i is ${row.i})`);
        const moved = await transfer(tx, {
          idempotencyKey: `ops-withdraw:${body.device}:${confirmation.i}`,
          debit: OPS_FLOAT_ACCOUNT,
          credit: user.accountId,
          amount: confirmation.amount,
          kind: 'ops-withdraw',
          reference: { device: body.device, i: confirmation.i.toString() },
          currency: services.currency,
        });
        if (!moved.ok) return refusal(moved.code, moved.message);
        await tx.query('INSERT INTO ops_counter_ops (device_key_id, i, kind, amount) VALUES ($1, $2, $3, $4)', [body.device, confirmation.i, 'withdraw', confirmation.amount]);
        await tx.query('UPDATE ops_devices SET i = $2 WHERE device_key_id = $1', [body.device, confirmation.i]);
        await recordSignedCounters(tx, body.device, confirmation);
        return { status: 200, body: { device: body.device, amount: formatMinor(services.currency, confirmation.amount), i: confirmation.i.toString(), transfer: transferJson(services.currency, moved.transfer) } };
      });
    });

    app.openAPIRegistry.registerPath(routes.claim);
    app.post(routes.claim.path, async (c) => {
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

    app.openAPIRegistry.registerPath(routes.claimsBatch);
    app.post(routes.claimsBatch.path, async (c) => {
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

    app.openAPIRegistry.registerPath(routes.sync);
    app.post(routes.sync.path, async (c) => {
      const user = requireUser(c.get('caller'));
      const body = validBody(c, syncBody);
      const report = decodeCborField('report', body.report, syncReportCodec, SYNC_REPORT_BYTES_MAX);
      return idempotent(services, c, 'ops/sync', user.keyId, async (tx) => {
        const device = await ownDevice(tx, body.device, user.keyId, { allowRevoked: true });
        if ('refused' in device) return device.refused;
        const { key, certificate } = device;
        if (toHex(report.body.device) !== body.device || toHex(keyId(key)) !== body.device) return refusal('SIGNATURE_INVALID', 'the report names another device');
        if (!verifyRecord(services.provider, key, SYNC_REPORT_TAG, syncReportBodyWire(report.body), report.signature)) return refusal('SIGNATURE_INVALID', 'the report is not signed by the device');
        const row = await lockOpsDevice(tx, body.device);
        const result = await reconcileReport(tx, {
          device: body.device,
          row,
          report: report.body,
          offlinePaymentsMax: certificate.body.extensions.offlinePaymentsMax ?? Number.MAX_SAFE_INTEGER,
          receiverOf: (entry) => toHex(entry.receiver),
        });
        const findings = [...result.findings];
        // A sender seen through this device's collects may now be past its own offline limit.
        for (const sender of new Set(report.body.collected.map((e) => toHex(e.sender)))) {
          if (sender === body.device) continue;
          const late = await senderLimitFinding(tx, sender);
          if (late !== null) findings.push(late);
        }
        const opened = await openCases(tx, services, findings);
        const ackBody = { device: report.body.device, paidUpTo: result.paidUpTo, collectedUpTo: result.collectedUpTo, time: services.now() };
        const ack: SyncAck = { body: ackBody, signature: signRecord(identity.issuerNode.signer, SYNC_ACK_TAG, syncAckBodyWire(ackBody)) };
        const crl = await currentRevocationList(tx);
        return {
          status: 200,
          body: {
            ack: toBase64url(encodeCbor({ body: syncAckBodyWire(ack.body), signature: ack.signature })),
            crl: toBase64url(crl.encoded),
            crlVersion: crl.version,
            fraud: [...findings.map((f) => ({ device: f.device, kind: f.kind, new: opened.includes(f) }))],
          },
        };
      });
    });

    app.openapi(routes.device, async (c) => {
      const caller = c.get('caller');
      const { keyId: device } = c.req.valid('param');
      const owner = await services.db.query<{ owner_key_id: string }>('SELECT owner_key_id FROM devices WHERE key_id = $1', [device]);
      if (owner.rows[0] === undefined) throw new ApiProblem('DEVICE_UNKNOWN', `no device ${device}`, {});
      if (caller.kind !== 'operator' && requireUser(caller).keyId !== owner.rows[0].owner_key_id) throw new ApiProblem('FORBIDDEN', 'only the owner or the operator may read a device', {});
      const state = await services.db.query<Record<string, unknown>>('SELECT i, reported_j, reported_balance, honor_up_to, last_sync_at FROM ops_devices WHERE device_key_id = $1', [device]);
      const cases = await services.db.query<{ kind: string; opened_at: Date }>('SELECT kind, opened_at FROM ops_fraud_cases WHERE device_key_id = $1 ORDER BY id', [device]);
      const s = state.rows[0];
      const text = (v: unknown) => (v === null || v === undefined ? null : String(v));
      return c.json(
        {
          keyId: device,
          i: text(s?.['i']) ?? '0',
          reportedJ: text(s?.['reported_j']) ?? '0',
          reportedBalance: s?.['reported_balance'] === null || s?.['reported_balance'] === undefined ? null : formatMinor(services.currency, BigInt(String(s['reported_balance']))),
          lastSyncAt: s?.['last_sync_at'] instanceof Date ? s['last_sync_at'].toISOString() : null,
          revoked: await isSubjectRevoked(services.db, device),
          fraud: cases.rows.map((r) => ({ kind: r.kind, openedAt: r.opened_at.toISOString() })),
        },
        200,
      );
    });

    app.openAPIRegistry.registerPath(routes.retire);
    app.post('/devices/:keyId/retire', async (c) => {
      const user = requireUser(c.get('caller'));
      const device = c.req.param('keyId');
      if (!/^[0-9a-f]{64}$/.test(device)) throw new ApiProblem('BODY_INVALID', 'path.keyId: expected 64 lower-case hex digits', {});
      const body = validBody(c, retireBody);
      return idempotent(services, c, 'ops/retire', user.keyId, async (tx) => {
        const owned = await ownDevice(tx, device, user.keyId, { allowRevoked: true });
        if ('refused' in owned) return owned.refused;
        const row = await lockOpsDevice(tx, device);
        const held = await retirementOf(tx, device);
        if (held === null) {
          // A device settlement caught (or the operator revoked) is not retired on its owner's word.
          if (await isSubjectRevoked(tx, device)) return refusal('CERT_REVOKED', `device ${device} is revoked: a revoked device is not retired with a refund`);
          const value = await retirementValue(tx, device, row);
          const releaseAt = services.now() + RETIREMENT_HOLD_MS;
          await tx.query('UPDATE ops_devices SET retired_at = now(), escrow = $2, release_at = $3 WHERE device_key_id = $1', [device, value, releaseAt]);
          const serial = (await tx.query<{ serial: Uint8Array }>('SELECT serial FROM devices WHERE key_id = $1', [device])).rows[0]?.serial;
          if (serial !== undefined) await revokeCertificate(tx, identity.intermediary.signer, { serial: new Uint8Array(serial), subjectKeyId: device, role: 'device', reason: `ops retired by its owner${body.reason === undefined ? '' : `: ${body.reason}`}` }, services.now());
          return { status: 200, body: retirementJson(services, device, { escrow: value, releaseAt, released: false }, null) };
        }
        if (held.released || services.now() < held.releaseAt) return { status: 200, body: retirementJson(services, device, held, null) };
        // The hold is over: what is left goes to the owner, once, as the device's last operation.
        const refund = held.escrow > 0n ? held.escrow : 0n;
        let moved: { [key: string]: JsonValue } | null = null;
        if (refund > 0n) {
          const i = row.i + 1n;
          const done = await transfer(tx, { idempotencyKey: `ops-retire:${device}`, debit: OPS_FLOAT_ACCOUNT, credit: user.accountId, amount: refund, kind: 'ops-retire', reference: { device, i: i.toString() } });
          if (!done.ok) return refusal(done.code, done.message);
          await tx.query('INSERT INTO ops_counter_ops (device_key_id, i, kind, amount) VALUES ($1, $2, $3, $4)', [device, i, 'retire', refund]);
          await tx.query('UPDATE ops_devices SET i = $2 WHERE device_key_id = $1', [device, i]);
          moved = transferJson(services.currency, done.transfer);
        }
        await tx.query('UPDATE ops_devices SET released = true, escrow = escrow - $2 WHERE device_key_id = $1', [device, refund]);
        return { status: 200, body: retirementJson(services, device, { escrow: held.escrow, releaseAt: held.releaseAt, released: true }, moved) };
      });
    });

    app.openapi(routes.fraud, async (c) => {
      requireOperator(c.get('caller'));
      const { rows } = await services.db.query<{ device_key_id: string; kind: string; evidence: unknown; opened_at: Date }>('SELECT device_key_id, kind, evidence, opened_at FROM ops_fraud_cases ORDER BY id');
      return c.json({ cases: rows.map((r) => ({ device: r.device_key_id, kind: r.kind, evidence: r.evidence, openedAt: r.opened_at.toISOString() })) }, 200);
    });
  },
};
