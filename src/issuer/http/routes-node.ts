/**
 * GET /v1/health and GET /v1/info: what a wallet needs to know before it talks to the node (its
 * currency, certificates, suites and limits; its Ethereum chain when it runs one; what each scheme
 * shows of itself). GET /v1/settle/held: the operator's list of settlement parts held for them.
 */
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { toBase64url } from '../../core/bytes.ts';
import { SUITE_NAMES } from '../../core/crypto/suite.ts';
import { encodeCertificate } from '../../pki/certificate.ts';
import { REQUEST_WINDOW_MS } from '../client/request-auth.ts';
import { formatMinor } from './json.ts';
import { requireOperator } from './auth.ts';
import { ApiProblem } from './problem.ts';
import { BODY_BYTES_MAX, type IssuerEnv, type IssuerServices } from './context.ts';
import type { SchemeInfo, SchemeModule } from './scheme-module.ts';

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
            role: z.enum(['standalone', 'central-bank', 'intermediary']).openapi({ description: 'What the node is in the two tiers: a standalone node plays the central bank and one intermediary' }),
            centralBank: z.string().optional().openapi({ description: "An intermediary's central bank" }),
            certificates: z.object({ root: z.string(), intermediary: z.string(), issuerNode: z.string() }).openapi({ description: 'base64url of each certificate' }),
            suites: z.array(z.string()),
            limits: z.object({ bodyBytesMax: z.number().int(), requestWindowMs: z.number().int(), holdingLimit: z.string(), offlinePaymentsMax: z.number().int() }),
            chain: z
              .object({ rpcUrl: z.string(), chainId: z.number().int(), embedded: z.boolean(), bankAddress: z.string() })
              .optional()
              .openapi({ description: "The node's Ethereum chain, when a scheme settles on one: its endpoint (without credentials), id, whether it is the node's embedded anvil, and the central bank's address" }),
            settle: z
              .object({ stream: z.string(), shards: z.number().int(), databases: z.number().int().optional() })
              .optional()
              .openapi({ description: 'The settlement intake on NATS JetStream, when the node was started with --nats: its stream and shard count, and how many shard databases its ledger spreads over (--shard-database)' }),
            schemes: z.record(z.string(), z.record(z.string(), z.unknown())).openapi({ description: 'Every scheme the node serves, by name, with what it shows of itself (contract addresses, say)' }),
          }),
        },
      },
    },
  },
});

const heldPart = z.object({
  kind: z.string(),
  id: z.string(),
  shard: z.number().int(),
  deliveries: z.number().int(),
  error: z.string(),
  heldAt: z.string(),
});

const heldCrossing = z.object({
  from: z.string(),
  to: z.string(),
  id: z.string(),
  kind: z.string().nullable(),
  amount: z.string().nullable().openapi({ description: 'In major units, when the receiver could read the crossing' }),
  deliveries: z.number().int(),
  error: z.string(),
  heldAt: z.string(),
});

const held = createRoute({
  method: 'get',
  path: '/v1/settle/held',
  description:
    "The operator's list of settlement parts held on the node's NATS server: parts that failed on each of their deliveries for a reason of their own (a database that does not answer is waited out instead). Their requests answer 503 SETTLE_HELD until `tally settle release` puts them back. On a node with shard databases, also the crossings between its databases held the same way (in flight in the audit until released). 404 on a node that settles inline (started without --nats).",
  responses: {
    200: {
      description: 'The held parts and crossings, oldest first',
      content: { 'application/json': { schema: z.object({ stream: z.string(), held: z.array(heldPart), crossings: z.array(heldCrossing).openapi({ description: 'Empty on a node without shard databases' }) }) } },
    },
    404: { description: 'The node settles inline', content: { 'application/json': { schema: z.object({ error: z.object({ code: z.string(), message: z.string() }) }) } } },
  },
});

/** Adds the node routes; `schemes` may show themselves in /v1/info. */
export function registerNodeRoutes(app: OpenAPIHono<IssuerEnv>, services: IssuerServices, schemes: readonly SchemeModule[] = []): void {
  app.openapi(held, async (c) => {
    requireOperator(c.get('caller'));
    const queue = services.settleQueue;
    if (queue === undefined) throw new ApiProblem('NOT_FOUND', 'this node settles inline (it was started without --nats): no settlement part is ever held');
    const crossings = (await services.crossings?.held()) ?? [];
    const major = (minor: string | null) => (minor === null ? null : formatMinor(services.currency, BigInt(minor)));
    return c.json({ stream: queue.stream.replace(/^TALLY_SETTLE_/, 'TALLY_HELD_'), held: await queue.held(), crossings: crossings.map((h) => ({ ...h, amount: major(h.amount) })) }, 200);
  });

  app.openapi(health, async (c) => {
    await services.db.query('SELECT 1');
    return c.json({ status: 'ok' as const, database: services.db.kind }, 200);
  });
  app.openapi(info, async (c) => {
    const { identity, currency, chain } = services;
    const shown: Record<string, SchemeInfo> = {};
    // Every scheme served is listed, so a wallet can tell whether its scheme is one.
    for (const scheme of schemes) shown[scheme.name] = scheme.info === undefined ? {} : await scheme.info(services);
    return c.json(
      {
        currency: { code: currency.code, decimals: currency.decimals },
        role: identity.role,
        ...(identity.centralBank === undefined ? {} : { centralBank: identity.centralBank }),
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
        ...(chain === undefined ? {} : { chain: { rpcUrl: chain.publicRpcUrl, chainId: chain.chainId, embedded: chain.embedded, bankAddress: chain.bankAddress } }),
        ...(services.settleQueue === undefined ? {} : { settle: { stream: services.settleQueue.stream, shards: services.settleQueue.shards, ...(services.shardLedgers === undefined ? {} : { databases: services.shardLedgers.parties.length - 1 }) } }),
        // Hono types JSON as mutable data; a scheme's info is the same data, read-only.
        schemes: shown as Record<string, Record<string, never>>,
      },
      200,
    );
  });
}
