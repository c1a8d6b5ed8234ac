/**
 * An intermediary's operator route to its central bank link: sync now (the movements of its
 * reserve, the central bank's list of revoked intermediaries, the report of its books) and answer
 * what it holds. The node also syncs on its own, every few seconds.
 */
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { requireOperator } from './auth.ts';
import type { IssuerEnv, IssuerServices } from './context.ts';
import { formatMinor } from './json.ts';
import { ApiProblem } from './problem.ts';
import { errorBody } from './validate.ts';

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
          }),
        },
      },
    },
    409: { description: 'Not an intermediary', ...errorBody },
  },
});

/** Adds the intermediary's link route. */
export function registerTierRoutes(app: OpenAPIHono<IssuerEnv>, services: IssuerServices): void {
  app.openapi(postSync, async (c) => {
    requireOperator(c.get('caller'));
    const link = services.tier;
    if (link === undefined) throw new ApiProblem('ROLE_MISMATCH', `this node is ${services.identity.role === 'central-bank' ? 'a central bank' : 'a standalone node'}: only an intermediary has a reserve at a central bank`, { role: services.identity.role });
    const report = await link.sync();
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
      },
      200,
    );
  });
}
