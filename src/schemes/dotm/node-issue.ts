/**
 * DOT-M §3.3.2 on the node, account synchronization: an amount moves from the caller's account
 * to `float:dotm` as currency blocks, each presentation signed by the central bank's key or, at an
 * intermediary, by its own key under the central bank's certificate. At an intermediary the account's
 * money came out of its reserve (`cb:reserve`, by `operator mint` or an interbank credit), so the
 * float stays within the reserve the central bank holds for it.
 */
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { fromHex, toBase64url, toHex } from '../../core/bytes.ts';
import { encodeCbor } from '../../core/cbor.ts';
import { randomBytes } from '../../core/crypto/hash.ts';
import { signRecord } from '../../core/crypto/record.ts';
import { keyId } from '../../pki/key-id.ts';
import { ApiProblem, amountText, errorBody, formatMinor, idempotent, isSubjectRevoked, json, keyIdHex, parseAmount, refusal, requireUser, transfer, transferJson, validBody, type IssuerEnv, type IssuerServices, type StoredResponse, type TransactionHandle } from '../../issuer/plugin.ts';
import { BLOCK_SERIAL_BYTES, BLOCKS_PER_PAYMENT_MAX, encodeBlock, PRESENTATION_TAG, presentationDigest, presentationSigned, presentationWire, type Presentation } from './messages.ts';
import { DOTM_FLOAT_ACCOUNT, readWallet } from './node-settlement.ts';
import { answer } from './node-common.ts';

/** Most currency blocks one account synchronization issues (what the TA's `load` takes at once). */
export const ISSUE_BLOCKS_MAX = BLOCKS_PER_PAYMENT_MAX;

const issueBody = z.strictObject({ wallet: keyIdHex, amount: amountText, blocks: z.number().int().min(1).max(ISSUE_BLOCKS_MAX).optional() });

const issueRoute = createRoute({
  method: 'post',
  path: '/issue',
  description: 'DOT-M §3.3.2: moves an amount from the caller\'s account into currency blocks for one of its wallets, each signed by the central bank.',
  request: { body: json(issueBody) },
  responses: { 201: answer('Issued', z.object({ blocks: z.array(z.string()), transfer: z.object({}).passthrough() })), 422: { description: 'Refused (insufficient funds)', ...errorBody } },
});

/** `amount` in `count` parts as equal as possible, the larger ones first. */
export function splitValue(amount: bigint, count: number): bigint[] {
  const n = BigInt(count);
  const base = amount / n;
  const rest = amount % n;
  return Array.from({ length: count }, (_, k) => base + (BigInt(k) < rest ? 1n : 0n));
}

/** §3.3.2: signs `count` presentations for the wallet's user, stores them, moves the value to the float. */
async function issueBlocks(tx: TransactionHandle, services: IssuerServices, caller: { keyId: string; accountId: string }, walletKeyId: string, amount: bigint, count: number): Promise<StoredResponse> {
  const wallet = await readWallet(tx, walletKeyId, { lock: true });
  if (wallet === null || wallet.accountId !== caller.accountId) return refusal('DEVICE_UNKNOWN', `the caller has no DOT-M wallet ${walletKeyId}`);
  if (wallet.revoked || (await isSubjectRevoked(tx, wallet.walletKeyId)) || (await isSubjectRevoked(tx, wallet.userKeyId))) return refusal('CERT_REVOKED', `wallet ${walletKeyId} is revoked`);
  // §3.3.2: the central bank signs each block. A standalone node holds the root key (pk_C) and
  // signs with it; an intermediary enrolled at a central bank holds no root key and signs with its
  // own intermediary key, which the root certified, naming it as the block's issuer (docs/dotm.md,
  // "Several operators"). Any operator's wallet verifies either to the common root.
  const root = services.identity.root.signer;
  const signer = root ?? services.identity.intermediary.signer;
  const issuer = root === undefined ? { issuer: keyId(services.identity.intermediary.certificate.body.subject) } : {};
  const presentations = splitValue(amount, count).map((value): Presentation => {
    const unsigned = { serial: (services.identifiers ?? randomBytes)(BLOCK_SERIAL_BYTES), value, currency: services.currency.code, owner: fromHex(wallet.userKeyId), ...issuer };
    return { ...unsigned, signature: signRecord(signer, PRESENTATION_TAG, presentationSigned(unsigned)) };
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

/** Adds `POST /issue`. */
export function registerIssue(app: OpenAPIHono<IssuerEnv>, services: IssuerServices): void {
  app.openAPIRegistry.registerPath(issueRoute);
  app.post(issueRoute.path, async (c) => {
    const caller = requireUser(c.get('caller'));
    const body = validBody(c, issueBody);
    const amount = parseAmount(services, body.amount).minor;
    const count = body.blocks ?? 1;
    if (amount < BigInt(count)) throw new ApiProblem('AMOUNT_INVALID', `${body.amount} ${services.currency.code} cannot make ${count} blocks of at least ${formatMinor(services.currency, 1n)} ${services.currency.code} each`, {});
    return idempotent(services, c, 'dotm/issue', caller.keyId, (tx) => issueBlocks(tx, services, caller, body.wallet, amount, count));
  });
}
