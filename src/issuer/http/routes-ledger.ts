/**
 * Account holders and money: POST /v1/users (OPS §3.1 client registration), GET /v1/accounts/{id},
 * POST /v1/transfers, and the operator's POST /v1/operator/mint and GET /v1/audit. Every
 * mutating call is idempotent: its answer is stored with its effects, in one transaction.
 */
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { Amount } from '../../core/amount.ts';
import { concatBytes, fromBase64url, toBase64url, toHex, utf8 } from '../../core/bytes.ts';
import { sha256 } from '../../core/crypto/hash.ts';
import { SUITE_NAMES, SUITE_SIZES, suiteFor, type PublicKey } from '../../core/crypto/suite.ts';
import { isTallyError } from '../../core/errors.ts';
import { encodeCertificate, issueCertificate } from '../../pki/certificate.ts';
import { keyId } from '../../pki/key-id.ts';
import type { TransactionHandle } from '../db/database.ts';
import { ensureAccount } from '../ledger/account.ts';
import type { JsonValue } from '../ledger/json.ts';
import { mint } from '../ledger/mint.ts';
import type { LedgerResultCode } from '../ledger/result.ts';
import type { StoredResponse } from '../ledger/idempotency.ts';
import { transfer } from '../ledger/transfer.ts';
import { idempotencyKey, requestAuth, requireOperator, requireUser, verifySigned } from './auth.ts';
import type { IssuerEnv, IssuerServices } from './context.ts';
import { formatMinor, transferJson } from './json.ts';
import { ApiProblem } from './problem.ts';

/** How long a user certificate is valid. */
export const USER_CERTIFICATE_VALIDITY_MS = 2 * 365 * 24 * 3600 * 1000;

const base64url = z.string().regex(/^[A-Za-z0-9_-]*$/, 'base64url').max(4096);
const amountText = z.string().regex(/^(0|[1-9][0-9]{0,18})(\.[0-9]{1,18})?$/, 'decimal major units such as "12.50"');
const accountId = z.string().regex(/^[a-z][a-z0-9-]*:[A-Za-z0-9._:-]+$/).max(128);
const errorBody = { content: { 'application/json': { schema: z.object({ error: z.object({ code: z.string(), message: z.string(), details: z.record(z.string(), z.unknown()) }) }) } } };
const json = <T extends z.ZodType>(schema: T) => ({ content: { 'application/json': { schema } }, required: true });

const registerUserBody = z.strictObject({ publicKey: z.strictObject({ suite: z.enum(SUITE_NAMES), key: base64url }) });
const transferBody = z.strictObject({ to: accountId, amount: amountText, memo: z.string().max(140).optional() });
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
  description: 'Recomputes every balance from the journal: issued = online + settlement + offline float (operator token).',
  responses: { 200: { description: 'The audit', content: { 'application/json': { schema: z.object({ balanced: z.boolean() }).passthrough() } } } },
});

/**
 * Parses and validates the JSON body with `schema`.
 * @throws ApiProblem BODY_INVALID naming every field at fault
 */
function validBody<T extends z.ZodType>(c: Context<IssuerEnv>, schema: T): z.infer<T> {
  const parsed = schema.safeParse(c.get('jsonBody'));
  if (!parsed.success) {
    const issues = parsed.error.issues.map((issue) => `${['body', ...issue.path.map(String)].join('.')}: ${issue.message}`);
    throw new ApiProblem('BODY_INVALID', issues.join('; '), { issues });
  }
  return parsed.data;
}

function parseAmount(services: IssuerServices, text: string): Amount {
  try {
    return Amount.parse(text, services.currency);
  } catch (e) {
    if (isTallyError(e)) throw new ApiProblem('AMOUNT_INVALID', e.message, {});
    throw e;
  }
}

function requestHash(c: Context<IssuerEnv>, callerId: string): Uint8Array {
  return sha256(concatBytes(utf8(`${c.req.method} ${new URL(c.req.url).pathname} ${callerId}\n`), c.get('rawBody')));
}

async function idempotent(services: IssuerServices, c: Context<IssuerEnv>, scope: string, callerId: string, work: (tx: TransactionHandle) => Promise<StoredResponse>): Promise<Response> {
  const result = await services.ledger.withIdempotency(scope, `${callerId}:${idempotencyKey(c)}`.slice(0, 128), requestHash(c, callerId), work);
  if (!result.ok) throw new ApiProblem(result.code, result.message, {});
  c.header('idempotent-replayed', result.replayed ? 'true' : 'false');
  return new Response(JSON.stringify(result.response.body), { status: result.response.status, headers: { 'content-type': 'application/json' } });
}

function refusal(code: LedgerResultCode, message: string): StoredResponse {
  // Ledger refusals carry no details, so the stored body is plain JSON.
  const problem = new ApiProblem(code, message);
  return { status: problem.status, body: { error: { code: problem.code, message: problem.message, details: {} } } };
}

/** Adds the account and money routes. */
export function registerLedgerRoutes(app: OpenAPIHono<IssuerEnv>, services: IssuerServices): void {
  app.openAPIRegistry.registerPath(registerUser);
  app.post(registerUser.path, async (c) => {
    const body = validBody(c, registerUserBody);
    const auth = requestAuth(c);
    if (auth === null) throw new ApiProblem('UNAUTHENTICATED', 'registration must be signed with the key being registered', {});
    let publicKey: PublicKey;
    try {
      publicKey = { suite: body.publicKey.suite, key: fromBase64url(body.publicKey.key) };
    } catch {
      throw new ApiProblem('BODY_INVALID', 'body.publicKey.key: expected base64url', {});
    }
    if (publicKey.key.length !== SUITE_SIZES[publicKey.suite].publicKey || !suiteFor(services.provider, publicKey.suite).isValidPublicKey(publicKey.key)) {
      throw new ApiProblem('BODY_INVALID', `body.publicKey.key: not a valid ${publicKey.suite} public key`, {});
    }
    const id = toHex(keyId(publicKey));
    if (auth.keyId !== id) throw new ApiProblem('SIGNATURE_INVALID', `the request must be signed by the registered key, whose key id is ${id}`, {});
    await verifySigned(services, c, auth, publicKey);
    return idempotent(services, c, 'users', id, async (tx) => {
      const existing = await tx.query('SELECT 1 FROM users WHERE key_id = $1', [id]);
      if (existing.rowCount > 0) return { status: 409, body: { error: { code: 'ALREADY_REGISTERED', message: `key ${id} is already registered`, details: {} } } };
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
      await tx.query('INSERT INTO users (key_id, suite, public_key, certificate, account_id) VALUES ($1, $2, $3, $4, $5)', [id, publicKey.suite, publicKey.key, encoded, account]);
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
      const reference: JsonValue = body.memo === undefined ? null : { memo: body.memo };
      const result = await transfer(tx, {
        idempotencyKey: `transfer:${user.keyId}:${toHex(requestHash(c, user.keyId)).slice(0, 32)}:${idempotencyKey(c)}`.slice(0, 128),
        debit: user.accountId,
        credit: body.to,
        amount: amount.minor,
        kind: 'transfer',
        ...(reference === null ? {} : { reference }),
      });
      if (!result.ok) return refusal(result.code, result.message);
      return { status: 200, body: { transfer: transferJson(services.currency, result.transfer) } };
    });
  });

  app.openAPIRegistry.registerPath(postMint);
  app.post(postMint.path, async (c) => {
    requireOperator(c.get('caller'));
    const body = validBody(c, mintBody);
    const amount = parseAmount(services, body.amount);
    return idempotent(services, c, 'mint', 'operator', async (tx) => {
      const result = await mint(tx, { idempotencyKey: `mint:${idempotencyKey(c)}`.slice(0, 128), account: body.account, amount: amount.minor });
      if (!result.ok) return refusal(result.code, result.message);
      return { status: 200, body: { transfer: transferJson(services.currency, result.transfer) } };
    });
  });

  app.openapi(getAudit, async (c) => {
    requireOperator(c.get('caller'));
    const audit = await services.ledger.audit();
    return c.json(JSON.parse(JSON.stringify(audit, (_key, value: unknown) => (typeof value === 'bigint' ? value.toString() : value))) as { balanced: boolean }, 200);
  });
}
