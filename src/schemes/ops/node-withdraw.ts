/**
 * OPS Figure 6 on the node: a withdrawal credits the caller's account with a TA-signed [x, i],
 * once, and only as the next counter: a replay, or a confirmation from an older state, is refused.
 */
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { verifyRecord } from '../../core/crypto/record.ts';
import { base64url, bigintColumn, errorBody, formatMinor, idempotent, json, keyIdHex, refusal, requireUser, transfer, transferJson, validBody, type IssuerEnv, type IssuerServices } from '../../issuer/plugin.ts';
import { withdrawConfirmationCodec, withdrawSigned, WITHDRAW_TAG } from './messages.ts';
import { checkSignedCounters, lockOpsDevice, recordSignedCounters, type FraudFinding } from './node-settlement.ts';
import { OPS_FLOAT_ACCOUNT, answer, ownDevice, decodeCborField, openCases } from './node-common.ts';

const withdrawBody = z.strictObject({ device: keyIdHex, confirmation: base64url });

const withdrawRoute = createRoute({
  method: 'post',
  path: '/withdrawals',
  description: 'OPS Figure 6: credits the caller\'s account with a TA-signed withdraw confirmation [x, i].',
  request: { body: json(withdrawBody) },
  responses: { 200: answer('Withdrawn', z.object({ device: z.string(), amount: z.string(), i: z.string() })), 409: { description: 'Counter out of sync', ...errorBody } },
});

/** Adds `POST /withdrawals`. */
export function registerWithdraw(app: OpenAPIHono<IssuerEnv>, services: IssuerServices): void {
  app.openAPIRegistry.registerPath(withdrawRoute);
  app.post(withdrawRoute.path, async (c) => {
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
      const earlier = confirmation.i <= row.i ? (await tx.query<{ kind: string; amount: bigint }>('SELECT kind, amount FROM ops_counter_ops WHERE device_key_id = $1 AND i = $2', [body.device, confirmation.i])).rows[0] : undefined;
      // Held against what the node knows of the device: counters below an earlier statement or below a
      // payment it already made are a restored or cloned state, which would withdraw value it paid away.
      const behind = await checkSignedCounters(tx, body.device, row, confirmation, 'withdrawal');
      if (earlier !== undefined && earlier.kind === 'withdraw' && bigintColumn(earlier, 'amount') === confirmation.amount) {
        // The same withdrawal again (replayed, or signed again with newer counters): credited once, not
        // twice. A replay of the message the node credited carries the counters of its day, older than
        // what the node has seen since: that is no sign of a restored state (it gains nothing), and a
        // replayed message must not get a device revoked.
        if (behind === null) await recordSignedCounters(tx, body.device, confirmation);
        const message = `withdrawal ${confirmation.i} of ${formatMinor(services.currency, confirmation.amount)} ${services.currency.code} was already credited; nothing more is credited`;
        return refusal('COUNTER_MISMATCH', message, { reason: 'already-credited', i: confirmation.i.toString() });
      }
      if (behind !== null) {
        await openCases(tx, services, [behind]);
        return refusal('FRAUD_DETECTED', `withdrawal refused: device ${body.device} signed it from an older state (${String(behind.evidence['reason'])}); the device has been revoked`, { device: behind.device, kind: behind.kind });
      }
      if (confirmation.i <= row.i) {
        const op = earlier;
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
}
