/**
 * Sending to the chain and waiting for the outcome: a transaction submitted and its receipt awaited
 * with a bound, a contract deployed from its ABI and bytecode, a contract function called after a
 * simulation (so a revert is told with the contract's reason before any gas is spent, and a call
 * that a changed state reverted when mined is simulated and sent again). Failures are TallyErrors
 * (see chain-error.ts); a mined transaction that reverted is CHAIN_REVERTED.
 */
import { encodeDeployData, encodeFunctionData, type Abi, type Address, type Hash, type Hex, type TransactionReceipt } from 'viem';
import { isTallyError, TallyError } from '../../core/errors.ts';
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
    // The estimate passed, so the state changed between the estimate and the block: a path that
    // costs more gas than the estimated one (it ran out of gas), or one that reverts.
    const outOfGas = await ranOutOfGas(clients, receipt);
    const reason = outOfGas ? 'ran out of gas when mined' : 'reverted when mined';
    const detail = outOfGas ? `ran out of gas when mined in block ${receipt.blockNumber}: the state changed after its gas was estimated` : `reverted when mined in block ${receipt.blockNumber}`;
    throw new TallyError('CHAIN_REVERTED', `${what} ${detail} (transaction ${hash})`, { reason, transaction: hash });
  }
  return receipt;
}

/** Whether a reverted transaction used all the gas it was given (unknown: false). */
async function ranOutOfGas(clients: ChainClients, receipt: TransactionReceipt): Promise<boolean> {
  try {
    const sent = await clients.publicClient.getTransaction({ hash: receipt.transactionHash });
    return receipt.gasUsed >= sent.gas;
  } catch {
    return false;
  }
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

/** How many times writeContract sends a call that the block it landed in reverted. */
export const WRITE_ATTEMPTS = 3;

/**
 * Calls a contract function from the wallet client's account (simulated first) and waits until it
 * is mined. A call that passed its simulation and gas estimate and still reverted when mined met a
 * state that changed in between (another sender's transaction mined first: a contract whose cost
 * depends on other accounts' state can then need more gas than was estimated). A reverted
 * transaction changed nothing but the sender's nonce and the gas it paid, so the call is simulated
 * against the new state and sent again, at most WRITE_ATTEMPTS times in all; a call that now
 * reverts is refused by its simulation, with the contract's reason.
 * @throws TallyError as writeRequest and sendAndWait do
 */
export async function writeContract(clients: ChainClients, call: ContractWrite, options: ReceiptOptions = {}): Promise<TransactionReceipt> {
  const what = `${call.functionName} on ${call.address}`;
  for (let attempt = 1; ; attempt++) {
    const request = await writeRequest(clients, call);
    const hash = await submitTransaction(clients, request, what);
    try {
      return await confirmTransaction(clients, hash, options, what);
    } catch (e) {
      if (attempt >= WRITE_ATTEMPTS || !isTallyError(e, 'CHAIN_REVERTED')) throw e;
    }
  }
}
