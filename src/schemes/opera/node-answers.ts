/**
 * Each ODW request is answered once per nonce. The nonce an ODW draws and signs into a charge, a
 * deposit or a settlement report is the request's idempotency key: the same request again (a
 * retry after a lost answer, a duplicate, a concurrent copy) is answered with the stored answer and
 * changes nothing; another request under the same nonce is refused. The answer is stored with the
 * request's effects, in one transaction; a refusal stores nothing, so the ODW may send the same
 * request again once the cause is gone (its holder's account is funded, say).
 *
 * The node's own idempotency store keeps answers of at most 64 KiB, which a charge of
 * TOKENS_PER_MESSAGE_MAX tokens exceeds: the answers live here instead, keyed by what the device signed.
 */
import { assert } from '../../core/assert.ts';
import { equalBytes, toHex } from '../../core/bytes.ts';
import { encodeCbor } from '../../core/cbor.ts';
import type { Codec } from '../../core/codec.ts';
import { sha256 } from '../../core/crypto/hash.ts';
import type { PublicKey } from '../../core/crypto/suite.ts';
import { isTallyError } from '../../core/errors.ts';
import { ApiProblem, type Caller, type IssuerServices, type JsonValue, type TransactionHandle } from '../../issuer/plugin.ts';
import { checkSigned } from './messages.ts';
import { ownOdw } from './node-common.ts';

/** The kinds of ODW request answered once per nonce (their nonces are apart). */
export type RequestKind = 'charge' | 'deposit' | 'settle';

/** An authenticated account holder. */
export type Holder = Extract<Caller, { kind: 'user' }>;

/** A device request whose signature checked, inside the transaction that claimed its nonce. */
export interface DeviceCall<B> {
  readonly tx: TransactionHandle;
  readonly user: Holder;
  /** The ODW's key id and registered key. */
  readonly device: string;
  readonly key: PublicKey;
  /** The request's body, as the ODW signed it. */
  readonly body: B;
}

/** What a route hands over: the caller, its ODW, and the ODW's signed request. */
export interface SignedRequest<B> {
  readonly user: Holder;
  readonly kind: RequestKind;
  readonly device: string;
  readonly signed: { readonly body: unknown; readonly signature: Uint8Array };
  readonly codec: Codec<B>;
  readonly tag: string;
}

/** A device request whose signature checked: the ODW's key, the body as signed, and its digest. */
export interface CheckedRequest<B> {
  readonly key: PublicKey;
  readonly body: B;
  readonly digest: Uint8Array;
}

/**
 * Checks that the caller owns the ODW and that it signed the request, in `tx`.
 * @throws ApiProblem DEVICE_UNKNOWN, CERT_REVOKED, SIGNATURE_INVALID
 */
export async function checkRequest<B extends { nonce: Uint8Array }>(tx: TransactionHandle, services: IssuerServices, request: SignedRequest<B>): Promise<CheckedRequest<B>> {
  const key = await ownOdw(tx, request.device, request.user.keyId);
  let body: B;
  try {
    body = checkSigned(services.provider, key, request.codec, request.tag, { body: request.signed.body, signature: request.signed.signature });
  } catch (e) {
    if (isTallyError(e)) throw new ApiProblem('SIGNATURE_INVALID', `the ${request.kind} request is not signed by device ${request.device}: ${e.message}`, {});
    throw e;
  }
  // The digest covers the body, not the signature: an ODW whose suite signs with fresh randomness
  // (ECDSA) may sign one request twice.
  return { key, body, digest: sha256(encodeCbor(body)) };
}

/**
 * Claims the request's nonce in `tx`: answers undefined when this call claimed it (or found it
 * claimed by the same request, its answer not stored yet: `open` says so), else the stored answer.
 * @throws ApiProblem IDEMPOTENCY_CONFLICT (another request under the nonce)
 */
export async function claimNonce(tx: TransactionHandle, services: IssuerServices, request: { device: string; kind: RequestKind }, checked: { body: { nonce: Uint8Array }; digest: Uint8Array }): Promise<{ answer: string | null; claimed: boolean }> {
  const at = new Date(services.now()).toISOString();
  // The row comes first: a concurrent copy of this request waits here until this one commits.
  const claimed = await tx.query(
    'INSERT INTO opera_answers (device_key_id, kind, nonce, request_digest, at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING nonce',
    [request.device, request.kind, checked.body.nonce, checked.digest, at],
  );
  if (claimed.rowCount === 1) return { answer: null, claimed: true };
  const { rows } = await tx.query<{ request_digest: Uint8Array; answer: string | null }>(
    'SELECT request_digest, answer FROM opera_answers WHERE device_key_id = $1 AND kind = $2 AND nonce = $3 FOR UPDATE',
    [request.device, request.kind, checked.body.nonce],
  );
  const row = rows[0];
  assert(row !== undefined, `the ${request.kind} nonce ${toHex(checked.body.nonce)} is claimed but its row is gone`);
  if (!equalBytes(new Uint8Array(row.request_digest), checked.digest)) {
    throw new ApiProblem('IDEMPOTENCY_CONFLICT', `device ${request.device} used ${request.kind} nonce ${toHex(checked.body.nonce)} for another request: draw a new nonce for a new request`, {});
  }
  return { answer: row.answer, claimed: false };
}

/** Stores the answer of a claimed request, in the transaction of its effects. */
export async function storeAnswer(tx: TransactionHandle, request: { device: string; kind: RequestKind }, nonce: Uint8Array, answered: string): Promise<void> {
  await tx.query('UPDATE opera_answers SET answer = $4 WHERE device_key_id = $1 AND kind = $2 AND nonce = $3', [request.device, request.kind, nonce, answered]);
}

/** The JSON answer of an ODW request, marked replayed or not. */
export function answerResponse(text: string, replayed: boolean): Response {
  return new Response(text, { status: 200, headers: { 'content-type': 'application/json', 'idempotent-replayed': replayed ? 'true' : 'false' } });
}

/**
 * Runs `work` once per (device, kind, nonce) and answers its JSON, or the stored answer of the same
 * request with `idempotent-replayed: true`. `work` throws ApiProblem to refuse: nothing is kept.
 * @throws ApiProblem DEVICE_UNKNOWN, CERT_REVOKED, SIGNATURE_INVALID (not the ODW's signature), IDEMPOTENCY_CONFLICT (another request under the nonce); whatever `work` throws
 */
export async function answerOnce<B extends { nonce: Uint8Array }>(
  services: IssuerServices,
  request: SignedRequest<B>,
  work: (call: DeviceCall<B>) => Promise<{ [key: string]: JsonValue }>,
): Promise<Response> {
  const { user } = request;
  const { text, replayed } = await services.db.transaction(async (tx) => {
    const checked = await checkRequest(tx, services, request);
    const { body, key } = checked;
    const claim = await claimNonce(tx, services, request, checked);
    if (!claim.claimed) {
      // Here the claiming transaction stores its answer before it commits. A claimed nonce without
      // one was begun on the node's shard databases, whose parts only such a node can finish.
      if (claim.answer === null) {
        throw new ApiProblem('SHARD_UNAVAILABLE', `the ${request.kind} under nonce ${toHex(body.nonce)} was begun on this node's shard databases: start the node with them (--shard-database) and send the same request again`, {});
      }
      return { text: claim.answer, replayed: true };
    }
    const answered = JSON.stringify(await work({ tx, user, device: request.device, key, body }));
    await storeAnswer(tx, request, body.nonce, answered);
    return { text: answered, replayed: false };
  });
  return answerResponse(text, replayed);
}
