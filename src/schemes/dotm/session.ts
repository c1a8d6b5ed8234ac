/**
 * The dual offline transaction of §3.3.3 (Figure 7) over a live link, in the paper's order:
 *   R → P  λ                      (step 1)
 *   P → R  σ, or a failure notice  (steps 2–3)
 *   R → P  the signed notification, or a failure notice (steps 4–6)
 *   P → R  the success message     (steps 7–8)
 *   R      closes on success, rolls back when it does not come in time (step 9).
 * The payer withdraws its offer when no notification comes (nothing was paid: exceptional
 * situations 1 and 4). Both devices' trusted apps do the work through the roles; this file orders
 * the messages and bounds every wait. Pure.
 */
import { bytes, oneOf, taggedUnion, text, type Infer } from '../../core/codec.ts';
import { utf8 } from '../../core/bytes.ts';
import { isTallyError, TallyError } from '../../core/errors.ts';
import type { Link } from '../../channel/link.ts';
import { localCode, PAYEE_DECLINED, PAYER_DECLINED, peerRefusal, refusalSentence, type RefusingSide } from '../../channel/peer-refusal.ts';
import {
  decodeNotification,
  decodeSuccessNotice,
  decodeTransactionMessage,
  decodeTransactionRequest,
  encodeNotification,
  encodeSuccessNotice,
  encodeTransactionMessage,
  encodeTransactionRequest,
  FAILURE_REASONS,
  NOTICE_BYTES_MAX,
  REQUEST_BYTES_MAX,
  TRANSACTION_BYTES_MAX,
  TSN_BYTES,
  type FailureReason,
  type Notification,
  type SuccessNotice,
  type TransactionMessage,
  type TransactionRequest,
} from './messages.ts';

/** Both sides put this in their Noise prologue. */
export const DOTM_LINK_PROLOGUE = utf8('tally/dotm/link/v1');
/** The scheme both sides name in their link hello: an OPS peer is told apart before the handshake. */
export const DOTM_LINK_SCHEME = 'dotm';
/** How long each side waits for the other's next message by default. */
export const SESSION_STEP_TIMEOUT_MS = 30_000;

/** Steps 2 and 4's "notify … the transaction fails", with a code and that code's fixed sentence (peer-refusal.ts). */
const failure = {
  tsn: bytes({ max: TSN_BYTES }),
  reason: oneOf(FAILURE_REASONS),
  code: text({ min: 1, max: 40, pattern: /^[A-Z][A-Z0-9_]*$/, describe: 'an error code' }),
  message: text({ max: 300, pattern: /^[^\p{Cc}\p{Cs}]*$/u, describe: 'one line of text' }),
};

/** What the payee sends. */
export const payeeMessageCodec = taggedUnion('kind', {
  request: { request: bytes({ min: 1, max: REQUEST_BYTES_MAX }) },
  notification: { notification: bytes({ min: 1, max: NOTICE_BYTES_MAX }) },
  failure,
});
export type PayeeMessage = Infer<typeof payeeMessageCodec>;

/** What the payer sends. */
export const payerMessageCodec = taggedUnion('kind', {
  transaction: { transaction: bytes({ min: 1, max: TRANSACTION_BYTES_MAX }) },
  success: { success: bytes({ min: 1, max: NOTICE_BYTES_MAX }) },
  failure,
});
export type PayerMessage = Infer<typeof payerMessageCodec>;

/** The payer's trusted app, as the session uses it. */
export interface PayerRole {
  /** Steps 2–3: check λ (and the payer's intention), build σ. Throwing sends a failure notice. */
  pay(request: TransactionRequest): Promise<TransactionMessage>;
  /** Step 7: verify the notification and update the wallet; answers step 8's message. */
  confirm(notification: Notification): Promise<SuccessNotice>;
  /** No valid notification came: withdraw the offer (nothing was paid). */
  abandon(): Promise<void>;
}

/** The payee's trusted app, as the session uses it. */
export interface PayeeRole {
  /** Step 1: λ. */
  request(): Promise<TransactionRequest>;
  /** Steps 4–6: verify σ, link the records, sign the notification. Throwing sends a failure notice. */
  accept(transaction: TransactionMessage): Promise<Notification>;
  /** Step 9, success: close the transaction. */
  complete(success: SuccessNotice): Promise<void>;
  /** Step 9, no success in time: restore the wallet as it was before step 5. */
  rollback(): Promise<void>;
}

/** Timing. */
export interface SessionOptions {
  stepTimeoutMs?: number | undefined;
}

/** How the payer's side ended. */
export interface PayerOutcome {
  readonly request: TransactionRequest;
  readonly transaction: TransactionMessage;
  readonly success: SuccessNotice;
}

/** How the payee's side ended: completed, or rolled back with the reason. */
export type PayeeOutcome =
  | { readonly status: 'completed'; readonly request: TransactionRequest; readonly transaction: TransactionMessage }
  | { readonly status: 'rolled-back'; readonly request: TransactionRequest; readonly transaction: TransactionMessage; readonly error: TallyError };

/** The code of a local failure: a trusted app's own refusal code, or the error's (kept on this device). */
export function failureCode(e: unknown): string {
  return localCode(e);
}

/** True when the device itself failed (its SE is gone): recovery waits for the reboot. */
function deviceDown(e: unknown): boolean {
  return !isTallyError(e) || e.code === 'SE_CRASHED' || e.code === 'SE_UNAVAILABLE';
}

/** The notice's reason, from the code the peer gets (so it says no more than the code). */
function reasonOf(code: string, fallback: FailureReason): FailureReason {
  switch (code) {
    case PAYER_DECLINED:
    case 'AMOUNT_MISMATCH':
    case 'PAYEE_MISMATCH':
      return 'payer-declined';
    case PAYEE_DECLINED:
      return 'payee-declined';
    default:
      return fallback;
  }
}

/**
 * Sends a failure notice (a courtesy: the link may be gone) and rethrows the local error. The
 * notice carries a code and its fixed sentence: the local message (the balance, the password
 * tries left) stays on this device.
 */
async function orFail<T>(link: Link, side: RefusingSide, tsn: Uint8Array, fallback: FailureReason, step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (e) {
    try {
      const { code, message } = peerRefusal(side, e);
      link.send({ kind: 'failure', tsn, reason: reasonOf(code, fallback), code, message });
    } catch {
      // Nothing more to do: the peer times out.
    }
    throw e;
  }
}

function peerFailed(who: RefusingSide, f: { reason: string; code: string; message: string }): TallyError<'PEER_REFUSED'> {
  return new TallyError('PEER_REFUSED', `the ${who} closed the transaction (${f.reason}): ${refusalSentence(who, f.code, f.message)} [${f.code}]`, { code: f.code });
}

function unexpected(wanted: string, got: string): TallyError<'PAYMENT_INVALID'> {
  return new TallyError('PAYMENT_INVALID', `expected ${wanted}, got a ${got}`, { reason: 'protocol' });
}

/**
 * The payer's side: λ in, σ out, the notification in, the success message out.
 * @throws TallyError: before σ left (nothing offered) the link's TIMEOUT / LINK_CLOSED / DECODE_FAILED
 *   or whatever `pay` throws; after it, PEER_REFUSED or the link's error once the offer was abandoned,
 *   or whatever `confirm` / `abandon` throws (the wallet then settles the offer when it reopens)
 */
export async function runPayer(link: Link, role: PayerRole, options: SessionOptions = {}): Promise<PayerOutcome> {
  const timeoutMs = options.stepTimeoutMs ?? SESSION_STEP_TIMEOUT_MS;
  const first = await link.receive(payeeMessageCodec, { timeoutMs, what: 'λ (step 1)' });
  if (first.kind === 'failure') throw peerFailed('payee', first);
  const request = await orFail(link, 'payer', new Uint8Array(0), 'request-invalid', async () => {
    if (first.kind !== 'request') throw unexpected('λ', first.kind);
    return decodeTransactionRequest(first.request);
  });
  const transaction = await orFail(link, 'payer', request.tsn, 'request-invalid', () => role.pay(request));
  let notification: Notification;
  try {
    link.send({ kind: 'transaction', transaction: encodeTransactionMessage(transaction) });
    const answer = await link.receive(payeeMessageCodec, { timeoutMs, what: 'notification (step 6)' });
    if (answer.kind === 'failure') throw peerFailed('payee', answer);
    if (answer.kind !== 'notification') throw unexpected('the notification', answer.kind);
    notification = decodeNotification(answer.notification);
  } catch (e) {
    // Exceptional situations 1 and 4: the payer never updates; its offer is withdrawn.
    await role.abandon();
    throw e;
  }
  let success: SuccessNotice;
  try {
    success = await orFail(link, 'payer', request.tsn, 'transaction-invalid', () => role.confirm(notification));
  } catch (e) {
    if (deviceDown(e)) throw e;
    await role.abandon();
    throw e;
  }
  try {
    link.send({ kind: 'success', success: encodeSuccessNotice(success) });
  } catch {
    // Exceptional situation 5 from here: the payer has paid; the payee rolls back, and the node
    // gives the value back to the payer after both go online (§3.3.5).
  }
  return { request, transaction, success };
}

/**
 * The payee's side: λ out, σ in, the notification out, then step 9.
 * @throws TallyError before step 5 (nothing received): the link's errors, PEER_REFUSED, or whatever
 *   `accept` throws; after step 5 it returns `rolled-back` instead, having called `rollback`
 */
export async function runPayee(link: Link, role: PayeeRole, options: SessionOptions = {}): Promise<PayeeOutcome> {
  const timeoutMs = options.stepTimeoutMs ?? SESSION_STEP_TIMEOUT_MS;
  const request = await role.request();
  link.send({ kind: 'request', request: encodeTransactionRequest(request) });
  const answer = await link.receive(payerMessageCodec, { timeoutMs, what: 'σ (step 3)' });
  if (answer.kind === 'failure') throw peerFailed('payer', answer);
  const { transaction, notification } = await orFail(link, 'payee', request.tsn, 'transaction-invalid', async () => {
    if (answer.kind !== 'transaction') throw unexpected('σ', answer.kind);
    const decoded = decodeTransactionMessage(answer.transaction);
    return { transaction: decoded, notification: await role.accept(decoded) };
  });
  try {
    link.send({ kind: 'notification', notification: encodeNotification(notification) });
    const last = await link.receive(payerMessageCodec, { timeoutMs, what: 'success message (step 8)' });
    if (last.kind === 'failure') throw peerFailed('payer', last);
    if (last.kind !== 'success') throw unexpected('the success message', last.kind);
    await role.complete(decodeSuccessNotice(last.success));
    return { status: 'completed', request, transaction };
  } catch (e) {
    if (deviceDown(e)) throw e;
    await role.rollback();
    return { status: 'rolled-back', request, transaction, error: e as TallyError };
  }
}
