/** The public face of the issuer's SQL layer: the Database interface, the PGlite and PostgreSQL backends, migrations. */
export { bigintColumn, sqlState, type Database, type DatabaseKind, type Isolation, type Queryable, type QueryResult, type SqlParam, type TransactionHandle, type TransactionOptions } from './database.ts';
export { ISSUER_MIGRATIONS_DIR, loadMigrations, migrate, migrateIssuer, migrationChecksum, MIGRATION_NUMBER_MAX, type Migration, type MigrationReport } from './migrate.ts';
export { openPglite, pgliteDatabase } from './pglite.ts';
export { openPostgres, POOL_SIZE_DEFAULT, POOL_SIZE_MAX, STATEMENT_TIMEOUT_MS_DEFAULT, type PostgresOptions } from './postgres.ts';
export { isRetryable, TRANSACTION_ATTEMPTS_LIMIT, TRANSACTION_ATTEMPTS_MAX } from './retry.ts';
