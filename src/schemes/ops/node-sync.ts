/**
 * OPS sync on the node: a device's signed report of what it paid and collected, reconciled by
 * node-settlement.ts and answered with the node's ack and the current revocation list; the node's view
 * of a device and the fraud cases settlement opened.
 */
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { toBase64url, toHex } from '../../core/bytes.ts';
import { encodeCbor } from '../../core/cbor.ts';
import { signRecord, verifyRecord } from '../../core/crypto/record.ts';
import { keyId } from '../../pki/key-id.ts';
import { ApiProblem, base64urlOf, currentRevocationList, formatMinor, idempotent, isSubjectRevoked, json, keyIdHex, refusal, requireOperator, requireUser, validBody, type IssuerEnv, type IssuerServices } from '../../issuer/plugin.ts';
import { syncAckBodyWire, syncReportBodyWire, syncReportCodec, SYNC_ACK_TAG, SYNC_REPORT_TAG, type SyncAck } from './messages.ts';
import { lockOpsDevice, reconcileReport } from './node-settlement.ts';
import { answer, ownDevice, decodeCborField, openCases, senderLimitFinding } from './node-common.ts';

/** Largest encoded sync report accepted. */
export const SYNC_REPORT_BYTES_MAX = 40 * 1024;

const syncBody = z.strictObject({ device: keyIdHex, report: base64urlOf(Math.ceil((SYNC_REPORT_BYTES_MAX * 4) / 3)) });

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
