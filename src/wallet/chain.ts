/**
 * A wallet's own account on an Ethereum chain: viem clients for the endpoint the node
 * names, sending as a key the wallet keeps, with the same bounded waits and error codes as the node.
 */
import { privateKeyToAccount } from 'viem/accounts';
import type { Hex } from 'viem';
import { chainFor, EMBEDDED_POLL_MS, EXTERNAL_POLL_MS, publicClientFor, walletClientFor, type ChainClients } from '../issuer/chain/client.ts';

export type { ChainClients } from '../issuer/chain/client.ts';
export { writeContract, type ContractWrite } from '../issuer/chain/transactions.ts';

/** Clients of `rpcUrl` (chain `chainId`) sending as the account of `privateKey`. */
export function openChainClients(options: { rpcUrl: string; chainId: number; privateKey: Hex; embedded: boolean }): ChainClients {
  const chain = chainFor(options.chainId, options.rpcUrl, options.embedded);
  const pollMs = options.embedded ? EMBEDDED_POLL_MS : EXTERNAL_POLL_MS;
  return { publicClient: publicClientFor(options.rpcUrl, chain, pollMs), walletClient: walletClientFor(options.rpcUrl, chain, privateKeyToAccount(options.privateKey), pollMs) };
}
