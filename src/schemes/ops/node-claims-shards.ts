/**
 * A bulk claim on a node with a settlement intake (`tally node start --nats URL --shards N`): the
 * route cuts the request into parts by the shard of each payment's sender device, so that every
 * payment of one device (and every fork of a cloned one) is settled on one shard; the workers of
 * the shards judge and settle the parts (node-claims-bulk.ts, `settleBulkPart`), and the route
 * answers the parts' answers merged into the one answer the route gives without an intake.
 * The request's cut is recorded first, under the caller's idempotency key and the request's hash
 * (its plan): the same request sent again gets the same parts (even after the node's shard count
 * changed), which the stream drops as duplicates and which are answered from their stored
 * answers; another request under the same key is refused IDEMPOTENCY_CONFLICT before anything is
 * published. A request answered inline before the node settled through an intake keeps that
 * answer, and one planned here is finished by a node without an intake (claimInlineParts).
 */
import type { Context } from 'hono';
import { z } from 'zod';
import { toHex } from '../../core/bytes.ts';
import { decodeCbor } from '../../core/cbor.ts';
import {
  ApiProblem,
  decodeField,
  formatMinor,
  idempotencyKey,
  parseAmount,
  requestHash,
  settlePartId,
  SETTLE_SHARDS_MAX,
  storedAnswer,
  storedResponse,
  type IssuerEnv,
  type IssuerServices,
  type JsonValue,
  type SettlePart,
  type SettleQueue,
  type StoredResponse,
} from '../../issuer/plugin.ts';
import { decodeCertificate } from '../../pki/certificate.ts';
import { keyId } from '../../pki/key-id.ts';
import { PAYMENT_BYTES_MAX, paymentCodec } from './messages.ts';

/** The kind of a bulk claim's part on the settlement intake, and the scope of its idempotency record. */
export const CLAIMS_BULK_PART_KIND = 'ops/claims-bulk-part';

/** Most payments in one part: a whole bulk request's worth, when its payments are of one shard. */
export const CLAIMS_PART_PAYMENTS_MAX = 640;

/** Most characters of payment text in one part, so that it stays inside a NATS message (1 MiB by default). */
export const CLAIMS_PART_CHARS_MAX = 640_000;

/** The scope of a request's plan (its parts' places) in the idempotency records. */
export const CLAIMS_BULK_PLAN_SCOPE = 'ops/claims-bulk-plan';

/** The scope of a bulk claim's record when a node without an intake settles it in one transaction. */
export const CLAIMS_BULK_INLINE_SCOPE = 'ops/claims/bulk';

const planBody = z.strictObject({ parts: z.array(z.strictObject({ shard: z.number().int().min(0), items: z.array(z.number().int().min(0)).min(1) })).min(1) });

/** A part's body on the stream. */
export const claimsPartBody = z.strictObject({
  claimer: z.string().regex(/^[0-9a-f]{64}$/),
  total: z.number().int().min(1).max(100_000),
  items: z.array(z.number().int().min(0)).min(1).max(CLAIMS_PART_PAYMENTS_MAX),
  payments: z.array(z.string().max(16_384)).min(1).max(CLAIMS_PART_PAYMENTS_MAX),
});
export type ClaimsPartBody = z.infer<typeof claimsPartBody>;

/**
 * The device a payment's text is from (its certificate's subject key id, hex), or `undefined` when
 * it does not decode: such a payment goes to shard 0, whose worker refuses it as the route would.
 */
function senderOf(text: string): string | undefined {
  try {
    const bytes = decodeField('payment', text);
    if (bytes.length > PAYMENT_BYTES_MAX) return undefined;
    const payment = paymentCodec.decode(decodeCbor(bytes, { maxBytes: PAYMENT_BYTES_MAX }), 'payment');
    return toHex(keyId(decodeCertificate(payment.sender).body.subject));
  } catch {
    return undefined;
  }
}

/** The request cut into parts by shard (and in pieces of CLAIMS_PART_PAYMENTS_MAX payments and CLAIMS_PART_CHARS_MAX characters at most), each with its places in the request. */
export function claimsParts(queue: Pick<SettleQueue, 'shardOf'>, payments: readonly string[]): Array<{ shard: number; items: number[] }> {
  const byShard = new Map<number, number[]>();
  payments.forEach((text, item) => {
    const sender = senderOf(text);
    const shard = sender === undefined ? 0 : queue.shardOf(sender);
    const items = byShard.get(shard) ?? [];
    items.push(item);
    byShard.set(shard, items);
  });
  const parts: Array<{ shard: number; items: number[] }> = [];
  for (const [shard, items] of [...byShard].sort((a, b) => a[0] - b[0])) {
    let part: number[] = [];
    let chars = 0;
    for (const item of items) {
      const length = (payments[item] as string).length;
      if (part.length === CLAIMS_PART_PAYMENTS_MAX || (part.length > 0 && chars + length > CLAIMS_PART_CHARS_MAX)) {
        parts.push({ shard, items: part });
        part = [];
        chars = 0;
      }
      part.push(item);
      chars += length;
    }
    if (part.length > 0) parts.push({ shard, items: part });
  }
  return parts;
}

/**
 * True when this request was cut into parts by a node that settled through an intake (it has a
 * plan): a node without one settles those same parts (claimInlineParts), so the answer is the same.
 * @throws ApiProblem IDEMPOTENCY_CONFLICT when the key's plan is another request's
 */
export async function plannedBefore(c: Context<IssuerEnv>, services: IssuerServices, user: { keyId: string }): Promise<boolean> {
  const stored = await storedResponse(services.db, CLAIMS_BULK_PLAN_SCOPE, settlePartId(CLAIMS_BULK_PLAN_SCOPE, user.keyId, idempotencyKey(c)), requestHash(c, user.keyId));
  if (stored === undefined) return false;
  if (stored.status === 409) throw new ApiProblem('IDEMPOTENCY_CONFLICT', `idempotency key ${JSON.stringify(idempotencyKey(c))} was used for another request: use a new key for a new request`, {});
  return true;
}

/**
 * A request planned by a node that settled through an intake, answered by a node without one: the
 * plan's parts settled here, one after another, each under its own record as a worker would
 * (a part a worker settled before answers from its record), and merged as before.
 */
export function claimInlineParts(
  c: Context<IssuerEnv>,
  services: IssuerServices,
  settle: (part: SettlePart) => Promise<StoredResponse>,
  user: { keyId: string },
  payments: readonly string[],
): Promise<Response> {
  const inline: Pick<SettleQueue, 'shards' | 'shardOf' | 'submit'> = {
    shards: SETTLE_SHARDS_MAX,
    // Never asked: the plan is stored, so the request is not cut again.
    shardOf: () => 0,
    submit: async (parts) => {
      const answers: StoredResponse[] = [];
      for (const part of parts) answers.push(await settle(part));
      return answers;
    },
  };
  return claimThroughShards(c, services, inline, user, payments);
}

/** A part's stored answer: what settleBulkPart answered, read back from its idempotency record. */
const partAnswer = z.object({
  credited: z.number().int().min(0),
  amount: z.string(),
  transfer: z.json(),
  refused: z.array(z.object({ item: z.number().int(), code: z.string() })),
  reasons: z.record(z.string(), z.string()),
  presented: z.array(z.object({ item: z.number().int(), claimId: z.string() })),
});

/** Submits a bulk claim's parts and answers them merged. */
export async function claimThroughShards(
  c: Context<IssuerEnv>,
  services: IssuerServices,
  queue: Pick<SettleQueue, 'shards' | 'shardOf' | 'submit'>,
  user: { keyId: string },
  payments: readonly string[],
): Promise<Response> {
  const key = idempotencyKey(c);
  const hash = requestHash(c, user.keyId);
  // Settled in one transaction before the node settled through an intake (a restart with --nats
  // between the request and its retry): that answer stands.
  const inline = await storedAnswer(services, c, CLAIMS_BULK_INLINE_SCOPE, user.keyId);
  if (inline !== undefined) return new Response(JSON.stringify(inline.body), { status: inline.status, headers: { 'content-type': 'application/json', 'idempotent-replayed': 'true' } });
  const planned = await services.ledger.withIdempotency(CLAIMS_BULK_PLAN_SCOPE, settlePartId(CLAIMS_BULK_PLAN_SCOPE, user.keyId, key), hash, async () => ({
    status: 200,
    body: { parts: claimsParts(queue, payments) },
  }));
  if (!planned.ok) throw new ApiProblem(planned.code, planned.message, {});
  const cut = planBody.parse(planned.response.body).parts;
  const parts: SettlePart[] = cut.map(({ shard, items }, k) => ({
    kind: CLAIMS_BULK_PART_KIND,
    id: settlePartId(CLAIMS_BULK_PART_KIND, user.keyId, key, String(k)),
    // A plan made when the node had more shards: any worker answers a part from its record.
    shard: shard % queue.shards,
    requestHash: hash,
    body: { claimer: user.keyId, total: payments.length, items, payments: items.map((i) => payments[i] as string) } satisfies ClaimsPartBody,
  }));
  const answers = await queue.submit(parts);
  const waiting = answers.filter((a) => a === undefined).length;
  if (waiting > 0) {
    throw new ApiProblem('SETTLE_PENDING', `${waiting} of the ${parts.length} parts of this claim are still being settled: send the same request again with the same Idempotency-Key to get the answer`, {});
  }
  const done = answers as StoredResponse[];
  // A part refused whole (the key used for another request) is the request's answer.
  const failed = done.find((a) => a.status !== 200);
  if (failed !== undefined) return new Response(JSON.stringify(failed.body), { status: failed.status, headers: { 'content-type': 'application/json' } });
  const bodies = done.map((a) => partAnswer.parse(a.body));
  let minor = 0n;
  for (const b of bodies) minor += parseAmount(services, b.amount).minor;
  const transfers = bodies.map((b) => b.transfer).filter((t) => t !== null);
  const reasons: Record<string, string> = {};
  for (const b of bodies) for (const [code, message] of Object.entries(b.reasons)) reasons[code] ??= message;
  const merged = {
    payments: payments.length,
    credited: bodies.reduce((sum, b) => sum + b.credited, 0),
    amount: formatMinor(services.currency, minor),
    transfer: transfers.length === 1 ? (transfers[0] as JsonValue) : null,
    transfers,
    refused: bodies.flatMap((b) => b.refused).sort((a, b) => a.item - b.item),
    reasons,
    presented: bodies.flatMap((b) => b.presented).sort((a, b) => a.item - b.item),
    parts: parts.length,
  };
  return new Response(JSON.stringify(merged), { status: 200, headers: { 'content-type': 'application/json' } });
}
