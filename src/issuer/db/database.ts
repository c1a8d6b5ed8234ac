/**
 * The SQL database the issuer node keeps its ledger in: one small interface that both the
 * embedded PGlite and a PostgreSQL server implement, so the ledger runs the same SQL on both.
 *
 * Values: int8 and integral numeric columns come back as `bigint`, bytea as `Uint8Array`,
 * jsonb parsed, timestamptz as `Date`. Pass JSON as text and cast it in SQL (`$1::text::jsonb`):
 * the two drivers serialise object parameters differently.
 */
import { Buffer } from 'node:buffer';

/** One value of a query parameter; bigints are sent as exact decimals. */
export type SqlScalar = string | number | bigint | boolean | null | Uint8Array;

/**
 * What a query parameter may be: a value, or an array of values for a set-based statement
 * (`unnest($1::text[], $2::bigint[])`, `= ANY($1::text[])`), which both drivers send as an array.
 */
export type SqlParam = SqlScalar | readonly SqlScalar[];

/** The rows of one statement and how many rows it returned or changed. */
export interface QueryResult<R> {
  readonly rows: R[];
  readonly rowCount: number;
}

/** Something that runs SQL: the database itself, or the handle of one open transaction. */
export interface Queryable {
  /**
   * Runs one statement with `$1`-style parameters. `R` is the row shape the caller expects;
   * the driver does not check it, so read what matters with the checks of this module.
   */
  query<R extends object>(sql: string, params?: readonly SqlParam[]): Promise<QueryResult<R>>;
  /** Runs a script of several statements without parameters (migrations). */
  exec(sql: string): Promise<void>;
}

/** The handle of one open transaction: its statements run in that transaction, on its connection. */
export interface TransactionHandle extends Queryable {
  /** False once the transaction has committed or rolled back; the handle then refuses calls. */
  readonly open: boolean;
}

/** Isolation of a transaction; read committed plus row locks is the ledger's default. */
export type Isolation = 'serializable' | 'read committed';

/** How to run one transaction. */
export interface TransactionOptions {
  /** Defaults to read committed. */
  readonly isolation?: Isolation | undefined;
  /** Attempts when the server reports a serialization failure or deadlock; defaults to TRANSACTION_ATTEMPTS_MAX. */
  readonly attemptsMax?: number | undefined;
}

/** Which engine runs behind a Database. */
export type DatabaseKind = 'pglite' | 'postgres';

/** A database: single statements, retried transactions, and close. */
export interface Database extends Queryable {
  readonly kind: DatabaseKind;
  /**
   * Runs `fn` in one transaction and commits when it resolves, rolls back when it throws.
   * A serialization failure or deadlock (SQLSTATE 40001, 40P01) runs `fn` again on a fresh
   * transaction, a bounded number of times, so `fn` must do nothing outside the database.
   * Inside `fn`, use only `tx`: calling the database itself there would wait for a connection
   * the transaction holds, so it throws instead.
   */
  transaction<T>(fn: (tx: TransactionHandle) => Promise<T>, options?: TransactionOptions): Promise<T>;
  /** Closes every connection; later calls fail. */
  close(): Promise<void>;
}

/** The SQLSTATE of a database error (`'23505'`, `'40001'`, ...), or undefined for any other error. */
export function sqlState(e: unknown): string | undefined {
  // Both drivers' errors carry the server's severity; a Node system error ('EPIPE') does not.
  if (typeof e !== 'object' || e === null || !('code' in e) || !('severity' in e)) return undefined;
  const code = e.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/**
 * Bytes as standard base64, for a statement that takes a column as text and decodes it on the
 * server (`decode(x, 'base64')`): one string per value instead of a bytea the driver escapes.
 */
export function base64Param(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

/**
 * Reads a column that must be a bigint (int8 or integral numeric).
 * @throws TypeError when the driver returned anything else: a type parser is not configured
 */
export function bigintColumn(row: object, column: string): bigint {
  const value: unknown = Reflect.get(row, column);
  if (typeof value !== 'bigint') throw new TypeError(`column ${column}: expected a bigint, got ${typeof value}`);
  return value;
}
