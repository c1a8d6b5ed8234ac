/**
 * `POST /v1/opera/settle`: an ODW reports a transaction it will no longer finish offline, signed with
 * its registered device key; the bank settles it by the rules of node-settlement.ts and answers a
 * signed Settled record bound to the report's nonce. The report must be the signer's own (its `self`
 * is the SN of the signing device key); a payer's report carries its tokens, each with the bank's
 * signature, as many and worth as much as it says (the amount and the change); a payee with change
 * carries its change tokens the same way; a payee that took the tokens shows the payer's release,
 * which must verify under the payer's registered device key found by its SN.
 */
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { equalBytes, toBase64url, toHex } from '../../core/bytes.ts';
import { encodeCbor } from '../../core/cbor.ts';
import type { PublicKey } from '../../core/crypto/suite.ts';
import { isTallyError } from '../../core/errors.ts';
import { ApiProblem, base64urlOf, errorBody, formatMinor, json, keyIdHex, requireUser, validBody, ROUTE_BODY_BYTES_MAX, type IssuerEnv, type IssuerServices, type RouteBodyLimit, type TransactionHandle } from '../../issuer/plugin.ts';
import { checkSigned, odwSerial, RELEASE_TAG, SETTLE_REPORT_TAG, SETTLED_TAG, settledBodyCodec, settleReportBodyCodec, settleReportCodec, signed, transferClaimCodec, type SettleReportBody } from './messages.ts';
import { answerOnce } from './node-answers.ts';
import { answer, decodeCborField, odwBySerial, TOKENS_REQUEST_BYTES_MAX, TOKENS_REQUEST_CHARS_MAX } from './node-common.ts';
import { applyReport } from './node-settlement.ts';
import { shardPlaces } from './node-shards.ts';
import { checkToken, valueOf } from './token.ts';

/** The settle route takes a payer's report of up to TOKENS_PER_MESSAGE_MAX tokens: more than the node's default body. */
export const SETTLE_BODY_LIMIT: RouteBodyLimit = { method: 'POST', path: '/settle', bytesMax: ROUTE_BODY_BYTES_MAX };

const settleBody = z.strictObject({
  device: keyIdHex,
  report: base64urlOf(TOKENS_REQUEST_CHARS_MAX).describe('base64url CBOR of a SettleReport signed by the device'),
});

const settleRoute = createRoute({
  method: 'post',
  path: '/settle',
  description:
    "Settles a transaction the caller's ODW reports unfinished: refunds the payer's tokens to the caller's account when its payee cannot or will not take them, and answers the outcome for the caller's side with a bank-signed Settled record (base64url CBOR, bound to the report's nonce).",
  request: { body: json(settleBody) },
  responses: {
    200: answer('Settled', z.object({ outcome: z.enum(['refunded', 'paid', 'abandoned', 'pending']), credited: z.string(), settled: z.string() })),
    401: { description: 'The report is not signed by the device', ...errorBody },
    403: { description: "The report is another ODW's, or the device is revoked", ...errorBody },
    501: { description: 'SHARDED_UNSUPPORTED: the node keeps OPERA tokens on shard databases, where this settlement is not built', ...errorBody },
    409: { description: "The report disagrees with the other side's or with this side's earlier one", ...errorBody },
    422: { description: 'A report that does not add up, a token without the bank signature, or a release that does not verify', ...errorBody },
  },
});

/** What is wrong with a report on its own (before any state is read), or null. */
export function reportProblem(services: IssuerServices, bank: PublicKey, body: SettleReportBody): ApiProblem | null {
  const invalid = (reason: string, message: string) => new ApiProblem('OPERA_MESSAGE_INVALID', message, { reason });
  if (equalBytes(body.self, body.partner)) return invalid('partner', 'an ODW cannot be its own partner');
  const change = body.change ?? 0n;
  // A payment moves value: an amount of 0 with change would be a swap the ODWs never make.
  if (body.amount === 0n) return invalid('amount', 'a transaction of 0 minor units');
  if (body.mode === 'receive') {
    if (change === 0n && body.tokens.length > 0) return invalid('tokens', "a payee's report without change carries no tokens");
    if (change > 0n && valueOf(body.tokens) !== change) return invalid('change', `the change tokens are worth ${valueOf(body.tokens)}, the report says ${change}`);
    if (body.accepted === 1 && body.release === undefined) return new ApiProblem('OPERA_RELEASE_INVALID', "a payee that took the tokens shows the payer's release", { reason: 'missing' });
  } else {
    if (body.tokens.length !== body.count) return invalid('count', `the report says ${body.count} tokens and carries ${body.tokens.length}`);
    if (valueOf(body.tokens) !== body.amount + change) return invalid('amount', `the tokens are worth ${valueOf(body.tokens)}, the report says ${body.amount} and change ${change}`);
  }
  const seen = new Set<string>();
  for (const token of body.tokens) {
    const serial = toHex(token.body.serial);
    if (seen.has(serial)) return new ApiProblem('OPERA_TOKEN_INVALID', `token ${serial} is listed twice`, { serial, reason: 'repeated' });
    seen.add(serial);
    try {
      checkToken(services.provider, bank, services.currency.code, token);
    } catch (e) {
      if (isTallyError(e)) return new ApiProblem(e.code, e.message, { ...e.details });
      throw e;
    }
  }
  return null;
}

/**
 * Checks a payee's copy of the payer's release (Msg 3-1): the payer's signature over the transaction
 * as the payee reports it, under the registered device key of the ODW whose SN is the partner.
 * @throws ApiProblem OPERA_RELEASE_INVALID
 */
async function checkRelease(tx: TransactionHandle, services: IssuerServices, body: SettleReportBody, release: Uint8Array): Promise<void> {
  const payer = await odwBySerial(tx, body.partner);
  if (payer === undefined) throw new ApiProblem('OPERA_RELEASE_INVALID', `no registered ODW has serial number ${toHex(body.partner)}`, { reason: 'payer' });
  const claim = { txid: body.txid, payer: body.partner, payee: body.self, amount: body.amount, count: body.count, ...(body.change === undefined ? {} : { change: body.change }) };
  try {
    checkSigned(services.provider, payer.key, transferClaimCodec, RELEASE_TAG, { body: claim, signature: release });
  } catch (e) {
    if (isTallyError(e)) throw new ApiProblem('OPERA_RELEASE_INVALID', `the release of transaction ${toHex(body.txid)} is not signed by its payer ${payer.keyId}`, { reason: 'signature' });
    throw e;
  }
}

/** Adds `POST /settle`. */
export function registerSettle(app: OpenAPIHono<IssuerEnv>, services: IssuerServices): void {
  app.openAPIRegistry.registerPath(settleRoute);
  app.post(settleRoute.path, async (c) => {
    const user = requireUser(c.get('caller'));
    // Refunds and change spend tokens, which on a node with shard databases live on their shards:
    // not built there yet, so refused before anything is read (docs/scale.md).
    if (shardPlaces(services) !== undefined) {
      throw new ApiProblem('SHARDED_UNSUPPORTED', 'this node keeps OPERA tokens on shard databases, where the settlement of unfinished exchanges is not built yet: the report changes nothing here; keep it, and send it to a node without shard databases', {});
    }
    const body = validBody(c, settleBody);
    const report = decodeCborField('report', body.report, settleReportCodec, TOKENS_REQUEST_BYTES_MAX);
    const bank = services.identity.issuerNode.signer;
    // The bank's signatures on the tokens are checked before the transaction; the answer waits for the device's signature.
    const problem = reportProblem(services, bank.publicKey, report.body);
    const signedRequest = { user, kind: 'settle', device: body.device, signed: report, codec: settleReportBodyCodec, tag: SETTLE_REPORT_TAG } as const;
    return answerOnce(services, signedRequest, async ({ tx, device, key, body: reported }) => {
      if (!equalBytes(odwSerial(key), reported.self)) {
        throw new ApiProblem('FORBIDDEN', `the report is for ODW ${toHex(reported.self)}; device ${device} is ODW ${toHex(odwSerial(key))}`);
      }
      if (problem !== null) throw problem;
      if (reported.mode === 'receive' && reported.accepted === 1) await checkRelease(tx, services, reported, reported.release as Uint8Array);
      const { outcome, credited } = await applyReport(tx, services, { device, account: user.accountId, report, body: reported });
      const settled = signed(settledBodyCodec, bank, SETTLED_TAG, { nonce: reported.nonce, txid: reported.txid, outcome, credited });
      return { outcome, credited: formatMinor(services.currency, credited), settled: toBase64url(encodeCbor(settled)) };
    });
  });
}
