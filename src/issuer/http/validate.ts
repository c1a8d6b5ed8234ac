/**
 * What the route files share: field schemas, body validation, public-key parsing, and the
 * idempotent runner that stores a mutating call's answer with its effects in one transaction.
 */
import { Buffer } from 'node:buffer';
import { createHash } from 'node:crypto';
import { z } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { Amount } from '../../core/amount.ts';
import { assert } from '../../core/assert.ts';
import { toBase64url, toHex, utf8 } from '../../core/bytes.ts';
import { sha256 } from '../../core/crypto/hash.ts';
import { SUITE_NAMES, SUITE_SIZES, suiteFor, type PublicKey } from '../../core/crypto/suite.ts';
import { isTallyError } from '../../core/errors.ts';
import { keyId } from '../../pki/key-id.ts';
import { sqlState, type TransactionHandle } from '../db/database.ts';
import { storedResponse, type StoredResponse } from '../ledger/idempotency.ts';
import type { LedgerResultCode } from '../ledger/result.ts';
import { idempotencyKey } from './auth.ts';
import type { IssuerEnv, IssuerServices } from './context.ts';
import { ApiProblem, type ApiErrorCode } from './problem.ts';

/** base64url text of at most `max` characters. */
export const base64urlOf = (max: number) => z.string().regex(/^[A-Za-z0-9_-]*$/, 'base64url').max(max);
/** base64url text of at most 4096 characters. */
export const base64url = base64urlOf(4096);
/** An amount in decimal major units. */
export const amountText = z.string().regex(/^(0|[1-9][0-9]{0,18})(\.[0-9]{1,18})?$/, 'decimal major units such as "12.50"');
/** A ledger account id. */
export const accountId = z.string().regex(/^[a-z][a-z0-9-]*:[A-Za-z0-9._:-]+$/).max(128);
/** A key id: 64 lower-case hex digits. */
export const keyIdHex = z.string().regex(/^[0-9a-f]{64}$/, '64 lower-case hex digits');
/** A scheme name. */
export const schemeName = z.string().regex(/^[a-z][a-z0-9-]{0,31}$/, 'a scheme name in lower case');
/**
 * Free text the database stores as it came, of at most `max` characters: U+0000 (which PostgreSQL
 * text and jsonb cannot hold) and unpaired surrogates (which are not Unicode) are refused.
 */
export const storableText = (max: number) => z.string().max(max).regex(/^[^\u0000\p{Cs}]*$/u, 'text without U+0000 or unpaired surrogates');
/** A public key `{ suite, key }` with the key in base64url. */
export const publicKeyBody = z.strictObject({ suite: z.enum(SUITE_NAMES), key: base64url });

/** The OpenAPI shape of an error answer. */
export const errorBody = {
  content: { 'application/json': { schema: z.object({ error: z.object({ code: z.string(), message: z.string(), details: z.record(z.string(), z.unknown()) }) }) } },
};
/** A required JSON request body of `schema`. */
export const json = <T extends z.ZodType>(schema: T) => ({ content: { 'application/json': { schema } }, required: true });

/**
 * Parses and validates the JSON body with `schema`.
 * @throws ApiProblem BODY_INVALID naming every field at fault
 */
export function validBody<T extends z.ZodType>(c: Context<IssuerEnv>, schema: T): z.infer<T> {
  const parsed = schema.safeParse(c.get('jsonBody'));
  if (!parsed.success) {
    const issues = parsed.error.issues.map((issue) => `${['body', ...issue.path.map(String)].join('.')}: ${issue.message}`);
    throw new ApiProblem('BODY_INVALID', issues.join('; '), { issues });
  }
  return parsed.data;
}

/** @throws ApiProblem AMOUNT_INVALID */
export function parseAmount(services: IssuerServices, text: string): Amount {
  try {
    return Amount.parse(text, services.currency);
  } catch (e) {
    if (isTallyError(e)) throw new ApiProblem('AMOUNT_INVALID', e.message, {});
    throw e;
  }
}

/** The value of a base64url character code (RFC 4648 §5), or -1 for any other character. */
function base64urlValue(code: number): number {
  if (code >= 65 && code <= 90) return code - 65;
  if (code >= 97 && code <= 122) return code - 71;
  if (code >= 48 && code <= 57) return code + 4;
  return code === 45 ? 62 : code === 95 ? 63 : -1;
}

const BASE64URL_TEXT = /^[A-Za-z0-9_-]*$/;

/**
 * How many bytes canonical unpadded base64url text decodes to, or -1 for text the strict decoder
 * (fromBase64url) refuses: a character outside the alphabet, padding, an impossible length, or
 * non-zero trailing bits. Node's decoder, native but lenient, is then exact on what passes.
 */
function base64urlBytes(text: string): number {
  const rest = text.length % 4;
  if (rest === 1 || !BASE64URL_TEXT.test(text)) return -1;
  if (rest !== 0 && (base64urlValue(text.charCodeAt(text.length - 1)) & (rest === 2 ? 15 : 3)) !== 0) return -1;
  return ((text.length - rest) / 4) * 3 + (rest === 0 ? 0 : rest - 1);
}

/** Decodes base64url of a field. @throws ApiProblem BODY_INVALID naming `field` */
export function decodeField(field: string, text: string): Uint8Array {
  const length = base64urlBytes(text);
  if (length < 0) throw new ApiProblem('BODY_INVALID', `${field}: expected base64url`, {});
  const out = new Uint8Array(length);
  Buffer.from(out.buffer, 0, length).write(text, 0, length, 'base64url');
  return out;
}

/**
 * Decodes the base64url of a list of fields (`field.0`, `field.1`, ...) into one buffer, one
 * allocation for all of them (a settlement batch holds hundreds): each answer is a view of it, or
 * the field's refusal, BODY_INVALID for text that is not base64url, TOO_LARGE past `bytesMax`.
 */
export function decodeFieldList(field: string, texts: readonly string[], bytesMax: number): Array<Uint8Array | ApiProblem> {
  const lengths = texts.map(base64urlBytes);
  let total = 0;
  for (const length of lengths) if (length <= bytesMax) total += Math.max(length, 0);
  const whole = new Uint8Array(total);
  const writer = Buffer.from(whole.buffer, 0, total);
  let at = 0;
  return texts.map((text, k) => {
    const length = lengths[k] as number;
    if (length < 0) return new ApiProblem('BODY_INVALID', `${field}.${k}: expected base64url`, {});
    if (length > bytesMax) return new ApiProblem('TOO_LARGE', `${field}.${k} of ${length} bytes is over the limit of ${bytesMax}`, {});
    const written = writer.write(text, at, length, 'base64url');
    assert(written === length, `${field}.${k}: ${written} bytes written of ${length}`);
    at += length;
    return whole.subarray(at - length, at);
  });
}

/**
 * A public key of the body, checked to be a valid point of its suite; answers it and its key id.
 * @throws ApiProblem BODY_INVALID naming `field`
 */
export function parsePublicKey(services: IssuerServices, field: string, body: z.infer<typeof publicKeyBody>): { publicKey: PublicKey; keyId: string } {
  const publicKey: PublicKey = { suite: body.suite, key: decodeField(`${field}.key`, body.key) };
  if (publicKey.key.length !== SUITE_SIZES[publicKey.suite].publicKey || !suiteFor(services.provider, publicKey.suite).isValidPublicKey(publicKey.key)) {
    throw new ApiProblem('BODY_INVALID', `${field}.key: not a valid ${publicKey.suite} public key`, {});
  }
  return { publicKey, keyId: toHex(keyId(publicKey)) };
}

/** Request hashes already taken, by request. */
const requestHashes = new WeakMap<Context<IssuerEnv>, { readonly callerId: string; readonly hash: Uint8Array }>();

/** SHA-256 over method, path, caller and body: what makes two requests under one idempotency key the same. */
export function requestHash(c: Context<IssuerEnv>, callerId: string): Uint8Array {
  // Kept per request: a route may ask more than once (a settlement batch is a megabyte to hash).
  const known = requestHashes.get(c);
  if (known !== undefined && known.callerId === callerId) return known.hash;
  const hash = new Uint8Array(createHash('sha256').update(`${c.req.method} ${new URL(c.req.url).pathname} ${callerId}\n`, 'utf8').update(c.get('rawBody')).digest());
  requestHashes.set(c, { callerId, hash });
  return hash;
}

/**
 * Runs `work` once per (scope, caller, idempotency key): the answer is stored with the effects, in
 * one transaction, and a replay answers the stored answer with `idempotent-replayed: true`.
 * @throws ApiProblem IDEMPOTENCY_KEY_REQUIRED, IDEMPOTENCY_CONFLICT
 */
export async function idempotent(
  services: IssuerServices,
  c: Context<IssuerEnv>,
  scope: string,
  callerId: string,
  work: (tx: TransactionHandle) => Promise<StoredResponse>,
): Promise<Response> {
  const key = storedKey(callerId, idempotencyKey(c));
  const hash = requestHash(c, callerId);
  let result: Awaited<ReturnType<typeof services.ledger.withIdempotency>>;
  for (let attempt = 1; ; attempt++) {
    try {
      result = await services.ledger.withIdempotency(scope, key, hash, work);
      break;
    } catch (e) {
      // A unique violation means a concurrent request committed the same row (a user, a device,
      // a wallet) between this one's check and its insert. Run the work again on a fresh snapshot:
      // it now sees that row and answers as it would have, had it come second (ALREADY_REGISTERED).
      if (sqlState(e) !== UNIQUE_VIOLATION || attempt >= UNIQUE_RACE_ATTEMPTS_MAX) throw e;
    }
  }
  if (!result.ok) throw new ApiProblem(result.code, result.message, {});
  return new Response(JSON.stringify(result.response.body), {
    status: result.response.status,
    headers: { 'content-type': 'application/json', 'idempotent-replayed': result.replayed ? 'true' : 'false' },
  });
}

/** SQLSTATE unique_violation. */
const UNIQUE_VIOLATION = '23505';
/** Runs of one idempotent request when concurrent requests keep inserting the same rows first. */
export const UNIQUE_RACE_ATTEMPTS_MAX = 3;

/** Longest key the idempotency table and the ledger store. */
export const STORED_KEY_CHARS_MAX = 128;

/**
 * A key that fits the 128 characters the tables store: `full` itself when it fits, else `#` and
 * the SHA-256 of `full` (base64url). Cutting a long key short instead would let two keys that only
 * differ at the end share a row, and the second request would get the first one's answer.
 * `#` is not a character clients may use, so a hashed key never equals a plain one.
 */
export function fitKey(full: string): string {
  return full.length <= STORED_KEY_CHARS_MAX ? full : `#${toBase64url(sha256(utf8(full)))}`;
}

function storedKey(callerId: string, key: string): string {
  return fitKey(`${callerId}:${key}`);
}

/**
 * What `idempotent` stored in `scope` for this request (the caller's key and the request's hash),
 * without running anything: undefined when nothing is stored, IDEMPOTENCY_CONFLICT's answer when
 * the key holds another request.
 */
export function storedAnswer(services: IssuerServices, c: Context<IssuerEnv>, scope: string, callerId: string): Promise<StoredResponse | undefined> {
  return storedResponse(services.db, scope, storedKey(callerId, idempotencyKey(c)), requestHash(c, callerId));
}

/** A stored error answer; stored bodies carry no details, so they stay plain JSON. */
export function refusal(code: LedgerResultCode | ApiErrorCode, message: string, details: { [key: string]: string } = {}): StoredResponse {
  const problem = new ApiProblem(code, message);
  return { status: problem.status, body: { error: { code: problem.code, message: problem.message, details } } };
}
