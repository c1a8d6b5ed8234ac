/**
 * The contracts on the node's chain: deployed by the central bank at the first start on a chain
 * (the token, whose only minter is the bank, then `OfflineAccounts`), found again at every later
 * start. The addresses are kept per chain id, so a data folder pointed at another chain deploys
 * there anew; a chain that lost the contracts (a reset dev chain) is refused at start.
 */
import { getAddress } from 'viem';
import { TallyError } from '../../core/errors.ts';
import { requireChain, type IssuerServices } from '../../issuer/plugin.ts';
import { offlineAccountsAbi, offlineAccountsBytecode, tallyTokenAbi, tallyTokenBytecode } from './contracts.generated.ts';
import { CHAIN_SCHEME } from './messages.ts';
import { bytesOf, hexAddress, rememberDeployment, SETTLE_WINDOW_S, type Deployment } from './node-common.ts';

interface DeploymentRow {
  token: Uint8Array;
  contract: Uint8Array;
  block: string;
  settle_window_s: string;
}

/**
 * Finds or deploys the contracts on the node's chain and remembers them for the routes.
 * @throws TallyError CHAIN_REFUSED when the addresses recorded for this chain hold no code; the chain's errors
 */
export async function ensureDeployed(services: IssuerServices, options: { settleWindowS?: number | undefined } = {}): Promise<Deployment> {
  const chain = requireChain(services, CHAIN_SCHEME);
  const { rows } = await services.db.query<DeploymentRow>('SELECT token, contract, block, settle_window_s FROM chain_deployments WHERE chain_id = $1', [chain.chainId]);
  const row = rows[0];
  if (row !== undefined) {
    const deployment: Deployment = { chainId: chain.chainId, token: hexAddress(new Uint8Array(row.token)), contract: hexAddress(new Uint8Array(row.contract)), block: BigInt(row.block), settleWindowS: Number(row.settle_window_s) };
    for (const address of [deployment.token, deployment.contract]) {
      const code = await chain.publicClient.getCode({ address });
      if (code === undefined || code === '0x') {
        throw new TallyError('CHAIN_REFUSED', `chain ${chain.chainId} has no contract at ${address}, where this node deployed one: the chain was reset or is another one; start the node on its own chain (or a new data folder)`, { reason: 'contracts missing' });
      }
    }
    rememberDeployment(services, deployment);
    return deployment;
  }
  const settleWindowS = options.settleWindowS ?? SETTLE_WINDOW_S;
  const currency = services.currency;
  const token = await chain.deploy({ abi: tallyTokenAbi, bytecode: tallyTokenBytecode, args: [`Tally ${currency.code}`, `t${currency.code}`, currency.decimals, chain.bankAddress] });
  const accounts = await chain.deploy({ abi: offlineAccountsAbi, bytecode: offlineAccountsBytecode, args: [token.address, chain.bankAddress, BigInt(settleWindowS)] });
  const deployment: Deployment = { chainId: chain.chainId, token: getAddress(token.address), contract: getAddress(accounts.address), block: token.receipt.blockNumber, settleWindowS };
  await services.db.query('INSERT INTO chain_deployments (chain_id, token, contract, block, settle_window_s, deployed_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (chain_id) DO NOTHING', [
    chain.chainId,
    bytesOf(deployment.token),
    bytesOf(deployment.contract),
    deployment.block.toString(),
    settleWindowS,
    new Date(services.now()).toISOString(),
  ]);
  rememberDeployment(services, deployment);
  return deployment;
}
