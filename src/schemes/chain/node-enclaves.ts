/**
 * `POST /v1/chain/enclaves`: the bank registers a device's enclave key on chain (the contract's
 * `registerEnclave`), so the contract accepts what that TEE attests. The device is the caller's,
 * registered in the shared registry for chain-tee with a secp256k1 key (the OEM attested it), and
 * not revoked. Registering again answers the same; a revoked device is refused (and revoked on
 * chain at the next parameters).
 */
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { ethereumAddress } from '../../core/crypto/ethereum.ts';
import { errorBody, idempotent, isSubjectRevoked, json, keyIdHex, refusal, requireUser, validBody, type IssuerEnv, type IssuerServices } from '../../issuer/plugin.ts';
import { offlineAccountsAbi } from './contracts.generated.ts';
import { CHAIN_SCHEME } from './messages.ts';
import { answer, bytesOf, chainOf, durable, hex32, hexAddress } from './node-common.ts';

const enclaveBody = z.strictObject({ device: keyIdHex });

const enclaveRoute = createRoute({
  method: 'post',
  path: '/enclaves',
  description: "Registers the caller's chain-tee device key as an enclave on chain (the bank's registerEnclave).",
  request: { body: json(enclaveBody) },
  responses: {
    200: answer('Registered', z.object({ device: z.string(), enclave: z.string(), transaction: z.string() })),
    404: { description: 'No such device of the caller for chain-tee', ...errorBody },
  },
});

/** Adds `POST /enclaves`. */
export function registerEnclaves(app: OpenAPIHono<IssuerEnv>, services: IssuerServices): void {
  app.openAPIRegistry.registerPath(enclaveRoute);
  app.post(enclaveRoute.path, async (c) => {
    const user = requireUser(c.get('caller'));
    const body = validBody(c, enclaveBody);
    const { chain, deployment } = chainOf(services);
    return idempotent(services, c, 'chain/enclaves', user.keyId, async (tx) => {
      const { rows } = await tx.query<{ suite: string; public_key: Uint8Array; owner_key_id: string; scheme: string }>('SELECT suite, public_key, owner_key_id, scheme FROM devices WHERE key_id = $1', [body.device]);
      const device = rows[0];
      if (device === undefined || device.owner_key_id !== user.keyId) return refusal('DEVICE_UNKNOWN', `the caller has no device ${body.device}`);
      if (device.scheme !== CHAIN_SCHEME || device.suite !== 'secp256k1') return refusal('DEVICE_UNKNOWN', `device ${body.device} is not a chain-tee enclave (scheme ${device.scheme}, suite ${device.suite})`);
      if (await isSubjectRevoked(tx, body.device)) return refusal('CERT_REVOKED', `device ${body.device} is revoked`);
      const enclave = hexAddress(ethereumAddress({ suite: 'secp256k1', key: new Uint8Array(device.public_key) }));
      const held = await tx.query<{ registered_tx: Uint8Array }>('SELECT registered_tx FROM chain_enclaves WHERE chain_id = $1 AND device_key_id = $2', [deployment.chainId, body.device]);
      let transaction = held.rows[0]?.registered_tx;
      if (transaction === undefined) {
        // A retry after the chain took the registration but the row was not written finds it registered.
        const registered = await chain.publicClient.readContract({ address: deployment.contract, abi: offlineAccountsAbi, functionName: 'registered', args: [enclave] });
        if (registered) transaction = new Uint8Array(32);
        else {
          const receipt = await chain.write({ address: deployment.contract, abi: offlineAccountsAbi, functionName: 'registerEnclave', args: [enclave] });
          // Answered only once a killed anvil cannot lose it: an enclave the chain forgot would freeze its account at the first upload.
          await durable(chain, await chain.publicClient.getBlock({ blockNumber: receipt.blockNumber }));
          transaction = bytesOf(receipt.transactionHash);
        }
        await tx.query('INSERT INTO chain_enclaves (chain_id, device_key_id, enclave, registered_tx, registered_at) VALUES ($1, $2, $3, $4, $5)', [
          deployment.chainId,
          body.device,
          bytesOf(enclave),
          transaction,
          new Date(services.now()).toISOString(),
        ]);
      }
      return { status: 200, body: { device: body.device, enclave, transaction: hex32(new Uint8Array(transaction)) } };
    });
  });
}
