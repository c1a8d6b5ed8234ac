/**
 * The interbank steps of an intermediary's sync with its central bank (see link.ts), each
 * at-least-once and idempotent, so a sync cut short anywhere is finished by the next one:
 * - as the payee's bank: present the claims its customers made on other banks; read their
 *   outcomes; credit a customer once its claim is settled and the reserve's movement in is recorded;
 * - as the payer's bank: pull the claims on it, judge each with its scheme in one transaction with
 *   the decision (a claim is judged once), and post the decisions until the central bank has them;
 * - the directory: the other intermediaries' certificates, each verified under the root, and
 *   whether the root-signed list revokes them.
 */
import { fromBase64url, toBase64url, toHex } from '../../core/bytes.ts';
import { Amount, type Currency } from '../../core/amount.ts';
import { isTallyError, TallyError } from '../../core/errors.ts';
import type { CryptoProvider } from '../../core/crypto/suite.ts';
import { decodeCertificate } from '../../pki/certificate.ts';
import { verifyChain } from '../../pki/chain.ts';
import { keyId } from '../../pki/key-id.ts';
import { listRevokes, type RevocationList } from '../../pki/revocation.ts';
import { bigintColumn, type Database } from '../db/database.ts';
import { RESERVE_ACCOUNT, type IssuerServices } from '../http/context.ts';
import { formatMinor } from '../http/json.ts';
import { ApiProblem } from '../http/problem.ts';
import { keepPeerPublications } from './publications.ts';
import type { SchemeModule } from '../http/scheme-module.ts';
import type { NodeIdentity } from '../identity/node-identity.ts';
import { transfer } from '../ledger/transfer.ts';
import { claimIdOf, type InterbankJudgement } from './interbank.ts';

/** The transfer kind of a customer's credit from a settled claim. */
export const INTERBANK_CREDIT_KIND = 'interbank-credit';
/** Longest reason a refusal carries to the central bank. */
const REASON_CHARS_MAX = 300;

/**
 * The code of a refusal by the central bank that sending again will not change (a 4xx other than
 * an authentication failure, which a clock or a key put right may cure), or undefined.
 */
function finalRefusal(e: unknown): string | undefined {
  if (!isTallyError(e, 'NODE_REFUSED')) return undefined;
  const { status, code } = e.details;
  return status >= 400 && status < 500 && status !== 401 && status !== 429 ? code : undefined;
}

/** A reason as the central bank takes it: one line, without control characters, at most REASON_CHARS_MAX. */
function reasonText(text: string): string {
  const line = text.replace(/\p{Cc}+/gu, ' ').trim().slice(0, REASON_CHARS_MAX);
  return line === '' ? 'refused' : line;
}

/** What the interbank steps need of the link. */
export interface InterbankContext {
  readonly db: Database;
  readonly identity: NodeIdentity;
  readonly provider: CryptoProvider;
  readonly currency: Currency;
  readonly now: () => number;
  readonly schemes: readonly SchemeModule[];
  /** The node's services (the schemes' judges take them); set once the node is open. */
  readonly services: () => IssuerServices | undefined;
  /** A call to the central bank signed with the intermediary's key. */
  call(method: 'GET' | 'POST', path: string, options?: { body?: unknown; idempotencyKey?: string }): Promise<unknown>;
}

/** What the interbank steps of one sync did. */
export interface InterbankReport {
  readonly presented: number;
  readonly judged: number;
  readonly posted: number;
  /** Decisions the central bank refused to take this time (the reserve too short): posted again at the next sync. */
  readonly waiting: number;
  readonly outcomes: number;
  readonly credited: number;
}

interface WireClaim {
  claimId: string;
  seq: number;
  payerBank: string;
  payeeBank: string;
  scheme: string;
  amount: string;
  currency: string;
  status: 'presented' | 'settled' | 'refused';
  code?: string;
  reason?: string;
  transfer?: number;
  decidedSeq?: number;
  evidence?: string;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function claimsOf(answer: unknown): { claims: WireClaim[]; more: boolean } {
  if (!isRecord(answer) || !Array.isArray(answer['claims'])) throw new TallyError('DECODE_FAILED', "the central bank's answer has no claims", { path: 'claims', expected: 'an array', got: typeof answer });
  const claims = answer['claims'] as unknown[];
  for (const c of claims) {
    if (!isRecord(c) || typeof c['claimId'] !== 'string' || !/^[0-9a-f]{64}$/.test(c['claimId']) || typeof c['seq'] !== 'number' || typeof c['amount'] !== 'string' || typeof c['scheme'] !== 'string') {
      throw new TallyError('DECODE_FAILED', 'the central bank answered a malformed claim', { path: 'claims', expected: 'a claim', got: JSON.stringify(c).slice(0, 100) });
    }
  }
  return { claims: claims as WireClaim[], more: answer['more'] === true };
}

async function linkCursor(db: Database, column: 'cursor' | 'inbox_cursor' | 'outbox_cursor'): Promise<number> {
  const row = (await db.query<{ value: bigint }>(`SELECT ${column} AS value FROM tier_link WHERE one`)).rows[0];
  return row === undefined ? 0 : Number(bigintColumn(row, 'value'));
}

/** Moves a cursor of the link forward in `tx`, answering false when it was there already. */
async function advance(tx: Parameters<Parameters<Database['transaction']>[0]>[0], column: 'inbox_cursor' | 'outbox_cursor', to: number): Promise<boolean> {
  await tx.query('INSERT INTO tier_link (one) VALUES (true) ON CONFLICT (one) DO NOTHING');
  const held = (await tx.query<{ value: bigint }>(`SELECT ${column} AS value FROM tier_link WHERE one FOR UPDATE`)).rows[0];
  if (held !== undefined && Number(bigintColumn(held, 'value')) >= to) return false;
  await tx.query(`UPDATE tier_link SET ${column} = $1 WHERE one`, [BigInt(to)]);
  return true;
}

/** As the payee's bank: sends every claim not yet at the central bank. */
async function presentPending(ctx: InterbankContext): Promise<number> {
  const { rows } = await ctx.db.query<{ claim_id: string; scheme: string; payer_bank: string; amount: bigint; evidence: Uint8Array }>(
    "SELECT claim_id, scheme, payer_bank, amount, evidence FROM interbank_claims WHERE status = 'pending' ORDER BY created_at, claim_id",
  );
  let presented = 0;
  for (const r of rows) {
    const body = { claimId: r.claim_id, payerBank: r.payer_bank, scheme: r.scheme, amount: formatMinor(ctx.currency, bigintColumn(r, 'amount')), evidence: toBase64url(new Uint8Array(r.evidence)) };
    try {
      await ctx.call('POST', '/v1/cb/claims', { body, idempotencyKey: `claim-${r.claim_id.slice(0, 48)}` });
      await ctx.db.query("UPDATE interbank_claims SET status = 'presented' WHERE claim_id = $1 AND status = 'pending'", [r.claim_id]);
      presented += 1;
    } catch (e) {
      const code = finalRefusal(e);
      if (code === undefined) throw e;
      // The central bank will not carry it: the claim is refused, and the customer reads why.
      await ctx.db.query("UPDATE interbank_claims SET status = 'refused', code = $2, reason = $3, decided_at = now() WHERE claim_id = $1 AND status = 'pending'", [
        r.claim_id,
        /^[A-Z][A-Z0-9_]{0,63}$/.test(code) ? code : 'CLAIM_INVALID',
        reasonText((e as Error).message),
      ]);
    }
  }
  return presented;
}

/** As the payer's bank: judges the claims on it that arrived since the last sync, each once. */
async function judgeInbox(ctx: InterbankContext): Promise<number> {
  const services = ctx.services();
  if (services === undefined) return 0;
  let judged = 0;
  for (;;) {
    const after = await linkCursor(ctx.db, 'inbox_cursor');
    const { claims, more } = claimsOf(await ctx.call('GET', `/v1/cb/claims/inbox?after=${after}`));
    for (const claim of claims) {
      if (claim.seq <= after) throw new TallyError('DECODE_FAILED', `the central bank answered claim ${claim.seq} after ${after}`, { path: 'claims.seq', expected: `above ${after}`, got: String(claim.seq) });
      if (await judgeOne(ctx, services, claim)) judged += 1;
    }
    if (!more || claims.length === 0) break;
  }
  return judged;
}

async function judgeOne(ctx: InterbankContext, services: IssuerServices, claim: WireClaim): Promise<boolean> {
  const decide = (tx: Parameters<Parameters<Database['transaction']>[0]>[0], amount: bigint, judgement: InterbankJudgement) =>
    tx.query('INSERT INTO interbank_decisions (claim_id, scheme, payee_bank, amount, accepted, code, reason) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (claim_id) DO NOTHING', [
      claim.claimId,
      claim.scheme,
      claim.payeeBank,
      amount,
      judgement.accepted,
      judgement.accepted ? null : judgement.code,
      judgement.accepted ? null : reasonText(judgement.reason),
    ]);
  const judge = async (tx: Parameters<Parameters<Database['transaction']>[0]>[0]): Promise<boolean> => {
    if (!(await advance(tx, 'inbox_cursor', claim.seq))) return false;
    const known = (await tx.query('SELECT 1 FROM interbank_decisions WHERE claim_id = $1', [claim.claimId])).rows.length > 0;
    if (known) return false;
    let amount: bigint | undefined;
    const refuse = async (code: string, reason: string) => {
      await decide(tx, amount ?? 1n, { accepted: false, code, reason });
      return true;
    };
    try {
      amount = Amount.parse(claim.amount, ctx.currency).minor;
    } catch {
      return refuse('AMOUNT_INVALID', `the claim's amount ${claim.amount} is not an amount of ${ctx.currency.code}`);
    }
    if (claim.currency !== ctx.currency.code) return refuse('CURRENCY_MISMATCH', `the claim is in ${claim.currency}, this bank holds ${ctx.currency.code}`);
    const evidence = fromBase64url(claim.evidence ?? '');
    if (claimIdOf(claim.scheme, evidence) !== claim.claimId) return refuse('CLAIM_INVALID', 'the claim id is not the hash of its scheme and evidence');
    const scheme = ctx.schemes.find((s) => s.name === claim.scheme);
    if (scheme?.judgeInterbankClaim === undefined) return refuse('SCHEME_NOT_SERVED', `this bank does not settle ${claim.scheme} claims from other banks`);
    const judgement = await scheme.judgeInterbankClaim(tx, services, { claimId: claim.claimId, payeeBank: claim.payeeBank, amount, evidence }, RESERVE_ACCOUNT);
    await decide(tx, amount, judgement);
    return true;
  };
  try {
    return await ctx.db.transaction(judge);
  } catch (e) {
    // Evidence the scheme cannot even read is refused with the scheme's code, in a transaction of its own.
    if (!(e instanceof ApiProblem) && !isTallyError(e)) throw e;
    const code = e instanceof ApiProblem ? e.code : e.code;
    return ctx.db.transaction(async (tx) => {
      if (!(await advance(tx, 'inbox_cursor', claim.seq))) return false;
      await decide(tx, 1n, { accepted: false, code, reason: e.message || code });
      return true;
    });
  }
}

/**
 * As the payer's bank: posts every decision the central bank has not acknowledged. One it refuses
 * (its reserve too short to pay an accepted claim) stays to be posted again, without holding up
 * the others or the rest of the sync.
 */
async function postDecisions(ctx: InterbankContext): Promise<{ posted: number; waiting: number }> {
  const { rows } = await ctx.db.query<{ claim_id: string; accepted: boolean; code: string | null; reason: string | null }>(
    'SELECT claim_id, accepted, code, reason FROM interbank_decisions WHERE NOT posted ORDER BY decided_at, claim_id',
  );
  let posted = 0;
  let waiting = 0;
  for (const r of rows) {
    const body = r.accepted ? { decision: 'accept' } : { decision: 'refuse', code: r.code, reason: r.reason ?? r.code };
    try {
      await ctx.call('POST', `/v1/cb/claims/${r.claim_id}/decision`, { body, idempotencyKey: `decision-${r.claim_id.slice(0, 48)}` });
    } catch (e) {
      // The same decision again is answered 200, so CLAIM_DECIDED means the claim was decided
      // otherwise, which only this bank can do: there is nothing left to post.
      const code = finalRefusal(e);
      if (code === undefined) throw e;
      if (code !== 'CLAIM_DECIDED') {
        waiting += 1;
        continue;
      }
    }
    await ctx.db.query('UPDATE interbank_decisions SET posted = true WHERE claim_id = $1', [r.claim_id]);
    posted += 1;
  }
  return { posted, waiting };
}

/** As the payee's bank: records the outcomes of its claims decided since the last sync. */
async function collectOutcomes(ctx: InterbankContext): Promise<number> {
  let recorded = 0;
  for (;;) {
    const after = await linkCursor(ctx.db, 'outbox_cursor');
    const { claims, more } = claimsOf(await ctx.call('GET', `/v1/cb/claims/outbox?after=${after}`));
    for (const claim of claims) {
      const seq = claim.decidedSeq;
      if (seq === undefined || seq <= after || (claim.status === 'settled' && claim.transfer === undefined)) {
        throw new TallyError('DECODE_FAILED', `the central bank answered an undecided or malformed outcome after ${after}`, { path: 'claims.decidedSeq', expected: `above ${after}`, got: String(seq) });
      }
      const done = await ctx.db.transaction(async (tx) => {
        if (!(await advance(tx, 'outbox_cursor', seq))) return false;
        if (claim.status === 'settled') {
          await tx.query("UPDATE interbank_claims SET status = 'accepted', movement = $2, decided_at = now() WHERE claim_id = $1 AND status IN ('pending', 'presented')", [claim.claimId, BigInt(claim.transfer as number)]);
        } else {
          await tx.query("UPDATE interbank_claims SET status = 'refused', code = $2, reason = $3, decided_at = now() WHERE claim_id = $1 AND status IN ('pending', 'presented')", [
            claim.claimId,
            claim.code ?? 'CLAIM_REFUSED',
            (claim.reason ?? 'refused by the payer\'s bank').slice(0, REASON_CHARS_MAX),
          ]);
        }
        return true;
      });
      if (done) recorded += 1;
    }
    if (!more || claims.length === 0) break;
  }
  return recorded;
}

/**
 * As the payee's bank: credits each customer whose claim is settled, once the reserve's movement in
 * is recorded here (cb:issuance → cb:reserve), from cb:reserve: the money reaches the customer only
 * after it reached the bank's reserve.
 */
export async function creditSettled(ctx: InterbankContext): Promise<number> {
  const cursor = await linkCursor(ctx.db, 'cursor');
  const { rows } = await ctx.db.query<{ claim_id: string }>("SELECT claim_id FROM interbank_claims WHERE status = 'accepted' AND movement <= $1 ORDER BY movement", [BigInt(cursor)]);
  let credited = 0;
  for (const { claim_id: claimId } of rows) {
    const done = await ctx.db.transaction(async (tx) => {
      const row = (await tx.query<{ status: string; amount: bigint; payee_account: string; payer_bank: string; scheme: string; movement: bigint }>(
        'SELECT status, amount, payee_account, payer_bank, scheme, movement FROM interbank_claims WHERE claim_id = $1 FOR UPDATE',
        [claimId],
      )).rows[0];
      if (row === undefined || row.status !== 'accepted') return false;
      const moved = await transfer(tx, {
        idempotencyKey: `interbank-credit:${claimId}`,
        debit: RESERVE_ACCOUNT,
        credit: row.payee_account,
        amount: bigintColumn(row, 'amount'),
        kind: INTERBANK_CREDIT_KIND,
        reference: { claim: claimId, payerBank: row.payer_bank, scheme: row.scheme, movement: Number(row.movement) },
        currency: ctx.currency,
      });
      if (!moved.ok) throw new TallyError('RESERVE_UNSYNCED', `claim ${claimId} is settled but its customer cannot be credited: ${moved.message}`, { reason: moved.code });
      await tx.query("UPDATE interbank_claims SET status = 'settled', credit_transfer = $2 WHERE claim_id = $1", [claimId, moved.transfer.id]);
      return true;
    });
    if (done) credited += 1;
  }
  return credited;
}

/**
 * The directory: every other intermediary's certificate, kept only when it verifies under the root;
 * revoked when the central bank says so or the root-signed list names it (once revoked, for good).
 */
export async function syncDirectory(ctx: InterbankContext, rootList: RevocationList | null): Promise<number> {
  const answer = await ctx.call('GET', '/v1/cb/directory');
  if (!isRecord(answer) || !Array.isArray(answer['intermediaries'])) throw new TallyError('DECODE_FAILED', "the central bank's directory has no intermediaries", { path: 'intermediaries', expected: 'an array', got: typeof answer });
  const own = toHex(keyId(ctx.identity.intermediary.certificate.body.subject));
  let kept = 0;
  for (const entry of answer['intermediaries'] as unknown[]) {
    if (!isRecord(entry) || typeof entry['certificate'] !== 'string' || typeof entry['name'] !== 'string') continue;
    const encoded = fromBase64url(entry['certificate']);
    const certificate = decodeCertificate(encoded);
    const id = toHex(keyId(certificate.body.subject));
    if (id === own) continue;
    // Unsigned as a whole, each certificate is the root's own signature: a forged one is dropped here.
    verifyChain({ provider: ctx.provider, chain: [certificate], trustAnchors: [ctx.identity.root.certificate], now: ctx.now(), leafRoles: ['intermediary'] });
    const revoked = entry['revoked'] === true || (rootList !== null && listRevokes(rootList, certificate.body.serial));
    await ctx.db.query(
      `INSERT INTO tier_peers (key_id, name, certificate, revoked) VALUES ($1, $2, $3, $4)
       ON CONFLICT (key_id) DO UPDATE SET name = EXCLUDED.name, certificate = EXCLUDED.certificate, revoked = tier_peers.revoked OR EXCLUDED.revoked`,
      [id, entry['name'].slice(0, 100), encoded, revoked],
    );
    await keepPeerPublications(ctx, id, certificate, entry['publications']);
    kept += 1;
  }
  return kept;
}

/** The claims' steps before the reserve's movements are pulled (creditSettled comes after). */
export async function exchangeClaims(ctx: InterbankContext): Promise<Omit<InterbankReport, 'credited'>> {
  const presented = await presentPending(ctx);
  const judged = await judgeInbox(ctx);
  const { posted, waiting } = await postDecisions(ctx);
  const outcomes = await collectOutcomes(ctx);
  return { presented, judged, posted, waiting, outcomes };
}
