/**
 * The embedded database: PostgreSQL compiled to WebAssembly (PGlite), kept in a data folder or in
 * memory. PGlite has one connection, so transactions run one after another, never interleaved.
 */
import { PGlite, type PGliteInterface, type Results, type Transaction } from '@electric-sql/pglite';
import type { Database, Isolation, QueryResult, SqlParam, TransactionHandle, TransactionOptions } from './database.ts';
import { TYPE_PARSERS } from './parsers.ts';
import { withRetries } from './retry.ts';
import { scopedHandle, TransactionScope } from './scope.ts';

/** The engine one PGlite database uses: a running instance or one open transaction on it. */
type PgliteRunner = Pick<Transaction, 'query' | 'exec'>;

// Given with every query rather than once at creation, so instances made by clone() or by the
// caller read the same values.
const QUERY_OPTIONS = { parsers: TYPE_PARSERS };

async function runQuery<R extends object>(runner: PgliteRunner, sql: string, params: readonly SqlParam[]): Promise<QueryResult<R>> {
  const result: Results<R> = await runner.query<R>(sql, [...params], QUERY_OPTIONS);
  return { rows: result.rows, rowCount: result.rowCount ?? result.affectedRows ?? result.rows.length };
}

function isolationStatement(isolation: Isolation): string {
  return isolation === 'serializable' ? 'SET TRANSACTION ISOLATION LEVEL SERIALIZABLE' : 'SET TRANSACTION ISOLATION LEVEL READ COMMITTED';
}

class PgliteDatabase implements Database {
  readonly kind = 'pglite';
  readonly #pg: PGliteInterface;
  readonly #scope = new TransactionScope();

  constructor(pg: PGliteInterface) {
    this.#pg = pg;
  }

  query<R extends object>(sql: string, params: readonly SqlParam[] = []): Promise<QueryResult<R>> {
    this.#scope.assertOutside('query');
    return runQuery<R>(this.#pg, sql, params);
  }

  async exec(sql: string): Promise<void> {
    this.#scope.assertOutside('exec');
    await this.#pg.exec(sql);
  }

  transaction<T>(fn: (tx: TransactionHandle) => Promise<T>, options: TransactionOptions = {}): Promise<T> {
    this.#scope.assertOutside('transaction');
    const isolation = options.isolation ?? 'read committed';
    const attempt = (): Promise<T> =>
      // PGlite's transaction() holds its transaction lock from BEGIN to COMMIT or ROLLBACK, and
      // rolls back when the callback throws.
      this.#pg.transaction((pgTx) =>
        this.#scope.run(async () => {
          await pgTx.query(isolationStatement(isolation));
          const { handle, end } = scopedHandle({
            query: <R extends object>(sql: string, params: readonly SqlParam[] = []) => runQuery<R>(pgTx, sql, params),
            exec: async (sql: string) => void (await pgTx.exec(sql)),
          });
          try {
            return await fn(handle);
          } finally {
            end();
          }
        }),
      );
    return withRetries(attempt, options.attemptsMax);
  }

  close(): Promise<void> {
    return this.#pg.close();
  }
}

/**
 * Opens (creating when empty) an embedded database in a data folder, or in memory with 'memory'.
 * @throws Error from PGlite when the folder cannot be used
 */
export async function openPglite(dataDir: string): Promise<Database> {
  const pg = await PGlite.create(dataDir === 'memory' ? undefined : dataDir);
  return new PgliteDatabase(pg);
}

/** Wraps a PGlite instance the caller made (a clone, one with extensions); close() closes it. */
export function pgliteDatabase(pg: PGliteInterface): Database {
  return new PgliteDatabase(pg);
}
