/**
 * Unlocking a DOT-M wallet on the issuer node: `POST /v1/dotm/wallets/{keyId}/unlock`. A wallet
 * whose trusted app counted PASSWORD_TRIES_MAX wrong payment passwords in a row is locked (the
 * paper has a retry limit, §3.3.3 preparation 2, but no way back from it). The account holder asks
 * the node in a request signed with its account key; the node checks that the wallet is the
 * caller's and not revoked, and answers an unlock ticket signed with the issuer node's key, which
 * the trusted app verifies (the key its acks verify under) before it resets its count. The ticket
 * names the wallet and its next unlock number, so it opens one lock of one wallet, once.
 */
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { fromHex, toBase64url } from '../../core/bytes.ts';
import { encodeCbor } from '../../core/cbor.ts';
import { signRecord } from '../../core/crypto/record.ts';
import { ApiProblem, errorBody, idempotent, json, keyIdHex, refusal, requireUser, validBody, type IssuerEnv, type IssuerServices } from '../../issuer/plugin.ts';
import { UNLOCK_TICKET_TAG, unlockTicketBodyWire, type UnlockTicketBody } from './online.ts';
import { readWallet } from './node-settlement-model.ts';

const unlockBody = z.strictObject({
  unlock: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER).describe("the wallet's next unlock number: its trusted app's count of unlocks plus one"),
});

/** The route, for the OpenAPI document. */
export const unlockRoute = createRoute({
  method: 'post',
  path: '/wallets/{keyId}/unlock',
  description: "Answers an unlock ticket for one of the caller's DOT-M wallets, signed by the issuer node: the wallet's trusted app then resets its count of wrong payment passwords.",
  request: { params: z.object({ keyId: keyIdHex }), body: json(unlockBody) },
  responses: {
    200: { description: 'The ticket', content: { 'application/json': { schema: z.object({ wallet: z.string(), unlock: z.number().int(), ticket: z.string() }) } } },
    403: { description: 'The wallet is revoked', ...errorBody },
    404: { description: 'The caller has no such wallet (DEVICE_UNKNOWN)', ...errorBody },
  },
});

/** Mounts the unlock route on the DOT-M module's router. */
export function registerUnlock(app: OpenAPIHono<IssuerEnv>, services: IssuerServices): void {
  app.openAPIRegistry.registerPath(unlockRoute);
  app.post('/wallets/:keyId/unlock', async (c) => {
    const caller = requireUser(c.get('caller'));
    const wallet = keyIdHex.safeParse(c.req.param('keyId'));
    if (!wallet.success) throw new ApiProblem('BODY_INVALID', 'keyId: 64 lower-case hex digits', {});
    const body = validBody(c, unlockBody);
    return idempotent(services, c, 'dotm/unlock', caller.keyId, async (tx) => {
      const held = await readWallet(tx, wallet.data);
      if (held === null || held.accountId !== caller.accountId) return refusal('DEVICE_UNKNOWN', `the caller has no DOT-M wallet ${wallet.data}`);
      if (held.revoked) return refusal('FORBIDDEN', `DOT-M wallet ${wallet.data} is revoked: it cannot be unlocked`);
      const ticket: UnlockTicketBody = { wallet: fromHex(held.walletKeyId), unlock: body.unlock, time: services.now() };
      const signature = signRecord(services.identity.issuerNode.signer, UNLOCK_TICKET_TAG, unlockTicketBodyWire(ticket));
      return { status: 200, body: { wallet: held.walletKeyId, unlock: body.unlock, ticket: toBase64url(encodeCbor({ body: unlockTicketBodyWire(ticket), signature })) } };
    });
  });
}
