/** OPS Figure 5 on the node: a deposit moves online funds to the caller's TA, answered with the node-signed [T.vk, x, i]. */
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { toBase64url } from '../../core/bytes.ts';
import { encodeCbor } from '../../core/cbor.ts';
import { signRecord } from '../../core/crypto/record.ts';
import { amountText, errorBody, formatMinor, idempotent, json, keyIdHex, parseAmount, refusal, requireUser, transfer, transferJson, validBody, type IssuerEnv, type IssuerServices } from '../../issuer/plugin.ts';
import { depositSigned, DEPOSIT_TAG, type DepositConfirmation } from './messages.ts';
import { lockOpsDevice } from './node-settlement.ts';
import { OPS_FLOAT_ACCOUNT, answer, ownDevice } from './node-common.ts';

const depositBody = z.strictObject({ device: keyIdHex, amount: amountText });

const depositRoute = createRoute({
  method: 'post',
  path: '/deposits',
  description: 'OPS Figure 5: moves online funds to the caller\'s TA; answers the server-signed confirmation [T.vk, x, i].',
  request: { body: json(depositBody) },
  responses: { 200: answer('Deposited', z.object({ device: z.string(), amount: z.string(), i: z.string(), confirmation: z.string() })), 422: { description: 'Refused', ...errorBody } },
});

/** Adds `POST /deposits`. */
export function registerDeposit(app: OpenAPIHono<IssuerEnv>, services: IssuerServices): void {
  const { identity } = services;
  app.openAPIRegistry.registerPath(depositRoute);
  app.post(depositRoute.path, async (c) => {
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
}
