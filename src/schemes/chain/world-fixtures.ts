/**
 * Test support: a world of devices around one anvil deployment. It mints and deposits, uploads
 * (simulating first, to read reconcile's answer, then sending), reads the contract's state, parses
 * its events, checks refusals by their custom error, and checks conservation from the chain's own
 * logs: the contract's token balance = its total = the sum of every account ever credited, and
 * the token's supply = the sum of every holder's balance.
 */
import assert from 'node:assert/strict';
import {
  BaseError,
  ContractFunctionRevertedError,
  decodeErrorResult,
  parseEventLogs,
  type Address,
  type Hex,
  type TransactionReceipt,
  type TypedDataDomain,
} from 'viem';
import type { PrivateKeyAccount } from 'viem/accounts';
import { testAccount, type AnvilEnv } from './anvil-fixtures.ts';
import { offlineAccountsAbi, tallyTokenAbi } from './contracts.generated.ts';
import { ackPayment, chainDomain, makePayment, signUpload, toItem, type Device, type UploadItem } from './upload-fixtures.ts';

/** An event of OfflineAccounts, parsed. */
export type AccountsEvent = ReturnType<typeof parseEventLogs<typeof offlineAccountsAbi>>[number];

/** What one reconcile did. */
export interface Settled {
  /** reconcile's return value: false when the uploader was frozen. */
  readonly result: boolean;
  readonly receipt: TransactionReceipt;
  readonly events: AccountsEvent[];
}

/** The name of the custom error a failed call reverted with (decoded with both contracts' ABIs). */
export async function revertName(call: Promise<unknown>): Promise<string> {
  try {
    await call;
  } catch (error) {
    if (!(error instanceof BaseError)) throw error;
    const reverted = error.walk((e) => e instanceof ContractFunctionRevertedError);
    if (!(reverted instanceof ContractFunctionRevertedError)) throw error;
    if (reverted.data?.errorName !== undefined) return reverted.data.errorName;
    if (reverted.raw !== undefined) return decodeErrorResult({ abi: tallyTokenAbi, data: reverted.raw }).errorName;
    throw error;
  }
  assert.fail('the call was expected to revert');
}

/** Asserts that `call` reverts with the custom error `name`. */
export async function assertReverts(call: Promise<unknown>, name: string): Promise<void> {
  assert.equal(await revertName(call), name);
}

/** Devices, money and uploads on one deployment. */
export class World {
  readonly domain: TypedDataDomain;
  /** Pays gas for uploads: anyone may send a reconcile, the upload signature says whose it is. */
  readonly relayer = testAccount('relayer');
  /** Holds minted tokens and deposits them into accounts. */
  readonly funder = testAccount('funder');

  constructor(readonly env: AnvilEnv) {
    this.domain = chainDomain(env.chain.id, env.accounts);
  }

  /** A device from a label (deterministic keys). */
  device(label: string): Device {
    const key = testAccount(`${label}/account`);
    return { label, enclave: testAccount(`${label}/enclave`), key, address: key.address };
  }

  /** Sends a transaction and waits for its receipt; throws if it reverted. */
  async mined(hash: Hex): Promise<TransactionReceipt> {
    const receipt = await this.env.publicClient.waitForTransactionReceipt({ hash });
    assert.equal(receipt.status, 'success', `transaction ${hash} reverted`);
    return receipt;
  }

  /** The bank registers each device's enclave key. */
  async register(...devices: Device[]): Promise<void> {
    const bank = await this.env.wallet(this.env.bank);
    for (const device of devices) {
      await this.mined(await bank.writeContract({ address: this.env.accounts, abi: offlineAccountsAbi, functionName: 'registerEnclave', args: [device.enclave.address] }));
    }
  }

  /** The bank mints `amount` to `to`. */
  async mint(to: Address, amount: bigint): Promise<void> {
    const bank = await this.env.wallet(this.env.bank);
    await this.mined(await bank.writeContract({ address: this.env.token, abi: tallyTokenAbi, functionName: 'mint', args: [to, amount] }));
  }

  /** `from` approves the contract for `amount`. */
  async approve(from: PrivateKeyAccount, amount: bigint): Promise<void> {
    const wallet = await this.env.wallet(from);
    await this.mined(await wallet.writeContract({ address: this.env.token, abi: tallyTokenAbi, functionName: 'approve', args: [this.env.accounts, amount] }));
  }

  /** Sends deposit(account, amount) from `from` (default: the funder, minted and approved first). */
  async deposit(account: Address, amount: bigint, from?: PrivateKeyAccount): Promise<TransactionReceipt> {
    const sender = from ?? this.funder;
    if (from === undefined) {
      await this.mint(sender.address, amount);
      await this.approve(sender, amount);
    }
    const wallet = await this.env.wallet(sender);
    return this.mined(await wallet.writeContract({ address: this.env.accounts, abi: offlineAccountsAbi, functionName: 'deposit', args: [account, amount] }));
  }

  /** The call of deposit (for refusals: it rejects with the revert). */
  async depositCall(account: Address, amount: bigint, from: PrivateKeyAccount): Promise<Hex> {
    const wallet = await this.env.wallet(from);
    return wallet.writeContract({ address: this.env.accounts, abi: offlineAccountsAbi, functionName: 'deposit', args: [account, amount] });
  }

  /** A payment made by `payer`'s TEE with `payee`'s ack (none if `ok` is undefined or the payee is an address), as an item. */
  async paid(payer: Device, payee: Address | Device, fields: { amount: bigint; counter: bigint; stateBalance: bigint; kind?: number; tGen?: bigint }, ok?: boolean): Promise<UploadItem> {
    const to = typeof payee === 'string' ? payee : payee.address;
    const signed = await makePayment(this.domain, payer, { payee: to, tGen: fields.tGen ?? (await this.now()), ...fields });
    if (ok === undefined || typeof payee === 'string') return toItem(signed);
    return toItem(signed, { ok, sig: await ackPayment(this.domain, payee, signed, ok) });
  }

  /** The uploader's enclave signs the items (unless a signature is given); the relayer sends them. */
  async reconcile(uploader: Device, items: readonly UploadItem[], sig?: Hex): Promise<Settled> {
    const uploadSig = sig ?? (await signUpload(this.domain, uploader.enclave, uploader.address, items));
    const relayer = await this.env.wallet(this.relayer);
    const request = { address: this.env.accounts, abi: offlineAccountsAbi, functionName: 'reconcile', args: [uploader.address, items, uploadSig] } as const;
    const { result } = await this.env.publicClient.simulateContract({ ...request, account: this.relayer });
    const receipt = await this.mined(await relayer.writeContract(request));
    return { result, receipt, events: parseEventLogs({ abi: offlineAccountsAbi, logs: receipt.logs }) };
  }

  /** The call of reconcile (for refusals: it rejects with the revert). */
  async reconcileCall(account: Address, items: readonly UploadItem[], sig: Hex): Promise<Hex> {
    const relayer = await this.env.wallet(this.relayer);
    return relayer.writeContract({ address: this.env.accounts, abi: offlineAccountsAbi, functionName: 'reconcile', args: [account, items, sig] });
  }

  /** The OfflineAccounts events of a receipt. */
  parse(receipt: TransactionReceipt): AccountsEvent[] {
    return parseEventLogs({ abi: offlineAccountsAbi, logs: receipt.logs });
  }

  /** An account's on-chain state. */
  async account(address: Address): Promise<{ balance: bigint; deposits: bigint; status: number; enclave: Address }> {
    const [balance, deposits, status, enclave] = await this.env.publicClient.readContract({ address: this.env.accounts, abi: offlineAccountsAbi, functionName: 'accountOf', args: [address] });
    return { balance, deposits, status, enclave };
  }

  /** An account's on-chain balance. */
  async balance(device: Device | Address): Promise<bigint> {
    return (await this.account(typeof device === 'string' ? device : device.address)).balance;
  }

  /** The state stored for (payer, counter). */
  async paymentState(payer: Address, counter: bigint): Promise<number> {
    const [, state] = await this.env.publicClient.readContract({ address: this.env.accounts, abi: offlineAccountsAbi, functionName: 'paymentOf', args: [payer, counter] });
    return state;
  }

  /** Tokens held by an on-chain address. */
  tokenBalance(holder: Address): Promise<bigint> {
    return this.env.publicClient.readContract({ address: this.env.token, abi: tallyTokenAbi, functionName: 'balanceOf', args: [holder] });
  }

  /** The latest block's timestamp (a tGen for a payment made now). */
  async now(): Promise<bigint> {
    return (await this.env.publicClient.getBlock()).timestamp;
  }

  /** Moves the chain's clock forward (the next block is at least `seconds` later). */
  async advance(seconds: bigint): Promise<void> {
    await this.env.testClient.increaseTime({ seconds: Number(seconds) });
    await this.env.testClient.mine({ blocks: 1 });
  }

  /** Every account the contract ever credited or debited, from its events. */
  async knownAccounts(): Promise<Address[]> {
    const logs = await this.env.publicClient.getLogs({ address: this.env.accounts, fromBlock: 0n });
    const found = new Set<Address>();
    for (const event of parseEventLogs({ abi: offlineAccountsAbi, logs })) {
      if (event.eventName === 'Deposited') found.add(event.args.account);
      if (event.eventName === 'Applied') found.add(event.args.payer).add(event.args.payee);
      if (event.eventName === 'Withdrawn' || event.eventName === 'Closed') found.add(event.args.account);
    }
    return [...found];
  }

  /** Conservation: token balance of the contract = its total = Σ account balances; supply = Σ holders. */
  async assertConservation(): Promise<void> {
    const client = this.env.publicClient;
    const [held, deposited, withdrawn] = await client.readContract({ address: this.env.accounts, abi: offlineAccountsAbi, functionName: 'totals' });
    assert.equal(await this.tokenBalance(this.env.accounts), held, 'the contract holds its total in tokens');
    let sum = 0n;
    for (const account of await this.knownAccounts()) sum += await this.balance(account);
    assert.equal(sum, held, 'the sum of account balances is the total');
    assert.equal(deposited - withdrawn, held);
    const transfers = parseEventLogs({ abi: tallyTokenAbi, logs: await client.getLogs({ address: this.env.token, fromBlock: 0n }), eventName: 'Transfer' });
    const holders = new Set(transfers.map((t) => t.args.to));
    let held2 = 0n;
    for (const holder of holders) held2 += await this.tokenBalance(holder);
    const supply = await client.readContract({ address: this.env.token, abi: tallyTokenAbi, functionName: 'totalSupply' });
    assert.equal(held2, supply, 'the token supply is what its holders hold');
    const minted = transfers.filter((t) => t.args.from === '0x0000000000000000000000000000000000000000').reduce((a, t) => a + t.args.value, 0n);
    assert.equal(supply, minted, 'the supply is what was minted');
  }
}

/** The events of one name in a reconcile's logs. */
export function eventsNamed<N extends AccountsEvent['eventName']>(settled: Settled, name: N): Extract<AccountsEvent, { eventName: N }>[] {
  return settled.events.filter((e): e is Extract<AccountsEvent, { eventName: N }> => e.eventName === name);
}

/** The names of a reconcile's events, in order. */
export function eventNames(settled: Settled): string[] {
  return settled.events.map((e) => e.eventName);
}
