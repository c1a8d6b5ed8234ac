/**
 * An intermediary's operator route to its central bank link: sync now (the movements of its
 * reserve, the central bank's list of revoked intermediaries, the report of its books) and answer
 * what it holds. The node also syncs on its own, every few seconds.
 */
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { presentedClaim } from '../tier/interbank.ts';
import { requireOperator, requireUser } from './auth.ts';
import type { IssuerEnv, IssuerServices } from './context.ts';
import { formatMinor } from './json.ts';
import { ApiProblem } from './problem.ts';
import { errorBody, keyIdHex } from './validate.ts';

const postSync = createRoute({
  method: 'post',
  path: '/v1/operator/reserve/sync',
  description: "Intermediary (operator): syncs with the central bank now and answers the reserve as mirrored here.",
  responses: {
    200: {
      description: 'Synced',
      content: {
        'application/json': {
          schema: z.object({
            centralBank: z.string(),
            recorded: z.number().int(),
            cursor: z.number().int(),
            reserve: z.string(),
            unallocated: z.string(),
            currency: z.string(),
            rootListVersion: z.number().int().nullable(),
            revoked: z.boolean(),
            claims: z.object({ presented: z.number().int(), judged: z.number().int(), posted: z.number().int(), waiting: z.number().int(), outcomes: z.number().int(), credited: z.number().int() }),
          }),
        },
      },
    },
    409: { description: 'Not an intermediary', ...errorBody },
  },
});

const getClaim = createRoute({
  method: 'get',
  path: '/v1/interbank/claims/{claimId}',
  description: "A claim this bank presented on another bank for the calling customer (signed by the payee): pending, presented, accepted (the reserves moved; the credit follows), settled (credited) or refused, with the payer's bank's code and reason.",
  request: { params: z.object({ claimId: keyIdHex }) },
  responses: {
    200: {
      description: 'The claim',
      content: {
        'application/json': {
          schema: z.object({ claimId: z.string(), scheme: z.string(), payerBank: z.string(), amount: z.string(), currency: z.string(), status: z.string(), code: z.string().optional(), reason: z.string().optional() }),
        },
      },
    },
    404: { description: "No such claim of the caller's", ...errorBody },
  },
});

/** Adds the intermediary's link route and its customers' view of their claims on other banks. */
export function registerTierRoutes(app: OpenAPIHono<IssuerEnv>, services: IssuerServices): void {
  app.openapi(getClaim, async (c) => {
    const user = requireUser(c.get('caller'));
    const { claimId } = c.req.valid('param');
    const claim = services.identity.role === 'intermediary' ? await presentedClaim(services, services.db, claimId) : undefined;
    // Another customer's claim is as unknown to the caller as one that does not exist.
    if (claim === undefined || claim.payeeKeyId !== user.keyId) throw new ApiProblem('NOT_FOUND', `no claim ${claimId} of the caller's`, {});
    const { payeeKeyId: _payee, ...shown } = claim;
    return c.json(shown, 200);
  });

  app.openapi(postSync, async (c) => {
    requireOperator(c.get('caller'));
    const link = services.tier;
    if (link === undefined) throw new ApiProblem('ROLE_MISMATCH', `this node is ${services.identity.role === 'central-bank' ? 'a central bank' : 'a standalone node'}: only an intermediary has a reserve at a central bank`, { role: services.identity.role });
    const report = await link.sync({ fresh: true });
    const money = (minor: bigint) => formatMinor(services.currency, minor);
    return c.json(
      {
        centralBank: link.centralBank,
        recorded: report.recorded,
        cursor: report.cursor,
        reserve: money(report.reserve),
        unallocated: money(report.unallocated),
        currency: services.currency.code,
        rootListVersion: report.rootListVersion,
        revoked: report.revoked,
        claims: { ...report.claims },
      },
      200,
    );
  });
}
