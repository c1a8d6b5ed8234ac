/**
 * Several banks on one deployment (docs/chain.md "Several banks"). The node that deployed the
 * contracts governs them; every other intermediary of the currency joins that deployment:
 * - `GET /v1/chain/bank` (any intermediary, public): its chain address on the deployment, signed
 *   with its intermediary key (a record under `tally/chain/bank-address/v1`);
 * - `POST /v1/chain/operator/intermediaries` (the governor's operator): admits such an address on
 *   chain (`admitIntermediary`, then `setMinter`), only for an intermediary whose certificate the
 *   governor holds from the central bank's directory (checked under the root) and the root has not
 *   revoked, and only with that intermediary's signature over the address;
 * - every joining bank publishes its chain address through the central bank's directory (the
 *   scheme's publication, signed with its intermediary key), and at every parameters request the
 *   governor admits those not admitted yet, as the route does;
 * - at every parameters request the governor revokes on chain each admitted intermediary the
 *   root-signed list of intermediaries now names (`revokeIntermediary`, `setMinter(false)`).
 * `otherBanks` gives the certificates a TEE of this bank takes another bank's customers by.
 */
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { getAddress, type Address } from 'viem';
import { fromBase64url, toBase64url, toHex } from '../../core/bytes.ts';
import { decodeCbor, encodeCbor } from '../../core/cbor.ts';
import { isTallyError } from '../../core/errors.ts';
import { ApiProblem, errorBody, idempotent, json, peerIntermediaries, peerPublications, refusal, requireOperator, validBody, type IssuerEnv, type IssuerServices, type Queryable, type StoredResponse } from '../../issuer/plugin.ts';
import { encodeCertificate } from '../../pki/certificate.ts';
import { keyId } from '../../pki/key-id.ts';
import { offlineAccountsAbi, tallyTokenAbi } from './contracts.generated.ts';
import { bankAddressBodyCodec, bankAddressCodec, BANK_ADDRESS_TAG, BANKS_MAX, CHAIN_SCHEME, checkSigned, signed } from './messages.ts';
import { answer, bytesOf, chainOf, durable, governs, hexAddress } from './node-common.ts';

const INTERMEDIARY_ADMITTED = 1;
const INTERMEDIARY_REVOKED = 2;

const bankRoute = createRoute({
  method: 'get',
  path: '/bank',
  description: "This intermediary's chain address on the deployment, signed with its intermediary key (base64url CBOR of a bank-address record): what the deployment's governor admits.",
  responses: {
    200: answer('The address', z.object({ keyId: z.string(), address: z.string(), record: z.string(), admitted: z.boolean(), governor: z.boolean() })),
    409: { description: 'Not an intermediary', ...errorBody },
  },
});

const admitBody = z.strictObject({ keyId: z.string().regex(/^[0-9a-f]{64}$/), record: z.string().max(2048) });

const admitRoute = createRoute({
  method: 'post',
  path: '/operator/intermediaries',
  description: "The deployment's governor admits another intermediary's chain address: it registers its customers' enclaves and mints against its reserve (operator token).",
  request: { body: json(admitBody) },
  responses: {
    200: answer('Admitted', z.object({ keyId: z.string(), address: z.string(), transaction: z.string() })),
    403: { description: 'This node does not govern the deployment, or the intermediary is revoked', ...errorBody },
    404: { description: 'No such intermediary in the directory', ...errorBody },
  },
});

/** Adds `GET /bank` and `POST /operator/intermediaries`. */
export function registerBanks(app: OpenAPIHono<IssuerEnv>, services: IssuerServices): void {
  app.openAPIRegistry.registerPath(bankRoute);
  app.get(bankRoute.path, async (c) => {
    const { identity } = services;
    if (identity.role !== 'intermediary') throw new ApiProblem('ROLE_MISMATCH', `a ${identity.role} node does not join a shared deployment`, { role: identity.role });
    const { chain, deployment } = chainOf(services);
    const record = signed(bankAddressBodyCodec, identity.intermediary.signer, BANK_ADDRESS_TAG, { chainId: BigInt(deployment.chainId), contract: bytesOf(deployment.contract), address: bytesOf(chain.bankAddress) });
    const state = await chain.publicClient.readContract({ address: deployment.contract, abi: offlineAccountsAbi, functionName: 'intermediaryState', args: [chain.bankAddress] });
    return c.json({ keyId: toHex(keyId(identity.intermediary.signer.publicKey)), address: chain.bankAddress, record: toBase64url(encodeCbor(record)), admitted: state === INTERMEDIARY_ADMITTED, governor: governs(chain, deployment) }, 200);
  });

  app.openAPIRegistry.registerPath(admitRoute);
  app.post(admitRoute.path, async (c) => {
    requireOperator(c.get('caller'));
    const body = validBody(c, admitBody);
    const { chain, deployment } = chainOf(services);
    if (!governs(chain, deployment)) throw new ApiProblem('FORBIDDEN', `this node joined the deployment governed by ${deployment.bank}: intermediaries are admitted there`);
    return idempotent(services, c, 'chain/intermediaries', 'operator', async (tx) => {
      const peer = (await peerIntermediaries(services, tx)).find((p) => p.keyId === body.keyId);
      if (peer === undefined) return refusal('BANK_UNKNOWN', `no intermediary ${body.keyId} in the central bank's directory as last synced here`);
      if (peer.revoked) return refusal('CERT_REVOKED', `intermediary ${body.keyId} (${peer.name}) is revoked by the root`);
      let address: Address;
      try {
        const record = bankAddressCodec.decode(decodeCbor(fromBase64url(body.record)));
        const bound = checkSigned(services.provider, peer.certificate.body.subject, bankAddressBodyCodec, BANK_ADDRESS_TAG, record);
        if (bound.chainId !== BigInt(deployment.chainId) || getAddress(hexAddress(bound.contract)) !== deployment.contract) return refusal('REQUEST_INVALID', 'the record names another chain or contract');
        address = getAddress(hexAddress(bound.address));
      } catch (e) {
        if (!isTallyError(e)) throw e;
        return refusal('SIGNATURE_INVALID', `the record is not ${peer.name}'s signature over a chain address: ${e.message}`);
      }
      const admitted = await admitAddress(services, tx, body.keyId, address);
      if ('refused' in admitted) return admitted.refused;
      return { status: 200, body: { keyId: body.keyId, address, transaction: `0x${toHex(admitted.transaction)}` } };
    });
  });
}

/**
 * At the governor: admits `address` on chain for the intermediary `keyId` (already checked: in the
 * directory, not revoked, its signature over the address) and allows it to mint; records it.
 */
async function admitAddress(services: IssuerServices, tx: Queryable, keyIdHex: string, address: Address): Promise<{ transaction: Uint8Array } | { refused: StoredResponse }> {
  const { chain, deployment } = chainOf(services);
  if (address === deployment.bank) return { refused: refusal('REQUEST_INVALID', "that is the governor's own address") };
  const read = { address: deployment.contract, abi: offlineAccountsAbi } as const;
  const state = await chain.publicClient.readContract({ ...read, functionName: 'intermediaryState', args: [address] });
  if (state === INTERMEDIARY_REVOKED) return { refused: refusal('CERT_REVOKED', `chain address ${address} was revoked on this deployment`) };
  const held = await tx.query<{ key_id: string }>('SELECT key_id FROM chain_intermediaries WHERE chain_id = $1 AND address = $2', [deployment.chainId, bytesOf(address)]);
  if (held.rows[0] !== undefined && held.rows[0].key_id !== keyIdHex) return { refused: refusal('ALREADY_REGISTERED', `chain address ${address} is admitted for intermediary ${held.rows[0].key_id}`) };
  let transaction: Uint8Array = new Uint8Array(32);
  if (state !== INTERMEDIARY_ADMITTED) {
    const receipt = await chain.write({ ...read, functionName: 'admitIntermediary', args: [address] });
    transaction = bytesOf(receipt.transactionHash);
  }
  if (!(await chain.publicClient.readContract({ address: deployment.token, abi: tallyTokenAbi, functionName: 'minters', args: [address] }))) {
    const receipt = await chain.write({ address: deployment.token, abi: tallyTokenAbi, functionName: 'setMinter', args: [address, true] });
    await durable(chain, await chain.publicClient.getBlock({ blockNumber: receipt.blockNumber }));
  }
  await tx.query(
    `INSERT INTO chain_intermediaries (chain_id, key_id, address, admitted_tx, admitted_at) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (chain_id, key_id) DO UPDATE SET address = EXCLUDED.address`,
    [deployment.chainId, keyIdHex, bytesOf(address), transaction, new Date(services.now()).toISOString()],
  );
  return { transaction };
}

/**
 * chain-tee's publication (SchemeModule.publication): this intermediary's chain address on the
 * deployment it settles on. The node signs it with its intermediary key and the central bank's
 * directory carries it, so the governor admits the bank at its next parameters without an
 * operator's step. None at a standalone node or at the governor itself.
 */
export async function chainPublication(services: IssuerServices): Promise<Uint8Array | undefined> {
  if (services.identity.role !== 'intermediary') return undefined;
  const { chain, deployment } = chainOf(services);
  if (governs(chain, deployment)) return undefined;
  return encodeCbor(bankAddressBodyCodec.decode({ chainId: BigInt(deployment.chainId), contract: bytesOf(deployment.contract), address: bytesOf(chain.bankAddress) }));
}

/**
 * At the governor: admits every bank not admitted yet that published its chain address on this
 * deployment through the directory (verified there under its certificate) and is not revoked.
 * A publication that does not decode or names another deployment is passed over.
 */
async function admitPublished(services: IssuerServices): Promise<void> {
  const { deployment } = chainOf(services);
  const held = new Set((await services.db.query<{ key_id: string }>('SELECT key_id FROM chain_intermediaries WHERE chain_id = $1', [deployment.chainId])).rows.map((r) => r.key_id));
  for (const peer of await peerPublications(services, CHAIN_SCHEME)) {
    if (peer.revoked || held.has(peer.keyId)) continue;
    let address: Address;
    try {
      const bound = bankAddressBodyCodec.decode(decodeCbor(peer.body));
      if (bound.chainId !== BigInt(deployment.chainId) || getAddress(hexAddress(bound.contract)) !== deployment.contract) continue;
      address = getAddress(hexAddress(bound.address));
    } catch (e) {
      if (isTallyError(e)) continue;
      throw e;
    }
    await services.db.transaction((tx) => admitAddress(services, tx, peer.keyId, address));
  }
}

/**
 * At the governor: admits the banks that published their chain address (admitPublished), and
 * revokes on chain every admitted intermediary that the root's list now names (its enclaves stop
 * counting as registered, it mints no more). Nothing at a node that joined.
 */
export async function syncBankRevocations(services: IssuerServices): Promise<void> {
  const { chain, deployment } = chainOf(services);
  if (!governs(chain, deployment)) return;
  await admitPublished(services);
  const revoked = new Set((await peerIntermediaries(services)).filter((p) => p.revoked).map((p) => p.keyId));
  const { rows } = await services.db.query<{ key_id: string; address: Uint8Array }>('SELECT key_id, address FROM chain_intermediaries WHERE chain_id = $1 AND revoked_tx IS NULL', [deployment.chainId]);
  for (const row of rows) {
    if (!revoked.has(row.key_id)) continue;
    const address = hexAddress(new Uint8Array(row.address));
    const read = { address: deployment.contract, abi: offlineAccountsAbi } as const;
    const state = await chain.publicClient.readContract({ ...read, functionName: 'intermediaryState', args: [address] });
    const receipt = state === INTERMEDIARY_ADMITTED ? await chain.write({ ...read, functionName: 'revokeIntermediary', args: [address] }) : null;
    if (await chain.publicClient.readContract({ address: deployment.token, abi: tallyTokenAbi, functionName: 'minters', args: [address] })) {
      await chain.write({ address: deployment.token, abi: tallyTokenAbi, functionName: 'setMinter', args: [address, false] });
    }
    await services.db.query('UPDATE chain_intermediaries SET revoked_tx = $3 WHERE chain_id = $1 AND key_id = $2', [deployment.chainId, row.key_id, receipt === null ? new Uint8Array(32) : bytesOf(receipt.transactionHash)]);
  }
}

/**
 * The other intermediaries' certificates a TEE of this bank takes payers and payees by: every
 * peer in the central bank's directory (checked under the root when it was synced) that the root
 * has not revoked. Empty at a standalone node.
 */
export async function otherBanks(services: IssuerServices): Promise<Uint8Array[]> {
  const peers = await peerIntermediaries(services);
  return peers
    .filter((p) => !p.revoked)
    .slice(0, BANKS_MAX)
    .map((p) => encodeCertificate(p.certificate));
}
