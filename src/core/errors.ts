/**
 * One error type for the whole project: a stable string code, a message that says what was
 * expected and what arrived, and details typed by code.
 */

/** Details carried by each error code; a code absent here carries an empty record. */
export interface ErrorDetailMap {
  DECODE_FAILED: { path: string; expected: string; got: string };
  CBOR_MALFORMED: { reason: string };
  CBOR_NONCANONICAL: Record<string, never>;
  TOO_LARGE: { what: string; size: number; max: number };
  AMOUNT_INVALID: { input: string };
  AMOUNT_OVERFLOW: { max: string };
  AMOUNT_UNDERFLOW: Record<string, never>;
  CURRENCY_MISMATCH: { left: string; right: string };
  TEXT_INVALID: { reason: string };
  TEXT_CHECKSUM: Record<string, never>;
  SUITE_UNKNOWN: { suite: string };
  KEY_INVALID: { suite: string; reason: string };
  SIGNATURE_INVALID: { tag: string };
  AEAD_FAILED: Record<string, never>;
  CERT_MALFORMED: { reason: string };
  CERT_SIGNATURE_INVALID: { serial: string };
  CERT_ROLE_FORBIDDEN: { serial: string; role: string; issuerRole: string };
  CERT_EXPIRED: { serial: string; notAfter: string; now: string };
  CERT_NOT_YET_VALID: { serial: string; notBefore: string; now: string };
  CERT_UNKNOWN_ISSUER: { serial: string; issuer: string };
  CERT_REVOKED: { serial: string };
  CERT_SUITE_FORBIDDEN: { serial: string; suite: string };
  CERT_CHAIN_INVALID: { reason: string };
  CRL_INVALID: { reason: string };
  CRL_ROLLBACK: { have: string; got: string };
  ATTESTATION_INVALID: { reason: string };
  SE_REJECTED: { command: string; reason: string };
  SE_NOT_PROVISIONED: { path: string };
  SE_ALREADY_PROVISIONED: { path: string };
  SE_COMMAND_UNKNOWN: { command: string };
  SE_CRASHED: { point: string };
  SE_UNAVAILABLE: { reason: string };
  ROLLBACK_DETECTED: { stateVersion: string; counter: string };
  STATE_CORRUPT: { reason: string };
  COUNTER_FAILED: { reason: string };
  TPM_TOOL_MISSING: { tool: string };
  TPM_TIMEOUT: { tool: string; timeoutMs: number };
  TPM_COMMAND_FAILED: { tool: string; reason: string };
  TPM_QUOTE_INVALID: { field: string; reason: string };
  FRAME_INVALID: { reason: string };
  TIMEOUT: { what: string; timeoutMs: number };
  LINK_CLOSED: { reason: string };
  HANDSHAKE_FAILED: { reason: string };
  PEER_UNTRUSTED: { reason: string };
  PEER_REFUSED: { code: string };
  SCHEME_MISMATCH: { local: string; peer: string };
  PAYMENT_INVALID: { reason: string };
  PAYMENT_REPLAYED: { sender: string; index: string };
  WALLET_NOT_FOUND: { name: string };
  WALLET_EXISTS: { name: string };
  WALLET_BUSY: { name: string; pid: number };
  WALLET_UNSUPPORTED: { name: string; reason: string };
  NODE_UNREACHABLE: { url: string };
  NODE_REFUSED: { status: number; code: string; details?: Record<string, string> };
  DATA_FOLDER_LOCKED: { path: string; pid: number; host: string };
  LISTEN_FAILED: { address: string; reason: string };
  PASSWORD_MISSING: Record<string, never>;
  PASSWORD_MISMATCH: Record<string, never>;
  PASSWORD_WRONG: Record<string, never>;
  REQUEST_PAID: { nonce: string; at: number };
  ASSERTION_FAILED: Record<string, never>;
  OTP_PROGRAM_INVALID: { fault: 'schema-unknown' | 'checksum' | 'instruction-unknown' | 'order' | 'arguments' };
  OTP_CONDITION: { condition: string };
  OTP_EXCHANGE_KEY_INVALID: { reason: 'no-time' | 'expired' };
  OTP_COIN_INVALID: { fault: 'class-unknown' | 'program' | 'signature' };
  DOUBLE_SPEND: { coins: number };
  OTP_CLASS_UNKNOWN: Record<string, never>;
  PAYEE_INVALID: { reason: 'suite' | 'revoked' | 'account' | 'session' };
  CHAIN_PENDING: { reason: string };
  CHAIN_UNREACHABLE: { url: string; reason: string };
  NATS_UNREACHABLE: { url: string };
  NODE_NOT_FOUND: { dataDir: string };
  SETTLE_SHARDS_MISMATCH: { stream: string; shards: number; recorded: number };
  SHARD_DATABASE_MISMATCH: { expected: string; found: string };
  CHAIN_START_FAILED: { reason: string };
  CHAIN_REVERTED: { reason: string; transaction: string };
  CHAIN_REFUSED: { reason: string };
  CHAIN_NO_GAS: { address: string };
  CHAIN_TIMEOUT: { what: string; timeoutMs: number };
  CHAIN_FAUCET_REFUSED: { rpcUrl: string };
  OPERA_TOKEN_INVALID: { serial: string; reason: 'signature' | 'currency' | 'value' | 'repeated' };
  OPERA_MOUNT_REFUSED: { reason: 'proof' | 'maker' | 'serial' | 'role' | 'state' };
  OPERA_MESSAGE_INVALID: { reason: string };
  OPERA_PENDING: { reason: string };
  OPERA_NO_CHANGE: Record<string, never>;
  ROLE_MISMATCH: { role: string };
  ENROLMENT_PENDING: { centralBank: string; keyId: string };
  ENROLMENT_REFUSED: { centralBank: string; keyId: string; reason: string };
  RESERVE_UNSYNCED: { reason: string };
}

/** A stable error code: part of the public API, never renamed. */
export type ErrorCode = keyof ErrorDetailMap;

/** The error every Tally module throws for bad input, refused operations and broken invariants. */
export class TallyError<C extends ErrorCode = ErrorCode> extends Error {
  readonly code: C;
  readonly details: ErrorDetailMap[C];

  constructor(code: C, message: string, details: ErrorDetailMap[C], options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'TallyError';
    this.code = code;
    this.details = details;
  }

  /** A plain record for logs, JSON answers and frames between processes. */
  toJSON(): { code: C; message: string; details: ErrorDetailMap[C] } {
    return { code: this.code, message: this.message, details: this.details };
  }
}

/** True when `e` is a TallyError, with the given code when one is given. */
export function isTallyError<C extends ErrorCode>(e: unknown, code?: C): e is TallyError<C> {
  return e instanceof TallyError && (code === undefined || e.code === code);
}

/** Builds a TallyError whose code carries no details. */
export function tallyError<C extends ErrorCode>(
  code: C,
  message: string,
  ...rest: Record<string, never> extends ErrorDetailMap[C]
    ? [details?: ErrorDetailMap[C], options?: { cause?: unknown }]
    : [details: ErrorDetailMap[C], options?: { cause?: unknown }]
): TallyError<C> {
  const [details, options] = rest;
  return new TallyError(code, message, (details ?? {}) as ErrorDetailMap[C], options);
}

/**
 * Refuses a size over its limit.
 * @throws TallyError TOO_LARGE naming what was too large, its size and the limit
 */
export function checkSize(what: string, size: number, max: number, options?: { unit?: string; label?: string }): void {
  if (size > max) {
    const label = options?.label ?? what;
    throw new TallyError('TOO_LARGE', `${label} of ${size} ${options?.unit ?? 'bytes'} is over the limit of ${max}`, { what, size, max });
  }
}

const ERROR_CODES: Readonly<Record<ErrorCode, true>> = {
  DECODE_FAILED: true,
  CBOR_MALFORMED: true,
  CBOR_NONCANONICAL: true,
  TOO_LARGE: true,
  AMOUNT_INVALID: true,
  AMOUNT_OVERFLOW: true,
  AMOUNT_UNDERFLOW: true,
  CURRENCY_MISMATCH: true,
  TEXT_INVALID: true,
  TEXT_CHECKSUM: true,
  SUITE_UNKNOWN: true,
  KEY_INVALID: true,
  SIGNATURE_INVALID: true,
  AEAD_FAILED: true,
  CERT_MALFORMED: true,
  CERT_SIGNATURE_INVALID: true,
  CERT_ROLE_FORBIDDEN: true,
  CERT_EXPIRED: true,
  CERT_NOT_YET_VALID: true,
  CERT_UNKNOWN_ISSUER: true,
  CERT_REVOKED: true,
  CERT_SUITE_FORBIDDEN: true,
  CERT_CHAIN_INVALID: true,
  CRL_INVALID: true,
  CRL_ROLLBACK: true,
  ATTESTATION_INVALID: true,
  SE_REJECTED: true,
  SE_NOT_PROVISIONED: true,
  SE_ALREADY_PROVISIONED: true,
  SE_COMMAND_UNKNOWN: true,
  SE_CRASHED: true,
  SE_UNAVAILABLE: true,
  ROLLBACK_DETECTED: true,
  STATE_CORRUPT: true,
  COUNTER_FAILED: true,
  TPM_TOOL_MISSING: true,
  TPM_TIMEOUT: true,
  TPM_COMMAND_FAILED: true,
  TPM_QUOTE_INVALID: true,
  FRAME_INVALID: true,
  TIMEOUT: true,
  LINK_CLOSED: true,
  HANDSHAKE_FAILED: true,
  PEER_UNTRUSTED: true,
  PEER_REFUSED: true,
  SCHEME_MISMATCH: true,
  PAYMENT_INVALID: true,
  PAYMENT_REPLAYED: true,
  WALLET_NOT_FOUND: true,
  WALLET_EXISTS: true,
  WALLET_BUSY: true,
  WALLET_UNSUPPORTED: true,
  NODE_UNREACHABLE: true,
  NODE_REFUSED: true,
  DATA_FOLDER_LOCKED: true,
  LISTEN_FAILED: true,
  PASSWORD_MISSING: true,
  PASSWORD_MISMATCH: true,
  PASSWORD_WRONG: true,
  REQUEST_PAID: true,
  ASSERTION_FAILED: true,
  OTP_PROGRAM_INVALID: true,
  OTP_CONDITION: true,
  OTP_EXCHANGE_KEY_INVALID: true,
  OTP_COIN_INVALID: true,
  DOUBLE_SPEND: true,
  OTP_CLASS_UNKNOWN: true,
  PAYEE_INVALID: true,
  CHAIN_PENDING: true,
  CHAIN_UNREACHABLE: true,
  NATS_UNREACHABLE: true,
  NODE_NOT_FOUND: true,
  SETTLE_SHARDS_MISMATCH: true,
  SHARD_DATABASE_MISMATCH: true,
  CHAIN_START_FAILED: true,
  CHAIN_REVERTED: true,
  CHAIN_REFUSED: true,
  CHAIN_NO_GAS: true,
  CHAIN_TIMEOUT: true,
  CHAIN_FAUCET_REFUSED: true,
  OPERA_TOKEN_INVALID: true,
  OPERA_MOUNT_REFUSED: true,
  OPERA_MESSAGE_INVALID: true,
  OPERA_PENDING: true,
  OPERA_NO_CHANGE: true,
  ROLE_MISMATCH: true,
  ENROLMENT_PENDING: true,
  ENROLMENT_REFUSED: true,
  RESERVE_UNSYNCED: true,
};

/** True for a code Tally defines. */
export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(ERROR_CODES, code);
}

/**
 * Rebuilds a TallyError sent across a process or network boundary as `{ code, message, details }`.
 * An unknown code becomes FRAME_INVALID so that a peer cannot invent codes.
 */
export function errorFromWire(wire: { code: string; message: string; details: unknown }): TallyError {
  if (!isErrorCode(wire.code) || typeof wire.details !== 'object' || wire.details === null) {
    return new TallyError('FRAME_INVALID', `peer sent an unknown error: ${wire.code}: ${wire.message}`, { reason: 'unknown error code' });
  }
  // The details crossed a boundary as plain data; their shape per code is the sender's contract.
  return new TallyError(wire.code, wire.message, wire.details as ErrorDetailMap[typeof wire.code]);
}
