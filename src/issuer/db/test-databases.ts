/**
 * Test databases on both backends (not exported from index.ts): each `open()` gives a fresh,
 * empty database. PGlite ones are clones of one template instance per test process (a clone
 * costs a fraction of a new instance); PostgreSQL ones are fresh schemas, dropped on close,
 * so parallel test files and reruns never see each other's tables.
 */
import { randomBytes } from 'node:crypto';
import { PGlite } from '@electric-sql/pglite';
import type { Database, DatabaseKind } from './database.ts';
import { pgliteDatabase } from './pglite.ts';
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

let template: Promise<PGlite> | undefined;

/** Closes the PGlite template; call it once after every PGlite test database is disposed. */
export async function closeTestTemplates(): Promise<void> {
  const pending = template;
  template = undefined;
  if (pending !== undefined) await (await pending).close();
}

const pgliteBackend: TestBackend = {
  kind: 'pglite',
  skip: undefined,
  async open() {
    template ??= PGlite.create();
    const db = pgliteDatabase(await (await template).clone());
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
