/**
 * Error answers of the HTTP API: `{"error": {"code", "message", "details"}}` with a fitting status.
 * Codes are stable strings; ledger refusals keep the ledger's codes.
 */
import type { Context } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { isTallyError, type ErrorCode } from '../../core/errors.ts';
import type { LedgerResultCode } from '../ledger/result.ts';

/** Codes only the HTTP layer answers with. */
export type ApiOnlyCode =
  | 'BODY_INVALID'
  | 'BODY_TOO_LARGE'
  | 'UNAUTHENTICATED'
  | 'FORBIDDEN'
  | 'NOT_FOUND'
  | 'SCHEME_NOT_SERVED'
  | 'METHOD_NOT_ALLOWED'
  | 'IDEMPOTENCY_KEY_REQUIRED'
  | 'NONCE_REPLAYED'
  | 'TIMESTAMP_OUT_OF_WINDOW'
  | 'KEY_UNKNOWN'
  | 'ALREADY_REGISTERED'
  | 'OEM_UNKNOWN'
  | 'OEM_REMOVED'
  | 'DEVICE_NOT_REVOKED'
  | 'ALREADY_SETTLED'
  | 'SUBJECT_UNKNOWN'
  | 'DEVICE_UNKNOWN'
  | 'COUNTER_MISMATCH'
  | 'DOUBLE_SPEND'
  | 'HOLDING_LIMIT'
  | 'FRAUD_DETECTED'
  | 'OPERA_DENOMINATION_UNKNOWN'
  | 'OPERA_MAKERS_FULL'
  | 'OPERA_REPORT_MISMATCH'
  | 'OPERA_RELEASE_INVALID'
  | 'CLAIM_INVALID'
  | 'CLAIM_CONFLICT'
  | 'CLAIM_DECIDED'
  | 'BANK_UNKNOWN'
  | 'SETTLE_PENDING'
  | 'SETTLE_HELD'
  | 'SHARD_UNAVAILABLE'
  | 'SHARDED_UNSUPPORTED'
  | 'INTERNAL';

/** Every code an error answer may carry. */
export type ApiErrorCode = ApiOnlyCode | LedgerResultCode | ErrorCode;

const STATUS: Partial<Record<ApiErrorCode, ContentfulStatusCode>> = {
  BODY_INVALID: 400,
  DECODE_FAILED: 400,
  REQUEST_INVALID: 400,
  AMOUNT_INVALID: 400,
  SAME_ACCOUNT: 400,
  IDEMPOTENCY_KEY_REQUIRED: 400,
  BODY_TOO_LARGE: 413,
  TOO_LARGE: 413,
  UNAUTHENTICATED: 401,
  SIGNATURE_INVALID: 401,
  NONCE_REPLAYED: 401,
  TIMESTAMP_OUT_OF_WINDOW: 401,
  KEY_UNKNOWN: 401,
  FORBIDDEN: 403,
  ROLE_MISMATCH: 409,
  ENROLMENT_PENDING: 409,
  ENROLMENT_REFUSED: 409,
  RESERVE_UNSYNCED: 503,
  CLAIM_INVALID: 422,
  CLAIM_CONFLICT: 409,
  CLAIM_DECIDED: 409,
  BANK_UNKNOWN: 404,
  CERT_REVOKED: 403,
  ATTESTATION_INVALID: 403,
  TPM_QUOTE_INVALID: 403,
  OEM_UNKNOWN: 403,
  OEM_REMOVED: 403,
  DEVICE_NOT_REVOKED: 409,
  ALREADY_SETTLED: 409,
  SUBJECT_UNKNOWN: 404,
  DEVICE_UNKNOWN: 404,
  COUNTER_MISMATCH: 409,
  DOUBLE_SPEND: 409,
  PAYMENT_REPLAYED: 409,
  OTP_CLASS_UNKNOWN: 409,
  OPERA_DENOMINATION_UNKNOWN: 409,
  OPERA_MAKERS_FULL: 409,
  OPERA_REPORT_MISMATCH: 409,
  OPERA_RELEASE_INVALID: 422,
  OPERA_MESSAGE_INVALID: 422,
  OPERA_TOKEN_INVALID: 422,
  HOLDING_LIMIT: 422,
  PAYMENT_INVALID: 422,
  FRAUD_DETECTED: 403,
  NOT_FOUND: 404,
  SCHEME_NOT_SERVED: 404,
  ACCOUNT_UNKNOWN: 404,
  METHOD_NOT_ALLOWED: 405,
  IDEMPOTENCY_CONFLICT: 409,
  ALREADY_REGISTERED: 409,
  ACCOUNT_CONFLICT: 409,
  ACCOUNT_RESTRICTED: 403,
  INSUFFICIENT_FUNDS: 422,
  CURRENCY_MISMATCH: 422,
  BALANCE_OVERFLOW: 422,
  CHAIN_UNREACHABLE: 503,
  NATS_UNREACHABLE: 503,
  SETTLE_PENDING: 503,
  SETTLE_HELD: 503,
  SHARD_UNAVAILABLE: 503,
  SHARDED_UNSUPPORTED: 501,
  CHAIN_START_FAILED: 503,
  CHAIN_NO_GAS: 503,
  CHAIN_REFUSED: 502,
  CHAIN_TIMEOUT: 504,
  CHAIN_REVERTED: 422,
  CHAIN_FAUCET_REFUSED: 403,
};

/** An error answer the handlers throw; the app's error handler renders it. */
export class ApiProblem extends Error {
  readonly code: ApiErrorCode;
  readonly status: ContentfulStatusCode;
  readonly details: Record<string, unknown>;

  constructor(code: ApiErrorCode, message: string, details: Record<string, unknown> = {}, status?: ContentfulStatusCode) {
    super(message);
    this.name = 'ApiProblem';
    this.code = code;
    this.status = status ?? STATUS[code] ?? 400;
    this.details = details;
  }

  /** The JSON body of the answer. */
  toBody(): { error: { code: string; message: string; details: Record<string, unknown> } } {
    return { error: { code: this.code, message: this.message, details: this.details } };
  }
}

/** Turns anything thrown by a handler into an ApiProblem; unknown errors become INTERNAL (500). */
export function toProblem(e: unknown): ApiProblem {
  if (e instanceof ApiProblem) return e;
  if (isTallyError(e)) {
    const details: Record<string, unknown> = { ...e.details };
    return new ApiProblem(e.code, e.message, details, e.code === 'ASSERTION_FAILED' ? 500 : undefined);
  }
  return new ApiProblem('INTERNAL', 'internal error; the request may be retried with the same idempotency key', {}, 500);
}

/** Renders a problem as the answer. */
export function problemResponse(c: Context, problem: ApiProblem): Response {
  return c.json(problem.toBody(), problem.status);
}
