/**
 * `POST /v1/otp/withdrawals` (OTP §2.7: "the bank withdrawal service picks a coin from the
 * customer's bank account"): the caller's account pays the sum of the classes asked for into the
 * OTP float, and the bank signs each blinded coin with its class's key (RFC 9474 BlindSign). The
 * bank sees only classes and blinded values, and keeps only the amount and the count.
 */
import { randomUUID } from 'node:crypto';
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { toBase64url, toHex } from '../../core/bytes.ts';
import { isTallyError } from '../../core/errors.ts';
import { base64url, decodeField, errorBody, formatMinor, idempotent, json, keyIdHex, refusal, requireUser, transfer, validBody, type IssuerEnv, type IssuerServices } from '../../issuer/plugin.ts';
import { elementOf } from './blind-rsa.ts';
import { CLASS_ID_BYTES } from './coin.ts';
import { COINS_PER_MESSAGE_MAX } from './messages.ts';
import type { BankClass, ClassBook } from './node-classes.ts';
import { answer, OTP_FLOAT_ACCOUNT, ownOtpDevice } from './node-common.ts';
import { blindSign } from './node-rsa.ts';

const withdrawBody = z.strictObject({
  device: keyIdHex,
  items: z.array(z.strictObject({ classId: base64url, blinded: base64url }), { message: 'an array of { classId, blinded }' }).min(1).max(COINS_PER_MESSAGE_MAX),
});

const withdrawRoute = createRoute({
  method: 'post',
  path: '/withdrawals',
  description: "Withdraws coins: debits the caller's account by the classes' denominations and answers a blind signature (base64url) per blinded coin, in order.",
  request: { body: json(withdrawBody) },
  responses: {
    200: answer('Signed', z.object({ amount: z.string(), signatures: z.array(z.string()) })),
    409: { description: 'A class that is not one of the current epoch', ...errorBody },
    422: { description: 'Funds short', ...errorBody },
  },
});

/** Adds `POST /withdrawals`. */
export function registerWithdraw(app: OpenAPIHono<IssuerEnv>, services: IssuerServices, classes: ClassBook): void {
  app.openAPIRegistry.registerPath(withdrawRoute);
  app.post(withdrawRoute.path, async (c) => {
    const user = requireUser(c.get('caller'));
    const body = validBody(c, withdrawBody);
    const items = body.items.map((item, i) => ({ classId: decodeField(`body.items.${i}.classId`, item.classId), blinded: decodeField(`body.items.${i}.blinded`, item.blinded) }));
    await classes.ensureCurrent();
    return idempotent(services, c, 'otp/withdrawals', user.keyId, async (tx) => {
      const device = await ownOtpDevice(tx, body.device, user.keyId);
      if ('refused' in device) return device.refused;
      const now = services.now();
      const current = new Map((await classes.current(tx, now)).map((k) => [k.classIdHex, k]));
      const picked: BankClass[] = [];
      for (const [i, item] of items.entries()) {
        const coinClass = item.classId.length === CLASS_ID_BYTES ? current.get(toHex(item.classId)) : undefined;
        if (coinClass === undefined) return refusal('OTP_CLASS_UNKNOWN', `items.${i}.classId is not a class of the current epoch: read the parameters again`);
        try {
          elementOf(coinClass.publicKey, item.blinded, `items.${i}.blinded`, 'blinded message');
        } catch (e) {
          if (isTallyError(e)) return refusal('BODY_INVALID', `items.${i}.blinded: ${e.message}`);
          throw e;
        }
        picked.push(coinClass);
      }
      const amount = picked.reduce((sum, k) => sum + k.denomination, 0n);
      const moved = await transfer(tx, {
        idempotencyKey: `otp-withdraw:${randomUUID()}`,
        debit: user.accountId,
        credit: OTP_FLOAT_ACCOUNT,
        amount,
        kind: 'otp-withdraw',
        reference: { coins: picked.length },
        currency: services.currency,
      });
      if (!moved.ok) return refusal(moved.code, moved.message);
      await tx.query('INSERT INTO otp_withdrawals (account_id, amount, coins, at) VALUES ($1, $2, $3, $4)', [user.accountId, amount, picked.length, new Date(now).toISOString()]);
      const counts = new Map<string, { coinClass: BankClass; n: number }>();
      for (const k of picked) counts.set(k.classIdHex, { coinClass: k, n: (counts.get(k.classIdHex)?.n ?? 0) + 1 });
      for (const { coinClass, n } of counts.values()) await tx.query('UPDATE otp_classes SET issued = issued + $2 WHERE class_id = $1', [coinClass.entry.coinClass.classId, n]);
      // Signed last: a refusal above leaves nothing signed.
      const signatures = items.map((item, i) => {
        const coinClass = picked[i] as BankClass;
        return toBase64url(blindSign(coinClass.privateKey(), item.blinded, coinClass.publicKey));
      });
      return { status: 200, body: { amount: formatMinor(services.currency, amount), signatures } };
    });
  });
}
