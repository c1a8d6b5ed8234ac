/**
 * The wallet's client of the issuer node's HTTP API: plain calls, calls signed with the user's key
 * (the request-auth headers), and operator calls with the bearer token. Every call that moves
 * money carries an idempotency key chosen by the caller, so a retry after a lost answer is safe.
 * Errors: NODE_UNREACHABLE when there is no answer, NODE_REFUSED with the node's code otherwise.
 */
import { connect } from 'node:net';
import { toHex } from '../core/bytes.ts';
import type { Signer } from '../core/crypto/suite.ts';
import type { Codec } from '../core/codec.ts';
import { isTallyError, TallyError } from '../core/errors.ts';
import { signRequest } from '../issuer/client/request-auth.ts';
import { keyId } from '../pki/key-id.ts';
import { infoAnswer, type InfoAnswer } from './node-answers.ts';

/** How long one HTTP call may take. */
export const NODE_CALL_TIMEOUT_MS = 15_000;
/** How long `reachable` waits for a connection. */
export const NODE_PROBE_TIMEOUT_MS = 5_000;
/** Largest answer read from the node. */
export const NODE_ANSWER_BYTES_MAX = 4 * 1024 * 1024;

/** What /v1/info answers. */
export type NodeInfo = InfoAnswer;

/** Per-call options. */
export interface CallInit {
  body?: unknown;
  idempotencyKey?: string | undefined;
  /** Answers to pass through instead of throwing (e.g. 304). */
  accept?: readonly number[];
  headers?: Record<string, string>;
}

/** Per-call options of a call whose answer is decoded by `answer` (see node-answers.ts). */
export interface DecodedInit<T> extends CallInit {
  answer: Codec<T>;
}

/** A JSON answer. */
export interface NodeAnswer<T> {
  status: number;
  body: T;
  headers: Headers;
}

/** A client of one node. */
export class NodeClient {
  readonly url: string;

  constructor(url: string) {
    this.url = url.replace(/\/+$/, '');
  }

  /**
   * Whether the node's host takes a TCP connection (closed at once): null when it does, else why
   * not. A call that needs a key opened first (the account's, from the secure element) asks this
   * before opening it, so that a node that is down costs no secure element start.
   */
  reachable(): Promise<string | null> {
    let url: URL;
    try {
      url = new URL(this.url);
    } catch {
      return Promise.resolve(`${this.url} is not a URL`);
    }
    const port = Number(url.port === '' ? (url.protocol === 'https:' ? 443 : 80) : url.port);
    const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
    return new Promise((done) => {
      const socket = connect({ host, port, timeout: NODE_PROBE_TIMEOUT_MS });
      const end = (why: string | null) => {
        socket.destroy();
        done(why);
      };
      socket.once('connect', () => end(null));
      socket.once('timeout', () => end(`no connection within ${NODE_PROBE_TIMEOUT_MS / 1000} s`));
      socket.once('error', (e: Error) => end(e.message));
    });
  }

  /** GET /v1/info. @throws TallyError DECODE_FAILED for a malformed answer */
  async info(): Promise<NodeInfo> {
    return (await this.call('GET', '/v1/info', { answer: infoAnswer })).body;
  }

  /** An unsigned call; its answer is decoded by `init.answer`, else left `unknown`. */
  call<T>(method: string, path: string, init: DecodedInit<T>): Promise<NodeAnswer<T>>;
  call(method: string, path: string, init?: CallInit): Promise<NodeAnswer<unknown>>;
  call(method: string, path: string, init: CallInit & { answer?: Codec<unknown> } = {}): Promise<NodeAnswer<unknown>> {
    const text = init.body === undefined ? undefined : JSON.stringify(init.body);
    return this.send(method, path, text, { ...init.headers, ...idempotency(init.idempotencyKey) }, init.accept, init.answer);
  }

  /** A call signed with `signer` (the user's key); its answer is decoded by `init.answer`, else left `unknown`. */
  signed<T>(signer: Signer, method: string, path: string, init: DecodedInit<T>): Promise<NodeAnswer<T>>;
  signed(signer: Signer, method: string, path: string, init?: CallInit): Promise<NodeAnswer<unknown>>;
  signed(signer: Signer, method: string, path: string, init: CallInit & { answer?: Codec<unknown> } = {}): Promise<NodeAnswer<unknown>> {
    const text = init.body === undefined ? '' : JSON.stringify(init.body);
    const auth = signRequest({ signer, keyId: toHex(keyId(signer.publicKey)), method, path, body: text, timestamp: Date.now() });
    return this.send(method, path, init.body === undefined ? undefined : text, { ...init.headers, ...auth, ...idempotency(init.idempotencyKey) }, init.accept, init.answer);
  }

  /** An operator call (bearer token); its answer is decoded by `init.answer`, else left `unknown`. */
  operator<T>(token: string, method: string, path: string, init: DecodedInit<T>): Promise<NodeAnswer<T>>;
  operator(token: string, method: string, path: string, init?: CallInit): Promise<NodeAnswer<unknown>>;
  operator(token: string, method: string, path: string, init: CallInit & { answer?: Codec<unknown> } = {}): Promise<NodeAnswer<unknown>> {
    return this.call(method, path, { ...init, headers: { ...init.headers, authorization: `Bearer ${token}` } } as DecodedInit<unknown>);
  }

  private async send(method: string, path: string, body: string | undefined, headers: Record<string, string>, accept: readonly number[] = [], answer?: Codec<unknown>): Promise<NodeAnswer<unknown>> {
    let res: Response;
    try {
      res = await fetch(`${this.url}${path}`, {
        method,
        headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
        ...(body === undefined ? {} : { body }),
        signal: AbortSignal.timeout(NODE_CALL_TIMEOUT_MS),
      });
    } catch (e) {
      const why = e instanceof Error ? (e.cause instanceof Error ? e.cause.message : e.message) : String(e);
      throw new TallyError('NODE_UNREACHABLE', `cannot reach the issuer node at ${this.url} (${why}); is it running? (tally node start)`, { url: this.url }, { cause: e });
    }
    const length = Number(res.headers.get('content-length') ?? '0');
    if (length > NODE_ANSWER_BYTES_MAX) throw new TallyError('TOO_LARGE', `the node's answer of ${length} bytes is over the limit`, { what: 'node answer', size: length, max: NODE_ANSWER_BYTES_MAX });
    const text = await res.text();
    let parsed: unknown = null;
    if (text.length > 0) {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = null;
      }
    }
    if (res.ok || accept.includes(res.status)) return { status: res.status, body: answer === undefined ? parsed : this.decodeAnswer(answer, parsed, method, path), headers: res.headers };
    const problem = (parsed as { error?: { code?: unknown; message?: unknown; details?: unknown } } | null)?.error;
    const code = typeof problem?.code === 'string' ? problem.code : `HTTP_${res.status}`;
    const message = typeof problem?.message === 'string' ? problem.message : `${method} ${path} answered ${res.status}`;
    throw new TallyError('NODE_REFUSED', `the node refused: ${message} [${code}]`, { status: res.status, code, details: textDetails(problem?.details) });
  }

  /** Decodes an answer; a malformed one is DECODE_FAILED naming the route and the field. */
  private decodeAnswer(answer: Codec<unknown>, parsed: unknown, method: string, path: string): unknown {
    try {
      return answer.decode(parsed, 'answer');
    } catch (e) {
      if (!isTallyError(e, 'DECODE_FAILED')) throw e;
      throw new TallyError('DECODE_FAILED', `the node at ${this.url} answered ${method} ${path} with a malformed body: ${e.message}`, e.details, { cause: e });
    }
  }
}

/** The short text fields of an error answer's details (what a caller may branch on). */
function textDetails(details: unknown): Record<string, string> {
  const kept: Record<string, string> = {};
  if (details === null || typeof details !== 'object') return kept;
  for (const [key, value] of Object.entries(details).slice(0, 16)) {
    if (typeof value === 'string' && value.length <= 200) kept[key] = value;
  }
  return kept;
}

function idempotency(key: string | undefined): Record<string, string> {
  return key === undefined ? {} : { 'idempotency-key': key };
}
