/** GET /v1/health and GET /v1/info: what a wallet needs to know before it talks to the node. */
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { toBase64url } from '../../core/bytes.ts';
import { SUITE_NAMES } from '../../core/crypto/suite.ts';
import { encodeCertificate } from '../../pki/certificate.ts';
import { REQUEST_WINDOW_MS } from '../client/request-auth.ts';
import { formatMinor } from './json.ts';
import { BODY_BYTES_MAX, type IssuerEnv, type IssuerServices } from './context.ts';

const health = createRoute({
  method: 'get',
  path: '/v1/health',
  responses: { 200: { description: 'The node is up', content: { 'application/json': { schema: z.object({ status: z.literal('ok'), database: z.string() }) } } } },
});

const info = createRoute({
  method: 'get',
  path: '/v1/info',
  responses: {
    200: {
      description: 'Currency, certificates, suites and limits',
      content: {
        'application/json': {
          schema: z.object({
            currency: z.object({ code: z.string(), decimals: z.number().int() }),
            certificates: z.object({ root: z.string(), intermediary: z.string(), issuerNode: z.string() }).openapi({ description: 'base64url of each certificate' }),
            suites: z.array(z.string()),
            limits: z.object({ bodyBytesMax: z.number().int(), requestWindowMs: z.number().int(), holdingLimit: z.string(), offlinePaymentsMax: z.number().int() }),
          }),
        },
      },
    },
  },
});

/** Adds the node routes. */
export function registerNodeRoutes(app: OpenAPIHono<IssuerEnv>, services: IssuerServices): void {
  app.openapi(health, async (c) => {
    await services.db.query('SELECT 1');
    return c.json({ status: 'ok' as const, database: services.db.kind }, 200);
  });
  app.openapi(info, (c) => {
    const { identity, currency } = services;
    return c.json(
      {
        currency: { code: currency.code, decimals: currency.decimals },
        certificates: {
          root: toBase64url(encodeCertificate(identity.root.certificate)),
          intermediary: toBase64url(encodeCertificate(identity.intermediary.certificate)),
          issuerNode: toBase64url(encodeCertificate(identity.issuerNode.certificate)),
        },
        suites: [...SUITE_NAMES],
        limits: {
          bodyBytesMax: BODY_BYTES_MAX,
          requestWindowMs: REQUEST_WINDOW_MS,
          holdingLimit: formatMinor(currency, services.deviceLimits.holdingLimitMinor),
          offlinePaymentsMax: services.deviceLimits.offlinePaymentsMax,
        },
      },
      200,
    );
  });
}
