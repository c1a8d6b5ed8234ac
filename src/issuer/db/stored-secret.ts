/**
 * A node's secret made once and kept in its database: a scheme's own table of `(name, secret)` rows
 * whose name is unique, so that of two starts racing the first random value wins and both read it.
 * The database's access control and backups protect it.
 */
import { randomBytes } from 'node:crypto';
import { TallyError } from '../../core/errors.ts';
import type { Database } from './database.ts';

/** Table names the caller gives are SQL identifiers written into the statement, never user input. */
const TABLE_NAME = /^[a-z][a-z0-9_]*$/;

/**
 * Makes (when absent) and answers the 32-byte secret `name` of `table`.
 * @throws TallyError ASSERTION_FAILED for a table name that is not a plain identifier, or a row that is not there after its insert
 */
export async function storedSecret(db: Database, table: string, name: string): Promise<Uint8Array> {
  if (!TABLE_NAME.test(table)) throw new TallyError('ASSERTION_FAILED', `a secrets table is a plain identifier, not ${JSON.stringify(table)}`, {});
  return db.transaction(async (tx) => {
    await tx.query(`INSERT INTO ${table} (name, secret) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING`, [name, new Uint8Array(randomBytes(32))]);
    const { rows } = await tx.query<{ secret: Uint8Array }>(`SELECT secret FROM ${table} WHERE name = $1`, [name]);
    const row = rows[0];
    if (row === undefined) throw new TallyError('ASSERTION_FAILED', `the secret ${name} was stored in ${table}`, {});
    return new Uint8Array(row.secret);
  });
}
