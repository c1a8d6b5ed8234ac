/**
 * OPS Figure 9 at volume: `POST /v1/ops/claims/bulk` settles up to 640 claimed payments (a payee's
 * whole inbox) in one request and one transaction, judged as `POST /v1/ops/claims` judges each,
 * at a cost per payment close to the one signature check it cannot do without:
 * - each certificate chain is checked once per node (SenderChains), not per payment; a payment
 *   whose sender and receiver certificates are known costs one Ed25519 check, and those run in the
 *   node's worker threads (services.signatures) while this thread decodes the rest;
 * - the ledger work is set-based: one statement reads and share-locks every sender's row with its
 *   revocation and its highest known payment, one multi-row insert records and marks the payments
 *   (the unique (sender, index) key decides a duplicate, with no read first), and the float pays
 *   the claimer once per request: one transfer, one lock of `float:ops`, one idempotency record;
 * - what must stay per payment stays: a payment is credited at most once (a repeat is
 *   PAYMENT_REPLAYED), a different payment under a known (sender, index) opens the clone case that
 *   names and revokes the device (DOUBLE_SPEND), and a sender that is revoked, retired or past its
 *   offline limit has its payments judged one by one by the single claim's code, as before.
 * The answer counts what was credited and lists only the refused and presented payments, by their
 * place in the request, so that it stays storable with the idempotency record.
 * The checks made before the transaction (decoding, chains, signatures) are node-claims-judge.ts's.
 */
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { equalBytes, toBase64url, toHex } from '../../core/bytes.ts';
import {
  ApiProblem,
  base64Param,
  base64urlOf,
  bigintColumn,
  formatMinor,
  idempotent,
  json,
  peerIntermediaries,
  refusal,
  requireUser,
  transfer,
  transferJson,
  validBody,
  type IssuerEnv,
  type IssuerServices,
  type JsonValue,
  type StoredResponse,
  type TransactionHandle,
} from '../../issuer/plugin.ts';
import { CLAIMS_BULK_INLINE_SCOPE, CLAIMS_BULK_PART_KIND, claimInlineParts, claimsPartBody, claimThroughShards, plannedBefore } from './node-claims-shards.ts';
import { CLAIM_PAYMENT_CHARS_MAX, claimerCertificate, presentClaim, settleClaim } from './node-claims.ts';
import { judge, type Judged, type Refused } from './node-claims-judge.ts';
import { sameCertificate } from './node-chains.ts';
import { OPS_FLOAT_ACCOUNT, answer, openCases } from './node-common.ts';

/**
 * Most payments in one bulk claim. Bounded by the answer, which the idempotency record stores (at
 * most 64 KiB of JSON): a payment presented to another bank is answered with its claim id, about
 * 92 bytes, and 640 of them fit.
 */
export const CLAIMS_BULK_PAYMENTS_MAX = 640;

/** The body limit the bulk route declares: 640 payments of about 930 characters, with room for larger certificates. */
export const CLAIMS_BULK_BODY_BYTES_MAX = 1024 * 1024;

const bulkBody = z.strictObject({ payments: z.array(base64urlOf(CLAIM_PAYMENT_CHARS_MAX)).min(1).max(CLAIMS_BULK_PAYMENTS_MAX) });

/** What the node holds of a sender, read and share-locked in one statement for a whole request. */
interface SenderState {
  readonly reportedJ: bigint;
  readonly honorUpTo: bigint | null;
  readonly retired: boolean;
  readonly revoked: boolean;
  readonly highest: bigint | null;
  /** The certificate the device was registered with. */
  readonly certificate: Uint8Array | null;
}

async function senderStates(tx: TransactionHandle, senders: readonly string[]): Promise<Map<string, SenderState>> {
  // A sender's row is made if it has none (a device that never synced), as the single claim does.
  await tx.query(
    `INSERT INTO ops_devices (device_key_id) SELECT d FROM unnest($1::text[]) AS d WHERE EXISTS (SELECT 1 FROM devices WHERE key_id = d) ON CONFLICT DO NOTHING`,
    [senders],
  );
  // Shared locks, in key order: bulk claims on the same devices run side by side, while a sync or
  // a fraud case (which take the row for update) waits for them, and they for it.
  const { rows } = await tx.query<Record<string, unknown>>(
    `SELECT o.device_key_id, o.reported_j, o.honor_up_to, o.retired_at IS NOT NULL AS retired,
            EXISTS (SELECT 1 FROM revoked_certificates r WHERE r.subject_key_id = o.device_key_id) AS revoked,
            (SELECT max(p.index) FROM ops_payments p WHERE p.sender_key_id = o.device_key_id) AS highest,
            (SELECT d.certificate FROM devices d WHERE d.key_id = o.device_key_id) AS certificate
     FROM ops_devices o WHERE o.device_key_id = ANY($1::text[]) ORDER BY o.device_key_id FOR SHARE OF o`,
    [senders],
  );
  return new Map(
    rows.map((row) => [
      String(row['device_key_id']),
      {
        reportedJ: bigintColumn(row, 'reported_j'),
        honorUpTo: row['honor_up_to'] === null ? null : bigintColumn(row, 'honor_up_to'),
        retired: row['retired'] === true,
        revoked: row['revoked'] === true,
        highest: row['highest'] === null ? null : bigintColumn(row, 'highest'),
        certificate: row['certificate'] instanceof Uint8Array ? new Uint8Array(row['certificate']) : null,
      },
    ]),
  );
}

/** The payments of the request that the set-based path may settle: their senders are in good standing and within their offline limits. */
function fastSenders(judged: readonly Judged[], states: ReadonlyMap<string, SenderState>): Set<string> {
  const highestInRequest = new Map<string, bigint>();
  const limits = new Map<string, number | undefined>();
  for (const { claim, limit } of judged) {
    const seen = highestInRequest.get(claim.sender);
    if (seen === undefined || claim.payment.index > seen) highestInRequest.set(claim.sender, claim.payment.index);
    limits.set(claim.sender, limit);
  }
  const fast = new Set<string>();
  for (const [sender, inRequest] of highestInRequest) {
    const state = states.get(sender);
    if (state === undefined || state.retired || state.revoked || state.honorUpTo !== null) continue;
    const limit = limits.get(sender);
    const highest = state.highest !== null && state.highest > inRequest ? state.highest : inRequest;
    if (limit !== undefined && highest > state.reportedJ + BigInt(limit)) continue;
    fast.add(sender);
  }
  return fast;
}

/** What the set-based path did with its payments. */
interface FastOutcome {
  readonly credited: Judged[];
  readonly refused: Refused[];
}

/**
 * Records the payments with one insert: a new (sender, index) is recorded as claimed; a known one
 * with the same digest, still unsettled (its sender reported it), is marked claimed; anything else
 * is read back and judged: settled already (PAYMENT_REPLAYED) or another payment under the pair
 * (the clone case, DOUBLE_SPEND). A repeat within the request comes after its first and is replayed.
 */
async function settleFast(tx: TransactionHandle, services: IssuerServices, claimer: string, items: readonly Judged[], states: ReadonlyMap<string, SenderState>): Promise<FastOutcome> {
  // One pass builds the columns: a repeat of a (sender, index) within the request is kept apart.
  const rows: Judged[] = [];
  const keys: string[] = [];
  const later: Judged[] = [];
  const seen = new Set<string>();
  const senders: string[] = [];
  const indexes: string[] = [];
  const digests: string[] = [];
  const amounts: string[] = [];
  const wholes: string[] = [];
  const signatures: string[] = [];
  for (const j of items) {
    const { sender, payment, digest } = j.claim;
    const index = payment.index.toString();
    const key = `${sender}:${index}`;
    if (seen.has(key)) {
      later.push(j);
      continue;
    }
    seen.add(key);
    rows.push(j);
    keys.push(key);
    senders.push(sender);
    indexes.push(index);
    digests.push(base64Param(digest));
    amounts.push(payment.amount.toString());
    // The whole payment only when it does not carry its sender's registered certificate; else its
    // signature, from which storedPayment rebuilds it (its receiver, the claimer, was checked).
    const registered = states.get(sender)?.certificate ?? null;
    const compact = registered !== null && sameCertificate(registered, payment.sender);
    wholes.push(compact ? '' : base64Param(j.bytes));
    signatures.push(compact ? base64Param(payment.signature) : '');
  }
  if (rows.length === 0) return { credited: [], refused: [] };
  // The columns go as comma-joined text that the server splits and decodes (bytes as base64): one
  // string a column instead of an array the driver escapes element by element, and a third of the
  // bytes hex would take. One row comes back: the count, and which pairs were settled only when
  // some were not.
  const inserted = await tx.query<{ n: number; done: string | null }>(
    `WITH settled AS (
       INSERT INTO ops_payments AS p (sender_key_id, index, digest, amount, receiver_key_id, payment, signature, settled)
       SELECT s, i, decode(d, 'base64'), a, $5, CASE WHEN b = '' THEN NULL ELSE decode(b, 'base64') END, CASE WHEN b = '' THEN decode(g, 'base64') END, 'claimed'
       FROM unnest(string_to_array($1, ','), string_to_array($2, ',')::bigint[], string_to_array($3, ','), string_to_array($4, ',')::bigint[], string_to_array($6, ','), string_to_array($8, ',')) AS x(s, i, d, a, b, g)
       ON CONFLICT (sender_key_id, index) DO UPDATE SET settled = 'claimed', payment = coalesce(p.payment, EXCLUDED.payment), signature = coalesce(p.signature, EXCLUDED.signature)
         WHERE p.digest = EXCLUDED.digest AND p.settled IS NULL
       RETURNING sender_key_id, index
     )
     SELECT count(*)::int AS n, CASE WHEN count(*) < $7 THEN string_agg(sender_key_id || ':' || index, ',') END AS done FROM settled`,
    [senders.join(','), indexes.join(','), digests.join(','), amounts.join(','), claimer, wholes.join(','), rows.length, signatures.join(',')],
  );
  const answer = inserted.rows[0];
  let credited: Judged[] = rows;
  let rest: Judged[] = later;
  if (answer === undefined || Number(answer.n) !== rows.length) {
    const done = new Set((answer?.done ?? '').split(',').filter((k) => k !== ''));
    credited = rows.filter((_, k) => done.has(keys[k] as string));
    rest = [...rows.filter((_, k) => !done.has(keys[k] as string)), ...later];
  }
  const refused: Refused[] = [];
  if (rest.length === 0) return { credited, refused };
  const held = await tx.query<{ sender_key_id: string; index: bigint; digest: Uint8Array; settled: string | null }>(
    `SELECT p.sender_key_id, p.index, p.digest, p.settled FROM ops_payments p
     JOIN unnest($1::text[], $2::bigint[]) AS x(s, i) ON p.sender_key_id = x.s AND p.index = x.i`,
    [rest.map((j) => j.claim.sender), rest.map((j) => j.claim.payment.index)],
  );
  const byKey = new Map(held.rows.map((r) => [`${r.sender_key_id}:${bigintColumn(r, 'index')}`, r]));
  const clones = new Map<string, Judged>();
  for (const j of rest) {
    const { sender, payment, digest } = j.claim;
    const row = byKey.get(`${sender}:${payment.index}`);
    if (row !== undefined && equalBytes(new Uint8Array(row.digest), digest)) {
      refused.push({ item: j.item, code: 'PAYMENT_REPLAYED', message: `payment ${payment.index} of ${sender} was already ${row.settled ?? 'recorded'}` });
      continue;
    }
    if (!clones.has(sender)) clones.set(sender, j);
    refused.push({ item: j.item, code: 'DOUBLE_SPEND', message: `sender ${sender} signed another payment with index ${payment.index}: its device is cloned or broken and has been revoked` });
  }
  // The clone case once per sender, with the first conflicting pair as its evidence.
  for (const [sender, j] of clones) {
    const row = byKey.get(`${sender}:${j.claim.payment.index}`);
    await openCases(tx, services, [
      { device: sender, kind: 'clone', evidence: { index: j.claim.payment.index.toString(), claimed: toHex(j.claim.digest), known: toHex(new Uint8Array(row?.digest ?? new Uint8Array())) } },
    ]);
  }
  return { credited, refused };
}

const bulkRoute = createRoute({
  method: 'post',
  path: '/claims/bulk',
  description: `OPS Figure 9 at volume: up to ${CLAIMS_BULK_PAYMENTS_MAX} payments to the caller's client certificate claimed in one request and one transaction, each judged as POST /claims judges it. The answer counts what was credited (one transfer from the float) and lists the refused and presented payments by their place in the request. On a node started with --nats the request is settled in parts, one transaction and one transfer each, by the workers of the payers' shards: the answer then also lists \`transfers\` and \`parts\` (\`transfer\` only when one part moved money), 503 SETTLE_PENDING asks for the same request again under the same key when its parts are not all settled within a minute, and 503 SETTLE_HELD says a part failed on every delivery and waits for the operator (its payments are neither lost nor credited twice).`,
  request: { body: json(bulkBody) },
  responses: {
    200: answer(
      'What was credited, refused and presented',
      z.object({
        payments: z.number().int(),
        credited: z.number().int(),
        amount: z.string(),
        transfer: z.object({}).passthrough().nullable(),
        refused: z.array(z.object({ item: z.number().int(), code: z.string() })),
        reasons: z.record(z.string(), z.string()),
        presented: z.array(z.object({ item: z.number().int(), claimId: z.string() })),
      }),
    ),
  },
});

/**
 * Settles one claimer's judged payments in `tx`: what a bulk claim does once the payments are
 * judged, for the whole request (inline) or for one shard's part of it (a settlement worker).
 * Items keep their places in the request the claimer sent.
 */
async function settleJudged(
  tx: TransactionHandle,
  services: IssuerServices,
  user: { keyId: string; accountId: string },
  judged: readonly Judged[],
  early: readonly Refused[],
  payments: number,
  requestTag: string,
): Promise<StoredResponse> {
  const refused: Refused[] = [...early];
  const presented: Array<{ item: number; claimId: string }> = [];
  const home = judged.filter((j) => j.claim.payerBank === null);
  for (const j of judged) {
    if (j.claim.payerBank === null) continue;
    const answered = await presentClaim(tx, services, user, j.claim, j.claim.payerBank);
    const claim = answered['claim'] as { claimId?: JsonValue } | undefined;
    presented.push({ item: j.item, claimId: String(claim?.claimId ?? '') });
  }
  const senders = [...new Set(home.map((j) => j.claim.sender))].sort();
  const states = senders.length === 0 ? new Map<string, SenderState>() : await senderStates(tx, senders);
  const fast = fastSenders(home, states);
  const settled = await settleFast(tx, services, user.keyId, home.filter((j) => fast.has(j.claim.sender)), states);
  refused.push(...settled.refused);
  // A sender revoked, retired or past its limit: each of its payments judged as a single claim is.
  let creditedSlow = 0;
  let amountSlow = 0n;
  for (const j of home) {
    if (fast.has(j.claim.sender)) continue;
    const outcome = await settleClaim(tx, services, user, j.claim, { kind: 'ops-claim' });
    if ('refused' in outcome) refused.push({ item: j.item, code: outcome.refused.code, message: outcome.refused.message });
    else {
      creditedSlow++;
      amountSlow += j.claim.payment.amount;
    }
  }
  const amountFast = settled.credited.reduce((sum, j) => sum + j.claim.payment.amount, 0n);
  let moved: { [key: string]: JsonValue } | null = null;
  if (amountFast > 0n) {
    const result = await transfer(tx, {
      idempotencyKey: `ops-claims-bulk:${user.keyId}:${requestTag}:${settled.credited.length}`,
      debit: OPS_FLOAT_ACCOUNT,
      credit: user.accountId,
      amount: amountFast,
      kind: 'ops-claim',
      reference: { claims: settled.credited.length, request: requestTag },
      currency: services.currency,
    });
    // The float holds every payment it certified devices for; a refusal here is a broken ledger.
    if (!result.ok) throw new ApiProblem(result.code, result.message, {});
    moved = transferJson(services.currency, result.transfer);
  }
  refused.sort((a, b) => a.item - b.item);
  const reasons: Record<string, string> = {};
  for (const r of refused) reasons[r.code] ??= r.message.slice(0, 240);
  return {
    status: 200,
    body: {
      payments,
      credited: settled.credited.length + creditedSlow,
      amount: formatMinor(services.currency, amountFast + amountSlow),
      transfer: moved,
      refused: refused.map((r) => ({ item: r.item, code: r.code })),
      reasons,
      presented,
    },
  };
}

/** Adds `POST /claims/bulk`. */
export function registerClaimsBulk(app: OpenAPIHono<IssuerEnv>, services: IssuerServices): void {
  app.openAPIRegistry.registerPath(bulkRoute);
  app.post(bulkRoute.path, async (c) => {
    const user = requireUser(c.get('caller'));
    const body = validBody(c, bulkBody);
    // A node with a settlement intake settles through its shards' workers (node-claims-shards.ts).
    if (services.settleQueue !== undefined) return claimThroughShards(c, services, services.settleQueue, user, body.payments);
    // Cut into parts by this node when it settled through an intake: the same parts settled here.
    if (await plannedBefore(c, services, user)) {
      return claimInlineParts(c, services, (part) => settleBulkPart(services, { id: part.id, requestHash: part.requestHash, ...claimsPartBody.parse(part.body) }), user, body.payments);
    }
    const mine = await claimerCertificate(services, user.keyId);
    const peers = await peerIntermediaries(services);
    const { judged, refused: early } = await judge(services, body.payments, mine, peers);
    const requestTag = toBase64url(c.get('bodyHash').subarray(0, 12));
    return idempotent(services, c, CLAIMS_BULK_INLINE_SCOPE, user.keyId, (tx) => settleJudged(tx, services, user, judged, early, body.payments.length, requestTag));
  });
}

/**
 * A shard's part of a bulk claim, settled by a worker: the payments judged there (verification
 * runs where the part is settled), then settled in one transaction under the part's idempotency
 * record, so that a part delivered twice is answered once.
 */
export async function settleBulkPart(services: IssuerServices, part: { id: string; requestHash: Uint8Array; claimer: string; items: readonly number[]; payments: readonly string[]; total: number }): Promise<StoredResponse> {
  // The claimer's certificate and account from the node's records, never from the message: a part
  // put on the stream by someone else credits only the payments' own receiver.
  const found = await services.db.query<{ certificate: Uint8Array; account_id: string }>('SELECT certificate, account_id FROM users WHERE key_id = $1', [part.claimer]);
  const row = found.rows[0];
  if (row === undefined) return refusal('KEY_UNKNOWN', `no account holder is registered with key ${part.claimer}`);
  const mine = new Uint8Array(row.certificate);
  const peers = await peerIntermediaries(services);
  const judgedHere = await judge(services, part.payments, mine, peers);
  const place = (item: number) => part.items[item] ?? item;
  const judged = judgedHere.judged.map((j) => ({ ...j, item: place(j.item) }));
  const early = judgedHere.refused.map((r) => ({ ...r, item: place(r.item) }));
  const record = (work: (tx: TransactionHandle) => Promise<StoredResponse>) => services.ledger.withIdempotency(CLAIMS_BULK_PART_KIND, part.id, part.requestHash, work);
  let result: Awaited<ReturnType<typeof record>>;
  try {
    result = await record((tx) => settleJudged(tx, services, { keyId: part.claimer, accountId: row.account_id }, judged, early, part.total, part.id.slice(0, 16)));
  } catch (e) {
    // A refusal of the whole part is its answer, stored as the route would give it, not retried.
    if (!(e instanceof ApiProblem)) throw e;
    result = await record(async () => refusal(e.code, e.message));
  }
  if (!result.ok) return refusal(result.code, result.message);
  return result.response;
}
