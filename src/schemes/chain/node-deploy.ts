/**
 * The contracts on the node's chain: deployed by the central bank at the first start on a chain
 * (the token, minted by the bank and by the intermediaries it allows, then `OfflineAccounts`), or joined (another bank's deployment), found again at every later
 * start. The addresses are kept per chain id, so a data folder pointed at another chain deploys
 * there anew; a chain that lost the contracts (a reset dev chain) is refused at start.
 */
import { getAddress, type Address } from 'viem';
import { TallyError } from '../../core/errors.ts';
import { requireChain, type ChainService, type IssuerServices } from '../../issuer/plugin.ts';
import { offlineAccountsAbi, offlineAccountsBytecode, tallyTokenAbi, tallyTokenBytecode } from './contracts.generated.ts';
import { CHAIN_SCHEME } from './messages.ts';
import { bytesOf, hexAddress, rememberDeployment, SETTLE_WINDOW_S, type Deployment } from './node-common.ts';

interface DeploymentRow {
  token: Uint8Array;
  contract: Uint8Array;
  block: string;
  settle_window_s: string;
}

/** How a node finds its contracts: its own deployment, or one it joins. */
export interface DeployOptions {
  readonly settleWindowS?: number | undefined;
  /**
   * The `OfflineAccounts` of a deployment another node made on this chain (the currency's shared
   * one, docs/chain.md "Several banks"): this node joins it instead of deploying its own.
   */
  readonly join?: Address | undefined;
}

/** Reads a deployment from its `OfflineAccounts` contract (token, governor, window). */
async function readDeployment(chain: ChainService, contract: Address, block: bigint): Promise<Deployment> {
  const code = await chain.publicClient.getCode({ address: contract });
  if (code === undefined || code === '0x') throw new TallyError('CHAIN_REFUSED', `chain ${chain.chainId} has no contract at ${contract}`, { reason: 'contracts missing' });
  const read = { address: contract, abi: offlineAccountsAbi } as const;
  const [token, bank, window] = await Promise.all([
    chain.publicClient.readContract({ ...read, functionName: 'token' }),
    chain.publicClient.readContract({ ...read, functionName: 'bank' }),
    chain.publicClient.readContract({ ...read, functionName: 'settleWindow' }),
  ]);
  const minter = await chain.publicClient.readContract({ address: token, abi: tallyTokenAbi, functionName: 'minter' });
  if (getAddress(minter) !== getAddress(bank)) throw new TallyError('CHAIN_REFUSED', `the token ${token} of ${contract} is minted by ${minter}, not by the contract's bank ${bank}`, { reason: 'not a Tally deployment' });
  return { chainId: chain.chainId, token: getAddress(token), contract: getAddress(contract), block, settleWindowS: Number(window), bank: getAddress(bank) };
}

/**
 * Finds or deploys the contracts on the node's chain and remembers them for the routes.
 * @throws TallyError CHAIN_REFUSED when the addresses recorded for this chain hold no code; the chain's errors
 */
export async function ensureDeployed(services: IssuerServices, options: DeployOptions = {}): Promise<Deployment> {
  const chain = requireChain(services, CHAIN_SCHEME);
  const { rows } = await services.db.query<DeploymentRow>('SELECT token, contract, block, settle_window_s FROM chain_deployments WHERE chain_id = $1', [chain.chainId]);
  const row = rows[0];
  if (row !== undefined) {
    const contract = hexAddress(new Uint8Array(row.contract));
    for (const address of [hexAddress(new Uint8Array(row.token)), contract]) {
      const code = await chain.publicClient.getCode({ address });
      if (code === undefined || code === '0x') {
        throw new TallyError('CHAIN_REFUSED', `chain ${chain.chainId} has no contract at ${address}, where this node deployed or joined one: the chain was reset or is another one; start the node on its own chain (or a new data folder)`, { reason: 'contracts missing' });
      }
    }
    const deployment = await readDeployment(chain, contract, BigInt(row.block));
    if (options.join !== undefined && getAddress(options.join) !== deployment.contract) {
      throw new TallyError('CHAIN_REFUSED', `this node settles on ${deployment.contract} on chain ${chain.chainId}, not on ${options.join}`, { reason: 'another deployment' });
    }
    rememberDeployment(services, deployment);
    return deployment;
  }
  if (options.join !== undefined) {
    // Joined: events are read from the chain's first block (where it was deployed is not known here).
    const deployment = await readDeployment(chain, getAddress(options.join), 0n);
    await services.db.query('INSERT INTO chain_deployments (chain_id, token, contract, block, settle_window_s, deployed_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (chain_id) DO NOTHING', [
      chain.chainId,
      bytesOf(deployment.token),
      bytesOf(deployment.contract),
      '0',
      deployment.settleWindowS,
      new Date(services.now()).toISOString(),
    ]);
    rememberDeployment(services, deployment);
    return deployment;
  }
  const settleWindowS = options.settleWindowS ?? SETTLE_WINDOW_S;
  const currency = services.currency;
  const token = await chain.deploy({ abi: tallyTokenAbi, bytecode: tallyTokenBytecode, args: [`Tally ${currency.code}`, `t${currency.code}`, currency.decimals, chain.bankAddress] });
  const accounts = await chain.deploy({ abi: offlineAccountsAbi, bytecode: offlineAccountsBytecode, args: [token.address, chain.bankAddress, BigInt(settleWindowS)] });
  const deployment: Deployment = { chainId: chain.chainId, token: getAddress(token.address), contract: getAddress(accounts.address), block: token.receipt.blockNumber, settleWindowS, bank: getAddress(chain.bankAddress) };
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
