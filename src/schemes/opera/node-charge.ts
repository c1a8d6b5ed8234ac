/**
 * `POST /v1/opera/charge` ("the tokens are initially charged to an ODW by a financial authority",
 * paper §3.3): an ODW asks for tokens by value, signed with its registered device key; the bank
 * debits its holder's account by their sum into the OPERA float, and signs a fresh token for each
 * (a random serial, the value, the currency, the issue date: Table 1's `{SN ‖ value ‖ Issue Date}SK_c`).
 * Every serial is recorded as issued. The answer is bound to the request's nonce, and the same
 * request is answered the same, once (node-answers.ts).
 */
import { randomBytes } from 'node:crypto';
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { toBase64url, toHex } from '../../core/bytes.ts';
import { encodeCbor } from '../../core/cbor.ts';
import { ApiProblem, base64urlOf, errorBody, formatMinor, json, keyIdHex, requireUser, transfer, validBody, type IssuerEnv, type IssuerServices, type TransactionHandle } from '../../issuer/plugin.ts';
import { CHARGE_REQUEST_TAG, CHARGE_TAG, chargeBodyCodec, chargeRequestBodyCodec, chargeRequestCodec, signed, TOKENS_PER_MESSAGE_MAX, type ChargeRequestBody } from './messages.ts';
import { answerOnce } from './node-answers.ts';
import { answer, decodeCborField, DENOMINATIONS, OPERA_FLOAT_ACCOUNT } from './node-common.ts';
import { signToken, TOKEN_SERIAL_BYTES, type Token } from './token.ts';
import { deliverChargeParts, sendChargeParts, shardPlaces } from './node-shards.ts';

/** Most bytes of a signed charge request: a nonce, an amount, up to DENOMINATIONS_MAX counts and a signature. */
export const CHARGE_REQUEST_BYTES_MAX = 2048;

const chargeBody = z.strictObject({
  device: keyIdHex,
  request: base64urlOf(Math.ceil((CHARGE_REQUEST_BYTES_MAX * 4) / 3)).describe('base64url CBOR of a ChargeRequest signed by the device'),
});

const chargeRoute = createRoute({
  method: 'post',
  path: '/charge',
  description:
    "Charges tokens into the caller's ODW: debits the caller's account by the amount and answers the bank-signed tokens (base64url CBOR of a Charge bound to the request's nonce). The same request again answers the same tokens.",
  request: { body: json(chargeBody) },
  responses: {
    200: answer('Charged', z.object({ amount: z.string(), charge: z.string() })),
    401: { description: 'The request is not signed by the device', ...errorBody },
    409: { description: 'A value that is not a denomination, or a nonce used for another request', ...errorBody },
    413: { description: 'More tokens than one message carries', ...errorBody },
    422: { description: 'Funds short, or counts that do not make the amount', ...errorBody },
  },
});

/**
 * The values of the tokens asked for, checked against the published denominations and the amount.
 * @throws ApiProblem OPERA_DENOMINATION_UNKNOWN, TOO_LARGE, OPERA_MESSAGE_INVALID
 */
export function chargedValues(request: ChargeRequestBody): bigint[] {
  let count = 0;
  let sum = 0n;
  for (const [i, { value, count: n }] of request.tokens.entries()) {
    if (!DENOMINATIONS.includes(value)) throw new ApiProblem('OPERA_DENOMINATION_UNKNOWN', `tokens.${i}.value ${value} is not a denomination the bank issues: read the parameters again`);
    count += n;
    sum += value * BigInt(n);
  }
  if (count > TOKENS_PER_MESSAGE_MAX) throw new ApiProblem('TOO_LARGE', `${count} tokens asked for; one charge carries at most ${TOKENS_PER_MESSAGE_MAX}`, { max: TOKENS_PER_MESSAGE_MAX });
  if (sum !== request.amount) throw new ApiProblem('OPERA_MESSAGE_INVALID', `the tokens asked for are worth ${sum}, the request says ${request.amount}`, { reason: 'amount' });
  return request.tokens.flatMap(({ value, count: n }) => Array.from({ length: n }, () => value));
}

/** Records freshly signed tokens as issued into `device`: one statement of one text (its columns as arrays), whatever the count. */
async function recordIssued(tx: TransactionHandle, device: string, tokens: readonly Token[], at: string): Promise<void> {
  if (tokens.length === 0) return;
  await tx.query(
    `INSERT INTO opera_tokens (serial, value, device_key_id, issued_at)
     SELECT decode(s, 'hex'), v, $1, $2 FROM unnest($3::text[], $4::bigint[]) AS x(s, v)`,
    [device, at, tokens.map((token) => toHex(token.body.serial)), tokens.map((token) => token.body.value)],
  );
}

/** Adds `POST /charge`. */
export function registerCharge(app: OpenAPIHono<IssuerEnv>, services: IssuerServices): void {
  app.openAPIRegistry.registerPath(chargeRoute);
  app.post(chargeRoute.path, async (c) => {
    const user = requireUser(c.get('caller'));
    const body = validBody(c, chargeBody);
    const request = decodeCborField('request', body.request, chargeRequestCodec, CHARGE_REQUEST_BYTES_MAX);
    const signedRequest = { user, kind: 'charge', device: body.device, signed: request, codec: chargeRequestBodyCodec, tag: CHARGE_REQUEST_TAG } as const;
    const places = shardPlaces(services);
    const answered = await answerOnce(services, signedRequest, async ({ tx, device, body: asked }) => {
      const values = chargedValues(asked);
      const now = services.now();
      const bank = services.identity.issuerNode.signer;
      const currency = services.currency.code;
      const tokens = values.map((value) => signToken(bank, { serial: new Uint8Array(randomBytes(TOKEN_SERIAL_BYTES)), value, currency, issued: now }));
      if (places !== undefined) {
        // Each shard's part of the value goes to that shard's float, where its tokens will live.
        await sendChargeParts(tx, services, places, { device, account: user.accountId, nonce: asked.nonce, tokens, at: new Date(now).toISOString() });
      } else {
        await chargeHere(tx, services, { device, account: user.accountId, nonce: asked.nonce, amount: asked.amount, tokens, at: new Date(now).toISOString() });
      }
      const charge = signed(chargeBodyCodec, bank, CHARGE_TAG, { nonce: asked.nonce, tokens });
      return { amount: formatMinor(services.currency, asked.amount), charge: toBase64url(encodeCbor(charge)) };
    });
    // On shards: answered once every part is on its shard (a retry delivers what is left).
    if (places !== undefined) await deliverChargeParts(services, places, body.device, request.body.nonce);
    return answered;
  });
}

/** A charge on a node without shard databases: the holder's account pays the float, and the tokens are recorded here. */
async function chargeHere(tx: TransactionHandle, services: IssuerServices, charge: { device: string; account: string; nonce: Uint8Array; amount: bigint; tokens: readonly Token[]; at: string }): Promise<void> {
  const { device, tokens } = charge;
  const moved = await transfer(tx, {
    idempotencyKey: `opera-charge:${device}:${toHex(charge.nonce)}`,
    debit: charge.account,
    credit: OPERA_FLOAT_ACCOUNT,
    amount: charge.amount,
    kind: 'opera-charge',
    reference: { device, tokens: tokens.length },
    currency: services.currency,
  });
  if (!moved.ok) throw new ApiProblem(moved.code, moved.message);
  await recordIssued(tx, device, tokens, charge.at);
}
