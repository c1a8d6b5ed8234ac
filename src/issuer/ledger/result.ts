/**
 * Ledger outcomes as data: an expected refusal (insufficient funds, a replayed key with another
 * request) is a result with a stable code, never an exception.
 */

/** Every refusal code the ledger answers with; part of the public API, never renamed. */
export const LEDGER_RESULT_CODES = [
  'REQUEST_INVALID',
  'AMOUNT_INVALID',
  'SAME_ACCOUNT',
  'ACCOUNT_UNKNOWN',
  'ACCOUNT_CONFLICT',
  'CURRENCY_MISMATCH',
  'INSUFFICIENT_FUNDS',
  'BALANCE_OVERFLOW',
  'IDEMPOTENCY_CONFLICT',
  'ACCOUNT_RESTRICTED',
] as const;

/** A stable refusal code. */
export type LedgerResultCode = (typeof LEDGER_RESULT_CODES)[number];

/** A refusal: nothing was changed. */
export interface LedgerFailure<C extends LedgerResultCode = LedgerResultCode> {
  readonly ok: false;
  readonly code: C;
  /** What was expected, what arrived, what to do next; for people, not for matching. */
  readonly message: string;
}

/** Either `{ ok: true, ...value }` or a refusal with one of the codes `C`. */
export type LedgerResult<T extends object, C extends LedgerResultCode = LedgerResultCode> = ({ readonly ok: true } & Readonly<T>) | LedgerFailure<C>;

/** Builds a refusal. */
export function failure<C extends LedgerResultCode>(code: C, message: string): LedgerFailure<C> {
  return { ok: false, code, message };
}
