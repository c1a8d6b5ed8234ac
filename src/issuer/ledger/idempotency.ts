/**
 * The idempotency store for any mutating request: the answer to a request is stored in the same
 * transaction as its effects, so a replay (a retry after a lost answer, a duplicate) gets the
 * stored answer and changes nothing, and a different request under the same key is refused.
 * Concurrent requests with one key wait for the first: its row is inserted before its work runs.
 */
import { assert } from '../../core/assert.ts';
import type { Database, TransactionHandle } from '../db/database.ts';
import { jsonText, type JsonValue } from './json.ts';
import { failure, type LedgerFailure } from './result.ts';
import { idempotencyKeyProblem } from './rules.ts';

/** A request hash is SHA-256: 32 bytes. */
export const REQUEST_HASH_BYTES = 32;
/** The largest stored response body, as JSON text in UTF-8. */
export const RESPONSE_BYTES_MAX = 65_536;

/** Such as 'transfer' or 'ops/settle': which kind of request the key belongs to. */
const SCOPE = /^[a-z][a-z0-9/._-]{0,63}$/;

/** An answer to store: an HTTP status and a JSON body (amounts in it as strings). */
export interface StoredResponse {
  readonly status: number;
  readonly body: JsonValue;
}

/** The response, from this call's work or stored by an earlier one; or why neither. */
export type IdempotentResult =
  | { readonly ok: true; readonly replayed: boolean; readonly response: StoredResponse }
  | LedgerFailure<'REQUEST_INVALID' | 'IDEMPOTENCY_CONFLICT'>;

interface StoredRow {
  same_request: boolean;
  status: number | null;
  response: JsonValue | null;
}

/** Identifies one request under a key. */
export interface IdempotentRequest {
  readonly scope: string;
  readonly key: string;
  /** SHA-256 of the request's canonical form: another request under the key is a conflict. */
  readonly requestHash: Uint8Array;
}

function checkResponse(response: StoredResponse): string {
  assert(Number.isInteger(response.status) && response.status >= 100 && response.status <= 599, `response status ${response.status} is not an HTTP status`);
  const { text, bytes } = jsonText(response.body);
  assert(bytes <= RESPONSE_BYTES_MAX, `response body of ${bytes} bytes is over the ${RESPONSE_BYTES_MAX} bytes an idempotency record holds`);
  return text;
}

/**
 * Runs `work` once per (scope, key): inside one transaction with its effects, storing what it
 * answers, so that a replay returns the stored answer. `work` may run again when the transaction
 * is retried, so it must act only through `tx`. Every answer it returns is stored, refusals
 * included, so a retry under the key gets the same refusal; when it throws, nothing is stored.
 * @throws RangeError for a request hash that is not 32 bytes; TallyError ASSERTION_FAILED for a response that is not storable; whatever `work` throws
 */
export async function withIdempotency(
  db: Database,
  request: IdempotentRequest,
  work: (tx: TransactionHandle) => Promise<StoredResponse>,
): Promise<IdempotentResult> {
  const { scope, key, requestHash } = request;
  if (!(requestHash instanceof Uint8Array) || requestHash.length !== REQUEST_HASH_BYTES) {
    throw new RangeError(`request hash: expected ${REQUEST_HASH_BYTES} bytes (SHA-256), got ${requestHash.length}`);
  }
  if (!SCOPE.test(scope)) return failure('REQUEST_INVALID', `scope: expected lower case words such as "ops/settle", got ${JSON.stringify(scope.slice(0, 70))}`);
  const keyProblem = idempotencyKeyProblem(key);
  if (keyProblem !== undefined) return failure('REQUEST_INVALID', keyProblem);
  return db.transaction(async (tx): Promise<IdempotentResult> => {
    // The row comes first: a concurrent request with this key waits here until we commit.
    const claimed = await tx.query('INSERT INTO idempotency (scope, key, request_hash) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING key', [scope, key, requestHash]);
    if (claimed.rows.length === 1) {
      const response = await work(tx);
      const text = checkResponse(response);
      const stored = await tx.query<{ status: number; response: JsonValue }>(
        'UPDATE idempotency SET status = $3, response = $4::text::jsonb WHERE scope = $1 AND key = $2 RETURNING status, response',
        [scope, key, response.status, text],
      );
      const row = stored.rows[0];
      assert(row !== undefined, `idempotency record ${scope}/${key} vanished in its own transaction`);
      // Answered as stored, so this answer and every replay are the same value.
      return { ok: true, replayed: false, response: { status: row.status, body: row.response } };
    }
    const found = await tx.query<StoredRow>(
      'SELECT request_hash = $3 AS same_request, status, response FROM idempotency WHERE scope = $1 AND key = $2',
      [scope, key, requestHash],
    );
    const row = found.rows[0];
    assert(row !== undefined, `idempotency record ${scope}/${key} conflicted but cannot be read`);
    if (!row.same_request) {
      return failure('IDEMPOTENCY_CONFLICT', `idempotency key ${JSON.stringify(key)} in ${scope} was used for another request: use a new key for a new request`);
    }
    // The inserting transaction fills the row before it commits, so a visible row is answered.
    // (A body of JSON null reads back as null; the status tells an answered row.)
    assert(row.status !== null, `idempotency record ${scope}/${key} has no stored response`);
    return { ok: true, replayed: true, response: { status: row.status, body: row.response } };
  });
}

/**
 * The answer stored under (scope, key) for the request with `requestHash`, without waiting on a
 * transaction still settling it; undefined when none is stored yet, an IDEMPOTENCY_CONFLICT
 * refusal when the key holds another request.
 */
export async function storedResponse(db: Database, scope: string, key: string, requestHash: Uint8Array): Promise<StoredResponse | undefined> {
  const found = await db.query<StoredRow>('SELECT request_hash = $3 AS same_request, status, response FROM idempotency WHERE scope = $1 AND key = $2', [scope, key, requestHash]);
  const row = found.rows[0];
  if (row === undefined || row.status === null) return undefined;
  if (!row.same_request) return { status: 409, body: { error: { code: 'IDEMPOTENCY_CONFLICT', message: `idempotency key ${JSON.stringify(key)} in ${scope} was used for another request: use a new key for a new request`, details: {} } } };
  return { status: row.status, body: row.response };
}
