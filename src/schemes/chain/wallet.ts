/**
 * A chain-tee wallet (the paper's REE): a user at the node, a secure element whose trusted app
 * holds the offline account, and an on-chain account of its own (tokens, gas).
 * - `deposit` (onchainDeposit): tokens from the on-chain account into the offline account, then the
 *   TEE credits them against the node's receipt; a journal step, so a crash after the chain took the
 *   deposit credits it at the next start (deposits are counted on chain: none is sent twice);
 * - `sync` (reconciliation): the TEE's upload on chain, the node's statement back to the TEE;
 *   idempotent, so a crash anywhere is finished by running it again;
 * - `withdraw` and `close` (logout): the TEE signs the pay-out, a sync settles it, `clean` after;
 * - `pay` / `receive`: the offline transfer over TCP with the secure session (session.ts).
 */
import { getAddress, type Address, type Hash, type Hex } from 'viem';
import { fromHex, toHex } from '../../core/bytes.ts';
import { randomBytes } from '../../core/crypto/hash.ts';
import { isTallyError, TallyError } from '../../core/errors.ts';
import {
  connectLink,
  createWalletFolder,
  holdLegacyAccount,
  holdNewAccount,
  listenLink,
  newAccountKey,
  newStepId,
  nodeProvider,
  openChainClients,
  openFolderOf,
  resolveHome,
  startSecureElement,
  WalletShell,
  type ChainClients,
  type LinkSide,
  type Oem,
  type OpenedWallet,
  type ResumeReport,
} from '../../wallet/plugin.ts';
import { depositReceiptCodec, paramsCodec, statementCodec } from './messages.ts';
import { CHAIN_LINK_PROLOGUE, CHAIN_LINK_SCHEME, failureCode, runPayee, runPayer, type SessionOutcome } from './session.ts';
import type { ChainState } from './trusted-app.ts';
import { statementQuery, uploadItem } from './upload.ts';
import { CHAIN_FORMAT, CHAIN_TA, cbor, chainInfo, depositsAnswer, onChainKey, paramsAnswer, provisionDevice, statementAnswer, type ChainCommands, type ChainInfo, type ChainStep, type DepositStep } from './wallet-base.ts';
import { accountOnChain, depositOnChain, reconcileOnChain, tokenBalance, transactionKnown } from './wallet-chain.ts';
import { payeeRole, payerRole } from './wallet-link.ts';

export type { ChainStep } from './wallet-base.ts';

/** The link: anonymous at the Noise layer; the payee binds its account to the session in the terms. */
const LINK_SIDE: LinkSide = { prologue: CHAIN_LINK_PROLOGUE, scheme: CHAIN_LINK_SCHEME };
/** Below this much ETH the on-chain account asks the dev chain's faucet for gas. */
const GAS_WEI_MIN = 10n ** 17n;
/** Most upload rounds one sync runs (each up to 64 payments). */
const SYNC_ROUNDS_MAX = 16;

/** What a payment over the link did. */
export interface TransferResult {
  amount: string;
  credited: boolean;
  /** Earlier payments (a lost ack) settled in this session. */
  resent: number;
  offline: string;
}

/** What a sync did. */
export interface SyncResult {
  uploads: number;
  payments: number;
  freed: number;
  restored: string;
  charged: string;
  gasUsed: string;
  status: string;
  offline: string;
  onChain: string;
  waiting: number;
}

/** An open chain-tee wallet. */
export class ChainWallet extends WalletShell<ChainStep, null, ChainState, ChainCommands> {
  private chainCache: { info: ChainInfo; clients: ChainClients } | null = null;

  private constructor(opened: OpenedWallet<ChainStep, null>) {
    super(opened);
  }

  protected secureElementSpec() {
    return { spec: CHAIN_TA };
  }

  protected async probeSecureElement(): Promise<void> {
    await (await this.startedSe()).call('status', {});
  }

  protected runStep(step: ChainStep): Promise<unknown> {
    return this.runDeposit(step);
  }

  /** The running secure element. */
  se() {
    return this.startedSe();
  }

  /**
   * Creates a wallet: a user at the node, an isolated SE attested by the home's OEM and registered
   * as the user's device (scheme chain), its enclave key registered on chain, the chain's
   * parameters, and the offline account (Algorithm 2).
   * @throws TallyError WALLET_EXISTS, WALLET_UNSUPPORTED (no OEM enrolled), NODE_UNREACHABLE, NODE_REFUSED
   */
  static async create(options: { home: string; name: string; node: string; progress?: (line: string) => void }): Promise<ChainWallet> {
    await createWalletFolder<null>({ ...options, scheme: 'chain', needsOem: true }, async ({ name, node, info, paths, oem, progress, registerUser }) => {
      const account = newAccountKey(randomBytes(32));
      progress('registering the user at the node');
      const registered = await registerUser(account.signer);
      progress('provisioning the isolated secure element');
      const host = await startSecureElement(CHAIN_TA, paths, true);
      try {
        const device = await provisionDevice(host, { node, info, oem: oem as Oem, user: account.signer, owner: registered.keyId, progress });
        const held = await holdNewAccount(account, { slot: host });
        await host.close();
        const data = { name, scheme: 'chain', node: node.url, currency: info.currency, createdAt: Date.now(), user: { held, keyId: registered.keyId, account: registered.account, certificate: registered.certificate }, device: { keyId: device.keyId, certificate: device.certificate }, certificates: info.certificates };
        return { data, detail: `secure element ${device.keyId}, offline account ${device.account}` };
      } catch (e) {
        await host.kill();
        throw e;
      }
    });
    return ChainWallet.open(options.home, options.name);
  }

  /** Opens a wallet under its lock. */
  static async open(home: string, name: string): Promise<ChainWallet> {
    const opened = await openFolderOf(home, name, 'chain', CHAIN_FORMAT, { account: holdLegacyAccount(CHAIN_TA.app) });
    try {
      return new ChainWallet(opened);
    } catch (e) {
      opened.book.close();
      await opened.unlock();
      throw e;
    }
  }

  /** Finishes the steps a crash cut short. */
  resume(): Promise<ResumeReport> {
    return this.resumeSteps();
  }

  /** The chain, its contracts, and clients sending from the wallet's on-chain account. */
  async chain(): Promise<{ info: ChainInfo; clients: ChainClients }> {
    if (this.chainCache === null) {
      const info = await chainInfo(this.node);
      const clients = await openChainClients({ rpcUrl: info.rpcUrl, chainId: info.chainId, privateKey: onChainKey(await this.accountSigner()), embedded: info.embedded });
      this.chainCache = { info, clients };
    }
    return this.chainCache;
  }

  /**
   * Makes sure the on-chain account can pay gas: on the node's embedded dev chain its faucet tops
   * it up; elsewhere the holder funds it (a send fails with CHAIN_NO_GAS naming the address).
   */
  async ensureGas(): Promise<void> {
    const { info, clients } = await this.chain();
    if (!info.embedded) return;
    const address = clients.walletClient.account.address;
    if ((await clients.publicClient.getBalance({ address })) >= GAS_WEI_MIN) return;
    await this.node.signed(await this.accountSigner(), 'POST', '/v1/chain/gas', { body: { address } });
  }

  /** The wallet's own on-chain address. */
  async onChainAddress(): Promise<Address> {
    return (await this.chain()).clients.walletClient.account.address;
  }

  /** The offline account's address. */
  async account(): Promise<Address> {
    const { account } = await this.status();
    if (account === undefined) throw new TallyError('WALLET_UNSUPPORTED', `wallet ${this.name} has no offline account (it was closed)`, { name: this.name, reason: 'account closed' });
    return getAddress(`0x${toHex(account)}`);
  }

  /** What the TA holds. */
  async status() {
    return (await this.se()).call('status', {});
  }

  /** The node's chain parameters, given to the TA (its clock and revocations move forward). */
  async refreshParams(): Promise<void> {
    const answer = await this.node.call('GET', '/v1/chain/params', { answer: paramsAnswer });
    await (await this.se()).call('setParams', { params: cbor(paramsCodec, answer.body.params, 'params') }).catch((e: unknown) => {
      if (!(isTallyError(e, 'SE_REJECTED') && e.details.reason === 'CHAIN_STALE')) throw e;
    });
  }

  /** onchainDeposit: `amountText` from the on-chain account into the offline account; the TEE credits it against the node's receipt. */
  async deposit(amountText: string): Promise<{ amount: string; transaction: string; offline: string }> {
    const amount = this.parseAmount(amountText);
    const { info, clients } = await this.chain();
    const before = (await accountOnChain(clients, info.contracts, await this.account())).deposits;
    const step: DepositStep = { kind: 'chain-deposit', id: newStepId(), amount: amount.toString(), before: before.toString() };
    await this.begin(step);
    const transaction = await this.runDeposit(step);
    return { amount: this.format(amount), transaction, offline: this.format((await this.status()).balance) };
  }

  private async runDeposit(step: DepositStep): Promise<string> {
    const { info, clients } = await this.chain();
    const account = await this.account();
    const onChain = await accountOnChain(clients, info.contracts, account);
    // More deposits on chain than before the step: it landed, perhaps before a crash; credit, do not
    // send again. None more: never sent, or sent and mined and then lost by a dev chain killed
    // before it saved the block (the chain no longer knows the transaction): sent now.
    const landed = onChain.deposits > BigInt(step.before);
    if (!landed && (step.transaction === undefined || !(await transactionKnown(clients, step.transaction as Hash)))) {
      await this.ensureGas();
      step.transaction = await depositOnChain(clients, info.contracts, account, BigInt(step.amount));
      await this.update(step);
    }
    await this.creditDeposits();
    await this.finish(step, { at: Date.now(), kind: 'deposit', amount: this.format(BigInt(step.amount)), detail: step.transaction === undefined ? 'on chain before a crash; credited' : `on chain in ${step.transaction}` });
    return step.transaction ?? '';
  }

  /** Credits, in order, every deposit the chain holds for the offline account that the TEE has not credited yet. */
  async creditDeposits(): Promise<number> {
    const { info, clients } = await this.chain();
    const account = await this.account();
    const se = await this.se();
    const onChain = Number((await accountOnChain(clients, info.contracts, account)).deposits);
    let credited = 0;
    for (let index = (await this.status()).deposits; index < onChain; index = (await this.status()).deposits) {
      const logs = await clients.publicClient.getContractEvents({ address: info.contracts.contract, abi: (await import('./contracts.generated.ts')).offlineAccountsAbi, eventName: 'Deposited', args: { account }, fromBlock: 0n });
      const log = logs.find((l) => Number(l.args.index) === index);
      if (log === undefined) throw new TallyError('CHAIN_REFUSED', `deposit ${index} of ${account} is counted on chain but its event is not found`, { reason: 'deposit event missing' });
      const answer = await this.node.call('GET', `/v1/chain/deposits/${log.transactionHash}`, { answer: depositsAnswer });
      const mine = answer.body.deposits.find((d) => d.index === index && `0x${toHex(cbor(depositReceiptCodec, d.receipt, 'receipt').body.account)}` === account.toLowerCase());
      if (mine === undefined) throw new TallyError('CHAIN_REFUSED', `the node gave no receipt of deposit ${index}`, { reason: 'no receipt' });
      await se.call('deposit', { receipt: cbor(depositReceiptCodec, mine.receipt, 'receipt') });
      credited++;
    }
    return credited;
  }

  /** Reconciliation: uncredited deposits credited, fresh parameters, the TEE's uploads on chain and the node's statements back. */
  async sync(): Promise<SyncResult> {
    await this.refreshParams();
    if ((await this.status()).account !== undefined) await this.creditDeposits();
    const se = await this.se();
    const { info, clients } = await this.chain();
    let uploads = 0;
    let payments = 0;
    let freed = 0;
    let restored = 0n;
    let charged = 0n;
    let gasUsed = 0n;
    for (let round = 0; round < SYNC_ROUNDS_MAX; round++) {
      const upload = await se.call('onchainUpdate', {});
      if (upload.items.length === 0) break;
      const account = `0x${toHex(upload.account)}` as Address;
      await this.ensureGas();
      const done = await reconcileOnChain(clients, info.contracts, { account, items: upload.items.map((i) => uploadItem(i.txOff, i.ack)), signature: `0x${toHex(upload.signature)}` as Hex });
      uploads++;
      payments += upload.items.length;
      gasUsed += done.gasUsed;
      const answer = await this.node.call('POST', '/v1/chain/statements', { answer: statementAnswer, body: { account, payments: upload.items.map((i) => statementQuery(i.txOff)) } });
      const out = await se.call('finalize', { statement: cbor(statementCodec, answer.body.statement, 'statement') });
      freed += out.freed;
      restored += out.restored;
      charged += out.charged;
      if (out.freed === 0) break;
    }
    const s = await this.status();
    const onChain = s.account === undefined ? 0n : (await accountOnChain(clients, info.contracts, getAddress(`0x${toHex(s.account)}`))).balance;
    const result = { uploads, payments, freed, restored: this.format(restored), charged: this.format(charged), gasUsed: gasUsed.toString(), status: s.status, offline: this.format(s.balance), onChain: this.format(onChain), waiting: s.outgoing + s.incoming };
    if (uploads > 0) await this.note({ at: Date.now(), kind: 'sync', detail: `${payments} payment(s) uploaded in ${uploads} transaction(s), ${freed} settled${charged > 0n ? `, ${this.format(charged)} taken back by the chain` : ''}` });
    return result;
  }

  /** The dynamic balance exchange's withdrawal: the TEE signs `amountText` to an on-chain address (the wallet's own by default), a sync pays it out. */
  async withdraw(amountText: string, to?: string | undefined): Promise<{ amount: string; to: string; sync: SyncResult }> {
    const amount = this.parseAmount(amountText);
    const target = to === undefined ? await this.onChainAddress() : checkedAddress(to);
    await (await this.se()).call('withdraw', { to: fromHex(target.slice(2)), amount, now: Date.now() });
    await this.note({ at: Date.now(), kind: 'withdraw', amount: this.format(amount), detail: `to ${target} on chain` });
    return { amount: this.format(amount), to: target, sync: await this.sync() };
  }

  /** logout: the TEE closes the account to an on-chain address (the wallet's own by default), a sync settles it, then the keys are deleted. */
  async closeAccount(to?: string | undefined): Promise<{ amount: string; to: string; account: string; sync: SyncResult | null }> {
    const target = to === undefined ? await this.onChainAddress() : checkedAddress(to);
    const se = await this.se();
    const account = await this.account();
    let amount = 0n;
    if ((await this.status()).status === 'open') {
      await this.sync();
      amount = (await se.call('logout', { to: fromHex(target.slice(2)), now: Date.now() })).amount;
    }
    const sync = (await this.status()).status === 'closing' ? await this.sync() : null;
    if ((await this.status()).status !== 'closed') throw new TallyError('CHAIN_PENDING', `the chain has not closed account ${account} yet (payments wait for it): run tally wallet close again later`, { reason: 'closing' });
    await se.call('clean', {});
    await this.note({ at: Date.now(), kind: 'closed', amount: this.format(amount), detail: `account ${account} closed to ${target}; its keys deleted` });
    return { amount: this.format(amount), to: target, account, sync };
  }

  /** The payee, offline: listens, takes one payer, asks it for `amountText`; the TEE credits at once. */
  async receive(amountText: string, options: { port: number; host: string; timeoutMs: number; onListening?: (port: number) => void }): Promise<TransferResult> {
    const amount = this.parseAmount(amountText);
    const se = await this.se();
    const secure = await listenLink(LINK_SIDE, options);
    try {
      const out = await runPayee(secure.link, amount, payeeRole(se, { session: secure.peer.handshakeHash, now: Date.now }), { stepTimeoutMs: options.timeoutMs });
      const result = this.transferResult(out, (await se.call('status', {})).balance);
      await this.note({ at: Date.now(), kind: out.credited ? 'received' : 'receive-declined', amount: result.amount, detail: out.resent > 0 ? `${out.resent} earlier payment(s) settled` : '' });
      return result;
    } finally {
      secure.link.close();
    }
  }

  /** The payer, offline: connects to a payee, checks its account, pays what it asks; `expectText`: refuse any other amount. */
  async pay(host: string, port: number, expectText: string | null, options: { timeoutMs: number }): Promise<TransferResult> {
    const expect = expectText === null ? null : this.parseAmount(expectText);
    const se = await this.se();
    const { revoked, banks } = await se.call('revoked', {});
    const secure = await connectLink(LINK_SIDE, host, port, options.timeoutMs);
    try {
      const trust = { provider: nodeProvider, root: this.root, intermediary: this.intermediary, revoked: () => revoked, banks: () => banks, session: secure.peer.handshakeHash, now: Date.now };
      const out = await runPayer(secure.link, expect, payerRole(se, trust), { stepTimeoutMs: options.timeoutMs });
      const result = this.transferResult(out, (await se.call('status', {})).balance);
      await this.note({ at: Date.now(), kind: out.credited ? 'paid' : 'pay-declined', amount: result.amount, detail: out.resent > 0 ? `${out.resent} earlier payment(s) settled` : '' });
      return result;
    } catch (e) {
      if (isTallyError(e)) await this.note({ at: Date.now(), kind: 'pay-failed', detail: `${e.message} [${failureCode(e)}]` });
      throw e;
    } finally {
      secure.link.close();
    }
  }

  private transferResult(out: SessionOutcome, balance: bigint): TransferResult {
    return { amount: this.format(out.amount), credited: out.credited, resent: out.resent, offline: this.format(balance) };
  }

  /** The offline balance (and what is held for unacknowledged payments), the account on chain, the on-chain account's tokens. */
  async balance() {
    const s = await this.status();
    const out = {
      device: this.data.device?.keyId ?? null,
      account: s.account === undefined ? null : getAddress(`0x${toHex(s.account)}`),
      status: s.status,
      offline: this.format(s.balance),
      pending: this.format(s.pending),
      debt: this.format(s.debt),
      unsettled: s.outgoing + s.incoming,
      onChainAccount: null as string | null,
      onChainAccountStatus: null as number | null,
      wallet: null as string | null,
      walletTokens: null as string | null,
      chainError: undefined as string | undefined,
      pendingSteps: this.data.pending.length,
    };
    try {
      const { info, clients } = await this.chain();
      out.wallet = clients.walletClient.account.address;
      out.walletTokens = this.format(await tokenBalance(clients, info.contracts, out.wallet as Address));
      if (out.account !== null) {
        const onChain = await accountOnChain(clients, info.contracts, out.account);
        out.onChainAccount = this.format(onChain.balance);
        out.onChainAccountStatus = onChain.status;
      }
    } catch (e) {
      out.chainError = e instanceof Error ? e.message.split('\n')[0] : String(e);
    }
    return out;
  }
}

/** A checksummed address from text. @throws TallyError AMOUNT_INVALID-like refusal for a bad address */
function checkedAddress(text: string): Address {
  if (!/^0x[0-9a-fA-F]{40}$/.test(text)) throw new TallyError('PAYEE_INVALID', `expected an address (0x and 40 hex digits), got ${JSON.stringify(text)}`, { reason: 'account' });
  return getAddress(text);
}

/** The on-chain address and node of the chain-tee wallet `name` of the home, for the operator's mint. */
export async function onChainAddressOf(home: string | undefined, env: Readonly<Record<string, string | undefined>>, name: string): Promise<{ address: string; node: string }> {
  const wallet = await ChainWallet.open(resolveHome(home, env), name);
  try {
    return { address: await wallet.onChainAddress(), node: wallet.snapshot().node };
  } finally {
    await wallet.close();
  }
}
