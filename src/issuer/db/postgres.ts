/**
 * A PostgreSQL server through a pool of `pg` connections. Each transaction holds one connection
 * from BEGIN to COMMIT; single statements take any free one.
 */
import pg from 'pg';
import type { Database, Isolation, QueryResult, SqlParam, TransactionHandle, TransactionOptions } from './database.ts';
import { TYPE_PARSERS } from './parsers.ts';
import { withRetries } from './retry.ts';
import { scopedHandle, TransactionScope } from './scope.ts';

/** Connections per pool unless told otherwise. */
export const POOL_SIZE_DEFAULT = 10;
/** The most connections a pool may open. */
export const POOL_SIZE_MAX = 100;
/** A statement running longer than this is cancelled by the server. */
export const STATEMENT_TIMEOUT_MS_DEFAULT = 30_000;
/** Waiting longer than this for a connection fails the call. */
const CONNECT_TIMEOUT_MS = 10_000;

/** A schema name used unquoted in search_path: lower case, digits and underscores. */
const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/** How to reach the server. */
export interface PostgresOptions {
  /** The schema the tables live in (created when missing); the server's search_path otherwise. */
  readonly schema?: string | undefined;
  /** Connections in the pool; defaults to POOL_SIZE_DEFAULT. */
  readonly poolSize?: number | undefined;
  /** Defaults to STATEMENT_TIMEOUT_MS_DEFAULT. */
  readonly statementTimeoutMs?: number | undefined;
}

const types: pg.CustomTypesConfig = {
  getTypeParser: (oid: number, format?: 'text' | 'binary') => TYPE_PARSERS[oid] ?? pg.types.getTypeParser(oid, format),
};

async function runQuery<R extends object>(runner: pg.Pool | pg.PoolClient, sql: string, params: readonly SqlParam[]): Promise<QueryResult<R>> {
  const result = await runner.query<R>(sql, [...params]);
  return { rows: result.rows, rowCount: result.rowCount ?? result.rows.length };
}

function beginStatement(isolation: Isolation): string {
  return isolation === 'serializable' ? 'BEGIN ISOLATION LEVEL SERIALIZABLE' : 'BEGIN ISOLATION LEVEL READ COMMITTED';
}

class PostgresDatabase implements Database {
  readonly kind = 'postgres';
  readonly #pool: pg.Pool;
  readonly #scope = new TransactionScope();

  constructor(pool: pg.Pool) {
    this.#pool = pool;
  }

  query<R extends object>(sql: string, params: readonly SqlParam[] = []): Promise<QueryResult<R>> {
    this.#scope.assertOutside('query');
    return runQuery<R>(this.#pool, sql, params);
  }

  async exec(sql: string): Promise<void> {
    this.#scope.assertOutside('exec');
    // Without parameters pg uses the simple query protocol, which runs several statements.
    await this.#pool.query(sql);
  }

  transaction<T>(fn: (tx: TransactionHandle) => Promise<T>, options: TransactionOptions = {}): Promise<T> {
    this.#scope.assertOutside('transaction');
    const isolation = options.isolation ?? 'read committed';
    return withRetries(() => this.#attempt(fn, isolation), options.attemptsMax);
  }

  async #attempt<T>(fn: (tx: TransactionHandle) => Promise<T>, isolation: Isolation): Promise<T> {
    const client = await this.#pool.connect();
    let broken: Error | undefined;
    try {
      await client.query(beginStatement(isolation));
      const { handle, end } = scopedHandle({
        query: <R extends object>(sql: string, params: readonly SqlParam[] = []) => runQuery<R>(client, sql, params),
        exec: async (sql: string) => void (await client.query(sql)),
      });
      let value: T;
      try {
        value = await this.#scope.run(() => fn(handle));
      } finally {
        end();
      }
      await client.query('COMMIT');
      return value;
    } catch (e) {
      try {
        await client.query('ROLLBACK');
      } catch (rollbackError) {
        // A connection that cannot roll back is in an unknown state: drop it from the pool.
        broken = rollbackError instanceof Error ? rollbackError : new Error(String(rollbackError));
      }
      throw e;
    } finally {
      client.release(broken);
    }
  }

  close(): Promise<void> {
    return this.#pool.end();
  }
}

/**
 * Connects a pool to a PostgreSQL server and checks it answers.
 * @throws RangeError for a malformed schema name, pool size or timeout; the driver's error when the server cannot be reached
 */
export async function openPostgres(url: string, options: PostgresOptions = {}): Promise<Database> {
  const { schema, poolSize = POOL_SIZE_DEFAULT, statementTimeoutMs = STATEMENT_TIMEOUT_MS_DEFAULT } = options;
  if (schema !== undefined && !SCHEMA_NAME.test(schema)) {
    throw new RangeError(`schema: expected lower case letters, digits and underscores (at most 63), got ${JSON.stringify(schema.slice(0, 70))}`);
  }
  if (!Number.isInteger(poolSize) || poolSize < 1 || poolSize > POOL_SIZE_MAX) {
    throw new RangeError(`poolSize: expected 1..${POOL_SIZE_MAX}, got ${poolSize}`);
  }
  if (!Number.isInteger(statementTimeoutMs) || statementTimeoutMs < 1) {
    throw new RangeError(`statementTimeoutMs: expected a positive integer, got ${statementTimeoutMs}`);
  }
  const pool = new pg.Pool({
    connectionString: url,
    max: poolSize,
    types,
    statement_timeout: statementTimeoutMs,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    ...(schema === undefined ? {} : { options: `-c search_path=${schema}` }),
  });
  // An idle connection the server drops emits 'error' on the pool; without a listener that would
  // crash the process. The pool discards the connection and the next call opens a fresh one.
  pool.on('error', () => undefined);
  try {
    if (schema !== undefined) await ensureSchema(pool, schema);
    else await pool.query('SELECT 1');
  } catch (e) {
    await pool.end();
    throw e;
  }
  return new PostgresDatabase(pool);
}

async function ensureSchema(pool: pg.Pool, schema: string): Promise<void> {
  // Look before creating: CREATE SCHEMA IF NOT EXISTS needs the CREATE privilege even when the
  // schema exists, which a production role may not have.
  const found = await pool.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema]);
  if (found.rows.length === 0) await pool.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
}

/**
 * Drops a schema and everything in it (test and benchmark schemas), over a connection of its own.
 * @throws RangeError for a name that is not a plain lower-case identifier
 */
export async function dropPostgresSchema(url: string, schema: string): Promise<void> {
  if (!SCHEMA_NAME.test(schema)) throw new RangeError(`schema: expected a lower-case identifier, got ${JSON.stringify(schema)}`);
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  try {
    await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  } finally {
    await admin.end();
  }
}
