/**
 * Account holders and money: POST /v1/users (OPS §3.1 client registration), GET /v1/accounts/{id},
 * POST /v1/transfers, and the operator's POST /v1/operator/mint and GET /v1/audit. Every
 * mutating call is idempotent: its answer is stored with its effects, in one transaction.
 */
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { toBase64url, toHex } from '../../core/bytes.ts';
import { encodeCertificate, issueCertificate } from '../../pki/certificate.ts';
import { ensureAccount, findAccount } from '../ledger/account.ts';
import { audit } from '../ledger/audit.ts';
import { exposureOf, type HoldingsReader, type SchemeExposure } from '../ledger/exposure.ts';
import { auditShards } from '../shards/audit.ts';
import { auditJson, type AuditReport } from './audit-json.ts';
import type { SchemeAudit } from './scheme-module.ts';
import type { JsonValue } from '../ledger/json.ts';
import { mint } from '../ledger/mint.ts';
import { transfer } from '../ledger/transfer.ts';
import { idempotencyKey, requestAuth, requireOperator, requireUser, verifySigned } from './auth.ts';
import { RESERVE_ACCOUNT, type IssuerEnv, type IssuerServices } from './context.ts';
import { USER_CERTIFICATE_VALIDITY_MS } from './device-registration.ts';
import { formatMinor, transferJson } from './json.ts';
import { ApiProblem } from './problem.ts';
import { accountId, amountText, storableText, errorBody, fitKey, idempotent, json, parseAmount, parsePublicKey, publicKeyBody, refusal, requestHash, validBody } from './validate.ts';

export { USER_CERTIFICATE_VALIDITY_MS } from './device-registration.ts';

const registerUserBody = z.strictObject({ publicKey: publicKeyBody });
const transferBody = z.strictObject({ to: accountId, amount: amountText, memo: storableText(140).optional() });
const mintBody = z.strictObject({ account: accountId, amount: amountText });

const transferSchema = z.object({
  id: z.string(),
  from: z.string(),
  to: z.string(),
  amount: z.string(),
  currency: z.string(),
  kind: z.string(),
  reference: z.unknown(),
  createdAt: z.string(),
});

const registerUser = createRoute({
  method: 'post',
  path: '/v1/users',
  description: 'Registers an account holder\'s key, signed by that key; answers a user certificate and an online account.',
  request: { body: json(registerUserBody) },
  responses: {
    201: { description: 'Registered', content: { 'application/json': { schema: z.object({ keyId: z.string(), account: z.string(), certificate: z.string() }) } } },
    400: { description: 'Bad request', ...errorBody },
    401: { description: 'Bad signature', ...errorBody },
    409: { description: 'Already registered', ...errorBody },
  },
});

const getAccount = createRoute({
  method: 'get',
  path: '/v1/accounts/{id}',
  description: 'Balance and recent history; only for the account\'s owner.',
  request: { params: z.object({ id: accountId }), query: z.object({ limit: z.coerce.number().int().min(1).max(1000).default(50) }) },
  responses: {
    200: {
      description: 'The account',
      content: { 'application/json': { schema: z.object({ id: z.string(), balance: z.string(), currency: z.string(), history: z.array(z.object({ transfer: transferSchema, delta: z.string() })) }) } },
    },
    403: { description: 'Not the owner', ...errorBody },
  },
});

const postTransfer = createRoute({
  method: 'post',
  path: '/v1/transfers',
  description: 'An online payment from the caller\'s account.',
  request: { body: json(transferBody) },
  responses: { 200: { description: 'Done (or the stored answer to the same request)', content: { 'application/json': { schema: z.object({ transfer: transferSchema }) } } }, 422: { description: 'Refused', ...errorBody } },
});

const postMint = createRoute({
  method: 'post',
  path: '/v1/operator/mint',
  description: 'The central bank issues money into an account (operator token).',
  request: { body: json(mintBody) },
  responses: { 200: { description: 'Minted', content: { 'application/json': { schema: z.object({ transfer: transferSchema }) } } } },
});

const getAudit = createRoute({
  method: 'get',
  path: '/v1/audit',
  description:
    'Recomputes every balance from the journal (issued = online + settlement + offline float) and checks each scheme\'s float against what the node knows its devices hold, listing the devices any shortfall comes from (operator token). Amounts are decimal strings in the node\'s currency.',
  responses: { 200: { description: 'The audit', content: { 'application/json': { schema: z.object({ balanced: z.boolean() }).passthrough() } } } },
});

/** Adds the account and money routes. */
export function registerLedgerRoutes(
  app: OpenAPIHono<IssuerEnv>,
  services: IssuerServices,
  holdings: readonly HoldingsReader[] = [],
  schemeAudits: readonly { scheme: string; audit: (services: IssuerServices) => Promise<SchemeAudit> }[] = [],
  servedFloats: readonly string[] = [],
): void {
  app.openAPIRegistry.registerPath(registerUser);
  app.post(registerUser.path, async (c) => {
    if (services.identity.role === 'central-bank') throw new ApiProblem('ROLE_MISMATCH', 'a central bank keeps no customer accounts: register with an intermediary', { role: 'central-bank' });
    const body = validBody(c, registerUserBody);
    const auth = requestAuth(c);
    if (auth === null) throw new ApiProblem('UNAUTHENTICATED', 'registration must be signed with the key being registered', {});
    const { publicKey, keyId: id } = parsePublicKey(services, 'body.publicKey', body.publicKey);
    if (auth.keyId !== id) throw new ApiProblem('SIGNATURE_INVALID', `the request must be signed by the registered key, whose key id is ${id}`, {});
    await verifySigned(services, c, auth, publicKey);
    return idempotent(services, c, 'users', id, async (tx) => {
      const registered = refusal('ALREADY_REGISTERED', `key ${id} is already registered`);
      const existing = await tx.query('SELECT 1 FROM users WHERE key_id = $1', [id]);
      if (existing.rowCount > 0) return registered;
      const account = `user:${id}`;
      const opened = await ensureAccount(tx, { id: account, kind: 'user', currency: services.currency.code, owner: id });
      if (!opened.ok) return refusal(opened.code, opened.message);
      const now = services.now();
      const certificate = issueCertificate({
        issuer: services.identity.intermediary.signer,
        issuerRole: 'intermediary',
        role: 'user',
        subject: publicKey,
        notBefore: now - 60_000,
        notAfter: now + USER_CERTIFICATE_VALIDITY_MS,
        extensions: { currency: services.currency.code },
      });
      const encoded = encodeCertificate(certificate);
      // A concurrent registration of the same key may have committed since the check: then this one is the second.
      const inserted = await tx.query('INSERT INTO users (key_id, suite, public_key, certificate, account_id) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING', [
        id,
        publicKey.suite,
        publicKey.key,
        encoded,
        account,
      ]);
      if (inserted.rowCount === 0) return registered;
      return { status: 201, body: { keyId: id, account, certificate: toBase64url(encoded) } };
    });
  });

  app.openapi(getAccount, async (c) => {
    const caller = c.get('caller');
    const { id } = c.req.valid('param');
    const user = caller.kind === 'operator' ? null : requireUser(caller);
    if (user !== null && user.accountId !== id) throw new ApiProblem('FORBIDDEN', 'only the owner may read an account', {});
    const account = await services.ledger.account(id);
    if (account === undefined) throw new ApiProblem('ACCOUNT_UNKNOWN', `no account ${id}`, {});
    const history = (await services.ledger.history(id, { limit: c.req.valid('query').limit })) ?? [];
    return c.json(
      {
        id: account.id,
        balance: formatMinor(services.currency, account.balance),
        currency: account.currency,
        history: history.map((entry) => ({ transfer: transferJson(services.currency, entry.transfer) as z.infer<typeof transferSchema>, delta: formatMinor(services.currency, entry.delta) })),
      },
      200,
    );
  });

  app.openAPIRegistry.registerPath(postTransfer);
  app.post(postTransfer.path, async (c) => {
    const user = requireUser(c.get('caller'));
    const body = validBody(c, transferBody);
    const amount = parseAmount(services, body.amount);
    return idempotent(services, c, 'transfers', user.keyId, async (tx) => {
      const target = await findAccount(tx, body.to);
      // Issuance, floats and settlement accounts move only by the node's own operations.
      if (target !== undefined && target.kind !== 'user') return refusal('ACCOUNT_RESTRICTED', `account ${body.to} is a ${target.kind} account: online payments go to account holders only`);
      const reference: JsonValue = body.memo === undefined ? null : { memo: body.memo };
      const result = await transfer(tx, {
        idempotencyKey: fitKey(`transfer:${user.keyId}:${toHex(requestHash(c, user.keyId)).slice(0, 32)}:${idempotencyKey(c)}`),
        debit: user.accountId,
        credit: body.to,
        amount: amount.minor,
        kind: 'transfer',
        ...(reference === null ? {} : { reference }),
        currency: services.currency,
      });
      if (!result.ok) return refusal(result.code, result.message);
      return { status: 200, body: { transfer: transferJson(services.currency, result.transfer) } };
    });
  });

  app.openAPIRegistry.registerPath(postMint);
  app.post(postMint.path, async (c) => {
    requireOperator(c.get('caller'));
    const { role } = services.identity;
    if (role === 'central-bank') throw new ApiProblem('ROLE_MISMATCH', 'a central bank issues into intermediaries\' reserves (tally cb issue), not into customer accounts', { role });
    const body = validBody(c, mintBody);
    const amount = parseAmount(services, body.amount);
    return idempotent(services, c, 'mint', 'operator', async (tx) => {
      // Below a central bank, an intermediary puts into its customers' accounts only what it holds in its reserve there.
      const source = role === 'intermediary' ? RESERVE_ACCOUNT : undefined;
      const result = await mint(tx, { idempotencyKey: fitKey(`mint:${idempotencyKey(c)}`), account: body.account, amount: amount.minor, ...(source === undefined ? {} : { source }) });
      if (!result.ok && result.code === 'INSUFFICIENT_FUNDS' && source !== undefined) {
        return refusal(result.code, `the reserve at the central bank not yet put into customers' accounts (${source}) is short of ${body.amount} ${services.currency.code}: ask the central bank to issue more into this intermediary's reserve (tally cb issue), then sync it (tally node reserve)`);
      }
      if (!result.ok) return refusal(result.code, result.message);
      return { status: 200, body: { transfer: transferJson(services.currency, result.transfer) } };
    });
  });

  app.openapi(getAudit, async (c) => {
    requireOperator(c.get('caller'));
    // One snapshot for the journal and every scheme's holdings, so a claim cannot fall between them.
    const report = await services.db.transaction(
      async (tx): Promise<AuditReport> => {
        const ledger = await audit(tx);
        const floats = new Map(ledger.currencies.flatMap((cur) => cur.offlineFloat.map((f) => [f.account, f.amount] as const)));
        const exposure: SchemeExposure[] = [];
        for (const read of holdings) {
          const held = await read(tx);
          exposure.push(exposureOf(held, floats.get(held.floatAccount) ?? 0n));
        }
        // Offline value of a scheme this node does not serve now (started with --schemes): counted
        // in the ledger's sums, but no holdings to compare it with; shown, not hidden.
        const unchecked = [...floats].filter(([account, amount]) => amount !== 0n && !servedFloats.includes(account)).map(([account, amount]) => ({ account, amount }));
        return { ledger, exposure, unchecked };
      },
      { isolation: 'serializable' },
    );
    const schemes = await Promise.all(schemeAudits.map(async (s) => ({ scheme: s.scheme, ...(await s.audit(services)) })));
    // A node with shard databases: each of them, and the credits in flight between them.
    const shards = services.shardLedgers === undefined ? undefined : await auditShards(services.shardLedgers, holdings);
    return c.json(auditJson(services.currency, { ...report, schemes, shards }) as { balanced: boolean }, 200);
  });
}
