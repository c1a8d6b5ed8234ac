/**
 * `POST /v1/opera/deposit`: an ODW gives tokens back to the bank, which credits its holder's
 * account with each token that carries the bank's signature and is still issued. A token whose
 * serial was already deposited or refunded is a double spend: nothing is credited for it, a
 * finding names both depositors, and the two copies' escrow tags name the device that paid it twice
 * (node-escrow.ts). A token that does not check, or whose serial the bank never issued, is
 * refused. A token of another bank is presented to it as an interbank claim (node-interbank.ts): the
 * holder is credited once that bank accepts and the central bank has moved the reserves. The
 * receipt is signed by the bank and bound to the request's nonce.
 */
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { compareBytes, toBase64url, toHex } from '../../core/bytes.ts';
import { encodeCbor } from '../../core/cbor.ts';
import type { PublicKey } from '../../core/crypto/suite.ts';
import { isTallyError } from '../../core/errors.ts';
import { ApiProblem, base64urlOf, errorBody, formatMinor, json, keyIdHex, requireUser, transfer, validBody, ROUTE_BODY_BYTES_MAX, type IssuerEnv, type IssuerServices, type JsonValue, type RouteBodyLimit, type TransactionHandle } from '../../issuer/plugin.ts';
import { DEPOSIT_RECEIPT_TAG, DEPOSIT_REQUEST_TAG, depositReceiptBodyCodec, depositRequestBodyCodec, depositRequestCodec, signed, type DepositOutcome } from './messages.ts';
import { answerOnce } from './node-answers.ts';
import { answer, decodeCborField, OPERA_FLOAT_ACCOUNT, TOKENS_REQUEST_BYTES_MAX, TOKENS_REQUEST_CHARS_MAX } from './node-common.ts';
import { recordFinding } from './node-findings.ts';
import { attributeDoubleSpend, encodeTags } from './node-escrow.ts';
import { issuerOf, presentForeignToken, tokenIssuers } from './node-interbank.ts';
import { checkToken, tagsOf, TOKEN_TAG, tokenBodyCodec, type Token } from './token.ts';
import { signedBytes } from '../../core/crypto/record.ts';
import { depositOnShards } from './node-shard-deposit.ts';
import { shardPlaces } from './node-shards.ts';

/** The deposit route takes up to TOKENS_PER_MESSAGE_MAX tokens: more than the node's default body. */
export const DEPOSIT_BODY_LIMIT: RouteBodyLimit = { method: 'POST', path: '/deposit', bytesMax: ROUTE_BODY_BYTES_MAX };

const depositBody = z.strictObject({
  device: keyIdHex,
  request: base64urlOf(TOKENS_REQUEST_CHARS_MAX).describe('base64url CBOR of a DepositRequest signed by the device'),
});

const depositRoute = createRoute({
  method: 'post',
  path: '/deposit',
  description:
    "Deposits tokens from the caller's ODW: credits the caller's account with each token accepted, once, and answers a bank-signed receipt (base64url CBOR of a DepositReceipt bound to the request's nonce) naming each token's outcome.",
  request: { body: json(depositBody) },
  responses: {
    200: answer(
      'Deposited',
      z.object({
        credited: z.string(),
        receipt: z.string(),
        claims: z.array(z.object({ serial: z.string(), claimId: z.string(), status: z.string() }).passthrough()).optional().describe("the claims presented for tokens of other banks (outcome `presented`): each is credited once settled, its state at GET /v1/interbank/claims/{id}"),
      }),
    ),
    401: { description: 'The request is not signed by the device', ...errorBody },
    403: { description: 'The device is revoked', ...errorBody },
  },
});

/**
 * Whether each token carries the bank's signature in the node's currency. Ed25519 signatures are
 * checked in the node's worker threads, as OPS's bulk claims are; one that OpenSSL refuses is
 * checked again by the provider, whose strict check has the last word (signature-pool.ts).
 */
export async function tokensChecked(services: IssuerServices, bank: PublicKey, tokens: readonly Token[]): Promise<boolean[]> {
  const one = (token: Token): boolean => {
    try {
      checkToken(services.provider, bank, services.currency.code, token);
      return true;
    } catch (e) {
      if (isTallyError(e)) return false;
      throw e;
    }
  };
  if (bank.suite !== 'ed25519') return tokens.map(one);
  const messages = tokens.map((token) => {
    try {
      const body = tokenBodyCodec.decode(token.body, TOKEN_TAG);
      return body.currency === services.currency.code ? signedBytes(TOKEN_TAG, body) : undefined;
    } catch (e) {
      if (isTallyError(e)) return undefined;
      throw e;
    }
  });
  const sent = messages.flatMap((message, i) => (message === undefined ? [] : [{ i, check: { publicKey: bank.key, message, signature: (tokens[i] as Token).signature } }]));
  const accepted = await services.signatures.verifyEd25519(sent.map((s) => s.check));
  const ok = tokens.map(() => false);
  sent.forEach((s, k) => {
    ok[s.i] = accepted[k] === true || one(tokens[s.i] as Token);
  });
  return ok;
}

/**
 * Moves a token from issued to `state` for `device`, once: the row's lock makes a concurrent
 * deposit or refund of the serial wait, and find it spent. Answers whether this call moved it, or
 * the device that spent it first; `unknown` for a serial the bank never issued with that value.
 */
export async function spendToken(
  tx: TransactionHandle,
  token: Token,
  spend: { state: 'deposited' | 'refunded'; device: string; at: string; txid?: Uint8Array | undefined },
): Promise<{ spent: true } | { spent: false; first: string | null } | { unknown: true }> {
  // A deposit keeps the token's escrow tags, sealed, for the day its serial comes back.
  const tags = spend.state === 'deposited' ? encodeTags(tagsOf(token)) : null;
  const moved = await tx.query(
    `UPDATE opera_tokens SET state = $3, spent_by = $4, spent_at = $5, txid = $6, tags = $7 WHERE serial = $1 AND value = $2 AND state = 'issued' RETURNING serial`,
    [token.body.serial, token.body.value, spend.state, spend.device, spend.at, spend.txid ?? null, tags],
  );
  if (moved.rowCount === 1) return { spent: true };
  const { rows } = await tx.query<{ spent_by: string | null }>('SELECT spent_by FROM opera_tokens WHERE serial = $1 AND value = $2', [token.body.serial, token.body.value]);
  const row = rows[0];
  return row === undefined ? { unknown: true } : { spent: false, first: row.spent_by };
}

/**
 * Moves a request's tokens from issued to deposited in one statement; answers the (serial, value)
 * pairs it moved (spendKey). Each pair must appear once. Those not moved are looked at one by one (spentBy).
 */
async function depositTokens(tx: TransactionHandle, tokens: readonly Token[], spend: { device: string; at: string }): Promise<Set<string>> {
  if (tokens.length === 0) return new Set();
  const moved = await tx.query<{ serial: Uint8Array; value: bigint }>(
    `UPDATE opera_tokens t SET state = 'deposited', spent_by = $4, spent_at = $5, txid = NULL, tags = decode(NULLIF(x.tags, ''), 'hex')
     FROM unnest(string_to_array($1, ','), string_to_array($2, ',')::bigint[], string_to_array($3, ',')) AS x(serial, value, tags)
     WHERE t.serial = decode(x.serial, 'hex') AND t.value = x.value AND t.state = 'issued'
     RETURNING t.serial, t.value`,
    [tokens.map((t) => toHex(t.body.serial)).join(','), tokens.map((t) => t.body.value.toString()).join(','), tokens.map((t) => {
      const tags = encodeTags(tagsOf(t));
      return tags === null ? '' : toHex(tags);
    }).join(','), spend.device, spend.at],
  );
  return new Set(moved.rows.map((r) => `${toHex(new Uint8Array(r.serial))}:${r.value}`));
}

/** A token's (serial, value), as depositTokens answers them. */
function spendKey(token: Token): string {
  return `${toHex(token.body.serial)}:${token.body.value}`;
}

/** Who spent a token that was not moved, or `unknown` for a serial the bank never issued with that value. */
async function spentBy(tx: TransactionHandle, token: Token): Promise<{ spent: false; first: string | null } | { unknown: true }> {
  const { rows } = await tx.query<{ spent_by: string | null }>('SELECT spent_by FROM opera_tokens WHERE serial = $1 AND value = $2', [token.body.serial, token.body.value]);
  const row = rows[0];
  return row === undefined ? { unknown: true } : { spent: false, first: row.spent_by };
}

/** Adds `POST /deposit`. */
export function registerDeposit(app: OpenAPIHono<IssuerEnv>, services: IssuerServices): void {
  app.openAPIRegistry.registerPath(depositRoute);
  app.post(depositRoute.path, async (c) => {
    const user = requireUser(c.get('caller'));
    const body = validBody(c, depositBody);
    const request = decodeCborField('request', body.request, depositRequestCodec, TOKENS_REQUEST_BYTES_MAX);
    // The bank's signatures are checked before the transaction: the work in it is only the spending.
    const checked = await tokensChecked(services, services.identity.issuerNode.signer.publicKey, request.body.tokens);
    // A token this bank did not sign may be another bank's (docs/opera.md, "Several banks").
    const issuers = checked.every((ok) => ok) ? [] : await tokenIssuers(services);
    const foreign = request.body.tokens.map((token, i) => (checked[i] === true ? undefined : issuerOf(services, issuers, token)));
    const signedRequest = { user, kind: 'deposit', device: body.device, signed: request, codec: depositRequestBodyCodec, tag: DEPOSIT_REQUEST_TAG } as const;
    // On shard databases: the tokens are spent on their shards (node-shard-deposit.ts).
    const places = shardPlaces(services);
    if (places !== undefined) return depositOnShards(services, places, signedRequest, { checked, foreign });
    return answerOnce(services, signedRequest, async ({ tx, device, body: deposited }) => {
      const at = new Date(services.now()).toISOString();
      const outcomes: DepositOutcome[] = deposited.tokens.map((_, i) => (checked[i] === true ? 'credited' : foreign[i] !== undefined ? 'presented' : 'refused'));
      // Spent in the order of their serials, so that concurrent deposits lock rows in one order; the
      // sort keeps the request's order among copies of one serial.
      const taken = outcomes.flatMap((outcome, i) => (outcome === 'credited' || outcome === 'presented' ? [i] : []));
      taken.sort((a, b) => compareBytes((deposited.tokens[a] as Token).body.serial, (deposited.tokens[b] as Token).body.serial));
      // This bank's tokens are spent in one statement, each (serial, value) once: its first copy in order.
      const firsts = new Map<string, Token>();
      for (const i of taken) {
        const token = deposited.tokens[i] as Token;
        if (foreign[i] === undefined && !firsts.has(spendKey(token))) firsts.set(spendKey(token), token);
      }
      const moved = await depositTokens(tx, [...firsts.values()], { device, at });
      // A serial listed twice is settled once: its later copies are refused.
      const settled = new Set<string>();
      const claims: Array<{ [key: string]: JsonValue }> = [];
      let credited = 0n;
      for (const i of taken) {
        const token = deposited.tokens[i] as Token;
        const serial = toHex(token.body.serial);
        const issuer = foreign[i];
        if (issuer !== undefined) {
          if (settled.has(serial)) {
            outcomes[i] = 'refused';
            continue;
          }
          settled.add(serial);
          const done = await presentForeignToken(tx, services, { token, issuer, device, holder: user, at });
          if ('presented' in done) claims.push({ serial, ...Object.fromEntries(Object.entries(done.presented)) });
          else outcomes[i] = 'double-spend';
          continue;
        }
        const spent = settled.has(serial) ? ({ unknown: true } as const) : moved.has(spendKey(token)) && firsts.get(spendKey(token)) === token ? ({ spent: true } as const) : await spentBy(tx, token);
        if ('unknown' in spent) {
          outcomes[i] = 'refused';
          continue;
        }
        settled.add(serial);
        if (spent.spent) credited += token.body.value;
        else {
          outcomes[i] = 'double-spend';
          await recordFinding(tx, services, { kind: 'double-spend', serial: token.body.serial, device, first: spent.first });
          await attributeDoubleSpend(tx, services, { serial: token.body.serial, device, tags: tagsOf(token) });
        }
      }
      if (credited > 0n) {
        const moved = await transfer(tx, {
          idempotencyKey: `opera-deposit:${device}:${toHex(deposited.nonce)}`,
          debit: OPERA_FLOAT_ACCOUNT,
          credit: user.accountId,
          amount: credited,
          kind: 'opera-deposit',
          reference: { device, tokens: outcomes.filter((o) => o === 'credited').length },
          currency: services.currency,
        });
        // Thrown: the tokens spent above roll back with the missing credit.
        if (!moved.ok) throw new ApiProblem(moved.code, `the deposit cannot be credited: ${moved.message}`);
      }
      const receipt = signed(depositReceiptBodyCodec, services.identity.issuerNode.signer, DEPOSIT_RECEIPT_TAG, {
        nonce: deposited.nonce,
        tokens: deposited.tokens.map((token, i) => ({ serial: token.body.serial, outcome: outcomes[i] as DepositOutcome })),
        credited,
      });
      return { credited: formatMinor(services.currency, credited), receipt: toBase64url(encodeCbor(receipt)), ...(claims.length === 0 ? {} : { claims }) };
    });
  });
}
