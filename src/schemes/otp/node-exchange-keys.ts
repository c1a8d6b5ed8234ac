/**
 * Exchange keys (OTP §2.7: "exchange keys are issued by banks and sent to wallets asynchronously
 * with respect to payments"): `POST /v1/otp/exchange-keys` signs the fresh X25519 keys a device's
 * trusted app asks for, with the payee category of the account holder, and signs the bank's time
 * bound to the request's nonce (the TA's trusted clock). `POST /v1/otp/operator/categories` sets an
 * account holder's category. Of the keys it signs the bank keeps which device each was signed for
 * (otp_exchange_keys), read only to settle a dispute over a coin in flight (node-in-flight.ts).
 */
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { toBase64url } from '../../core/bytes.ts';
import { encodeCbor } from '../../core/cbor.ts';
import { isTallyError } from '../../core/errors.ts';
import { base64urlOf, errorBody, idempotent, json, keyIdHex, refusal, requireOperator, requireUser, validBody, type IssuerEnv, type IssuerServices } from '../../issuer/plugin.ts';
import { exchangeKeyId, issueExchangeKey } from './exchange-key.ts';
import { checkSigned, KEY_REQUEST_TAG, keyRequestBodyCodec, keyRequestCodec, signed, timeBodyCodec, TIME_TAG } from './messages.ts';
import { answer, decodeCborField, EXCHANGE_KEY_VALIDITY_MS, ownOtpDevice } from './node-common.ts';
import { CATEGORY_CHARS_MAX } from './program.ts';

/** Largest key request accepted, in bytes (64 keys of 32 bytes, a nonce and a signature fit). */
export const KEY_REQUEST_BYTES_MAX = 4096;

const keysBody = z.strictObject({ device: keyIdHex, request: base64urlOf(Math.ceil((KEY_REQUEST_BYTES_MAX * 4) / 3)) });
const category = z.string().regex(new RegExp(`^[a-z0-9][a-z0-9-]{0,${CATEGORY_CHARS_MAX - 1}}$`), 'a category (lower-case letters, digits, dashes)');
const categoryBody = z.strictObject({ account: keyIdHex.describe("an account holder's key id"), category: category.nullable() });

const keysRoute = createRoute({
  method: 'post',
  path: '/exchange-keys',
  description: "Signs a device's exchange keys (each a signed ExchangeKey, base64url CBOR) and the bank's time bound to the request's nonce (a signed TrustedTime).",
  request: { body: json(keysBody) },
  responses: {
    200: answer('Signed', z.object({ keys: z.array(z.string()), time: z.string() })),
    401: { description: 'The request is not signed by the device', ...errorBody },
  },
});

const categoryRoute = createRoute({
  method: 'post',
  path: '/operator/categories',
  description: "Sets the payee category an account holder's exchange keys carry (operator token); null removes it.",
  request: { body: json(categoryBody) },
  responses: { 200: answer('Set', z.object({ account: z.string(), category: z.string().nullable() })), 404: { description: 'No such account holder', ...errorBody } },
});

/** Adds `POST /exchange-keys` and `POST /operator/categories`. */
export function registerExchangeKeys(app: OpenAPIHono<IssuerEnv>, services: IssuerServices): void {
  app.openAPIRegistry.registerPath(keysRoute);
  app.post(keysRoute.path, async (c) => {
    const user = requireUser(c.get('caller'));
    const body = validBody(c, keysBody);
    const request = decodeCborField('request', body.request, keyRequestCodec, KEY_REQUEST_BYTES_MAX);
    return idempotent(services, c, 'otp/exchange-keys', user.keyId, async (tx) => {
      const device = await ownOtpDevice(tx, body.device, user.keyId);
      if ('refused' in device) return device.refused;
      let asked;
      try {
        asked = checkSigned(services.provider, device.key, keyRequestBodyCodec, KEY_REQUEST_TAG, request);
      } catch (e) {
        if (isTallyError(e)) return refusal(e.code, `the key request is not signed by device ${body.device}: ${e.message}`);
        throw e;
      }
      const { rows } = await tx.query<{ category: string | null }>('SELECT category FROM otp_categories WHERE user_key_id = $1', [user.keyId]);
      const payeeCategory = rows[0]?.category ?? null;
      const now = services.now();
      const bank = services.identity.issuerNode.signer;
      const notAfter = now + EXCHANGE_KEY_VALIDITY_MS;
      const keys = asked.publicKeys.map((publicKey) => toBase64url(encodeCbor(issueExchangeKey(bank, { publicKey, category: payeeCategory, notBefore: now, notAfter }))));
      if (asked.publicKeys.length > 0) {
        const ids = asked.publicKeys.map((publicKey) => exchangeKeyId(publicKey));
        const rows = ids.map((_, i) => `($${i + 3}, $1, $2)`).join(', ');
        // A key asked for again keeps its first device: a TA makes its keys inside, so the first to ask
        // is the key's maker; another device can learn a key only once it is offered, signed.
        await tx.query(`INSERT INTO otp_exchange_keys (key_id, device_key_id, not_after_ms) VALUES ${rows} ON CONFLICT (key_id) DO NOTHING`, [body.device, BigInt(notAfter), ...ids]);
      }
      const time = signed(timeBodyCodec, bank, TIME_TAG, { nonce: asked.nonce, at: now });
      return { status: 200, body: { keys, time: toBase64url(encodeCbor(time)) } };
    });
  });

  app.openAPIRegistry.registerPath(categoryRoute);
  app.post(categoryRoute.path, async (c) => {
    requireOperator(c.get('caller'));
    const body = validBody(c, categoryBody);
    return idempotent(services, c, 'otp/categories', 'operator', async (tx) => {
      const { rowCount } = await tx.query('SELECT 1 FROM users WHERE key_id = $1', [body.account]);
      if (rowCount === 0) return refusal('SUBJECT_UNKNOWN', `no account holder is registered with key ${body.account}`);
      await tx.query(
        `INSERT INTO otp_categories (user_key_id, category, updated_at) VALUES ($1, $2, $3)
         ON CONFLICT (user_key_id) DO UPDATE SET category = EXCLUDED.category, updated_at = EXCLUDED.updated_at`,
        [body.account, body.category, new Date(services.now()).toISOString()],
      );
      return { status: 200, body: { account: body.account, category: body.category } };
    });
  });
}
