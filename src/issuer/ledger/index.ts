/** The public face of the ledger: accounts, transfers, minting, history, the audit and the idempotency store. */
export { ensureAccount, findAccount, type Account, type AccountKind, type AccountSpec, type EnsureAccountResult } from './account.ts';
export { audit, AUDIT_PROBLEMS_MAX, type AuditProblem, type CurrencyAudit, type FloatBalance, type LedgerAudit } from './audit.ts';
export { history, type HistoryEntry, type HistoryOptions } from './history.ts';
export {
  REQUEST_HASH_BYTES,
  RESPONSE_BYTES_MAX,
  withIdempotency,
  type IdempotentRequest,
  type IdempotentResult,
  type StoredResponse,
} from './idempotency.ts';
export type { JsonValue } from './json.ts';
export { Ledger } from './ledger.ts';
export { mint, MINT_KIND, type MintRequest } from './mint.ts';
export { LEDGER_RESULT_CODES, type LedgerFailure, type LedgerResult, type LedgerResultCode } from './result.ts';
export { ACCOUNT_ID_LENGTH_MAX, ACCOUNT_KINDS, HISTORY_LIMIT_MAX, IDEMPOTENCY_KEY_LENGTH_MAX, REFERENCE_BYTES_MAX } from './rules.ts';
export { transfer, type Transfer, type TransferFailureCode, type TransferRequest, type TransferResult } from './transfer.ts';
