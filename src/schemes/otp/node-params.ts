/**
 * `GET /v1/otp/params`: the bank's parameters, signed by the issuer node's certified key — its
 * currency, its escrow and deposit keys, and the classes live now (the current epoch's, which
 * withdrawals use, and the older ones whose coins may still be deposited). Anyone may read them;
 * the first read of an epoch makes its classes.
 */
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { toBase64url } from '../../core/bytes.ts';
import { encodeCbor } from '../../core/cbor.ts';
import type { IssuerEnv, IssuerServices } from '../../issuer/plugin.ts';
import { paramsBodyCodec, PARAMS_TAG, signed } from './messages.ts';
import type { ClassBook } from './node-classes.ts';
import { answer } from './node-common.ts';
import { otpBankKeys } from './node-keys.ts';

const paramsRoute = createRoute({
  method: 'get',
  path: '/params',
  description: "The OTP bank's signed parameters: currency, escrow and deposit keys (X25519), and the live signing classes (base64url of the CBOR of a signed Params record).",
  responses: { 200: answer('Parameters', z.object({ params: z.string() })) },
});

/** Adds `GET /params`. */
export function registerParams(app: OpenAPIHono<IssuerEnv>, services: IssuerServices, classes: ClassBook): void {
  app.openAPIRegistry.registerPath(paramsRoute);
  app.get(paramsRoute.path, async (c) => {
    await classes.ensureCurrent();
    const now = services.now();
    const live = await classes.live(services.db, now);
    const keys = otpBankKeys(services);
    const params = signed(paramsBodyCodec, services.identity.issuerNode.signer, PARAMS_TAG, {
      currency: services.currency.code,
      escrowKey: keys.escrow.publicKey,
      depositKey: keys.deposit.publicKey,
      classes: live.map((k) => k.entry),
      at: now,
    });
    c.header('cache-control', 'no-cache');
    return c.json({ params: toBase64url(encodeCbor(params)) });
  });
}
