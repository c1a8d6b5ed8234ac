/**
 * `GET /v1/chain/params`: the chain a TEE settles on, signed by the issuer node's certified key —
 * the chain id and contracts, the windows, the enclaves revoked, and the latest block and its time
 * (the TEE's lower bound on the time), and the other intermediaries' certificates its TEEs take
 * another bank's customers by. Before answering, the governor revokes on chain the intermediaries
 * the root revoked, and an enclave whose device the registry
 * revoked and the chain does not yet know as revoked is revoked on chain by the bank.
 */
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { toBase64url } from '../../core/bytes.ts';
import { encodeCbor } from '../../core/cbor.ts';
import type { IssuerEnv, IssuerServices } from '../../issuer/plugin.ts';
import { offlineAccountsAbi } from './contracts.generated.ts';
import { paramsBodyCodec, PARAMS_TAG, REVOKED_MAX, signed } from './messages.ts';
import { otherBanks, syncBankRevocations } from './node-banks.ts';
import { answer, bytesOf, chainOf, DRIFT_S, hexAddress } from './node-common.ts';

const paramsRoute = createRoute({
  method: 'get',
  path: '/params',
  description: "The chain's parameters signed by the node (base64url of the CBOR of a signed Params record): chain id, contracts, windows, revoked enclaves, the latest block and its time.",
  responses: { 200: answer('Parameters', z.object({ params: z.string() })) },
});

/** Revokes on chain the enclaves whose devices the registry revoked; answers every revoked enclave. */
export async function syncRevocations(services: IssuerServices): Promise<Uint8Array[]> {
  const { chain, deployment } = chainOf(services);
  const pending = await services.db.query<{ device_key_id: string; enclave: Uint8Array }>(
    `SELECT e.device_key_id, e.enclave FROM chain_enclaves e
      WHERE e.chain_id = $1 AND e.revoked_tx IS NULL
        AND EXISTS (SELECT 1 FROM revoked_certificates r WHERE r.subject_key_id = e.device_key_id)`,
    [deployment.chainId],
  );
  for (const row of pending.rows) {
    const enclave = hexAddress(new Uint8Array(row.enclave));
    const still = await chain.publicClient.readContract({ address: deployment.contract, abi: offlineAccountsAbi, functionName: 'registered', args: [enclave] });
    const receipt = still ? await chain.write({ address: deployment.contract, abi: offlineAccountsAbi, functionName: 'revokeEnclave', args: [enclave] }) : null;
    await services.db.query('UPDATE chain_enclaves SET revoked_tx = $3 WHERE chain_id = $1 AND device_key_id = $2', [deployment.chainId, row.device_key_id, receipt === null ? new Uint8Array(32) : bytesOf(receipt.transactionHash)]);
  }
  const revoked = await services.db.query<{ enclave: Uint8Array }>('SELECT enclave FROM chain_enclaves WHERE chain_id = $1 AND revoked_tx IS NOT NULL ORDER BY enclave LIMIT $2', [deployment.chainId, REVOKED_MAX]);
  return revoked.rows.map((r) => new Uint8Array(r.enclave));
}

/** Adds `GET /params`. */
export function registerParams(app: OpenAPIHono<IssuerEnv>, services: IssuerServices): void {
  app.openAPIRegistry.registerPath(paramsRoute);
  app.get(paramsRoute.path, async (c) => {
    const { chain, deployment } = chainOf(services);
    await syncBankRevocations(services);
    const revoked = await syncRevocations(services);
    const banks = await otherBanks(services);
    const block = await chain.publicClient.getBlock();
    const params = signed(paramsBodyCodec, services.identity.issuerNode.signer, PARAMS_TAG, {
      chainId: BigInt(deployment.chainId),
      contract: bytesOf(deployment.contract),
      token: bytesOf(deployment.token),
      currency: services.currency.code,
      settleWindowS: deployment.settleWindowS,
      driftS: DRIFT_S,
      revoked,
      block: block.number,
      at: Number(block.timestamp) * 1000,
      ...(banks.length === 0 ? {} : { banks }),
    });
    c.header('cache-control', 'no-cache');
    return c.json({ params: toBase64url(encodeCbor(params)) });
  });
}
