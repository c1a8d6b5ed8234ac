/**
 * Who is calling: the operator (bearer token), a registered account holder (signed request), or
 * nobody. A signed request's nonce is recorded, so a replay is refused.
 */
import type { Context } from 'hono';
import { equalBytes, utf8 } from '../../core/bytes.ts';
import { isTallyError } from '../../core/errors.ts';
import { SUITE_NAMES, type PublicKey } from '../../core/crypto/suite.ts';
import { checkRequestAuth, readRequestAuth, REQUEST_WINDOW_MS, type RequestAuth } from '../client/request-auth.ts';
import type { Queryable } from '../db/database.ts';
import { ApiProblem } from './problem.ts';
import type { Caller, IssuerEnv, IssuerServices } from './context.ts';

interface UserRow {
  suite: string;
  public_key: Uint8Array;
  account_id: string;
  revoked: boolean;
}

/** The signed-request headers of `c`, or null; malformed headers are a 401. */
export function requestAuth(c: Context<IssuerEnv>): RequestAuth | null {
  try {
    return readRequestAuth((name) => c.req.header(name));
  } catch (e) {
    if (isTallyError(e, 'DECODE_FAILED')) throw new ApiProblem('UNAUTHENTICATED', `malformed signature headers: ${e.message}`, { path: e.details.path });
    throw e;
  }
}

/**
 * Checks a signed request against `publicKey` and records its nonce.
 * @throws ApiProblem SIGNATURE_INVALID, TIMESTAMP_OUT_OF_WINDOW, NONCE_REPLAYED
 */
export async function verifySigned(services: IssuerServices, c: Context<IssuerEnv>, auth: RequestAuth, publicKey: PublicKey, q: Queryable = services.db): Promise<void> {
  const url = new URL(c.req.url);
  const problem = checkRequestAuth({
    provider: services.provider,
    publicKey,
    auth,
    method: c.req.method,
    path: url.pathname + url.search,
    body: c.get('rawBody'),
    bodyHash: c.get('bodyHash'),
    now: services.now(),
  });
  if (problem === 'TIMESTAMP_OUT_OF_WINDOW') {
    throw new ApiProblem(problem, `request timestamp is more than ${REQUEST_WINDOW_MS / 1000} s from the node's clock; check the device clock`, {
      timestamp: auth.timestamp,
      now: services.now(),
    });
  }
  if (problem !== null) throw new ApiProblem(problem, 'request signature does not verify with the registered key', {});
  const inserted = await q.query(
    `INSERT INTO request_nonces (key_id, nonce, expires_at) VALUES ($1, $2, to_timestamp($3::bigint / 1000.0))
     ON CONFLICT DO NOTHING`,
    [auth.keyId, auth.nonce, BigInt(auth.timestamp + 2 * REQUEST_WINDOW_MS)],
  );
  if (inserted.rowCount !== 1) throw new ApiProblem('NONCE_REPLAYED', 'this request was already received (replayed nonce)', {});
}

function operatorToken(c: Context<IssuerEnv>): string | null {
  const header = c.req.header('authorization');
  if (header === undefined) return null;
  const match = /^Bearer ([A-Za-z0-9_-]{1,128})$/.exec(header);
  if (match === null) throw new ApiProblem('UNAUTHENTICATED', 'Authorization must be "Bearer <operator token>"', {});
  return match[1] as string;
}

/**
 * Works out the caller of a request. Registration (POST /v1/users) checks its own signature, with
 * the key it registers; every other signed request must come from a registered key.
 * @throws ApiProblem UNAUTHENTICATED, KEY_UNKNOWN, CERT_REVOKED and the codes of verifySigned
 */
export async function identifyCaller(services: IssuerServices, c: Context<IssuerEnv>): Promise<Caller> {
  const token = operatorToken(c);
  if (token !== null) {
    const expected = utf8(services.identity.operatorToken);
    if (!equalBytes(utf8(token), expected)) throw new ApiProblem('UNAUTHENTICATED', 'wrong operator token', {});
    return { kind: 'operator' };
  }
  const auth = requestAuth(c);
  if (auth === null) return { kind: 'anonymous' };
  if (c.req.method === 'POST' && new URL(c.req.url).pathname === '/v1/users') return { kind: 'anonymous' };
  // A central bank's signed callers are the intermediaries it certified.
  if (services.identity.role === 'central-bank') return identifyIntermediary(services, c, auth);
  const rows = await services.db.query<UserRow>(
    `SELECT suite, public_key, account_id, EXISTS (SELECT 1 FROM revoked_certificates r WHERE r.subject_key_id = users.key_id) AS revoked
     FROM users WHERE key_id = $1`,
    [auth.keyId],
  );
  const row = rows.rows[0];
  if (row === undefined) throw new ApiProblem('KEY_UNKNOWN', `no account holder is registered with key ${auth.keyId}: register with POST /v1/users`, {});
  if (row.revoked) throw new ApiProblem('CERT_REVOKED', `the certificate of key ${auth.keyId} is revoked; the node refuses its requests`, { keyId: auth.keyId });
  const suite = SUITE_NAMES.find((name) => name === row.suite) ?? null;
  if (suite === null) throw new ApiProblem('INTERNAL', 'registered key has an unknown suite', {}, 500);
  await verifySigned(services, c, auth, { suite, key: new Uint8Array(row.public_key) });
  return { kind: 'user', keyId: auth.keyId, accountId: row.account_id };
}

/** At a central bank: the intermediary whose key signed the request. */
async function identifyIntermediary(services: IssuerServices, c: Context<IssuerEnv>, auth: RequestAuth): Promise<Caller> {
  const { rows } = await services.db.query<{ suite: string; public_key: Uint8Array; status: string }>('SELECT suite, public_key, status FROM cb_intermediaries WHERE key_id = $1', [auth.keyId]);
  const row = rows[0];
  if (row === undefined || (row.status !== 'approved' && row.status !== 'revoked')) {
    throw new ApiProblem('KEY_UNKNOWN', `no intermediary is enrolled with key ${auth.keyId}${row === undefined ? '' : ` (its enrolment is ${row.status})`}`, {});
  }
  const suite = SUITE_NAMES.find((name) => name === row.suite) ?? null;
  if (suite === null) throw new ApiProblem('INTERNAL', 'enrolled key has an unknown suite', {}, 500);
  await verifySigned(services, c, auth, { suite, key: new Uint8Array(row.public_key) });
  return { kind: 'intermediary', keyId: auth.keyId, revoked: row.status === 'revoked' };
}

/** The operator, or a 401/403. */
export function requireOperator(caller: Caller): void {
  if (caller.kind !== 'operator') throw new ApiProblem(caller.kind === 'anonymous' ? 'UNAUTHENTICATED' : 'FORBIDDEN', 'this call needs the operator token', {});
}

/** A registered account holder, or a 401/403. */
export function requireUser(caller: Caller): Extract<Caller, { kind: 'user' }> {
  if (caller.kind !== 'user') {
    throw new ApiProblem(caller.kind === 'anonymous' ? 'UNAUTHENTICATED' : 'FORBIDDEN', 'this call must be signed by a registered account holder', {});
  }
  return caller;
}

/** The Idempotency-Key header, required on every mutating request. */
export function idempotencyKey(c: Context<IssuerEnv>): string {
  const key = c.req.header('idempotency-key');
  if (key === undefined || !/^[A-Za-z0-9_.:-]{8,128}$/.test(key)) {
    throw new ApiProblem('IDEMPOTENCY_KEY_REQUIRED', 'mutating requests need an Idempotency-Key header of 8 to 128 characters [A-Za-z0-9_.:-]', {});
  }
  return key;
}
