/**
 * Ledger accounts: who holds money (users), where it comes from (the central bank's issuance
 * account, one per currency), what is outstanding offline (one float account per scheme) and
 * what is in transit at settlement.
 */
import { assert } from '../../core/assert.ts';
import { bigintColumn, type Queryable } from '../db/database.ts';
import { failure, type LedgerResult } from './result.ts';
import { ACCOUNT_KINDS, accountIdProblem, currencyProblem, mayGoNegative, ownerProblem } from './rules.ts';

/** What an account is for; a checked enum in the schema too. */
export type AccountKind = (typeof ACCOUNT_KINDS)[number];

/** One account as stored. */
export interface Account {
  readonly id: string;
  readonly kind: AccountKind;
  readonly currency: string;
  /** The key id (hex) of whoever holds the account, when someone does. */
  readonly owner: string | null;
  /** True only for an issuance or a clearing account. */
  readonly allowNegative: boolean;
  /** The materialized balance in minor units; the audit checks it against the journal. */
  readonly balance: bigint;
  readonly createdAt: Date;
}

/** What to open. */
export interface AccountSpec {
  readonly id: string;
  readonly kind: AccountKind;
  readonly currency: string;
  readonly owner?: string | null | undefined;
}

/** The account, opened now or before with the same spec; or why not. */
export type EnsureAccountResult = LedgerResult<{ account: Account }, 'REQUEST_INVALID' | 'ACCOUNT_CONFLICT'>;

/** The columns `accountFromRow` reads. */
export const ACCOUNT_COLUMNS = 'id, kind, currency, owner, allow_negative, balance, created_at';

/** A row of `ACCOUNT_COLUMNS`. */
export interface AccountRow {
  id: string;
  kind: string;
  currency: string;
  owner: string | null;
  allow_negative: boolean;
  balance: bigint;
  created_at: Date;
}

function isAccountKind(kind: string): kind is AccountKind {
  return (ACCOUNT_KINDS as readonly string[]).includes(kind);
}

/**
 * Reads an account row, checking what the schema promises.
 * @throws TallyError ASSERTION_FAILED when the row breaks the schema's rules
 */
export function accountFromRow(row: AccountRow): Account {
  assert(isAccountKind(row.kind), `account ${row.id}: unknown kind ${row.kind}`);
  assert(row.allow_negative === mayGoNegative(row.kind), `account ${row.id}: allow_negative must hold exactly for issuance and clearing accounts`);
  assert(row.created_at instanceof Date, `account ${row.id}: created_at is not a timestamp`);
  return {
    id: row.id,
    kind: row.kind,
    currency: row.currency,
    owner: row.owner,
    allowNegative: row.allow_negative,
    balance: bigintColumn(row, 'balance'),
    createdAt: row.created_at,
  };
}

/** The account with this id, or undefined. */
export async function findAccount(q: Queryable, id: string): Promise<Account | undefined> {
  const result = await q.query<AccountRow>(`SELECT ${ACCOUNT_COLUMNS} FROM accounts WHERE id = $1`, [id]);
  const row = result.rows[0];
  return row === undefined ? undefined : accountFromRow(row);
}

function specProblem(spec: AccountSpec): string | undefined {
  if (!isAccountKind(spec.kind)) return `kind: expected one of ${ACCOUNT_KINDS.join(', ')}, got ${JSON.stringify(spec.kind)}`;
  const owner = spec.owner ?? null;
  return accountIdProblem(spec.id) ?? currencyProblem(spec.currency) ?? (owner === null ? undefined : ownerProblem(owner));
}

/**
 * Opens an account, or answers the existing one when it was opened with the same kind, currency
 * and owner. Refuses another spec under a taken id, and a second issuance account for a currency.
 */
export async function ensureAccount(q: Queryable, spec: AccountSpec): Promise<EnsureAccountResult> {
  const problem = specProblem(spec);
  if (problem !== undefined) return failure('REQUEST_INVALID', problem);
  const owner = spec.owner ?? null;
  // No conflict target: a clash on the id and a clash on "one issuance account per currency"
  // both land here as no row, and are told apart below.
  const inserted = await q.query<AccountRow>(
    `INSERT INTO accounts (id, kind, currency, owner, allow_negative) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT DO NOTHING RETURNING ${ACCOUNT_COLUMNS}`,
    [spec.id, spec.kind, spec.currency, owner, mayGoNegative(spec.kind)],
  );
  const created = inserted.rows[0];
  if (created !== undefined) return { ok: true, account: accountFromRow(created) };
  const existing = await findAccount(q, spec.id);
  if (existing === undefined) {
    return failure('ACCOUNT_CONFLICT', `currency ${spec.currency} already has an issuance account: mint from that one`);
  }
  if (existing.kind !== spec.kind || existing.currency !== spec.currency || existing.owner !== owner) {
    return failure(
      'ACCOUNT_CONFLICT',
      `account ${spec.id} exists as ${existing.kind} ${existing.currency} owned by ${existing.owner ?? 'nobody'}, not as ${spec.kind} ${spec.currency} owned by ${owner ?? 'nobody'}`,
    );
  }
  return { ok: true, account: existing };
}
