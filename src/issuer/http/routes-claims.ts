/**
 * The central bank's interbank claims: the payee's bank presents a claim on the payer's bank
 * (evidence opaque here, its id the hash of scheme and evidence), the payer's bank pulls the claims
 * addressed to it, judges each with its scheme and posts its decision; on acceptance the central
 * bank moves the amount from the payer's reserve to the payee's in the transaction that settles the
 * claim. The payee's bank pulls the outcomes. Every call is signed by the calling intermediary's key;
 * a presentation or a decision sent again changes nothing more. Gross, claim by claim.
 */
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { toBase64url } from '../../core/bytes.ts';
import { bigintColumn, type Queryable } from '../db/database.ts';
import { transfer } from '../ledger/transfer.ts';
import { CLAIM_EVIDENCE_BYTES_MAX, claimIdOf } from '../tier/interbank.ts';
import { requireOperator } from './auth.ts';
import type { Caller, IssuerEnv, IssuerServices } from './context.ts';
import { formatMinor } from './json.ts';
import { ApiProblem } from './problem.ts';
import { requireIntermediary, reserveAccount } from './routes-central-bank.ts';
import { publicationsByBank } from './routes-publications.ts';
import { amountText, base64urlOf, decodeField, errorBody, fitKey, idempotent, json, keyIdHex, parseAmount, refusal, schemeName, validBody } from './validate.ts';

/** The transfer kind of a claim's settlement between two reserves. */
export const INTERBANK_KIND = 'interbank';
/** Most claims one page of an inbox or outbox answers. */
export const CLAIMS_PAGE_MAX = 200;
/** Longest reason of a refused claim. */
export const CLAIM_REASON_MAX = 300;
/** Longest base64url text of a claim's evidence. */
const EVIDENCE_CHARS_MAX = Math.ceil((CLAIM_EVIDENCE_BYTES_MAX * 4) / 3);

const claimBody = z.strictObject({ claimId: keyIdHex, payerBank: keyIdHex, scheme: schemeName, amount: amountText, evidence: base64urlOf(EVIDENCE_CHARS_MAX).min(1) });
const decisionBody = z.discriminatedUnion('decision', [
  z.strictObject({ decision: z.literal('accept') }),
  z.strictObject({
    decision: z.literal('refuse'),
    code: z.string().regex(/^[A-Z][A-Z0-9_]{0,63}$/, 'an error code in capitals'),
    reason: z.string().min(1).max(CLAIM_REASON_MAX).regex(/^[^\p{Cc}]*$/u, 'text without control characters'),
  }),
]);

const claimAnswer = z.object({
  claimId: z.string(),
  seq: z.number().int(),
  payerBank: z.string(),
  payeeBank: z.string(),
  scheme: z.string(),
  amount: z.string(),
  currency: z.string(),
  status: z.enum(['presented', 'settled', 'refused']),
  code: z.string().optional(),
  reason: z.string().optional(),
  transfer: z.number().int().optional(),
  decidedSeq: z.number().int().optional(),
  evidence: z.string().optional(),
});

const postClaim = createRoute({
  method: 'post',
  path: '/v1/cb/claims',
  description: "The payee's bank presents a claim on the payer's bank (signed by the payee's bank). The same claim again answers its state.",
  request: { body: json(claimBody) },
  responses: {
    202: { description: 'Presented (or as it stands, for a claim presented before)', content: { 'application/json': { schema: claimAnswer } } },
    409: { description: 'The claim id is taken by another claim', ...errorBody },
    422: { description: 'The claim id is not the hash of its scheme and evidence, or names the presenter as payer', ...errorBody },
  },
});

const pageQuery = z.object({ after: z.coerce.number().int().min(0).default(0) });
const pageAnswer = { description: 'A page of claims', content: { 'application/json': { schema: z.object({ claims: z.array(claimAnswer), more: z.boolean() }) } } };

const getInbox = createRoute({
  method: 'get',
  path: '/v1/cb/claims/inbox',
  description: "The claims on the calling intermediary presented after the one numbered `after` (their `seq`), oldest first, with their evidence.",
  request: { query: pageQuery },
  responses: { 200: pageAnswer },
});

const getOutbox = createRoute({
  method: 'get',
  path: '/v1/cb/claims/outbox',
  description: "The calling intermediary's claims decided after the decision numbered `after` (their `decidedSeq`), oldest first.",
  request: { query: pageQuery },
  responses: { 200: pageAnswer },
});

const getClaim = createRoute({
  method: 'get',
  path: '/v1/cb/claims/{claimId}',
  description: 'One claim, to either bank it names (signed) or the operator.',
  request: { params: z.object({ claimId: keyIdHex }) },
  responses: { 200: { description: 'The claim', content: { 'application/json': { schema: claimAnswer } } }, 404: { description: 'No such claim', ...errorBody } },
});

const postDecision = createRoute({
  method: 'post',
  path: '/v1/cb/claims/{claimId}/decision',
  description: "The payer's bank accepts or refuses a claim on it (signed by the payer's bank). Accepting moves the amount from its reserve to the payee's bank's, once.",
  request: { params: z.object({ claimId: keyIdHex }), body: json(decisionBody) },
  responses: {
    200: { description: 'Decided (or as decided, for the same decision again)', content: { 'application/json': { schema: claimAnswer } } },
    403: { description: "Not the payer's bank", ...errorBody },
    409: { description: 'Decided the other way already', ...errorBody },
  },
});

const getDirectory = createRoute({
  method: 'get',
  path: '/v1/cb/directory',
  description: "Every intermediary the root certified, with its certificate and whether it is revoked: what chains one bank's customers to the root at another. Each bank also checks the root-signed revocation list. Each carries its latest publication of each scheme (see POST /v1/cb/publications).",
  responses: {
    200: {
      description: 'The intermediaries',
      content: { 'application/json': { schema: z.object({ intermediaries: z.array(z.object({ keyId: z.string(), name: z.string(), revoked: z.boolean(), certificate: z.string(), publications: z.array(z.string()) })) }) } },
    },
  },
});

interface ClaimRow {
  seq: bigint;
  claim_id: string;
  payer_bank: string;
  payee_bank: string;
  scheme: string;
  currency: string;
  amount: bigint;
  evidence: Uint8Array;
  status: 'presented' | 'settled' | 'refused';
  code: string | null;
  reason: string | null;
  transfer_id: bigint | null;
  decided_seq: bigint | null;
}

const CLAIM_COLUMNS = 'seq, claim_id, payer_bank, payee_bank, scheme, currency, amount, evidence, status, code, reason, transfer_id, decided_seq';

async function readClaim(q: Queryable, claimId: string, lock = false): Promise<ClaimRow | undefined> {
  return (await q.query<ClaimRow>(`SELECT ${CLAIM_COLUMNS} FROM cb_claims WHERE claim_id = $1${lock ? ' FOR UPDATE' : ''}`, [claimId])).rows[0];
}

/** An intermediary that may take part in a claim: enrolled and not revoked. */
async function activeBank(q: Queryable, keyId: string): Promise<'approved' | 'revoked' | 'unknown'> {
  const row = (await q.query<{ status: string }>('SELECT status FROM cb_intermediaries WHERE key_id = $1', [keyId])).rows[0];
  if (row === undefined || (row.status !== 'approved' && row.status !== 'revoked')) return 'unknown';
  return row.status;
}

/** Refuses a central bank route at a node that is not one. */
function requireCentralBank(services: IssuerServices): void {
  if (services.identity.role !== 'central-bank') throw new ApiProblem('ROLE_MISMATCH', 'this node is not a central bank', { role: services.identity.role });
}

/** The party to a claim a caller is, or a 403. */
function partyOf(caller: Caller, row: ClaimRow): 'payer' | 'payee' | 'operator' {
  if (caller.kind === 'operator') return 'operator';
  const bank = requireIntermediary(caller);
  if (bank.keyId === row.payer_bank) return 'payer';
  if (bank.keyId === row.payee_bank) return 'payee';
  throw new ApiProblem('FORBIDDEN', `claim ${row.claim_id} is between two other intermediaries`, {});
}

/** Adds the central bank's claim routes. */
export function registerClaimRoutes(app: OpenAPIHono<IssuerEnv>, services: IssuerServices): void {
  const { currency } = services;
  const claimJson = (row: ClaimRow, withEvidence: boolean) => ({
    claimId: row.claim_id,
    seq: Number(bigintColumn(row, 'seq')),
    payerBank: row.payer_bank,
    payeeBank: row.payee_bank,
    scheme: row.scheme,
    amount: formatMinor(currency, bigintColumn(row, 'amount')),
    currency: row.currency,
    status: row.status,
    ...(row.code === null ? {} : { code: row.code }),
    ...(row.reason === null ? {} : { reason: row.reason }),
    ...(row.transfer_id === null ? {} : { transfer: Number(row.transfer_id) }),
    ...(row.decided_seq === null ? {} : { decidedSeq: Number(row.decided_seq) }),
    ...(withEvidence ? { evidence: toBase64url(new Uint8Array(row.evidence)) } : {}),
  });

  app.openAPIRegistry.registerPath(postClaim);
  app.post(postClaim.path, async (c) => {
    requireCentralBank(services);
    const payee = requireIntermediary(c.get('caller'));
    const body = validBody(c, claimBody);
    const amount = parseAmount(services, body.amount);
    const evidence = decodeField('body.evidence', body.evidence);
    if (claimIdOf(body.scheme, evidence) !== body.claimId) throw new ApiProblem('CLAIM_INVALID', 'claimId is not the SHA-256 of the claim tag, the scheme and the evidence', {});
    if (body.payerBank === payee.keyId) throw new ApiProblem('CLAIM_INVALID', 'a bank does not present a claim on itself: settle it in its own books', {});
    return idempotent(services, c, 'cb-claims', payee.keyId, async (tx) => {
      if (payee.revoked) return refusal('CERT_REVOKED', `intermediary ${payee.keyId} is revoked: it presents no claims`);
      const payer = await activeBank(tx, body.payerBank);
      if (payer === 'unknown') return refusal('BANK_UNKNOWN', `no intermediary ${body.payerBank} is enrolled at this central bank`);
      if (payer === 'revoked') return refusal('CERT_REVOKED', `intermediary ${body.payerBank} is revoked: the central bank carries no claim on it`);
      await tx.query(
        `INSERT INTO cb_claims (claim_id, payer_bank, payee_bank, scheme, currency, amount, evidence) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (claim_id) DO NOTHING`,
        [body.claimId, body.payerBank, payee.keyId, body.scheme, currency.code, amount.minor, evidence],
      );
      const row = await readClaim(tx, body.claimId);
      if (row === undefined) throw new Error(`claim ${body.claimId} vanished`);
      // The id is the hash of scheme and evidence, so only the parties and the amount can differ.
      if (row.payee_bank !== payee.keyId || row.payer_bank !== body.payerBank || bigintColumn(row, 'amount') !== amount.minor) {
        return refusal('CLAIM_CONFLICT', `claim ${body.claimId} was presented already, by another bank, on another bank or for another amount`);
      }
      return { status: 202, body: claimJson(row, false) };
    });
  });

  /** A page of one bank's claims: `order` past `after`, oldest first. */
  const page = async (after: number, where: string, order: 'seq' | 'decided_seq', bank: string) => {
    const { rows } = await services.db.query<ClaimRow>(`SELECT ${CLAIM_COLUMNS} FROM cb_claims WHERE ${where} AND ${order} > $2 ORDER BY ${order} LIMIT ${CLAIMS_PAGE_MAX + 1}`, [bank, BigInt(after)]);
    return { rows: rows.slice(0, CLAIMS_PAGE_MAX), more: rows.length > CLAIMS_PAGE_MAX };
  };

  app.openapi(getInbox, async (c) => {
    requireCentralBank(services);
    const bank = requireIntermediary(c.get('caller'));
    const { rows, more } = await page(c.req.valid('query').after, 'payer_bank = $1', 'seq', bank.keyId);
    return c.json({ claims: rows.map((r) => claimJson(r, true)), more }, 200);
  });

  app.openapi(getOutbox, async (c) => {
    requireCentralBank(services);
    const bank = requireIntermediary(c.get('caller'));
    const { rows, more } = await page(c.req.valid('query').after, 'payee_bank = $1 AND decided_seq IS NOT NULL', 'decided_seq', bank.keyId);
    return c.json({ claims: rows.map((r) => claimJson(r, false)), more }, 200);
  });

  app.openapi(getClaim, async (c) => {
    requireCentralBank(services);
    const row = await readClaim(services.db, c.req.valid('param').claimId);
    if (row === undefined) throw new ApiProblem('NOT_FOUND', `no claim ${c.req.valid('param').claimId}`, {});
    const party = partyOf(c.get('caller'), row);
    return c.json(claimJson(row, party !== 'payee'), 200);
  });

  app.openAPIRegistry.registerPath(postDecision);
  app.post('/v1/cb/claims/:claimId/decision', async (c) => {
    requireCentralBank(services);
    const bank = requireIntermediary(c.get('caller'));
    const claimId = c.req.param('claimId');
    if (!/^[0-9a-f]{64}$/.test(claimId)) throw new ApiProblem('BODY_INVALID', 'claimId: 64 lower-case hex digits', {});
    const body = validBody(c, decisionBody);
    return idempotent(services, c, 'cb-claim-decisions', bank.keyId, async (tx) => {
      const row = await readClaim(tx, claimId, true);
      if (row === undefined) return refusal('NOT_FOUND', `no claim ${claimId}`);
      if (row.payer_bank !== bank.keyId) return refusal('FORBIDDEN', `claim ${claimId} is on intermediary ${row.payer_bank}: only that bank decides it`);
      const wanted = body.decision === 'accept' ? 'settled' : 'refused';
      if (row.status !== 'presented') {
        if (row.status === wanted && (body.decision === 'accept' || row.code === body.code)) return { status: 200, body: claimJson(row, false) };
        return refusal('CLAIM_DECIDED', `claim ${claimId} is ${row.status}${row.code === null ? '' : ` (${row.code})`} already`);
      }
      if (body.decision === 'refuse') {
        await tx.query(
          `UPDATE cb_claims SET status = 'refused', code = $2, reason = $3, decided_seq = nextval('cb_claims_decided_seq'), decided_at = now() WHERE claim_id = $1`,
          [claimId, body.code, body.reason],
        );
      } else {
        const moved = await transfer(tx, {
          idempotencyKey: fitKey(`interbank:${claimId}`),
          debit: reserveAccount(row.payer_bank),
          credit: reserveAccount(row.payee_bank),
          amount: bigintColumn(row, 'amount'),
          kind: INTERBANK_KIND,
          reference: { claim: claimId, scheme: row.scheme },
          currency,
        });
        if (!moved.ok) return refusal(moved.code, `claim ${claimId} cannot be settled: ${moved.message}`);
        await tx.query(`UPDATE cb_claims SET status = 'settled', transfer_id = $2, decided_seq = nextval('cb_claims_decided_seq'), decided_at = now() WHERE claim_id = $1`, [claimId, moved.transfer.id]);
      }
      const decided = await readClaim(tx, claimId);
      if (decided === undefined) throw new Error(`claim ${claimId} vanished`);
      return { status: 200, body: claimJson(decided, false) };
    });
  });

  app.openapi(getDirectory, async (c) => {
    requireCentralBank(services);
    const { rows } = await services.db.query<{ key_id: string; name: string; status: string; certificate: Uint8Array }>(
      "SELECT key_id, name, status, certificate FROM cb_intermediaries WHERE status IN ('approved', 'revoked') ORDER BY key_id",
    );
    const published = await publicationsByBank(services.db);
    return c.json(
      {
        intermediaries: rows.map((r) => ({
          keyId: r.key_id,
          name: r.name,
          revoked: r.status === 'revoked',
          certificate: toBase64url(new Uint8Array(r.certificate)),
          publications: published.get(r.key_id) ?? [],
        })),
      },
      200,
    );
  });

  // The operator lists claims still waiting for their payer's bank.
  app.get('/v1/cb/operator/claims', async (c) => {
    requireOperator(c.get('caller'));
    requireCentralBank(services);
    const { rows } = await services.db.query<ClaimRow>(`SELECT ${CLAIM_COLUMNS} FROM cb_claims ORDER BY seq DESC LIMIT ${CLAIMS_PAGE_MAX}`);
    return c.json({ claims: rows.map((r) => claimJson(r, false)) }, 200);
  });
}
