/**
 * Numbered schema migrations: applied in order, each in its own transaction, and recorded with a
 * checksum in `schema_migrations`. Running again applies only what is new; a migration changed
 * after it was applied is refused, since the databases already migrated would differ from new ones.
 *
 * Other parts of the node (a scheme's own tables) add migrations by number: merge their lists
 * with the issuer's and pass the whole list to `migrate`. Each owner numbers in a hundred of its
 * own (the issuer 1–99, OPS 101–199, DOT-M 201–299, ...), and numbers only grow within a hundred:
 * a new issuer migration on a node whose schemes' migrations are applied is applied after them,
 * but a new migration below an applied one of its own hundred is refused.
 */
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { assert } from '../../core/assert.ts';
import { TallyError } from '../../core/errors.ts';
import type { Database, Queryable } from './database.ts';

/** One migration: its number (1..MIGRATION_NUMBER_MAX), a name, and the SQL script. */
export interface Migration {
  readonly number: number;
  readonly name: string;
  readonly sql: string;
}

/** What one run of `migrate` did. */
export interface MigrationReport {
  /** The numbers newly applied by this run, in order; empty when the schema was up to date. */
  readonly applied: readonly number[];
}

/** The highest migration number: file names carry three digits. */
export const MIGRATION_NUMBER_MAX = 999;
/** The folder of the issuer node's own migrations. */
export const ISSUER_MIGRATIONS_DIR = new URL('./migrations/', import.meta.url);

const FILE_NAME = /^([0-9]{3})_([a-z0-9_]{1,60})\.sql$/;
const NAME = /^[a-z0-9_]{1,60}$/;

const CREATE_TABLE = `
CREATE TABLE IF NOT EXISTS schema_migrations (
  number integer PRIMARY KEY CHECK (number BETWEEN 1 AND ${MIGRATION_NUMBER_MAX}),
  name text NOT NULL,
  checksum text NOT NULL CHECK (checksum ~ '^[0-9a-f]{64}$'),
  applied_at timestamptz NOT NULL DEFAULT now()
)`;

// One migrator per schema at a time; other schemas on the same server migrate in parallel.
const LOCK = `SELECT pg_advisory_xact_lock(hashtext('tally/migrate/' || coalesce(current_schema(), '')))`;

interface AppliedRow {
  number: number;
  name: string;
  checksum: string;
}

/** SHA-256 of the script with line endings made \n, so a checkout on Windows is not a change. */
export function migrationChecksum(sql: string): string {
  return createHash('sha256').update(sql.replace(/\r\n/g, '\n'), 'utf8').digest('hex');
}

function label(m: { number: number; name: string }): string {
  return `${String(m.number).padStart(3, '0')}_${m.name}`;
}

function refused(reason: string): TallyError<'STATE_CORRUPT'> {
  return new TallyError('STATE_CORRUPT', `migrations refused: ${reason}`, { reason });
}

function checkList(migrations: readonly Migration[]): void {
  let previous = 0;
  for (const m of migrations) {
    assert(Number.isInteger(m.number) && m.number >= 1 && m.number <= MIGRATION_NUMBER_MAX, `migration number ${m.number} is outside 1..${MIGRATION_NUMBER_MAX}`);
    assert(m.number > previous, `migration ${label(m)} is out of order or repeats a number: list them by increasing number`);
    assert(NAME.test(m.name), `migration ${m.number}: name ${JSON.stringify(m.name)} is not lower case letters, digits and underscores`);
    assert(m.sql.trim().length > 0, `migration ${label(m)} is empty`);
    previous = m.number;
  }
}

/** Refuses an applied migration that the list lacks or that changed since. */
function checkApplied(applied: readonly AppliedRow[], byNumber: ReadonlyMap<number, Migration>): void {
  for (const row of applied) {
    const known = byNumber.get(row.number);
    if (known === undefined) {
      throw refused(`the database has migration ${label(row)}, which this code does not know: run the code that applied it, or newer`);
    }
    const checksum = migrationChecksum(known.sql);
    if (checksum !== row.checksum || known.name !== row.name) {
      throw refused(
        `migration ${label(known)} changed after it was applied as ${label(row)} (checksum ${row.checksum.slice(0, 12)}… in the database, ${checksum.slice(0, 12)}… in the code): restore it and put the change in a new migration`,
      );
    }
  }
}

/** The hundred a migration number is in: its owner's range (0 for the issuer's 1–99). */
function hundredOf(n: number): number {
  return Math.floor(n / 100);
}

async function readApplied(tx: Queryable): Promise<AppliedRow[]> {
  const result = await tx.query<AppliedRow>('SELECT number, name, checksum FROM schema_migrations ORDER BY number');
  return result.rows;
}

/**
 * Brings the database's schema up to the list: checks what was applied, then applies the rest.
 * @throws TallyError STATE_CORRUPT when an applied migration changed, is unknown, or a new one sorts before an applied one of its own hundred; ASSERTION_FAILED for a malformed list; the driver's error when a script fails (that migration is rolled back)
 */
export async function migrate(db: Database, migrations: readonly Migration[]): Promise<MigrationReport> {
  checkList(migrations);
  const byNumber = new Map(migrations.map((m) => [m.number, m]));
  // A database already up to date (every start but the first after an upgrade) is checked in one
  // transaction instead of one per migration.
  const upToDate = await db.transaction(async (tx) => {
    await tx.query(LOCK);
    await tx.exec(CREATE_TABLE);
    const rows = await readApplied(tx);
    checkApplied(rows, byNumber);
    const numbers = new Set(rows.map((row) => row.number));
    return migrations.every((m) => numbers.has(m.number));
  });
  if (upToDate) return { applied: [] };
  const applied: number[] = [];
  for (const m of migrations) {
    const done = await db.transaction(async (tx) => {
      await tx.query(LOCK);
      // Read again under the lock: another process may have migrated meanwhile.
      const rows = await readApplied(tx);
      checkApplied(rows, byNumber);
      if (rows.some((row) => row.number === m.number)) return false;
      // Within its owner's hundred only: another owner's applied migrations do not depend on it.
      const highest = rows.filter((row) => hundredOf(row.number) === hundredOf(m.number)).at(-1);
      if (highest !== undefined && highest.number > m.number) {
        throw refused(`migration ${label(m)} is new but sorts before the applied ${label(highest)}: give it a number above ${highest.number}`);
      }
      await tx.exec(m.sql);
      await tx.query('INSERT INTO schema_migrations (number, name, checksum) VALUES ($1, $2, $3)', [m.number, m.name, migrationChecksum(m.sql)]);
      return true;
    });
    if (done) applied.push(m.number);
  }
  return { applied };
}

/**
 * Reads the migrations of a folder: files named `NNN_name.sql`, by number.
 * @throws TallyError ASSERTION_FAILED for a misnamed .sql file or a repeated number; the error of node:fs when the folder cannot be read
 */
export async function loadMigrations(dir: URL): Promise<Migration[]> {
  const migrations: Migration[] = [];
  for (const file of (await readdir(dir)).sort()) {
    if (!file.endsWith('.sql')) continue;
    const match = FILE_NAME.exec(file);
    assert(match !== null, `migration file ${file} is not named NNN_name.sql`);
    const sql = await readFile(new URL(file, dir), 'utf8');
    migrations.push({ number: Number(match[1]), name: match[2] ?? '', sql });
  }
  checkList(migrations);
  return migrations;
}

/**
 * Applies the issuer node's migrations (ledger, idempotency store).
 * @throws as `migrate` does
 */
export async function migrateIssuer(db: Database): Promise<MigrationReport> {
  return migrate(db, await loadMigrations(ISSUER_MIGRATIONS_DIR));
}
