/**
 * A transfer: money moves from the debit account to the credit account, recorded once in the
 * append-only journal and applied to both materialized balances in the same transaction.
 * Each transfer carries an idempotency key: the same request again answers the original
 * transfer, another request under the same key is refused.
 */
import { Amount, AMOUNT_MINOR_MAX, type Currency } from '../../core/amount.ts';
import { assert } from '../../core/assert.ts';
import { bigintColumn, type Queryable, type TransactionHandle } from '../db/database.ts';
import { accountFromRow, ACCOUNT_COLUMNS, type Account, type AccountRow } from './account.ts';
import { jsonText, type JsonValue } from './json.ts';
import { failure, type LedgerFailure, type LedgerResult, type LedgerResultCode } from './result.ts';
import { accountIdProblem, idempotencyKeyProblem, REFERENCE_BYTES_MAX, transferKindProblem } from './rules.ts';

/** A request to move `amount` minor units from `debit` to `credit`. */
export interface TransferRequest {
  readonly idempotencyKey: string;
  readonly debit: string;
  readonly credit: string;
  readonly amount: bigint;
  /** What the movement is, such as 'transfer', 'mint', 'offline-deposit'. */
  readonly kind: string;
  /** What it refers to (a payment id, a device), as JSON; amounts in it as strings. */
  readonly reference?: JsonValue | undefined;
  /** The node's currency, to word a refusal in decimal major units ("12.50 EUR"); not stored. */
  readonly currency?: Currency | undefined;
}

/** One journal entry, as stored. */
export interface Transfer {
  readonly id: bigint;
  readonly idempotencyKey: string;
  readonly debit: string;
  readonly credit: string;
  readonly currency: string;
  readonly amount: bigint;
  readonly kind: string;
  readonly reference: JsonValue | null;
  readonly createdAt: Date;
}

/** The refusals a transfer may answer with. */
export type TransferFailureCode = Exclude<LedgerResultCode, 'ACCOUNT_CONFLICT'>;

/** The transfer (new, or the original one on a replay), or why none was made. */
export type TransferResult = LedgerResult<{ transfer: Transfer }, TransferFailureCode>;

/** The columns `transferFromRow` reads. */
export const TRANSFER_COLUMNS = 'id, idempotency_key, debit_account, credit_account, currency, amount, kind, reference, created_at';

/** A row of `TRANSFER_COLUMNS`. */
export interface TransferRow {
  id: bigint;
  idempotency_key: string;
  debit_account: string;
  credit_account: string;
  currency: string;
  amount: bigint;
  kind: string;
  reference: JsonValue | null;
  created_at: Date;
}

/**
 * Reads a transfer row, checking what the schema promises.
 * @throws TallyError ASSERTION_FAILED, TypeError when the row breaks the schema's rules
 */
export function transferFromRow(row: TransferRow): Transfer {
  const amount = bigintColumn(row, 'amount');
  assert(amount > 0n && amount <= AMOUNT_MINOR_MAX, `transfer ${row.id}: amount ${amount} out of range`);
  assert(row.debit_account !== row.credit_account, `transfer ${row.id}: debit and credit are the same account`);
  assert(row.created_at instanceof Date, `transfer ${row.id}: created_at is not a timestamp`);
  return {
    id: bigintColumn(row, 'id'),
    idempotencyKey: row.idempotency_key,
    debit: row.debit_account,
    credit: row.credit_account,
    currency: row.currency,
    amount,
    kind: row.kind,
    reference: row.reference,
    createdAt: row.created_at,
  };
}

/**
 * Checks the parts of a request that need no database: key, amount, reference size.
 * Returns the reference's JSON text (null without one), or the refusal.
 */
export function checkCommon(request: {
  readonly idempotencyKey: string;
  readonly amount: bigint;
  readonly reference?: JsonValue | undefined;
}): { referenceText: string | null } | LedgerFailure<'REQUEST_INVALID' | 'AMOUNT_INVALID'> {
  const keyProblem = idempotencyKeyProblem(request.idempotencyKey);
  if (keyProblem !== undefined) return failure('REQUEST_INVALID', keyProblem);
  if (typeof request.amount !== 'bigint' || request.amount <= 0n || request.amount > AMOUNT_MINOR_MAX) {
    return failure('AMOUNT_INVALID', `amount: expected 1..${AMOUNT_MINOR_MAX} minor units as a bigint, got ${String(request.amount)}`);
  }
  if (request.reference === undefined) return { referenceText: null };
  const { text, bytes } = jsonText(request.reference);
  if (bytes > REFERENCE_BYTES_MAX) return failure('REQUEST_INVALID', `reference: expected at most ${REFERENCE_BYTES_MAX} bytes of JSON, got ${bytes}`);
  return { referenceText: text };
}

function checkRequest(request: TransferRequest): { referenceText: string | null } | LedgerFailure<TransferFailureCode> {
  const problem = accountIdProblem(request.debit) ?? accountIdProblem(request.credit) ?? transferKindProblem(request.kind);
  if (problem !== undefined) return failure('REQUEST_INVALID', problem);
  const common = checkCommon(request);
  if ('ok' in common) return common;
  if (request.debit === request.credit) return failure('SAME_ACCOUNT', `debit and credit are both ${request.debit}: a transfer needs two accounts`);
  return common;
}

/**
 * The answer for a key already in the journal: the original transfer when the request is the
 * same, a conflict when it is not; undefined for a new key.
 */
async function answerForKey(tx: Queryable, request: TransferRequest, referenceText: string | null): Promise<TransferResult | undefined> {
  const found = await tx.query<TransferRow & { same_reference: boolean }>(
    `SELECT ${TRANSFER_COLUMNS}, reference IS NOT DISTINCT FROM $2::text::jsonb AS same_reference
     FROM transfers WHERE idempotency_key = $1`,
    [request.idempotencyKey, referenceText],
  );
  const row = found.rows[0];
  if (row === undefined) return undefined;
  const original = transferFromRow(row);
  const same =
    original.debit === request.debit &&
    original.credit === request.credit &&
    original.amount === request.amount &&
    original.kind === request.kind &&
    row.same_reference;
  if (same) return { ok: true, transfer: original };
  return failure(
    'IDEMPOTENCY_CONFLICT',
    `idempotency key ${JSON.stringify(request.idempotencyKey)} was used for transfer ${original.id} with another request: use a new key for a new request`,
  );
}

/** Why the locked accounts cannot take this transfer, or undefined when they can. */
function refusal(request: TransferRequest, debit: Account | undefined, credit: Account | undefined): LedgerFailure<TransferFailureCode> | undefined {
  if (debit === undefined) return failure('ACCOUNT_UNKNOWN', `debit account ${request.debit} does not exist: open it first`);
  if (credit === undefined) return failure('ACCOUNT_UNKNOWN', `credit account ${request.credit} does not exist: open it first`);
  if (debit.currency !== credit.currency) {
    return failure('CURRENCY_MISMATCH', `debit account ${debit.id} holds ${debit.currency}, credit account ${credit.id} holds ${credit.currency}`);
  }
  const shown = (minor: bigint): string | undefined =>
    request.currency === undefined || request.currency.code !== debit.currency ? undefined : `${minor < 0n ? '-' : ''}${Amount.of(request.currency, minor < 0n ? -minor : minor).format()}`;
  if (!debit.allowNegative && debit.balance < request.amount) {
    const [held, asked] = [shown(debit.balance), shown(request.amount)];
    return failure('INSUFFICIENT_FUNDS', held === undefined || asked === undefined ? `account ${debit.id} holds less than the amount requested` : `account ${debit.id} holds ${held}, less than the ${asked} requested`);
  }
  // Balances stay within ±AMOUNT_MINOR_MAX, so every sum the audit makes per account is exact.
  if (debit.balance - request.amount < -AMOUNT_MINOR_MAX || credit.balance + request.amount > AMOUNT_MINOR_MAX) {
    return failure('BALANCE_OVERFLOW', `moving ${shown(request.amount) ?? 'this amount'} from ${debit.id} to ${credit.id} would take a balance past the largest amount an account may hold`);
  }
  return undefined;
}

async function applyToBalance(tx: Queryable, account: Account, delta: bigint): Promise<void> {
  const updated = await tx.query<{ balance: bigint }>('UPDATE accounts SET balance = balance + $2 WHERE id = $1 RETURNING balance', [account.id, delta]);
  const row = updated.rows[0];
  // Paired with the check before writing: the row was locked, so nothing else moved it.
  assert(row !== undefined && bigintColumn(row, 'balance') === account.balance + delta, `account ${account.id}: balance moved under its lock`);
}

/**
 * Makes a transfer inside the caller's transaction, or answers why not; a refusal writes nothing.
 * Locks both accounts (in id order, so that transfers never deadlock each other) before reading
 * their balances, which makes it safe under read committed.
 */
export async function transfer(tx: TransactionHandle, request: TransferRequest): Promise<TransferResult> {
  const checked = checkRequest(request);
  if ('ok' in checked) return checked;
  const locked = await tx.query<AccountRow>(
    `SELECT ${ACCOUNT_COLUMNS} FROM accounts WHERE id IN ($1, $2) ORDER BY id FOR UPDATE`,
    [request.debit, request.credit],
  );
  // Under the locks, so that a concurrent identical request has committed and is seen here.
  const answered = await answerForKey(tx, request, checked.referenceText);
  if (answered !== undefined) return answered;
  const accounts = locked.rows.map(accountFromRow);
  const debit = accounts.find((a) => a.id === request.debit);
  const credit = accounts.find((a) => a.id === request.credit);
  const refused = refusal(request, debit, credit);
  if (refused !== undefined) return refused;
  assert(debit !== undefined && credit !== undefined, 'refusal() let an unknown account through');
  const inserted = await tx.query<TransferRow>(
    `INSERT INTO transfers (idempotency_key, debit_account, credit_account, currency, amount, kind, reference)
     VALUES ($1, $2, $3, $4, $5, $6, $7::text::jsonb)
     ON CONFLICT (idempotency_key) DO NOTHING RETURNING ${TRANSFER_COLUMNS}`,
    [request.idempotencyKey, request.debit, request.credit, debit.currency, request.amount, request.kind, checked.referenceText],
  );
  const row = inserted.rows[0];
  if (row === undefined) {
    // The same key committed meanwhile by a request on other accounts (the same accounts would
    // have waited for our locks): nothing was written, answer as for a known key.
    const late = await answerForKey(tx, request, checked.referenceText);
    assert(late !== undefined, `idempotency key ${request.idempotencyKey} conflicted but is not in the journal`);
    return late;
  }
  await applyToBalance(tx, debit, -request.amount);
  await applyToBalance(tx, credit, request.amount);
  return { ok: true, transfer: transferFromRow(row) };
}
