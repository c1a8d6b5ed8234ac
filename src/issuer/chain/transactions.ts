/**
 * Sending to the chain and waiting for the outcome: a transaction submitted and its receipt awaited
 * with a bound, a contract deployed from its ABI and bytecode, a contract function called after a
 * simulation (so a revert is told with the contract's reason before any gas is spent). Failures
 * are TallyErrors (see chain-error.ts); a mined transaction that reverted is CHAIN_REVERTED.
 */
import { encodeDeployData, encodeFunctionData, type Abi, type Address, type Hash, type Hex, type TransactionReceipt } from 'viem';
import { TallyError } from '../../core/errors.ts';
import { toChainError, type ChainErrorContext } from './chain-error.ts';
import type { ChainClients } from './client.ts';
import { publicRpcUrl } from './client.ts';

/** Longest wait for a transaction's receipt after it was sent. */
export const CHAIN_RECEIPT_TIMEOUT_MS = 120_000;

/** A contract to deploy: its ABI, creation bytecode and constructor arguments. */
export interface ContractArtifact {
  readonly abi: Abi;
  readonly bytecode: Hex;
  readonly args?: readonly unknown[] | undefined;
}

/** A call of a contract function that changes state. */
export interface ContractWrite {
  readonly address: Address;
  readonly abi: Abi;
  readonly functionName: string;
  readonly args?: readonly unknown[] | undefined;
  /** Wei sent with the call. */
  readonly value?: bigint | undefined;
}

/** A transaction to send: to an address, or without `to` to create a contract. */
export interface TransactionRequest {
  readonly to?: Address | undefined;
  readonly data?: Hex | undefined;
  readonly value?: bigint | undefined;
}

/** A deployed contract. */
export interface Deployed {
  readonly address: Address;
  readonly receipt: TransactionReceipt;
}

/** Options of the waits. */
export interface ReceiptOptions {
  /** CHAIN_RECEIPT_TIMEOUT_MS by default. */
  readonly receiptTimeoutMs?: number | undefined;
}

function context(clients: ChainClients, what: string, more: Partial<ChainErrorContext> = {}): ChainErrorContext {
  const url = clients.publicClient.transport.url;
  return { what, rpcUrl: typeof url === 'string' ? publicRpcUrl(url) : 'the endpoint', from: clients.walletClient.account.address, ...more };
}

/**
 * Signs and sends a transaction from the wallet client's account; answers its hash once the node
 * took it (gas estimated first: a transaction that would revert is refused here).
 * @throws TallyError CHAIN_REVERTED, CHAIN_NO_GAS, CHAIN_UNREACHABLE, CHAIN_REFUSED
 */
export async function submitTransaction(clients: ChainClients, request: TransactionRequest, what = 'sending a transaction'): Promise<Hash> {
  const { walletClient } = clients;
  try {
    return await walletClient.sendTransaction({
      account: walletClient.account,
      chain: walletClient.chain,
      ...(request.to === undefined ? {} : { to: request.to }),
      ...(request.data === undefined ? {} : { data: request.data }),
      ...(request.value === undefined ? {} : { value: request.value }),
    });
  } catch (e) {
    throw toChainError(e, context(clients, what));
  }
}

/**
 * Waits for the receipt of `hash`, at most `receiptTimeoutMs`.
 * @throws TallyError CHAIN_REVERTED when it was mined and reverted; CHAIN_TIMEOUT, CHAIN_UNREACHABLE
 */
export async function confirmTransaction(clients: ChainClients, hash: Hash, options: ReceiptOptions = {}, what = 'a transaction'): Promise<TransactionReceipt> {
  const timeoutMs = options.receiptTimeoutMs ?? CHAIN_RECEIPT_TIMEOUT_MS;
  let receipt: TransactionReceipt;
  try {
    receipt = await clients.publicClient.waitForTransactionReceipt({ hash, timeout: timeoutMs });
  } catch (e) {
    throw toChainError(e, context(clients, what, { transaction: hash, timeoutMs }));
  }
  if (receipt.status !== 'success') {
    // The estimate passed, so the state changed between the estimate and the block.
    throw new TallyError('CHAIN_REVERTED', `${what} reverted when mined in block ${receipt.blockNumber} (transaction ${hash})`, { reason: 'reverted when mined', transaction: hash });
  }
  return receipt;
}

/**
 * Sends a transaction and waits for its successful receipt.
 * @throws TallyError as submitTransaction and confirmTransaction do
 */
export async function sendAndWait(clients: ChainClients, request: TransactionRequest, options: ReceiptOptions = {}, what = 'a transaction'): Promise<TransactionReceipt> {
  return confirmTransaction(clients, await submitTransaction(clients, request, what), options, what);
}

/** The creation transaction of a contract. */
export function deployRequest(artifact: ContractArtifact): TransactionRequest {
  return { data: encodeDeployData({ abi: artifact.abi, bytecode: artifact.bytecode, args: artifact.args ?? [] }) };
}

/**
 * The transaction of a contract call, after simulating it from the wallet client's account: a call
 * that would revert is refused with the contract's reason and nothing is sent.
 * @throws TallyError CHAIN_REVERTED, CHAIN_UNREACHABLE, CHAIN_REFUSED
 */
export async function writeRequest(clients: ChainClients, call: ContractWrite): Promise<TransactionRequest> {
  const { publicClient, walletClient } = clients;
  try {
    await publicClient.simulateContract({
      account: walletClient.account,
      address: call.address,
      abi: call.abi,
      functionName: call.functionName,
      args: call.args ?? [],
      ...(call.value === undefined ? {} : { value: call.value }),
    });
  } catch (e) {
    throw toChainError(e, context(clients, `${call.functionName} on ${call.address}`));
  }
  return { to: call.address, data: encodeFunctionData({ abi: call.abi, functionName: call.functionName, args: call.args ?? [] }), value: call.value };
}

/**
 * Deploys a contract from the wallet client's account and waits until it is mined.
 * @throws TallyError as sendAndWait does
 */
export async function deployContract(clients: ChainClients, artifact: ContractArtifact, options: ReceiptOptions = {}): Promise<Deployed> {
  const receipt = await sendAndWait(clients, deployRequest(artifact), options, 'deploying a contract');
  if (receipt.contractAddress === null || receipt.contractAddress === undefined) throw new Error(`the receipt of deployment ${receipt.transactionHash} names no contract`);
  return { address: receipt.contractAddress, receipt };
}

/**
 * Calls a contract function from the wallet client's account (simulated first) and waits until it is mined.
 * @throws TallyError as writeRequest and sendAndWait do
 */
export async function writeContract(clients: ChainClients, call: ContractWrite, options: ReceiptOptions = {}): Promise<TransactionReceipt> {
  return sendAndWait(clients, await writeRequest(clients, call), options, `${call.functionName} on ${call.address}`);
}
