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
 */
import { Buffer } from 'node:buffer';
import { createHash } from 'node:crypto';
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { equalBytes, toBase64url, toHex } from '../../core/bytes.ts';
import { signedBytes } from '../../core/crypto/record.ts';
import {
  ApiProblem,
  base64urlOf,
  bigintColumn,
  decodeField,
  formatMinor,
  idempotent,
  json,
  peerIntermediaries,
  requireUser,
  transfer,
  transferJson,
  validBody,
  type ApiErrorCode,
  type IssuerEnv,
  type IssuerServices,
  type JsonValue,
  type PeerIntermediary,
  type SignatureCheck,
  type TransactionHandle,
} from '../../issuer/plugin.ts';
import { keyId } from '../../pki/key-id.ts';
import { decodeCbor } from '../../core/cbor.ts';
import { isTallyError } from '../../core/errors.ts';
import { OPS_SCHEME, PAYMENT_BYTES_MAX, PAYMENT_TAG, paymentCodec, paymentSigned, type Payment } from './messages.ts';
import { CLAIM_PAYMENT_CHARS_MAX, checkClaim, claimerCertificate, presentClaim, settleClaim, type VerifiedClaim } from './node-claims.ts';
import { OPS_FLOAT_ACCOUNT, answer, openCases } from './node-common.ts';
import { SenderChains, type KnownChain } from './node-chains.ts';

/**
 * Most payments in one bulk claim. Bounded by the answer, which the idempotency record stores (at
 * most 64 KiB of JSON): a payment presented to another bank is answered with its claim id, about
 * 92 bytes, and 640 of them fit.
 */
export const CLAIMS_BULK_PAYMENTS_MAX = 640;

/** The body limit the bulk route declares: 640 payments of about 930 characters, with room for larger certificates. */
export const CLAIMS_BULK_BODY_BYTES_MAX = 1024 * 1024;

const bulkBody = z.strictObject({ payments: z.array(base64urlOf(CLAIM_PAYMENT_CHARS_MAX)).min(1).max(CLAIMS_BULK_PAYMENTS_MAX) });

/** A payment of the request that passed every check without the database. */
interface Judged {
  /** Its place in the request. */
  readonly item: number;
  readonly claim: VerifiedClaim;
  /** Its bytes as received: its one canonical encoding, kept as evidence beside its row. */
  readonly bytes: Uint8Array;
  /** The offline payment limit of its sender's certificate. */
  readonly limit: number | undefined;
}

/** A payment of the request that was refused. */
interface Refused {
  readonly item: number;
  readonly code: ApiErrorCode;
  readonly message: string;
}

/** The chains known to each node (one cache per node's services). */
const chainsOf = new WeakMap<IssuerServices, SenderChains>();

function chains(services: IssuerServices): SenderChains {
  let known = chainsOf.get(services);
  if (known === undefined) {
    known = new SenderChains();
    chainsOf.set(services, known);
  }
  return known;
}

/** SHA-256 of a payment's bytes: its digest, since the strict decoder takes only its one canonical encoding. */
function digestOf(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(bytes).digest());
}

/** Decodes one payment of the body; answers it with its bytes, or the refusal. */
function decodeItem(item: number, text: string): { payment: Payment; bytes: Uint8Array } | Refused {
  const field = `body.payments.${item}`;
  let bytes: Uint8Array;
  try {
    bytes = decodeField(field, text);
  } catch (e) {
    if (e instanceof ApiProblem) return { item, code: e.code, message: e.message };
    throw e;
  }
  if (bytes.length > PAYMENT_BYTES_MAX) return { item, code: 'TOO_LARGE', message: `${field} of ${bytes.length} bytes is over the limit of ${PAYMENT_BYTES_MAX}` };
  try {
    return { payment: paymentCodec.decode(decodeCbor(bytes, { maxBytes: PAYMENT_BYTES_MAX }), field), bytes };
  } catch (e) {
    if (isTallyError(e)) return { item, code: 'BODY_INVALID', message: `${field}: ${e.message}` };
    throw e;
  }
}

/** A sender chain the cache answers for a claim here: an OPS device of this currency, of a bank in good standing. */
function usableSender(services: IssuerServices, chain: KnownChain | undefined, banks: ReadonlyMap<string, PeerIntermediary | null>): chain is KnownChain {
  if (chain === undefined || chain.role !== 'device' || chain.scheme !== OPS_SCHEME || chain.currency !== services.currency.code || chain.suite !== 'ed25519') return false;
  const bank = banks.get(chain.bank);
  return bank !== undefined && !(bank?.revoked ?? false);
}

/**
 * The part without the database: decodes every payment, checks its receiver is the claimer, its
 * chains (from the cache, or in full the first time and then kept) and its signature (in the
 * worker threads). Answers the judged payments and the refused ones, each in request order.
 */
async function judge(services: IssuerServices, texts: readonly string[], claimer: Uint8Array, peers: readonly PeerIntermediary[]): Promise<{ judged: Judged[]; refused: Refused[] }> {
  const known = chains(services);
  const now = services.now();
  const own = toHex(keyId(services.identity.intermediary.certificate.body.subject));
  // The banks whose devices may pay here: this one, and every peer (a revoked one is refused).
  const banks = new Map<string, PeerIntermediary | null>([[own, null]]);
  for (const p of peers) banks.set(p.keyId, p);
  const refused: Refused[] = [];
  const judged: Judged[] = [];
  const pending: Array<{ item: number; payment: Payment; bytes: Uint8Array; sender: KnownChain }> = [];
  texts.forEach((text, item) => {
    const decoded = decodeItem(item, text);
    if ('code' in decoded) return refused.push(decoded);
    const { payment, bytes } = decoded;
    const sender = known.get(payment.sender, now);
    const receiver = known.get(payment.receiver, now);
    if (usableSender(services, sender, banks) && receiver !== undefined && !equalBytes(sender.keyId, receiver.keyId)) {
      if (!equalBytes(payment.receiver, claimer)) {
        return refused.push({ item, code: 'PAYMENT_INVALID', message: "the payment is not made to the caller's client certificate (a payment to a TA is collected, not claimed)" });
      }
      return pending.push({ item, payment, bytes, sender });
    }
    // A certificate not seen yet, or one the cache does not answer for: the single claim's checks in full.
    const checked = checkClaim(services, payment, claimer, peers);
    if ('problem' in checked) return refused.push({ item, code: checked.problem.code, message: checked.problem.message });
    known.remember(payment.sender, checked.chains.sender);
    known.remember(payment.receiver, checked.chains.receiver);
    const { chains: verified, ...claim } = checked;
    return judged.push({ item, claim: { ...claim, digest: digestOf(bytes) }, bytes, limit: verified.sender.extensions.offlinePaymentsMax });
  });
  const checks: SignatureCheck[] = pending.map(({ payment, sender }) => ({ publicKey: sender.publicKey, message: signedBytes(PAYMENT_TAG, paymentSigned(payment)), signature: payment.signature }));
  const accepted = await services.signatures.verifyEd25519(checks);
  pending.forEach((p, k) => {
    const check = checks[k] as SignatureCheck;
    // OpenSSL refused: the provider's strict check has the last word (see signature-pool.ts).
    if (accepted[k] !== true && !services.provider.suites.ed25519.verify(check.publicKey, check.signature, check.message)) {
      refused.push({ item: p.item, code: 'PAYMENT_INVALID', message: `payment refused: the signature does not verify under the sender key ${toHex(p.sender.keyId)}` });
      return;
    }
    const payerBank = p.sender.bank === own ? null : p.sender.bank;
    judged.push({ item: p.item, claim: { payment: p.payment, sender: toHex(p.sender.keyId), digest: digestOf(p.bytes), payerBank }, bytes: p.bytes, limit: p.sender.offlinePaymentsMax });
  });
  judged.sort((a, b) => a.item - b.item);
  return { judged, refused };
}

/** What the node holds of a sender, read and share-locked in one statement for a whole request. */
interface SenderState {
  readonly reportedJ: bigint;
  readonly honorUpTo: bigint | null;
  readonly retired: boolean;
  readonly revoked: boolean;
  readonly highest: bigint | null;
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
            (SELECT max(p.index) FROM ops_payments p WHERE p.sender_key_id = o.device_key_id) AS highest
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
async function settleFast(tx: TransactionHandle, services: IssuerServices, claimer: string, items: readonly Judged[]): Promise<FastOutcome> {
  const first = new Map<string, Judged>();
  const later: Judged[] = [];
  for (const j of items) {
    const key = `${j.claim.sender}:${j.claim.payment.index}`;
    if (first.has(key)) later.push(j);
    else first.set(key, j);
  }
  const rows = [...first.values()];
  if (rows.length === 0) return { credited: [], refused: [] };
  // The columns go as comma-joined text that the server splits and decodes (bytes as base64): one
  // string a column instead of an array the driver escapes element by element, and a third of the
  // bytes hex would take. One row comes back: the count, and which pairs were settled only when
  // some were not.
  const joined = (values: readonly string[]) => values.join(',');
  const inserted = await tx.query<{ n: number; done: string | null }>(
    `WITH settled AS (
       INSERT INTO ops_payments AS p (sender_key_id, index, digest, amount, receiver_key_id, payment, settled)
       SELECT s, i, decode(d, 'hex'), a, $5, decode(b, 'base64'), 'claimed'
       FROM unnest(string_to_array($1, ','), string_to_array($2, ',')::bigint[], string_to_array($3, ','), string_to_array($4, ',')::bigint[], string_to_array($6, ',')) AS x(s, i, d, a, b)
       ON CONFLICT (sender_key_id, index) DO UPDATE SET settled = 'claimed', payment = coalesce(p.payment, EXCLUDED.payment)
         WHERE p.digest = EXCLUDED.digest AND p.settled IS NULL
       RETURNING sender_key_id, index
     )
     SELECT count(*)::int AS n, CASE WHEN count(*) < $7 THEN string_agg(sender_key_id || ':' || index, ',') END AS done FROM settled`,
    [
      joined(rows.map((j) => j.claim.sender)),
      joined(rows.map((j) => j.claim.payment.index.toString())),
      joined(rows.map((j) => toHex(j.claim.digest))),
      joined(rows.map((j) => j.claim.payment.amount.toString())),
      claimer,
      joined(rows.map((j) => Buffer.from(j.bytes.buffer, j.bytes.byteOffset, j.bytes.byteLength).toString('base64'))),
      rows.length,
    ],
  );
  const answer = inserted.rows[0];
  const all = answer !== undefined && Number(answer.n) === rows.length;
  const done = new Set(all ? rows.map((j) => `${j.claim.sender}:${j.claim.payment.index}`) : (answer?.done ?? '').split(',').filter((k) => k !== ''));
  const credited = rows.filter((j) => done.has(`${j.claim.sender}:${j.claim.payment.index}`));
  const rest = [...rows.filter((j) => !done.has(`${j.claim.sender}:${j.claim.payment.index}`)), ...later];
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
  description: `OPS Figure 9 at volume: up to ${CLAIMS_BULK_PAYMENTS_MAX} payments to the caller's client certificate claimed in one request and one transaction, each judged as POST /claims judges it. The answer counts what was credited (one transfer from the float) and lists the refused and presented payments by their place in the request.`,
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

/** Adds `POST /claims/bulk`. */
export function registerClaimsBulk(app: OpenAPIHono<IssuerEnv>, services: IssuerServices): void {
  app.openAPIRegistry.registerPath(bulkRoute);
  app.post(bulkRoute.path, async (c) => {
    const user = requireUser(c.get('caller'));
    const body = validBody(c, bulkBody);
    const mine = await claimerCertificate(services, user.keyId);
    const peers = await peerIntermediaries(services);
    const { judged, refused: early } = await judge(services, body.payments, mine, peers);
    const requestTag = toBase64url(c.get('bodyHash').subarray(0, 12));
    return idempotent(services, c, 'ops/claims/bulk', user.keyId, async (tx) => {
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
      const settled = await settleFast(tx, services, user.keyId, home.filter((j) => fast.has(j.claim.sender)));
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
          payments: body.payments.length,
          credited: settled.credited.length + creditedSlow,
          amount: formatMinor(services.currency, amountFast + amountSlow),
          transfer: moved,
          refused: refused.map((r) => ({ item: r.item, code: r.code })),
          reasons,
          presented,
        },
      };
    });
  });
}
