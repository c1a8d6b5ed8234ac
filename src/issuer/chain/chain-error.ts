/**
 * viem's errors as Tally's: an endpoint that does not answer (CHAIN_UNREACHABLE), a call or
 * transaction the EVM reverted (CHAIN_REVERTED, with the contract's reason or custom error), an
 * account without ETH for gas (CHAIN_NO_GAS), a receipt that did not come in time (CHAIN_TIMEOUT),
 * and anything else the node refused (CHAIN_REFUSED).
 */
import {
  BaseError,
  ContractFunctionRevertedError,
  ExecutionRevertedError,
  HttpRequestError,
  InsufficientFundsError,
  SocketClosedError,
  TimeoutError,
  WaitForTransactionReceiptTimeoutError,
} from 'viem';
import { isTallyError, TallyError } from '../../core/errors.ts';

/** Longest reason quoted from the chain in an error message. */
const REASON_CHARS_MAX = 300;

/** What was being done when an error came, for its message. */
export interface ChainErrorContext {
  /** A few words: "deploying a contract", "reading the chain id". */
  readonly what: string;
  /** The endpoint, without credentials (see publicRpcUrl). */
  readonly rpcUrl: string;
  /** The sending account, when there is one (named when it lacks gas). */
  readonly from?: string | undefined;
  /** The transaction hash, when one was sent. */
  readonly transaction?: string | undefined;
  /** How long a receipt was waited for. */
  readonly timeoutMs?: number | undefined;
}

function clip(text: string): string {
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length > REASON_CHARS_MAX ? `${line.slice(0, REASON_CHARS_MAX)}...` : line;
}

/**
 * Why a request did not reach the endpoint: the system's error code, an HTTP status, a timeout, or
 * else the innermost cause's words (fetch's own refusals, such as "bad port").
 */
export function unreachableReason(e: unknown): string {
  let at: unknown = e;
  let innermost = e instanceof BaseError ? e.shortMessage : e instanceof Error ? e.message : String(e);
  for (let depth = 0; depth < 8 && at !== undefined && at !== null; depth++) {
    if (at instanceof HttpRequestError && at.status !== undefined) return `HTTP ${at.status}`;
    if (at instanceof TimeoutError) return 'no answer in time';
    const code: unknown = typeof at === 'object' ? Reflect.get(at, 'code') : undefined;
    if (typeof code === 'string' && /^E[A-Z_]+$/.test(code)) {
      return code === 'ECONNREFUSED' ? 'connection refused' : code === 'ENOTFOUND' ? 'no such host' : code;
    }
    if (at instanceof Error && !(at instanceof BaseError) && at.message !== '') innermost = at.message;
    at = typeof at === 'object' ? Reflect.get(at, 'cause') : undefined;
  }
  return clip(innermost);
}

/** The revert reason a reverted call or transaction carries: a custom error with its arguments, a require message, or a panic. */
function revertReason(error: BaseError): string {
  const decoded = error.walk((e) => e instanceof ContractFunctionRevertedError);
  if (decoded instanceof ContractFunctionRevertedError) {
    if (decoded.data !== undefined) {
      const args = (decoded.data.args ?? []).map((arg) => (typeof arg === 'bigint' ? arg.toString() : JSON.stringify(arg)));
      return clip(`${decoded.data.errorName}(${args.join(', ')})`);
    }
    if (decoded.reason !== undefined) return clip(decoded.reason);
    if (decoded.signature !== undefined) return `custom error ${decoded.signature}`;
  }
  const raw = error.walk((e) => e instanceof ExecutionRevertedError);
  if (raw instanceof ExecutionRevertedError) return clip(raw.details || raw.shortMessage);
  return clip(error.shortMessage);
}

/**
 * The TallyError for what a chain request threw; a TallyError and an error that is not viem's
 * (a bug) come back as they are.
 */
export function toChainError(e: unknown, context: ChainErrorContext): unknown {
  if (isTallyError(e) || !(e instanceof BaseError)) return e;
  const transaction = context.transaction ?? '';
  const on = `on ${context.rpcUrl}`;
  if (e.walk((x) => x instanceof ContractFunctionRevertedError || x instanceof ExecutionRevertedError) !== null) {
    const reason = revertReason(e);
    return new TallyError('CHAIN_REVERTED', `${context.what} reverted ${on}: ${reason}`, { reason, transaction }, { cause: e });
  }
  if (e.walk((x) => x instanceof InsufficientFundsError) !== null) {
    const address = context.from ?? '';
    return new TallyError('CHAIN_NO_GAS', `${context.what} ${on}: the account ${address} has not enough ETH for gas; send it some`, { address }, { cause: e });
  }
  if (e.walk((x) => x instanceof WaitForTransactionReceiptTimeoutError) !== null) {
    const timeoutMs = context.timeoutMs ?? 0;
    return new TallyError('CHAIN_TIMEOUT', `${context.what} ${on}: transaction ${transaction} was not mined within ${timeoutMs / 1000} s; it may still be`, { what: context.what, timeoutMs }, { cause: e });
  }
  if (e.walk((x) => x instanceof HttpRequestError || x instanceof TimeoutError || x instanceof SocketClosedError) !== null) {
    const reason = unreachableReason(e);
    return new TallyError('CHAIN_UNREACHABLE', `${context.what}: the Ethereum node at ${context.rpcUrl} does not answer (${reason})`, { url: context.rpcUrl, reason }, { cause: e });
  }
  const reason = clip(e.shortMessage);
  return new TallyError('CHAIN_REFUSED', `${context.what} ${on}: ${reason}`, { reason }, { cause: e });
}
