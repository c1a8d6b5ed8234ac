/**
 * Retrying a transaction the server aborted to keep transactions serializable or to break a
 * deadlock: the work is sound, only its timing collided, so it runs again after a short random wait.
 */
import { assert } from '../../core/assert.ts';
import { sqlState } from './database.ts';

/** Attempts per transaction, the first included. */
export const TRANSACTION_ATTEMPTS_MAX = 10;
/** The most attempts a caller may ask for. */
export const TRANSACTION_ATTEMPTS_LIMIT = 100;
/** The first backoff window; each retry doubles it up to BACKOFF_CAP_MS. */
const BACKOFF_BASE_MS = 2;
const BACKOFF_CAP_MS = 100;

/** SQLSTATE serialization_failure and deadlock_detected: a retry of the whole transaction may succeed. */
const RETRYABLE = new Set(['40001', '40P01']);

/**
 * True for the server's refusal of a statement a connection had prepared (src/issuer/db/postgres.ts
 * prepares them) after a change of schema altered its result type, such as a column's type: the
 * statement prepared again under a new name runs.
 */
export function isStalePlan(e: unknown): boolean {
  return sqlState(e) === '0A000' && e instanceof Error && /cached plan must not change result type/.test(e.message);
}

/** True for an error that aborts a transaction only because of a concurrent one, or of a prepared statement made stale by a change of schema. */
export function isRetryable(e: unknown): boolean {
  const state = sqlState(e);
  return (state !== undefined && RETRYABLE.has(state)) || isStalePlan(e);
}

/** Node's system errors of a connection that could not be made or was lost. */
const CONNECTION_ERRNOS = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);

/**
 * True for an error that says the database did not answer, rather than what it answered: a
 * connection refused, lost or timed out, the server shutting down or not taking connections to the
 * database (SQLSTATE classes 08 and 57, 53300, 55000 "not currently accepting connections"). Sending
 * the same request again later may succeed; any other error is the request's or the code's.
 */
export function isUnavailable(e: unknown): boolean {
  const state = sqlState(e);
  if (state !== undefined) return state.startsWith('08') || state.startsWith('57') || state === '53300' || (state === '55000' && e instanceof Error && /not currently accepting connections/.test(e.message));
  if (typeof e === 'object' && e !== null && 'code' in e && typeof e.code === 'string' && CONNECTION_ERRNOS.has(e.code)) return true;
  return e instanceof Error && /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error/i.test(e.message);
}

function backoffMs(failures: number): number {
  const window = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** failures);
  // Full jitter: colliding transactions spread out instead of colliding again in step.
  return Math.random() * window;
}

/**
 * Runs `attempt` until it succeeds, fails with an error that is not retryable, or has run
 * `attemptsMax` times; then rethrows the last error as the driver raised it.
 * @throws TallyError ASSERTION_FAILED for attemptsMax outside 1..TRANSACTION_ATTEMPTS_LIMIT
 */
export async function withRetries<T>(attempt: () => Promise<T>, attemptsMax: number = TRANSACTION_ATTEMPTS_MAX): Promise<T> {
  assert(
    Number.isInteger(attemptsMax) && attemptsMax >= 1 && attemptsMax <= TRANSACTION_ATTEMPTS_LIMIT,
    `attemptsMax must be 1..${TRANSACTION_ATTEMPTS_LIMIT}, got ${attemptsMax}`,
  );
  for (let failures = 0; ; failures++) {
    try {
      return await attempt();
    } catch (e) {
      if (!isRetryable(e) || failures + 1 >= attemptsMax) throw e;
      await new Promise((resolve) => setTimeout(resolve, backoffMs(failures)));
    }
  }
}
