/**
 * OPS sync on the node: a device's signed report of what it paid and collected, reconciled by
 * node-settlement.ts and answered with the node's ack and the current revocation list; the node's view
 * of a device and the fraud cases settlement opened.
 */
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { equalBytes, toBase64url, toHex } from '../../core/bytes.ts';
import { isTallyError } from '../../core/errors.ts';
import { encodeCbor } from '../../core/cbor.ts';
import { signRecord, verifyRecord } from '../../core/crypto/record.ts';
import { keyId } from '../../pki/key-id.ts';
import {
  ApiProblem,
  base64urlOf,
  currentRevocationList,
  formatMinor,
  idempotent,
  isSubjectRevoked,
  json,
  keyIdHex,
  peerIntermediaries,
  presentInterbankClaim,
  refusal,
  requireOperator,
  requireUser,
  validBody,
  type IssuerEnv,
  type IssuerServices,
  type JsonValue,
  type TransactionHandle,
} from '../../issuer/plugin.ts';
import { encodePayment, OPS_SCHEME, paymentCodec, paymentDigest, PAYMENT_BYTES_MAX, REPORT_ENTRIES_MAX, syncAckBodyWire, syncReportBodyWire, syncReportCodec, SYNC_ACK_TAG, SYNC_REPORT_TAG, type Payment, type SyncAck, type SyncReportBody } from './messages.ts';
import { verifyPayment } from './pay-verify.ts';
import { lockOpsDevice, lockOpsDevices, reconcileReport } from './node-settlement.ts';
import { answer, ownDevice, decodeCborField, openCases, senderLimitFinding, OPS_FLOAT_ACCOUNT } from './node-common.ts';

/** Largest encoded sync report accepted. */
export const SYNC_REPORT_BYTES_MAX = 40 * 1024;

/** Largest base64url text of one payment sent with a report (a collect of another bank's device's payment). */
const SYNC_PAYMENT_CHARS_MAX = Math.ceil((PAYMENT_BYTES_MAX * 4) / 3);

/**
 * Body limit of `POST /v1/ops/sync`: the report and, in two tiers, every payment it collected from
 * another bank's device (at most one per collect, REPORT_ENTRIES_MAX of them).
 */
export const SYNC_BODY_BYTES_MAX = 512 * 1024;

const syncBody = z.strictObject({
  device: keyIdHex,
  report: base64urlOf(Math.ceil((SYNC_REPORT_BYTES_MAX * 4) / 3)),
  /** The payments the report collected from devices of other banks, whole: this bank presents each to the payer's bank. */
  payments: z.array(base64urlOf(SYNC_PAYMENT_CHARS_MAX)).max(REPORT_ENTRIES_MAX).optional(),
});

/** A collect of a payment from another bank's device, as the sync presents it. */
type ForeignCollect = { readonly sender: string; readonly index: string; readonly amount: string } & (
  | { readonly claim: { [key: string]: JsonValue } }
  | { readonly code: string; readonly message: string }
);

/**
 * Two tiers: the collects of a report whose sender is no device of this bank, each matched with its
 * payment among those sent (by digest). The device holds their value already, but this bank's float
 * never received it: the payer's bank's float did when its device deposited. So each is presented to
 * the payer's bank as an interbank claim payable to `float:ops`, which is credited once the claim is
 * settled (the payer's bank judges it with every check of a claim: a clone's second payment is
 * refused there, and this bank's float stays short of it, as it would for a broken TA at home).
 * Answers a refusal, before anything is recorded, when a foreign collect comes without its payment.
 */
async function foreignCollects(
  tx: TransactionHandle,
  report: SyncReportBody,
  sent: readonly Payment[],
): Promise<{ found: Array<{ entry: SyncReportBody['collected'][number]; payment: Payment }> } | { refused: ReturnType<typeof refusal> }> {
  const found: Array<{ entry: SyncReportBody['collected'][number]; payment: Payment }> = [];
  for (const entry of report.collected) {
    const sender = toHex(entry.sender);
    const here = await tx.query('SELECT 1 FROM devices WHERE key_id = $1', [sender]);
    if (here.rows.length > 0) continue;
    const payment = sent.find((p) => equalBytes(paymentDigest(p), entry.digest));
    if (payment === undefined) {
      return { refused: refusal('PAYMENT_INVALID', `the report collects payment ${entry.index} of ${sender}, a device of another bank: send the payment with the report (payments), so that this bank can present it`) };
    }
    found.push({ entry, payment });
  }
  return { found };
}

async function presentCollect(tx: TransactionHandle, services: IssuerServices, found: { entry: SyncReportBody['collected'][number]; payment: Payment }, device: { certificate: Uint8Array; owner: string; keyId: string }): Promise<ForeignCollect> {
  const { entry, payment } = found;
  const head = { sender: toHex(entry.sender), index: entry.index.toString(), amount: formatMinor(services.currency, payment.amount) };
  const own = services.identity.intermediary.certificate;
  try {
    const peers = await peerIntermediaries(services, tx);
    const verified = verifyPayment({
      provider: services.provider,
      payment,
      trustAnchors: [services.identity.root.certificate],
      intermediaries: [own, ...peers.filter((p) => !p.revoked).map((p) => p.certificate)],
      now: services.now(),
      currency: services.currency.code,
      receiver: device.certificate,
    });
    const issuer = verified.sender.path[1];
    if (issuer === undefined || issuer.body.role !== 'intermediary') return { ...head, code: 'PAYMENT_INVALID', message: 'the sender\'s chain has no intermediary' };
    const payerBank = toHex(keyId(issuer.body.subject));
    if (payerBank === toHex(keyId(own.body.subject))) return { ...head, code: 'PAYMENT_INVALID', message: 'the sender is a device of this bank that it does not know' };
    const claim = await presentInterbankClaim(tx, services, { scheme: OPS_SCHEME, payerBank, amount: payment.amount, evidence: encodePayment(payment), payee: { keyId: device.owner, accountId: OPS_FLOAT_ACCOUNT } });
    await tx.query('INSERT INTO ops_foreign_collects (sender_key_id, index, device_key_id, amount, claim_id) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING', [
      head.sender,
      payment.index,
      device.keyId,
      payment.amount,
      claim.claimId,
    ]);
    return { ...head, claim: { ...claim } };
  } catch (e) {
    if (e instanceof ApiProblem) return { ...head, code: e.code, message: e.message };
    if (isTallyError(e)) return { ...head, code: e.code, message: e.message };
    throw e;
  }
}

const syncRoute = createRoute({
  method: 'post',
  path: '/sync',
  description: 'A device\'s signed report of what it paid and collected; answers the node\'s ack and the current revocation list.',
  request: { body: json(syncBody) },
  responses: { 200: answer('Reconciled', z.object({ ack: z.string(), crl: z.string(), crlVersion: z.number().int(), fraud: z.array(z.object({ device: z.string(), kind: z.string() })) })) },
});

const deviceRoute = createRoute({
  method: 'get',
  path: '/devices/{keyId}',
  description: 'The node\'s view of an OPS device: S.i, the last report, fraud cases (owner or operator).',
  request: { params: z.object({ keyId: keyIdHex }) },
  responses: { 200: answer('The device', z.object({ keyId: z.string() }).passthrough()) },
});

const fraudRoute = createRoute({
  method: 'get',
  path: '/fraud',
  description: 'Every fraud case settlement opened (operator).',
  responses: { 200: answer('Fraud cases', z.object({ cases: z.array(z.object({ device: z.string(), kind: z.string() }).passthrough()) })) },
});

/** Adds `POST /sync`, `GET /devices/{keyId}` and `GET /fraud`. */
export function registerSync(app: OpenAPIHono<IssuerEnv>, services: IssuerServices): void {
  const { identity } = services;
  app.openAPIRegistry.registerPath(syncRoute);
  app.post(syncRoute.path, async (c) => {
    const user = requireUser(c.get('caller'));
    const body = validBody(c, syncBody);
    const report = decodeCborField('report', body.report, syncReportCodec, SYNC_REPORT_BYTES_MAX);
    const sent = (body.payments ?? []).map((text, k) => decodeCborField(`payments.${k}`, text, paymentCodec, PAYMENT_BYTES_MAX));
    return idempotent(services, c, 'ops/sync', user.keyId, async (tx) => {
      const device = await ownDevice(tx, body.device, user.keyId, { allowRevoked: true });
      if ('refused' in device) return device.refused;
      const { key, certificate } = device;
      if (toHex(report.body.device) !== body.device || toHex(keyId(key)) !== body.device) return refusal('SIGNATURE_INVALID', 'the report names another device');
      if (!verifyRecord(services.provider, key, SYNC_REPORT_TAG, syncReportBodyWire(report.body), report.signature)) return refusal('SIGNATURE_INVALID', 'the report is not signed by the device');
      const certificateBytes = new Uint8Array((await tx.query<{ certificate: Uint8Array }>('SELECT certificate FROM devices WHERE key_id = $1', [body.device])).rows[0]?.certificate ?? new Uint8Array());
      const held = { certificate: certificateBytes, owner: user.keyId, keyId: body.device };
      const foreign = await foreignCollects(tx, report.body, sent);
      if ('refused' in foreign) return foreign.refused;
      // Every device row this sync locks (its own, and each sender it collected from, whose offline
      // limit it checks below), locked first and in key order: a payer's sync and its payees' then
      // queue for each other instead of deadlocking over the payments they both record.
      await lockOpsDevices(tx, [body.device, ...report.body.collected.map((e) => toHex(e.sender))]);
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
      const presented: ForeignCollect[] = [];
      for (const f of foreign.found) presented.push(await presentCollect(tx, services, f, held));
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
          ...(presented.length === 0 ? {} : { foreign: presented }),
        },
      };
    });
  });

  app.openapi(deviceRoute, async (c) => {
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

  app.openapi(fraudRoute, async (c) => {
    requireOperator(c.get('caller'));
    const { rows } = await services.db.query<{ device_key_id: string; kind: string; evidence: unknown; opened_at: Date }>('SELECT device_key_id, kind, evidence, opened_at FROM ops_fraud_cases ORDER BY id');
    return c.json({ cases: rows.map((r) => ({ device: r.device_key_id, kind: r.kind, evidence: r.evidence, openedAt: r.opened_at.toISOString() })) }, 200);
  });
}
