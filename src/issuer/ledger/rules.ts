/**
 * The ledger's limits and the shapes of its identifiers, checked in code before any SQL runs
 * (and again by the schema's CHECK constraints, as a second line).
 */

/**
 * The kinds of account; only 'issuance' and 'clearing' may go below zero. A clearing account is
 * one place's side of the money crossing between two databases of one node (ledger/cross-shard.ts).
 */
export const ACCOUNT_KINDS = ['issuance', 'user', 'offline-float', 'settlement', 'reserve', 'clearing'] as const;

/** The kinds of account that may go below zero. */
export function mayGoNegative(kind: string): boolean {
  return kind === 'issuance' || kind === 'clearing';
}
/** The longest account id, such as `user:<64 hex digits>`. */
export const ACCOUNT_ID_LENGTH_MAX = 128;
/** The longest idempotency key. */
export const IDEMPOTENCY_KEY_LENGTH_MAX = 128;
/** The largest reference, as JSON text in UTF-8. */
export const REFERENCE_BYTES_MAX = 4096;
/** The most history entries one call returns. */
export const HISTORY_LIMIT_MAX = 1000;

/** `<namespace>:<name>`, such as `cb:issuance`, `user:9f2c…`, `float:ops`. */
const ACCOUNT_ID = /^[a-z][a-z0-9-]*:[A-Za-z0-9._:-]+$/;
/** As core/amount's currency codes. */
const CURRENCY_CODE = /^[A-Z][A-Z0-9]{2,11}$/;
/** A key id in lower-case hex, 1 to 64 bytes. */
const OWNER = /^(?:[0-9a-f]{2}){1,64}$/;
/** Such as `mint`, `transfer`, `offline-deposit`. */
const TRANSFER_KIND = /^[a-z][a-z0-9-]{0,63}$/;
/** Printable ASCII without spaces, so a key survives headers and logs unchanged. */
const IDEMPOTENCY_KEY = new RegExp(`^[!-~]{1,${IDEMPOTENCY_KEY_LENGTH_MAX}}$`);

function shown(value: string): string {
  return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
}

/** Why an account id is malformed, or undefined when it is well formed. */
export function accountIdProblem(id: string): string | undefined {
  if (id.length > ACCOUNT_ID_LENGTH_MAX) return `account id: expected at most ${ACCOUNT_ID_LENGTH_MAX} characters, got ${id.length}`;
  return ACCOUNT_ID.test(id) ? undefined : `account id: expected namespace:name such as "user:9f2c", got ${shown(id)}`;
}

/** Why a currency code is malformed, or undefined. */
export function currencyProblem(code: string): string | undefined {
  return CURRENCY_CODE.test(code) ? undefined : `currency: expected 3 to 12 capitals or digits, got ${shown(code)}`;
}

/** Why an owner key id is malformed, or undefined. */
export function ownerProblem(owner: string): string | undefined {
  return OWNER.test(owner) ? undefined : `owner: expected a key id in lower-case hex (1 to 64 bytes), got ${shown(owner)}`;
}

/** Why a transfer kind is malformed, or undefined. */
export function transferKindProblem(kind: string): string | undefined {
  return TRANSFER_KIND.test(kind) ? undefined : `kind: expected lower case words joined by '-', such as "offline-deposit", got ${shown(kind)}`;
}

/** Why an idempotency key is malformed, or undefined. */
export function idempotencyKeyProblem(key: string): string | undefined {
  return IDEMPOTENCY_KEY.test(key)
    ? undefined
    : `idempotency key: expected 1 to ${IDEMPOTENCY_KEY_LENGTH_MAX} printable ASCII characters without spaces, got ${shown(key)}`;
}
