/**
 * What a chain-tee wallet (the paper's REE) does on chain from its own account: the on-chain
 * deposit into its offline account (`onchainDeposit`: approve, then `deposit`), and submitting
 * the upload its TEE signed (`reconciliation`). The wallet pays the gas; the contract checks
 * everything the TEE signed, so who submits does not matter.
 */
import { parseEventLogs, TransactionNotFoundError, type Address, type Hash, type Hex, type TransactionReceipt } from 'viem';
import { writeContract, type ChainClients } from '../../wallet/plugin.ts';
import { offlineAccountsAbi, tallyTokenAbi } from './contracts.generated.ts';
import type { UploadItem } from './upload.ts';

/** The contracts a wallet talks to. */
export interface Contracts {
  readonly token: Address;
  readonly contract: Address;
}

/** Token balance of an on-chain address. */
export async function tokenBalance(clients: Pick<ChainClients, 'publicClient'>, contracts: Contracts, owner: Address): Promise<bigint> {
  return clients.publicClient.readContract({ address: contracts.token, abi: tallyTokenAbi, functionName: 'balanceOf', args: [owner] });
}

/** An offline account as the chain holds it. */
export async function accountOnChain(clients: Pick<ChainClients, 'publicClient'>, contracts: Contracts, account: Address): Promise<{ balance: bigint; deposits: bigint; status: number }> {
  const [balance, deposits, status] = await clients.publicClient.readContract({ address: contracts.contract, abi: offlineAccountsAbi, functionName: 'accountOf', args: [account] });
  return { balance, deposits, status };
}

/** Whether the chain knows transaction `hash`, mined or waiting to be (a dev chain killed before it saved its latest blocks forgets them). */
export async function transactionKnown(clients: Pick<ChainClients, 'publicClient'>, hash: Hash): Promise<boolean> {
  try {
    await clients.publicClient.getTransaction({ hash });
    return true;
  } catch (e) {
    if (e instanceof TransactionNotFoundError) return false;
    throw e;
  }
}

/**
 * Deposits `amount` tokens of the wallet's on-chain account into the offline account `account`:
 * an approval when the allowance is short, then the deposit. Answers the deposit's transaction.
 * @throws TallyError CHAIN_REVERTED (too few tokens, a frozen account), and the chain's other codes
 */
export async function depositOnChain(clients: ChainClients, contracts: Contracts, account: Address, amount: bigint): Promise<Hash> {
  const owner = clients.walletClient.account.address;
  const allowance = await clients.publicClient.readContract({ address: contracts.token, abi: tallyTokenAbi, functionName: 'allowance', args: [owner, contracts.contract] });
  if (allowance < amount) await writeContract(clients, { address: contracts.token, abi: tallyTokenAbi, functionName: 'approve', args: [contracts.contract, amount] });
  // The token's errors too, so that a transfer the token refuses (too few tokens) is named.
  const abi = [...offlineAccountsAbi, ...tallyTokenAbi.filter((item) => item.type === 'error')];
  const receipt = await writeContract(clients, { address: contracts.contract, abi, functionName: 'deposit', args: [account, amount] });
  return receipt.transactionHash;
}

/** What a reconciliation did on chain. */
export interface Reconciled {
  readonly transaction: Hash;
  /** False when the contract froze the uploader (an item its TEE should have refused). */
  readonly accepted: boolean;
  readonly gasUsed: bigint;
  readonly events: readonly string[];
}

/**
 * Submits the TEE's upload to `reconcile`.
 * @throws TallyError CHAIN_REVERTED (an upload not signed by the account's enclave, too many items), and the chain's other codes
 */
export async function reconcileOnChain(clients: ChainClients, contracts: Contracts, upload: { account: Address; items: readonly UploadItem[]; signature: Hex }): Promise<Reconciled> {
  const receipt: TransactionReceipt = await writeContract(clients, { address: contracts.contract, abi: offlineAccountsAbi, functionName: 'reconcile', args: [upload.account, [...upload.items], upload.signature] });
  const events = parseEventLogs({ abi: offlineAccountsAbi, logs: receipt.logs }).map((e) => e.eventName);
  // A refused item freezes the uploader and settles nothing: no Reconciled event.
  return { transaction: receipt.transactionHash, accepted: events.includes('Reconciled'), gasUsed: receipt.gasUsed, events };
}
