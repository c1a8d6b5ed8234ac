/**
 * Test databases on both backends (not exported from index.ts): each `open()` gives a fresh,
 * empty database. PGlite ones come from a pool per test process: a database closed by its test
 * is emptied (its public schema dropped and made again, the session discarded) and lent to the
 * next `open()`, since a new instance costs seconds of CPU (about 1.3 s loaded from the run's
 * tarball of a new cluster, test-pglite-cluster.ts; the emptying a few milliseconds). Only when
 * the pool is empty is a new instance loaded.
 * PostgreSQL ones are fresh schemas, dropped on close, so parallel test files and reruns never
 * see each other's tables.
 */
import { randomBytes } from 'node:crypto';
import { PGlite, type PGliteInterface } from '@electric-sql/pglite';
import type { Database, DatabaseKind } from './database.ts';
import { pgliteDatabase } from './pglite.ts';
import { newClusterDump } from './test-pglite-cluster.ts';
import { dropPostgresSchema, openPostgres, type PostgresOptions } from './postgres.ts';

/** The environment variable naming the PostgreSQL server the tests may use. */
export const TEST_DATABASE_URL_VARIABLE = 'TEST_DATABASE_URL';

/** A database for one test, and how to throw it away. */
export interface TestDatabase {
  readonly db: Database;
  /** Closes the database and, on PostgreSQL, drops its schema. */
  dispose(): Promise<void>;
}

/** One backend to run a suite on. */
export interface TestBackend {
  readonly kind: DatabaseKind;
  /** Why this backend is skipped here, or undefined when it runs. */
  readonly skip: string | undefined;
  /** A fresh, empty database. */
  open(options?: Pick<PostgresOptions, 'poolSize'>): Promise<TestDatabase>;
}

/** Emptied instances ready for the next open(). */
const idle: PGliteInterface[] = [];

/** Closes the pooled PGlite instances; call it once after every PGlite test database is disposed. */
export async function closeTestTemplates(): Promise<void> {
  const pooled = idle.splice(0);
  for (const pg of pooled) await pg.close();
}

/** What may be left in a database besides the system catalogs once it is emptied: nothing. */
const LEFTOVERS = `SELECT (SELECT count(*) FROM pg_namespace WHERE nspname NOT IN ('pg_catalog', 'information_schema', 'public', 'pg_toast') AND nspname NOT LIKE 'pg_temp_%' AND nspname NOT LIKE 'pg_toast_temp_%')
  + (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public')
  + (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public')
  + (SELECT count(*) FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname = 'public')
  + (SELECT count(*) FROM pg_extension WHERE extname <> 'plpgsql') AS n`;

/** Empties `pg` for the next test and returns it to the pool; closes it when anything is left. */
async function recycle(pg: PGliteInterface): Promise<void> {
  try {
    // One statement each: a script runs as one transaction block, and DISCARD ALL refuses one.
    for (const sql of ['ROLLBACK', 'DISCARD ALL', 'DROP SCHEMA public CASCADE', 'CREATE SCHEMA public']) await pg.exec(sql);
    const left = await pg.query<{ n: number | string | bigint }>(LEFTOVERS);
    if (Number(left.rows[0]?.n) === 0) {
      idle.push(pg);
      return;
    }
  } catch {
    // Not reusable: close it below.
  }
  await pg.close().catch(() => {});
}

/** A pooled instance as a Database: close() hands it back emptied; any later call fails as on a closed database. */
function lent(pg: PGliteInterface): Database {
  const inner = pgliteDatabase(pg);
  let closing: Promise<void> | undefined;
  const refused = (what: string) => Promise.reject(new Error(`PGlite is closed (${what} after close)`));
  return {
    kind: inner.kind,
    query(sql, params) {
      return closing === undefined ? inner.query(sql, params) : refused('query');
    },
    exec(sql) {
      return closing === undefined ? inner.exec(sql) : refused('exec');
    },
    transaction(fn, options) {
      return closing === undefined ? inner.transaction(fn, options) : refused('transaction');
    },
    close() {
      closing ??= recycle(pg);
      return closing;
    },
  };
}

const pgliteBackend: TestBackend = {
  kind: 'pglite',
  skip: undefined,
  async open() {
    let pg = idle.pop();
    pg ??= await PGlite.create({ loadDataDir: await newClusterDump() });
    const db = lent(pg);
    return { db, dispose: () => db.close() };
  },
};

function postgresBackend(url: string | undefined): TestBackend {
  return {
    kind: 'postgres',
    skip: url === undefined || url === '' ? `${TEST_DATABASE_URL_VARIABLE} is not set: set it to a PostgreSQL URL (postgres://postgres@127.0.0.1:5432/test) to run this suite on PostgreSQL too` : undefined,
    async open(options = {}) {
      if (url === undefined) throw new Error(`${TEST_DATABASE_URL_VARIABLE} is not set`);
      const schema = `tally_test_${process.pid}_${randomBytes(6).toString('hex')}`;
      const db = await openPostgres(url, { schema, poolSize: options.poolSize });
      return {
        db,
        async dispose() {
          await db.close();
          await dropPostgresSchema(url, schema);
        },
      };
    },
  };
}

/** PGlite, and PostgreSQL when TEST_DATABASE_URL is set (skipped with its reason otherwise). */
export function testBackends(): readonly TestBackend[] {
  return [pgliteBackend, postgresBackend(process.env[TEST_DATABASE_URL_VARIABLE])];
}
