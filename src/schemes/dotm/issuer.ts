/**
 * DOT-M on the issuer node, mounted under `/v1/dotm/`: registration of a wallet (§3.3.1: ucert
 * for the user key, wcert for the wallet key, both from the intermediary), account synchronization
 * (§3.3.2: currency blocks signed by the central bank's key out of the online balance) and online
 * data updating (§3.3.4: each wallet's signed event log, settled by settlement.ts). Value in
 * currency blocks sits in `float:dotm`: issuing moves it there from the holder's account,
 * redemptions and the refunds of exceptional situations 3 and 5 move it back out; offline
 * payments leave it where it is.
 */
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { fromHex, toBase64url, toHex } from '../../core/bytes.ts';
import { decodeCbor, encodeCbor } from '../../core/cbor.ts';
import { randomBytes } from '../../core/crypto/hash.ts';
import { signRecord, verifyRecord } from '../../core/crypto/record.ts';
import { isTallyError } from '../../core/errors.ts';
import type { TransactionHandle } from '../../issuer/db/database.ts';
import type { SchemeModule } from '../../issuer/http/app.ts';
import { requireOperator, requireUser } from '../../issuer/http/auth.ts';
import type { IssuerEnv, IssuerServices } from '../../issuer/http/context.ts';
import { formatMinor, transferJson } from '../../issuer/http/json.ts';
import { ApiProblem } from '../../issuer/http/problem.ts';
import { USER_CERTIFICATE_VALIDITY_MS } from '../../issuer/http/routes-ledger.ts';
import { DEVICE_CERTIFICATE_VALIDITY_MS } from '../../issuer/http/routes-registry.ts';
import { amountText, base64url, base64urlOf, decodeField, errorBody, idempotent, json, keyIdHex, parseAmount, parsePublicKey, publicKeyBody, refusal, validBody } from '../../issuer/http/validate.ts';
import { ensureAccount } from '../../issuer/ledger/account.ts';
import type { JsonValue } from '../../issuer/ledger/json.ts';
import type { StoredResponse } from '../../issuer/ledger/idempotency.ts';
import { transfer } from '../../issuer/ledger/transfer.ts';
import { currentRevocationList, isSubjectRevoked } from '../../issuer/registry/revocations.ts';
import { decodeAttestation, verifyAttestation, type OemAttestation } from '../../pki/attestation.ts';
import { decodeCertificate, encodeCertificate, issueCertificate } from '../../pki/certificate.ts';
import { keyId } from '../../pki/key-id.ts';
import { verifyRegistrationProof } from '../../pki/registration.ts';
import { verifyBlock } from './block.ts';
import { BLOCK_SERIAL_BYTES, BLOCKS_PER_PAYMENT_MAX, DOTM_SCHEME, encodeBlock, PRESENTATION_TAG, presentationDigest, presentationSigned, presentationWire, type Presentation } from './messages.ts';
import { EVENT_ACK_TAG, EVENT_TAG, eventAckBodyWire, eventBodyWire, walletEventCodec, type EventAckBody, type WalletEvent } from './online.ts';
import { DOTM_FLOAT_ACCOUNT, dotmHoldings, listFindings, readWallet, settleEvents, type DotmFinding, type EventResult, type SettlementContext } from './settlement.ts';
import { registerUnlock } from './node-unlock.ts';
import { USER_PROOF_SCHEME } from './trusted-app.ts';

export { DOTM_FLOAT_ACCOUNT } from './settlement.ts';

/** Most currency blocks one account synchronization issues (what the TA's `load` takes at once). */
export const ISSUE_BLOCKS_MAX = BLOCKS_PER_PAYMENT_MAX;
/** Most events in one upload; the TA keeps up to EVENTS_MAX (32), so it uploads in two requests at worst. */
export const EVENTS_UPLOAD_MAX = 16;
/**
 * Largest encoded event accepted. The node's request body limit (BODY_BYTES_MAX, 64 KiB) applies
 * to every route, before routing, and one event's base64url must fit in it with the JSON around
 * it: 47 KiB of CBOR is 64,171 characters. With Ed25519 certificates a record is about 750 bytes
 * and a presentation about 170, so an event fits while its parts carry about 60 records in all;
 * a payment at the per-payment bounds (20 blocks, 60 earlier records and 20 current ones) makes
 * an event of about 63 KB, which cannot be uploaded until the node's body limit is raised for
 * this route. Wallets send large events one per request.
 */
export const EVENT_BYTES_MAX = 47 * 1024;
const EVENT_CHARS_MAX = Math.ceil((EVENT_BYTES_MAX * 4) / 3);
/** Longest message of one event result, so that a full answer stays storable. */
const RESULT_MESSAGE_CHARS_MAX = 300;

const walletBody = z.strictObject({
  userKey: publicKeyBody.describe('upk: the user key made in the trusted app'),
  userProof: base64urlOf(256).describe('usk\'s registration proof over [caller\'s key id, "dotm-user"]'),
  walletKey: publicKeyBody.describe('wpk: the wallet key made in the trusted app'),
  walletProof: base64urlOf(256).describe('wsk\'s registration proof over [key id of upk, "dotm"]'),
  oem: keyIdHex.describe('key id of the OEM whose attestation vouches for the wallet key'),
  attestation: base64url.describe('the OEM attestation of wpk, deterministic CBOR'),
});
const issueBody = z.strictObject({ wallet: keyIdHex, amount: amountText, blocks: z.number().int().min(1).max(ISSUE_BLOCKS_MAX).optional() });
const eventsBody = z.strictObject({ wallet: keyIdHex, events: z.array(base64urlOf(EVENT_CHARS_MAX)).max(EVENTS_UPLOAD_MAX) });

const answer = (description: string, schema: z.ZodType) => ({ description, content: { 'application/json': { schema } } });

const walletSchema = z.object({
  wallet: z.string(),
  user: z.string(),
  account: z.string(),
  lastSeq: z.number().int(),
  revoked: z.boolean(),
  ucert: z.string(),
  wcert: z.string(),
  createdAt: z.string(),
});
const findingSchema = z.object({
  kind: z.string(),
  subject: z.string(),
  serial: z.string().nullable(),
  culprit: z.string(),
  wallet: z.string().nullable(),
  received: z.string().nullable(),
  spent: z.string().nullable(),
  records: z.array(z.string()),
  reason: z.string(),
});

const routes = {
  register: createRoute({
    method: 'post',
    path: '/wallets',
    description: 'DOT-M §3.3.1: registers a wallet\'s user key and wallet key (proofs of possession, OEM attestation of the wallet key); answers ucert and wcert.',
    request: { body: json(walletBody) },
    responses: {
      201: answer('Registered', z.object({ wallet: z.string(), user: z.string(), ucert: z.string(), wcert: z.string() })),
      403: { description: 'Unknown OEM, bad attestation, measurement not allowed, revoked key', ...errorBody },
      409: { description: 'Already registered', ...errorBody },
    },
  }),
  issue: createRoute({
    method: 'post',
    path: '/issue',
    description: 'DOT-M §3.3.2: moves an amount from the caller\'s account into currency blocks for one of its wallets, each signed by the central bank.',
    request: { body: json(issueBody) },
    responses: { 201: answer('Issued', z.object({ blocks: z.array(z.string()), transfer: z.object({}).passthrough() })), 422: { description: 'Refused (insufficient funds)', ...errorBody } },
  }),
  events: createRoute({
    method: 'post',
    path: '/events',
    description: `DOT-M §3.3.4: up to ${EVENTS_UPLOAD_MAX} signed events of a wallet's log, taken in order; answers the node's signed ack, the revocation list, one result per event and the findings.`,
    request: { body: json(eventsBody) },
    responses: {
      200: answer(
        'Taken',
        z.object({
          ack: z.string(),
          crl: z.string(),
          crlVersion: z.number().int(),
          results: z.array(z.object({ seq: z.number().int(), status: z.enum(['taken', 'duplicate', 'refused']) }).passthrough()),
          findings: z.array(findingSchema),
        }),
      ),
      409: { description: 'The events do not continue the log (SEQUENCE_GAP)', ...errorBody },
    },
  }),
  wallet: createRoute({
    method: 'get',
    path: '/wallets/{keyId}',
    description: 'A DOT-M wallet as the node sees it (owner or operator).',
    request: { params: z.object({ keyId: keyIdHex }) },
    responses: { 200: answer('The wallet', walletSchema) },
  }),
  fraud: createRoute({
    method: 'get',
    path: '/fraud',
    description: 'Every finding settlement made (operator).',
    responses: { 200: answer('Findings', z.object({ findings: z.array(findingSchema) })) },
  }),
};

/** A stored refusal with a code of this scheme (the shared ApiErrorCode list does not name them). */
function schemeRefusal(status: number, code: string, message: string): StoredResponse {
  return { status, body: { error: { code, message, details: {} } } };
}

function decodeAttestationField(bytes: Uint8Array): OemAttestation {
  try {
    return decodeAttestation(bytes);
  } catch (e) {
    if (isTallyError(e, 'ATTESTATION_INVALID') || isTallyError(e, 'TOO_LARGE')) throw new ApiProblem('ATTESTATION_INVALID', e.message, { reason: e.message });
    throw e;
  }
}

/** Decodes one uploaded event. @throws ApiProblem BODY_INVALID, TOO_LARGE */
function decodeEvent(field: string, text: string): WalletEvent {
  const bytes = decodeField(`body.${field}`, text);
  if (bytes.length > EVENT_BYTES_MAX) throw new ApiProblem('TOO_LARGE', `body.${field} of ${bytes.length} bytes is over the limit of ${EVENT_BYTES_MAX}`, { max: EVENT_BYTES_MAX });
  try {
    return walletEventCodec.decode(decodeCbor(bytes, { maxBytes: EVENT_BYTES_MAX }), field);
  } catch (e) {
    if (isTallyError(e)) throw new ApiProblem('BODY_INVALID', `body.${field}: ${e.message}`, {});
    throw e;
  }
}

/** `amount` in `count` parts as equal as possible, the larger ones first. */
export function splitValue(amount: bigint, count: number): bigint[] {
  const n = BigInt(count);
  const base = amount / n;
  const rest = amount % n;
  return Array.from({ length: count }, (_, k) => base + (BigInt(k) < rest ? 1n : 0n));
}

function resultJson(services: IssuerServices, r: EventResult): { [key: string]: JsonValue } {
  return {
    seq: r.seq,
    status: r.status,
    ...(r.code === undefined ? {} : { code: r.code }),
    ...(r.message === undefined ? {} : { message: r.message.slice(0, RESULT_MESSAGE_CHARS_MAX) }),
    ...(r.credited === undefined ? {} : { credited: formatMinor(services.currency, r.credited) }),
    ...(r.refund === undefined ? {} : { refund: r.refund }),
  };
}

function findingJson(services: IssuerServices, f: DotmFinding): z.infer<typeof findingSchema> {
  return {
    kind: f.kind,
    subject: f.subject,
    serial: f.serial,
    culprit: f.culprit,
    wallet: f.wallet,
    received: f.received === null ? null : formatMinor(services.currency, f.received),
    spent: f.spent === null ? null : formatMinor(services.currency, f.spent),
    records: [...f.records],
    reason: f.reason,
  };
}

/** §3.3.2: signs `count` presentations for the wallet's user, stores them, moves the value to the float. */
async function issueBlocks(tx: TransactionHandle, services: IssuerServices, caller: { keyId: string; accountId: string }, walletKeyId: string, amount: bigint, count: number): Promise<StoredResponse> {
  const wallet = await readWallet(tx, walletKeyId, { lock: true });
  if (wallet === null || wallet.accountId !== caller.accountId) return refusal('DEVICE_UNKNOWN', `the caller has no DOT-M wallet ${walletKeyId}`);
  if (wallet.revoked || (await isSubjectRevoked(tx, wallet.walletKeyId)) || (await isSubjectRevoked(tx, wallet.userKeyId))) return refusal('CERT_REVOKED', `wallet ${walletKeyId} is revoked`);
  const presentations = splitValue(amount, count).map((value): Presentation => {
    const unsigned = { serial: randomBytes(BLOCK_SERIAL_BYTES), value, currency: services.currency.code, owner: fromHex(wallet.userKeyId) };
    return { ...unsigned, signature: signRecord(services.identity.root.signer, PRESENTATION_TAG, presentationSigned(unsigned)) };
  });
  const first = presentations[0];
  if (first === undefined) return refusal('REQUEST_INVALID', 'no block to issue');
  const moved = await transfer(tx, {
    idempotencyKey: `dotm-issue:${toHex(first.serial)}`,
    debit: caller.accountId,
    credit: DOTM_FLOAT_ACCOUNT,
    amount,
    kind: 'dotm-issue',
    reference: { wallet: walletKeyId, blocks: count },
    currency: services.currency,
  });
  if (!moved.ok) return refusal(moved.code, moved.message);
  const blocks: string[] = [];
  for (const p of presentations) {
    const digest = presentationDigest(p);
    await tx.query('INSERT INTO dotm_blocks (serial, value, currency, owner_key_id, wallet_key_id, presentation, digest) VALUES ($1, $2, $3, $4, $5, $6, $7)', [
      p.serial,
      p.value,
      p.currency,
      wallet.userKeyId,
      walletKeyId,
      encodeCbor(presentationWire(p)),
      digest,
    ]);
    await tx.query('INSERT INTO dotm_nodes (digest, serial, prev, holder_key_id, payer_key_id, amount) VALUES ($1, $2, NULL, $3, NULL, $4)', [digest, p.serial, wallet.userKeyId, p.value]);
    blocks.push(toBase64url(encodeBlock({ presentation: p, records: [], remaining: p.value, count: 0 })));
  }
  return { status: 201, body: { blocks, transfer: transferJson(services.currency, moved.transfer) } };
}

/** The DOT-M scheme's module for the issuer node. */
export const dotmIssuerModule: SchemeModule = {
  name: DOTM_SCHEME,
  migrationsDir: new URL('./migrations/', import.meta.url),

  holdings: (q) => dotmHoldings(q),

  async prepare(services) {
    const opened = await services.db.transaction((tx) => ensureAccount(tx, { id: DOTM_FLOAT_ACCOUNT, kind: 'offline-float', currency: services.currency.code }));
    if (!opened.ok) throw new Error(`cannot open ${DOTM_FLOAT_ACCOUNT}: ${opened.message}`);
  },

  register(app: OpenAPIHono<IssuerEnv>, services: IssuerServices) {
    const { identity, provider } = services;

    /** Settlement's view of the node: paths verify under the root key, at the node's time, whatever was revoked since. */
    const context = (): SettlementContext => {
      const now = services.now();
      return {
        provider,
        intermediary: identity.intermediary.signer,
        now,
        verify: (block) =>
          verifyBlock(block, {
            provider,
            centralBankKey: identity.root.certificate.body.subject,
            trustAnchors: [identity.root.certificate],
            intermediaries: [identity.intermediary.certificate],
            now,
            currency: services.currency.code,
          }),
      };
    };

    app.openAPIRegistry.registerPath(routes.register);
    app.post(routes.register.path, async (c) => {
      const owner = requireUser(c.get('caller'));
      const body = validBody(c, walletBody);
      const user = parsePublicKey(services, 'body.userKey', body.userKey);
      const wallet = parsePublicKey(services, 'body.walletKey', body.walletKey);
      if (user.keyId === wallet.keyId) throw new ApiProblem('BODY_INVALID', 'body.walletKey: the wallet key must differ from the user key', {});
      const attestation = decodeAttestationField(decodeField('body.attestation', body.attestation));
      // usk proves it consents to this account; wsk proves it belongs to that user key (§3.1.3's association).
      if (!verifyRegistrationProof(provider, user.publicKey, { owner: fromHex(owner.keyId), scheme: USER_PROOF_SCHEME }, decodeField('body.userProof', body.userProof))) {
        throw new ApiProblem('SIGNATURE_INVALID', 'the user key\'s proof does not verify for this account', {});
      }
      if (!verifyRegistrationProof(provider, wallet.publicKey, { owner: keyId(user.publicKey), scheme: DOTM_SCHEME }, decodeField('body.walletProof', body.walletProof))) {
        throw new ApiProblem('SIGNATURE_INVALID', 'the wallet key\'s proof does not verify for this user key', {});
      }
      const oemRow = (await services.db.query<{ certificate: Uint8Array }>('SELECT certificate FROM oems WHERE key_id = $1', [body.oem])).rows[0];
      if (oemRow === undefined) throw new ApiProblem('OEM_UNKNOWN', `no OEM with key ${body.oem} is enrolled with this node`, { oem: body.oem });
      const allowed = await services.db.query<{ measurement: Uint8Array }>('SELECT measurement FROM ta_measurements WHERE scheme = $1', [DOTM_SCHEME]);
      const now = services.now();
      try {
        verifyAttestation({
          provider,
          attestation,
          oemCertificate: decodeCertificate(new Uint8Array(oemRow.certificate)),
          trustAnchors: [identity.root.certificate],
          sePublicKey: wallet.publicKey,
          allowedMeasurements: allowed.rows.map((r) => new Uint8Array(r.measurement)),
          now,
        });
      } catch (e) {
        if (isTallyError(e, 'ATTESTATION_INVALID')) throw new ApiProblem('ATTESTATION_INVALID', e.message, { reason: e.details.reason });
        throw e;
      }
      return idempotent(services, c, 'dotm/wallets', owner.keyId, async (tx) => {
        for (const id of [user.keyId, wallet.keyId]) {
          if (await isSubjectRevoked(tx, id)) return refusal('CERT_REVOKED', `key ${id} was revoked and cannot register again`);
        }
        const taken = await tx.query('SELECT 1 FROM dotm_wallets WHERE wallet_key_id IN ($1, $2) OR user_key_id IN ($1, $2)', [user.keyId, wallet.keyId]);
        if (taken.rowCount > 0) return refusal('ALREADY_REGISTERED', `the user key or the wallet key is already registered`);
        const currency = services.currency.code;
        const ucert = issueCertificate({
          issuer: identity.intermediary.signer,
          issuerRole: 'intermediary',
          role: 'user',
          subject: user.publicKey,
          notBefore: now - 60_000,
          notAfter: Math.min(now + USER_CERTIFICATE_VALIDITY_MS, identity.intermediary.certificate.body.notAfter),
          // The account the user key acts for: a payer checks that λ comes from the peer on its link.
          extensions: { currency, owner: fromHex(owner.keyId) },
        });
        const wcert = issueCertificate({
          issuer: identity.intermediary.signer,
          issuerRole: 'intermediary',
          role: 'device',
          subject: wallet.publicKey,
          notBefore: now - 60_000,
          notAfter: Math.min(now + DEVICE_CERTIFICATE_VALIDITY_MS, identity.intermediary.certificate.body.notAfter),
          extensions: { scheme: DOTM_SCHEME, owner: keyId(user.publicKey), currency, deviceModel: attestation.body.model, taMeasurement: attestation.body.taMeasurement },
        });
        const ucertBytes = encodeCertificate(ucert);
        const wcertBytes = encodeCertificate(wcert);
        await tx.query(
          `INSERT INTO dotm_wallets (wallet_key_id, user_key_id, owner_key_id, account_id, wallet_suite, wallet_public_key, user_suite, user_public_key,
             oem_key_id, model, ta_measurement, ucert, wcert, ucert_serial, wcert_serial)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`,
          [
            wallet.keyId,
            user.keyId,
            owner.keyId,
            owner.accountId,
            wallet.publicKey.suite,
            wallet.publicKey.key,
            user.publicKey.suite,
            user.publicKey.key,
            body.oem,
            attestation.body.model,
            attestation.body.taMeasurement,
            ucertBytes,
            wcertBytes,
            ucert.body.serial,
            wcert.body.serial,
          ],
        );
        return { status: 201, body: { wallet: wallet.keyId, user: user.keyId, ucert: toBase64url(ucertBytes), wcert: toBase64url(wcertBytes) } };
      });
    });

    app.openAPIRegistry.registerPath(routes.issue);
    app.post(routes.issue.path, async (c) => {
      const caller = requireUser(c.get('caller'));
      const body = validBody(c, issueBody);
      const amount = parseAmount(services, body.amount).minor;
      const count = body.blocks ?? 1;
      if (amount < BigInt(count)) throw new ApiProblem('AMOUNT_INVALID', `${body.amount} ${services.currency.code} cannot make ${count} blocks of at least ${formatMinor(services.currency, 1n)} ${services.currency.code} each`, {});
      return idempotent(services, c, 'dotm/issue', caller.keyId, (tx) => issueBlocks(tx, services, caller, body.wallet, amount, count));
    });

    app.openAPIRegistry.registerPath(routes.events);
    app.post(routes.events.path, async (c) => {
      const caller = requireUser(c.get('caller'));
      const body = validBody(c, eventsBody);
      const events = body.events.map((text, k) => decodeEvent(`events.${k}`, text));
      for (let k = 1; k < events.length; k++) {
        const [before, at] = [events[k - 1] as WalletEvent, events[k] as WalletEvent];
        if (at.body.seq !== before.body.seq + 1) throw new ApiProblem('BODY_INVALID', `body.events.${k}: seq ${at.body.seq} does not follow ${before.body.seq}; upload the log in order, without gaps`, {});
      }
      return idempotent(services, c, 'dotm/events', caller.keyId, async (tx) => {
        const wallet = await readWallet(tx, body.wallet, { lock: true });
        if (wallet === null || wallet.accountId !== caller.accountId) return refusal('DEVICE_UNKNOWN', `the caller has no DOT-M wallet ${body.wallet}`);
        // Every event must come from the wallet's secure element before any of them is taken.
        for (const [k, event] of events.entries()) {
          if (toHex(event.body.wallet) !== wallet.walletKeyId || !verifyRecord(provider, wallet.walletKey, EVENT_TAG, eventBodyWire(event.body), event.signature)) {
            return refusal('SIGNATURE_INVALID', `body.events.${k} is not signed by wallet ${wallet.walletKeyId}`);
          }
        }
        const outcome = await settleEvents(tx, context(), wallet, events);
        if (!outcome.ok) return schemeRefusal(409, outcome.code, outcome.message);
        const ackBody: EventAckBody = { wallet: fromHex(wallet.walletKeyId), upTo: outcome.lastSeq, time: services.now() };
        const ack = { body: eventAckBodyWire(ackBody), signature: signRecord(identity.issuerNode.signer, EVENT_ACK_TAG, eventAckBodyWire(ackBody)) };
        const crl = await currentRevocationList(tx);
        return {
          status: 200,
          body: {
            ack: toBase64url(encodeCbor(ack)),
            crl: toBase64url(crl.encoded),
            crlVersion: crl.version,
            results: outcome.results.map((r) => resultJson(services, r)),
            findings: outcome.findings.map((f) => findingJson(services, f)),
          },
        };
      });
    });

    app.openapi(routes.wallet, async (c) => {
      const caller = c.get('caller');
      const { keyId: id } = c.req.valid('param');
      const { rows } = await services.db.query<{ user_key_id: string; account_id: string; last_seq: bigint; revoked: boolean; ucert: Uint8Array; wcert: Uint8Array; created_at: Date }>(
        'SELECT user_key_id, account_id, last_seq, revoked, ucert, wcert, created_at FROM dotm_wallets WHERE wallet_key_id = $1',
        [id],
      );
      const row = rows[0];
      if (row === undefined) throw new ApiProblem('DEVICE_UNKNOWN', `no DOT-M wallet ${id}`, {});
      if (caller.kind !== 'operator' && requireUser(caller).accountId !== row.account_id) throw new ApiProblem('FORBIDDEN', 'only the owner or the operator may read a wallet', {});
      return c.json(
        {
          wallet: id,
          user: row.user_key_id,
          account: row.account_id,
          lastSeq: Number(row.last_seq),
          revoked: row.revoked,
          ucert: toBase64url(new Uint8Array(row.ucert)),
          wcert: toBase64url(new Uint8Array(row.wcert)),
          createdAt: row.created_at.toISOString(),
        },
        200,
      );
    });

    registerUnlock(app, services);

    app.openapi(routes.fraud, async (c) => {
      requireOperator(c.get('caller'));
      const findings = await listFindings(services.db);
      return c.json({ findings: findings.map((f) => findingJson(services, f)) }, 200);
    });
  },
};
