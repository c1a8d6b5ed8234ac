/**
 * The central bank's routes (a node started with `--role central-bank`): it enrols intermediaries
 * (their request carries a proof of possession; the operator approves or refuses it), certifies
 * them with the root key and revokes them in a root-signed list; it keeps each intermediary's
 * reserve, the interbank ledger, into which it issues the currency; it answers each intermediary
 * the movements of its reserve, takes its report of its own books and sets the two side by side
 * in the system's audit.
 */
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { toBase64url, toHex } from '../../core/bytes.ts';
import { keyId as keyIdOf } from '../../pki/key-id.ts';
import { decodeCertificate, encodeCertificate, issueCertificate } from '../../pki/certificate.ts';
import { decodeRevocationList, encodeRevocationList, issueRevocationList } from '../../pki/revocation.ts';
import { bigintColumn, type Queryable, type TransactionHandle } from '../db/database.ts';
import { INTERMEDIARY_VALIDITY_MS } from '../identity/create-identity.ts';
import { rootSigner } from '../identity/node-identity.ts';
import { ensureAccount } from '../ledger/account.ts';
import { transfer } from '../ledger/transfer.ts';
import { ENROLMENT_TAG, INTERMEDIARY_NAME_LENGTH_MAX, verifyEnrolment } from '../tier/enrolment-record.ts';
import { positionBody } from '../tier/position.ts';
import { idempotencyKey, requireOperator } from './auth.ts';
import { ISSUANCE_ACCOUNT, type Caller, type IssuerEnv, type IssuerServices } from './context.ts';
import { formatMinor, transferJson } from './json.ts';
import { ApiProblem } from './problem.ts';
import { amountText, base64urlOf, decodeField, errorBody, fitKey, idempotent, json, keyIdHex, parseAmount, parsePublicKey, publicKeyBody, refusal, validBody } from './validate.ts';

/** The reserve account of an intermediary at the central bank. */
export function reserveAccount(intermediaryKeyId: string): string {
  return `reserve:${intermediaryKeyId}`;
}

/** The transfer kind of the central bank's issuance into a reserve. */
export const CB_ISSUE_KIND = 'cb-issue';
/** Most movements one page answers. */
export const MOVEMENTS_PAGE_MAX = 500;
/** Longest reason of a refusal or a revocation. */
const REASON_MAX = 200;

const intermediaryName = z.string().min(1).max(INTERMEDIARY_NAME_LENGTH_MAX).regex(/^[^\p{Cc}]*$/u, 'text without control characters');
const reasonText = z.string().min(1).max(REASON_MAX).regex(/^[^\p{Cc}]*$/u, 'text without control characters');
const enrolmentBody = z.strictObject({ name: intermediaryName, publicKey: publicKeyBody, proof: base64urlOf(256) });
const issueBody = z.strictObject({ intermediary: keyIdHex, amount: amountText });
const reasonBody = z.strictObject({ reason: reasonText });
const revokeBody = z.strictObject({ intermediary: keyIdHex, reason: reasonText });

const enrolmentAnswer = z.object({ keyId: z.string(), name: z.string(), status: z.string(), certificate: z.string().optional(), reason: z.string().optional() });

const postEnrolment = createRoute({
  method: 'post',
  path: '/v1/cb/enrolments',
  description: `An intermediary asks to be certified: its name, its key, and its signature (${ENROLMENT_TAG}) over both, the currency and the root's key id. The operator decides.`,
  request: { body: json(enrolmentBody) },
  responses: {
    202: { description: 'Pending (or as decided, for a request already made)', content: { 'application/json': { schema: enrolmentAnswer } } },
    401: { description: 'The proof of possession does not verify', ...errorBody },
    409: { description: 'Not a central bank', ...errorBody },
  },
});

const getEnrolment = createRoute({
  method: 'get',
  path: '/v1/cb/enrolments/{keyId}',
  description: "An enrolment request's status; once approved, the intermediary's certificate.",
  request: { params: z.object({ keyId: keyIdHex }) },
  responses: { 200: { description: 'The request', content: { 'application/json': { schema: enrolmentAnswer } } }, 404: { description: 'No such request', ...errorBody } },
});

const getRevocations = createRoute({
  method: 'get',
  path: '/v1/cb/revocations',
  description: 'The root-signed list of revoked intermediaries.',
  responses: { 200: { description: 'The current list', content: { 'application/json': { schema: z.object({ version: z.number().int(), list: z.string() }) } } } },
});

const getMovements = createRoute({
  method: 'get',
  path: '/v1/cb/movements',
  description: "The movements of the calling intermediary's reserve after the one numbered `after`, oldest first (signed by the intermediary's key).",
  request: { query: z.object({ after: z.coerce.number().int().min(0).default(0) }) },
  responses: {
    200: {
      description: 'A page of movements',
      content: {
        'application/json': {
          schema: z.object({
            reserve: z.string(),
            movements: z.array(z.object({ id: z.number().int(), amount: z.string(), direction: z.enum(['in', 'out']), kind: z.string(), at: z.string() })),
            more: z.boolean(),
          }),
        },
      },
    },
  },
});

const postPosition = createRoute({
  method: 'post',
  path: '/v1/cb/positions',
  description: 'An intermediary reports its own books: what it mirrors of its reserve, and where that money is now (signed by its key).',
  request: { body: json(positionBody) },
  responses: { 200: { description: 'Recorded', content: { 'application/json': { schema: z.object({ recorded: z.literal(true) }) } } } },
});

/** An intermediary's row at the central bank. */
export interface IntermediaryRow {
  key_id: string;
  name: string;
  suite: string;
  public_key: Uint8Array;
  status: 'pending' | 'approved' | 'refused' | 'revoked';
  certificate: Uint8Array | null;
  reason: string | null;
}

export const INTERMEDIARY_COLUMNS = 'key_id, name, suite, public_key, status, certificate, reason';

async function readIntermediary(q: Queryable, keyId: string, lock = false): Promise<IntermediaryRow | undefined> {
  return (await q.query<IntermediaryRow>(`SELECT ${INTERMEDIARY_COLUMNS} FROM cb_intermediaries WHERE key_id = $1${lock ? ' FOR UPDATE' : ''}`, [keyId])).rows[0];
}

/** An enrolment as the central bank answers it. */
export function enrolmentJson(row: IntermediaryRow): { [key: string]: string } {
  return {
    keyId: row.key_id,
    name: row.name,
    status: row.status,
    ...(row.certificate === null ? {} : { certificate: toBase64url(new Uint8Array(row.certificate)) }),
    ...(row.reason === null ? {} : { reason: row.reason }),
  };
}

const ROOT_LIST_LOCK = `SELECT pg_advisory_xact_lock(hashtext('tally/cb/revocations/' || coalesce(current_schema(), '')))`;

/** The central bank's current list of revoked intermediaries; the first (version 1, empty) is signed on first use. */
export async function currentRootList(tx: TransactionHandle, services: IssuerServices): Promise<{ version: number; encoded: Uint8Array }> {
  const held = (await tx.query<{ version: bigint; encoded: Uint8Array }>('SELECT version, encoded FROM cb_revocation_lists ORDER BY version DESC LIMIT 1')).rows[0];
  if (held !== undefined) return { version: Number(bigintColumn(held, 'version')), encoded: new Uint8Array(held.encoded) };
  await tx.query(ROOT_LIST_LOCK);
  const first = issueRevocationList({ issuer: rootSigner(services.identity), version: 1, issuedAt: services.now(), revoked: [] });
  const encoded = encodeRevocationList(first);
  await tx.query('INSERT INTO cb_revocation_lists (version, encoded, issued_at) VALUES (1, $1, to_timestamp($2::bigint / 1000.0)) ON CONFLICT DO NOTHING', [encoded, BigInt(first.body.issuedAt)]);
  return currentRootList(tx, services);
}

/** An intermediary enrolled here (approved or revoked), from its signed request, or a 401/403. */
export function requireIntermediary(caller: Caller): Extract<Caller, { kind: 'intermediary' }> {
  if (caller.kind !== 'intermediary') throw new ApiProblem(caller.kind === 'anonymous' ? 'UNAUTHENTICATED' : 'FORBIDDEN', 'this call must be signed by an enrolled intermediary', {});
  return caller;
}

/** Refuses a central bank route at a node that is not a central bank. */
export function requireCentralBank(services: IssuerServices): void {
  if (services.identity.role !== 'central-bank') {
    throw new ApiProblem('ROLE_MISMATCH', `this node is ${services.identity.role === 'intermediary' ? 'an intermediary' : 'a standalone node'}, not a central bank (tally node start --role central-bank)`, { role: services.identity.role });
  }
}

/** The latest movement of a reserve (0 when none). */
export async function lastMovement(q: Queryable, account: string): Promise<bigint> {
  const row = (await q.query<{ id: bigint | null }>('SELECT max(id) AS id FROM transfers WHERE debit_account = $1 OR credit_account = $1', [account])).rows[0];
  return row?.id === null || row?.id === undefined ? 0n : bigintColumn(row as { id: bigint }, 'id');
}

/** Adds the central bank's routes. */
export function registerCentralBankRoutes(app: OpenAPIHono<IssuerEnv>, services: IssuerServices): void {
  const { currency } = services;
  const money = (minor: bigint) => formatMinor(currency, minor);
  const rootKeyId = toHex(keyIdOf(services.identity.root.certificate.body.subject));

  app.openAPIRegistry.registerPath(postEnrolment);
  app.post(postEnrolment.path, async (c) => {
    requireCentralBank(services);
    const body = validBody(c, enrolmentBody);
    const { publicKey, keyId } = parsePublicKey(services, 'body.publicKey', body.publicKey);
    const proof = decodeField('body.proof', body.proof);
    if (!verifyEnrolment(services.provider, { name: body.name, currency: currency.code, rootKeyId, subject: publicKey }, proof)) {
      throw new ApiProblem('SIGNATURE_INVALID', `the proof of possession does not verify: sign the name, the currency ${currency.code}, the root ${rootKeyId} and the key with the key itself`, {});
    }
    // The root only certifies: its own key is no intermediary, whoever holds it asks.
    if (keyId === rootKeyId) throw new ApiProblem('ALREADY_REGISTERED', `key ${keyId} is the central bank's root: an intermediary enrols with a key of its own`, {});
    return idempotent(services, c, 'cb-enrolments', keyId, async (tx) => {
      await tx.query('INSERT INTO cb_intermediaries (key_id, name, suite, public_key) VALUES ($1, $2, $3, $4) ON CONFLICT (key_id) DO NOTHING', [keyId, body.name, publicKey.suite, publicKey.key]);
      const row = await readIntermediary(tx, keyId);
      if (row === undefined) throw new Error(`enrolment ${keyId} vanished`);
      if (row.name !== body.name) return refusal('ALREADY_REGISTERED', `key ${keyId} asked to be enrolled as ${JSON.stringify(row.name)} already`);
      return { status: 202, body: enrolmentJson(row) };
    });
  });

  app.openapi(getEnrolment, async (c) => {
    requireCentralBank(services);
    const row = await readIntermediary(services.db, c.req.valid('param').keyId);
    if (row === undefined) throw new ApiProblem('NOT_FOUND', `no enrolment request of key ${c.req.valid('param').keyId}`, {});
    return c.json(enrolmentJson(row) as z.infer<typeof enrolmentAnswer>, 200);
  });

  const decide = (verdict: 'approve' | 'refuse') => {
    const path = `/v1/cb/operator/enrolments/:keyId/${verdict}`;
    app.post(path, async (c) => {
      requireOperator(c.get('caller'));
      requireCentralBank(services);
      const keyId = c.req.param('keyId') ?? '';
      if (!/^[0-9a-f]{64}$/.test(keyId)) throw new ApiProblem('BODY_INVALID', 'keyId: 64 lower-case hex digits', {});
      const reason = verdict === 'refuse' ? validBody(c, reasonBody).reason : null;
      return idempotent(services, c, `cb-${verdict}`, 'operator', async (tx) => {
        const row = await readIntermediary(tx, keyId, true);
        if (row === undefined) return refusal('NOT_FOUND', `no enrolment request of key ${keyId}`);
        if (row.status !== 'pending') return refusal('ALREADY_SETTLED', `the enrolment of ${keyId} (${row.name}) is ${row.status} already`);
        const now = services.now();
        if (verdict === 'refuse') {
          await tx.query("UPDATE cb_intermediaries SET status = 'refused', reason = $2, decided_at = now() WHERE key_id = $1", [keyId, reason]);
        } else {
          const suite = row.suite === 'ed25519' || row.suite === 'p256' || row.suite === 'sm2' || row.suite === 'secp256k1' ? row.suite : null;
          if (suite === null) return refusal('SUITE_UNKNOWN', `key ${keyId} is of an unknown suite ${row.suite}`);
          const certificate = issueCertificate({
            issuer: rootSigner(services.identity),
            issuerRole: 'root',
            role: 'intermediary',
            subject: { suite, key: new Uint8Array(row.public_key) },
            notBefore: now - 60 * 60_000,
            notAfter: Math.min(now + INTERMEDIARY_VALIDITY_MS, services.identity.root.certificate.body.notAfter),
            extensions: { name: row.name, currency: currency.code },
          });
          await tx.query("UPDATE cb_intermediaries SET status = 'approved', certificate = $2, decided_at = now() WHERE key_id = $1", [keyId, encodeCertificate(certificate)]);
          const opened = await ensureAccount(tx, { id: reserveAccount(keyId), kind: 'reserve', currency: currency.code, owner: keyId });
          if (!opened.ok) return refusal(opened.code, opened.message);
        }
        const decided = await readIntermediary(tx, keyId);
        if (decided === undefined) throw new Error(`enrolment ${keyId} vanished`);
        return { status: 200, body: enrolmentJson(decided) };
      });
    });
  };
  decide('approve');
  decide('refuse');

  app.post('/v1/cb/operator/issue', async (c) => {
    requireOperator(c.get('caller'));
    requireCentralBank(services);
    const body = validBody(c, issueBody);
    const amount = parseAmount(services, body.amount);
    return idempotent(services, c, 'cb-issue', 'operator', async (tx) => {
      const row = await readIntermediary(tx, body.intermediary, true);
      if (row === undefined || row.status === 'pending' || row.status === 'refused') return refusal('ACCOUNT_UNKNOWN', `no intermediary ${body.intermediary} is enrolled`);
      if (row.status === 'revoked') return refusal('CERT_REVOKED', `intermediary ${body.intermediary} (${row.name}) is revoked: the central bank issues nothing more to it`);
      const moved = await transfer(tx, {
        idempotencyKey: fitKey(`cb-issue:${idempotencyKey(c)}`),
        debit: ISSUANCE_ACCOUNT,
        credit: reserveAccount(body.intermediary),
        amount: amount.minor,
        kind: CB_ISSUE_KIND,
        currency,
      });
      if (!moved.ok) return refusal(moved.code, moved.message);
      return { status: 200, body: { intermediary: body.intermediary, name: row.name, transfer: transferJson(currency, moved.transfer) } };
    });
  });

  app.post('/v1/cb/operator/revoke', async (c) => {
    requireOperator(c.get('caller'));
    requireCentralBank(services);
    const body = validBody(c, revokeBody);
    return idempotent(services, c, 'cb-revoke', 'operator', async (tx) => {
      await tx.query(ROOT_LIST_LOCK);
      const row = await readIntermediary(tx, body.intermediary, true);
      if (row === undefined || row.certificate === null) return refusal('SUBJECT_UNKNOWN', `no intermediary ${body.intermediary} was certified here`);
      const current = await currentRootList(tx, services);
      if (row.status === 'revoked') return { status: 200, body: { intermediary: body.intermediary, name: row.name, version: current.version, already: true } };
      const serial = decodeCertificate(new Uint8Array(row.certificate)).body.serial;
      const list = decodeRevocationList(current.encoded);
      const next = issueRevocationList({ issuer: rootSigner(services.identity), version: current.version + 1, issuedAt: Math.max(services.now(), list.body.issuedAt), revoked: [...list.body.revoked, serial] });
      await tx.query('INSERT INTO cb_revocation_lists (version, encoded, issued_at) VALUES ($1, $2, to_timestamp($3::bigint / 1000.0))', [BigInt(next.body.version), encodeRevocationList(next), BigInt(next.body.issuedAt)]);
      await tx.query("UPDATE cb_intermediaries SET status = 'revoked', reason = $2, decided_at = now() WHERE key_id = $1", [body.intermediary, body.reason]);
      return { status: 200, body: { intermediary: body.intermediary, name: row.name, version: next.body.version, already: false } };
    });
  });

  app.openapi(getRevocations, async (c) => {
    requireCentralBank(services);
    const current = await services.db.transaction((tx) => currentRootList(tx, services));
    return c.json({ version: current.version, list: toBase64url(current.encoded) }, 200);
  });

  app.openapi(getMovements, async (c) => {
    requireCentralBank(services);
    const caller = requireIntermediary(c.get('caller'));
    const account = reserveAccount(caller.keyId);
    const after = BigInt(c.req.valid('query').after);
    const { rows } = await services.db.query<{ id: bigint; debit_account: string; amount: bigint; kind: string; created_at: Date }>(
      `SELECT id, debit_account, amount, kind, created_at FROM transfers
       WHERE (debit_account = $1 OR credit_account = $1) AND id > $2 ORDER BY id LIMIT ${MOVEMENTS_PAGE_MAX + 1}`,
      [account, after],
    );
    const page = rows.slice(0, MOVEMENTS_PAGE_MAX);
    return c.json(
      {
        reserve: account,
        movements: page.map((r) => ({
          id: Number(bigintColumn(r, 'id')),
          amount: money(bigintColumn(r, 'amount')),
          direction: r.debit_account === account ? ('out' as const) : ('in' as const),
          kind: r.kind,
          at: r.created_at.toISOString(),
        })),
        more: rows.length > MOVEMENTS_PAGE_MAX,
      },
      200,
    );
  });

  app.openAPIRegistry.registerPath(postPosition);
  app.post(postPosition.path, async (c) => {
    requireCentralBank(services);
    const caller = requireIntermediary(c.get('caller'));
    const body = validBody(c, positionBody);
    for (const field of ['reserve', 'unallocated', 'online', 'settlement', 'offlineFloat'] as const) parseAmount(services, body[field]);
    // A report cannot cover movements that never happened (it would also outrank every later honest one).
    const last = await lastMovement(services.db, reserveAccount(caller.keyId));
    if (BigInt(body.cursor) > last) throw new ApiProblem('BODY_INVALID', `body.cursor: the reserve has moved up to ${last} only, not ${body.cursor}`, {});
    // The newest report wins; one that an older cursor makes stale arrives late and is dropped.
    await services.db.query(
      `INSERT INTO cb_positions (key_id, cursor, report, reported_at) VALUES ($1, $2, $3::text::jsonb, now())
       ON CONFLICT (key_id) DO UPDATE SET cursor = EXCLUDED.cursor, report = EXCLUDED.report, reported_at = EXCLUDED.reported_at
       WHERE cb_positions.cursor <= EXCLUDED.cursor`,
      [caller.keyId, BigInt(body.cursor), JSON.stringify(body)],
    );
    return c.json({ recorded: true as const }, 200);
  });
}
