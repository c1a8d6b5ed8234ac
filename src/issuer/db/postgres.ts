/**
 * A PostgreSQL server through a pool of `pg` connections. Each transaction holds one connection
 * from BEGIN to COMMIT; single statements take any free one.
 */
import { createHash } from 'node:crypto';
import pg from 'pg';
import type { Database, Isolation, QueryResult, SqlParam, TransactionHandle, TransactionOptions } from './database.ts';
import { TYPE_PARSERS } from './parsers.ts';
import { isStalePlan, withRetries } from './retry.ts';
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
  /**
   * Parameterised statements are prepared on each connection by name (true by default, or as the
   * URL's `tally_prepared_statements=on|off` says). False for a connection pooler that hands a
   * transaction to another server connection each time and does not carry prepared statements over
   * (PgBouncer in transaction mode without `max_prepared_statements`).
   */
  readonly preparedStatements?: boolean | undefined;
}

const types: pg.CustomTypesConfig = {
  getTypeParser: (oid: number, format?: 'text' | 'binary') => TYPE_PARSERS[oid] ?? pg.types.getTypeParser(oid, format),
};

/**
 * The query parameter of a database URL that turns prepared statements off or on for the pool
 * (`?tally_prepared_statements=off`): how an operator sets it for `--database-url` and
 * `--shard-database`. The driver ignores parameters it does not know.
 */
export const PREPARED_STATEMENTS_PARAMETER = 'tally_prepared_statements';

/** What a database URL says of prepared statements, if anything. @throws RangeError for a value other than on, off, true or false */
function preparedStatementsOf(url: string): boolean | undefined {
  let value: string | null;
  try {
    value = new URL(url).searchParams.get(PREPARED_STATEMENTS_PARAMETER);
  } catch {
    return undefined;
  }
  if (value === null) return undefined;
  if (value === 'off' || value === 'false') return false;
  if (value === 'on' || value === 'true') return true;
  throw new RangeError(`${PREPARED_STATEMENTS_PARAMETER}: expected on or off in the database URL, got ${JSON.stringify(value.slice(0, 40))}`);
}

/** Statement texts kept prepared, at most: beyond them a statement is parsed and planned each time. */
export const PREPARED_STATEMENTS_MAX = 1024;

/** The server-side name of each statement text prepared (the same on every connection). */
const prepared = new Map<string, string>();
/**
 * Bumped when the server refuses a prepared statement whose result a change of schema altered
 * (a column's type): every text then gets a new name, prepared afresh on each connection.
 */
let generation = 0;

/**
 * The name a parameterised statement is prepared under. The server plans a statement each time it
 * is parsed, and for the settlement statements the plan costs several times their execution
 * (0.25 to 0.6 ms against 0.05 to 0.1 for DOT-M's tree read); a named statement is parsed and
 * planned once per connection and then only executed (with PostgreSQL's own choice between a
 * custom and a generic plan). Statements without parameters (DDL, migrations) stay unnamed.
 */
function statementName(sql: string, params: readonly SqlParam[]): string | undefined {
  if (params.length === 0) return undefined;
  let name = prepared.get(sql);
  if (name === undefined && prepared.size < PREPARED_STATEMENTS_MAX) {
    name = `tally_${generation}_${createHash('sha256').update(sql, 'utf8').digest('hex').slice(0, 32)}`;
    prepared.set(sql, name);
  }
  return name;
}

/**
 * Runs a statement, prepared by name when `prepare`. A prepared statement whose result type a
 * change of schema altered is refused by the server on that connection from then on; its text is
 * then named anew (every text is), and a statement outside a transaction runs again at once; in a
 * transaction the error aborts it, and withRetries runs the transaction again (retry.ts).
 */
async function runQuery<R extends object>(runner: pg.Pool | pg.PoolClient, sql: string, params: readonly SqlParam[], prepare: boolean, inTransaction: boolean): Promise<QueryResult<R>> {
  const run = async () => {
    const name = prepare ? statementName(sql, params) : undefined;
    const result = name === undefined ? await runner.query<R>(sql, [...params]) : await runner.query<R>({ name, text: sql, values: [...params] });
    return { rows: result.rows, rowCount: result.rowCount ?? result.rows.length };
  };
  try {
    return await run();
  } catch (e) {
    if (!(prepare && isStalePlan(e))) throw e;
    generation++;
    prepared.clear();
    if (inTransaction) throw e;
    return await run();
  }
}

function beginStatement(isolation: Isolation): string {
  return isolation === 'serializable' ? 'BEGIN ISOLATION LEVEL SERIALIZABLE' : 'BEGIN ISOLATION LEVEL READ COMMITTED';
}

class PostgresDatabase implements Database {
  readonly kind = 'postgres';
  readonly #pool: pg.Pool;
  readonly #scope = new TransactionScope();

  readonly #prepare: boolean;

  constructor(pool: pg.Pool, prepare: boolean) {
    this.#pool = pool;
    this.#prepare = prepare;
  }

  query<R extends object>(sql: string, params: readonly SqlParam[] = []): Promise<QueryResult<R>> {
    this.#scope.assertOutside('query');
    return runQuery<R>(this.#pool, sql, params, this.#prepare, false);
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
        query: <R extends object>(sql: string, params: readonly SqlParam[] = []) => runQuery<R>(client, sql, params, this.#prepare, true),
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
  const prepare = options.preparedStatements ?? preparedStatementsOf(url) ?? true;
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
  return new PostgresDatabase(pool, prepare);
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
