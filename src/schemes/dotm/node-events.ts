/**
 * DOT-M §3.3.4 on the node, online data updating: each wallet's signed event log, taken in order
 * and settled by node-settlement.ts (§3.3.5's exceptions, §3.4.4's double-spending detection), answered
 * with the node's signed ack and the revocation list; the node's view of a wallet and the findings.
 */
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { fromHex, toBase64url, toHex } from '../../core/bytes.ts';
import { decodeCbor, encodeCbor } from '../../core/cbor.ts';
import { signedBytes, signRecord } from '../../core/crypto/record.ts';
import { suiteFor } from '../../core/crypto/suite.ts';
import { isTallyError } from '../../core/errors.ts';
import { ApiProblem, base64urlOf, currentRevocationList, decodeField, errorBody, formatMinor, idempotent, json, keyIdHex, refusal, requireOperator, requireUser, validBody, type IssuerEnv, type IssuerServices, type JsonValue } from '../../issuer/plugin.ts';
import { EVENT_ACK_TAG, EVENT_TAG, eventAckBodyWire, eventBodyWire, walletEventCodec, type EventAckBody, type WalletEvent } from './online.ts';
import { listFindings, readWallet, settleEvents, type DotmFinding, type DotmWallet, type EventResult } from './node-settlement.ts';
import { answer, schemeRefusal } from './node-common.ts';
import { settlementContext } from './node-interbank.ts';

/** Most events in one upload; the TA keeps up to EVENTS_MAX (32), so it uploads in two requests at worst. */
export const EVENTS_UPLOAD_MAX = 16;
/**
 * Largest encoded event accepted. A payment at the per-payment bounds (20 blocks, 60 earlier
 * records and 20 current ones, §3.2.1) makes an event of about 63 KB with Ed25519 certificates and
 * somewhat more with P-256 or SM2 ones; 96 KiB takes it with room to spare.
 */
export const EVENT_BYTES_MAX = 96 * 1024;
/**
 * The body limit `POST /v1/dotm/events` declares (the node's default is 64 KiB): one event at
 * EVENT_BYTES_MAX is 131,072 characters of base64url, so the largest event fits with a second one
 * and the JSON around them. Wallets send large events one per request.
 */
export const EVENTS_BODY_BYTES_MAX = 256 * 1024;
const EVENT_CHARS_MAX = Math.ceil((EVENT_BYTES_MAX * 4) / 3);
/** Longest message of one event result, so that a full answer stays storable. */
const RESULT_MESSAGE_CHARS_MAX = 300;

const eventsBody = z.strictObject({ wallet: keyIdHex, events: z.array(base64urlOf(EVENT_CHARS_MAX)).max(EVENTS_UPLOAD_MAX) });

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

const eventsRoute = createRoute({
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
});

const walletRoute = createRoute({
  method: 'get',
  path: '/wallets/{keyId}',
  description: 'A DOT-M wallet as the node sees it (owner or operator).',
  request: { params: z.object({ keyId: keyIdHex }) },
  responses: { 200: answer('The wallet', walletSchema) },
});

const fraudRoute = createRoute({
  method: 'get',
  path: '/fraud',
  description: 'Every finding settlement made (operator).',
  responses: { 200: answer('Findings', z.object({ findings: z.array(findingSchema) })) },
});

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

function resultJson(services: IssuerServices, r: EventResult): { [key: string]: JsonValue } {
  return {
    seq: r.seq,
    status: r.status,
    ...(r.code === undefined ? {} : { code: r.code }),
    ...(r.message === undefined ? {} : { message: r.message.slice(0, RESULT_MESSAGE_CHARS_MAX) }),
    ...(r.credited === undefined ? {} : { credited: formatMinor(services.currency, r.credited) }),
    ...(r.refund === undefined ? {} : { refund: r.refund }),
    ...(r.claims === undefined ? {} : { claims: [...r.claims] }),
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

/**
 * The place of the first event not written for this wallet or not signed with its key, or
 * undefined when all are. Ed25519 signatures are checked in the node's worker threads
 * (services.signatures), which take a key known good: the wallet key passed the provider's checks
 * when the wallet registered (its proof of possession). One they refuse is checked again by the
 * provider, whose answer stands (signature-pool.ts); other suites are checked here.
 */
async function firstUnsigned(services: IssuerServices, wallet: DotmWallet, events: readonly WalletEvent[]): Promise<number | undefined> {
  const { suite, key } = wallet.walletKey;
  const messages = events.map((e) => signedBytes(EVENT_TAG, eventBodyWire(e.body)));
  const accepted = suite === 'ed25519' ? await services.signatures.verifyEd25519(events.map((e, k) => ({ publicKey: key, message: messages[k] as Uint8Array, signature: e.signature }))) : events.map(() => false);
  const index = events.findIndex(
    (e, k) => toHex(e.body.wallet) !== wallet.walletKeyId || (accepted[k] !== true && !suiteFor(services.provider, suite).verify(key, e.signature, messages[k] as Uint8Array)),
  );
  return index === -1 ? undefined : index;
}

/** Adds `POST /events`, `GET /wallets/{keyId}` and `GET /fraud`. */
export function registerEvents(app: OpenAPIHono<IssuerEnv>, services: IssuerServices): void {
  const { identity } = services;

  app.openAPIRegistry.registerPath(eventsRoute);
  app.post(eventsRoute.path, async (c) => {
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
      const unsigned = await firstUnsigned(services, wallet, events);
      if (unsigned !== undefined) return refusal('SIGNATURE_INVALID', `body.events.${unsigned} is not signed by wallet ${wallet.walletKeyId}`);
      const outcome = await settleEvents(tx, services, await settlementContext(services, tx, { accountKeyId: caller.keyId }), wallet, events);
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

  app.openapi(walletRoute, async (c) => {
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

  app.openapi(fraudRoute, async (c) => {
    requireOperator(c.get('caller'));
    const findings = await listFindings(services.db);
    return c.json({ findings: findings.map((f) => findingJson(services, f)) }, 200);
  });
}
