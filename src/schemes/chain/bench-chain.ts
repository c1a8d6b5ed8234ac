/**
 * The chain side of `bench chain` (Table II): the two contracts deployed on the harness's anvil,
 * transactions timed from their submission to their receipt, the trusted app's upload mapped to the
 * contract's calldata (docs/chain.md "Upload item": compact EIP-2098 signatures, the attestation
 * recomputed by the contract), and what a node reads back after a reconcile to sign its statement.
 *
 * A transaction's time: it is prepared (nonce, gas estimate, fees) and signed first, untimed; the
 * clock runs from `eth_sendRawTransaction` until `eth_getTransactionReceipt` answers, polled without
 * a pause (anvil mines each transaction as it arrives). The same call's execution alone is timed
 * with `eth_call` at the state before it.
 */
import { encodeDeployData, encodeFunctionData, parseEventLogs, TransactionReceiptNotFoundError, type Address, type Hex, type TransactionReceipt } from 'viem';
import { generatePrivateKey, privateKeyToAccount, type PrivateKeyAccount } from 'viem/accounts';
import { fromHex, toHex } from '../../core/bytes.ts';
import type { ChainService } from '../../sim/bench/plugin.ts';
import { offlineAccountsAbi, offlineAccountsBytecode, tallyTokenAbi, tallyTokenBytecode } from './contracts.generated.ts';
import type { PaymentState, SignedAck, TxOff } from './messages.ts';
import type { Domain } from './typed-data.ts';
import { compactSignature, uploadItem, type UploadItem } from './upload.ts';

export { compactSignature, type UploadItem };

/** The token's minor digits (EUR). */
export const TOKEN_DECIMALS = 2;
/** Gas every bench account is given (wei): far more than a run spends. */
const GAS_WEI = 100n * 10n ** 18n;
/** Longest wait for one receipt before the bench gives up. */
const RECEIPT_WAIT_MS = 60_000;

/** A transaction measured: its gas, its time from submission to receipt, and its execution alone. */
export interface Sent {
  readonly gas: bigint;
  readonly ms: number;
  /** `eth_call` of the same transaction at the state before it, ms. */
  readonly callMs: number;
  readonly receipt: TransactionReceipt;
}

/** An on-chain account of the bench that sends transactions. */
export type Sender = PrivateKeyAccount;

/** Bytes as viem's 0x-prefixed hex. */
export const hexOf = (bytes: Uint8Array): Hex => `0x${toHex(bytes)}`;
/** viem's 0x-prefixed hex as bytes. */
export const bytesOf = (hex: Hex): Uint8Array => fromHex(hex.slice(2));

/** A fresh account with gas. */
export async function makeSender(chain: ChainService): Promise<Sender> {
  const account = privateKeyToAccount(generatePrivateKey());
  await chain.fundGas(account.address, GAS_WEI);
  return account;
}

/**
 * Sends `request` from `sender`, timed from submission to receipt.
 * @throws Error when it reverts or no receipt comes within RECEIPT_WAIT_MS
 */
export async function timedSend(chain: ChainService, sender: Sender, request: { to?: Address | undefined; data: Hex }): Promise<Sent> {
  const { walletClient, publicClient } = chain.clientsFor(sender);
  const prepared = await walletClient.prepareTransactionRequest({ account: sender, chain: walletClient.chain, data: request.data, ...(request.to === undefined ? {} : { to: request.to }) });
  const signed = await walletClient.signTransaction(prepared);
  const callStart = performance.now();
  await publicClient.call({ account: sender.address, data: request.data, ...(request.to === undefined ? {} : { to: request.to }) });
  const callMs = performance.now() - callStart;
  const start = performance.now();
  const hash = await publicClient.sendRawTransaction({ serializedTransaction: signed });
  let receipt: TransactionReceipt | undefined;
  while (receipt === undefined) {
    try {
      receipt = await publicClient.getTransactionReceipt({ hash });
    } catch (e) {
      if (!(e instanceof TransactionReceiptNotFoundError)) throw e;
      if (performance.now() - start > RECEIPT_WAIT_MS) throw new Error(`no receipt for ${hash} within ${RECEIPT_WAIT_MS} ms`);
    }
  }
  const ms = performance.now() - start;
  if (receipt.status !== 'success') throw new Error(`transaction ${hash} reverted in block ${receipt.blockNumber}`);
  return { gas: receipt.gasUsed, ms, callMs, receipt };
}

/** The two contracts of one deployment. */
export interface Deployment {
  readonly token: Address;
  readonly accounts: Address;
  readonly domain: Domain;
}

/** Deploys TallyToken (the bank its minter) and OfflineAccounts (the bank its bank) from `deployer`; answers both sends. */
export async function deploy(chain: ChainService, deployer: Sender, settleWindowS: number): Promise<{ deployment: Deployment; token: Sent; accounts: Sent }> {
  const token = await timedSend(chain, deployer, { data: encodeDeployData({ abi: tallyTokenAbi, bytecode: tallyTokenBytecode, args: ['Tally euro', 'EUR', TOKEN_DECIMALS, chain.bankAddress] }) });
  const tokenAddress = contractOf(token);
  const accounts = await timedSend(chain, deployer, {
    data: encodeDeployData({ abi: offlineAccountsAbi, bytecode: offlineAccountsBytecode, args: [tokenAddress, chain.bankAddress, BigInt(settleWindowS)] }),
  });
  const accountsAddress = contractOf(accounts);
  return { deployment: { token: tokenAddress, accounts: accountsAddress, domain: { chainId: BigInt(chain.chainId), contract: bytesOf(accountsAddress) } }, token, accounts };
}

function contractOf(sent: Sent): Address {
  const address = sent.receipt.contractAddress;
  if (address === null || address === undefined) throw new Error(`deployment ${sent.receipt.transactionHash} made no contract`);
  return address;
}

/** The bank registers an enclave key on the deployment. */
export async function registerEnclave(chain: ChainService, deployment: Deployment, enclave: Uint8Array): Promise<void> {
  await chain.write({ address: deployment.accounts, abi: offlineAccountsAbi, functionName: 'registerEnclave', args: [hexOf(enclave)] });
}

/** The bank mints `amount` to `funder`, who lets the contract take it. */
export async function fundFunder(chain: ChainService, deployment: Deployment, funder: Sender, amount: bigint): Promise<void> {
  await chain.write({ address: deployment.token, abi: tallyTokenAbi, functionName: 'mint', args: [funder.address, amount] });
  await timedSend(chain, funder, { to: deployment.token, data: encodeFunctionData({ abi: tallyTokenAbi, functionName: 'approve', args: [deployment.accounts, amount] }) });
}

/** A deposit as the chain recorded it. */
export interface Deposited {
  readonly sent: Sent;
  readonly index: number;
  readonly amount: bigint;
}

/** `funder` deposits `amount` into the offline account `account`. @throws Error without its Deposited event */
export async function depositTo(chain: ChainService, deployment: Deployment, funder: Sender, account: Uint8Array, amount: bigint): Promise<Deposited> {
  const sent = await timedSend(chain, funder, { to: deployment.accounts, data: encodeFunctionData({ abi: offlineAccountsAbi, functionName: 'deposit', args: [hexOf(account), amount] }) });
  const event = parseEventLogs({ abi: offlineAccountsAbi, logs: sent.receipt.logs, eventName: 'Deposited' })[0];
  if (event === undefined || event.args.amount !== amount) throw new Error(`deposit ${sent.receipt.transactionHash} credited no ${amount}`);
  return { sent, index: Number(event.args.index), amount };
}

/** What the trusted app's `onchainUpdate` answers (docs/chain.md: Algorithm 3 `onchainUpdate`). */
export interface TaUpload {
  readonly account: Uint8Array;
  readonly items: readonly { readonly txOff: TxOff; readonly ack?: SignedAck | undefined }[];
  readonly signature: Uint8Array;
}

/** One upload item of the trusted app as the contract takes it. */
export function toUploadItem(item: TaUpload['items'][number]): UploadItem {
  return uploadItem(item.txOff, item.ack);
}

/** The event names of a receipt of the contract, in order. */
export type Reconciled = { readonly sent: Sent; readonly events: readonly string[] };

/** `relayer` sends the upload to `reconcile`. */
export async function reconcile(chain: ChainService, deployment: Deployment, relayer: Sender, upload: TaUpload): Promise<Reconciled> {
  const data = encodeFunctionData({ abi: offlineAccountsAbi, functionName: 'reconcile', args: [hexOf(upload.account), upload.items.map(toUploadItem), hexOf(upload.signature)] });
  const sent = await timedSend(chain, relayer, { to: deployment.accounts, data });
  return { sent, events: parseEventLogs({ abi: offlineAccountsAbi, logs: sent.receipt.logs }).map((e) => e.eventName) };
}

const PAYMENT_STATE_OF: Readonly<Record<number, PaymentState>> = { 0: 'unknown', 1: 'recorded', 2: 'recorded', 3: 'applied', 4: 'failed', 5: 'voided' };
const ACCOUNT_STATUS_OF = { 0: 'open', 1: 'open', 2: 'frozen', 3: 'closed' } as const;

/** An account on chain and the state of some payments, as a node reads them for a statement. */
export interface ChainView {
  readonly status: 'open' | 'frozen' | 'closed';
  readonly balance: bigint;
  readonly payments: { payment: Uint8Array; state: PaymentState; missing: bigint }[];
  readonly block: bigint;
  readonly at: number;
}

/**
 * Reads `account` and each payment (by payer and counter) at the latest block. A payment stored
 * under another hash is a fork branch and reads as unknown (none in the bench).
 */
export async function readAccount(chain: ChainService, deployment: Deployment, account: Uint8Array, payments: readonly { hash: Uint8Array; payer: Uint8Array; counter: bigint }[]): Promise<ChainView> {
  const client = chain.publicClient;
  const block = await client.getBlock();
  const at = { blockNumber: block.number };
  const [balance, , status] = await client.readContract({ address: deployment.accounts, abi: offlineAccountsAbi, functionName: 'accountOf', args: [hexOf(account)], ...at });
  const states = [];
  for (const p of payments) {
    const [stored, state] = await client.readContract({ address: deployment.accounts, abi: offlineAccountsAbi, functionName: 'paymentOf', args: [hexOf(p.payer), p.counter], ...at });
    // The slot holds the hash with its low byte replaced by the state.
    const same = bytesOf(stored).subarray(0, 31).every((b, i) => b === p.hash[i]);
    states.push({ payment: p.hash, state: same ? (PAYMENT_STATE_OF[state] ?? 'unknown') : 'unknown', missing: 0n });
  }
  return { status: ACCOUNT_STATUS_OF[status as 0 | 1 | 2 | 3] ?? 'open', balance, payments: states, block: block.number, at: Number(block.timestamp) * 1000 };
}

/** The contract's totals and a token balance, for the conservation check at the end. */
export async function readTotals(chain: ChainService, deployment: Deployment, holder: Address): Promise<{ held: bigint; deposited: bigint; withdrawn: bigint; contractTokens: bigint; holderTokens: bigint }> {
  const client = chain.publicClient;
  const [held, deposited, withdrawn] = await client.readContract({ address: deployment.accounts, abi: offlineAccountsAbi, functionName: 'totals' });
  const contractTokens = await client.readContract({ address: deployment.token, abi: tallyTokenAbi, functionName: 'balanceOf', args: [deployment.accounts] });
  const holderTokens = await client.readContract({ address: deployment.token, abi: tallyTokenAbi, functionName: 'balanceOf', args: [holder] });
  return { held, deposited, withdrawn, contractTokens, holderTokens };
}
