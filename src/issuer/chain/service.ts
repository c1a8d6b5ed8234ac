/**
 * The node's chain service: the Ethereum chain a scheme settles on (chain-tee), opened when a
 * scheme asks for it. By default an embedded anvil in DATA/chain, started and stopped with the
 * node; with an endpoint URL any EVM JSON-RPC node instead. It holds the clients, the central
 * bank's account (signing as the bank: the token's minter) and, on the embedded chain only, a gas
 * faucet for tests and demos.
 */
import { createTestClient, formatEther, isAddress, parseEther, type Account, type Address, type Chain, type Hash, type PublicClient, type TransactionReceipt, type Transport, type WalletClient } from 'viem';
import type { CryptoProvider } from '../../core/crypto/suite.ts';
import { TallyError } from '../../core/errors.ts';
import { startAnvil, type Anvil } from './anvil.ts';
import { loadBankChainAccount } from './bank-key.ts';
import { toChainError } from './chain-error.ts';
import { chainFor, checkRpcUrl, EMBEDDED_POLL_MS, EXTERNAL_POLL_MS, publicClientFor, publicRpcUrl, readChainId, transportFor, walletClientFor, type ChainClients } from './client.ts';
import { confirmTransaction, deployRequest, submitTransaction, writeRequest, type ContractArtifact, type ContractWrite, type Deployed, type ReceiptOptions, type TransactionRequest } from './transactions.ts';

/** What the embedded chain gives the bank's account for gas at every start, when it holds less. */
export const BANK_GAS_WEI = parseEther('1000');
/** What fundGas gives when no amount is named. */
export const FAUCET_WEI_DEFAULT = parseEther('10');
/** The most fundGas gives at once. */
export const FAUCET_WEI_MAX = parseEther('1000');

/** The node's Ethereum chain, as scheme modules use it (IssuerServices.chain). */
export interface ChainService {
  /** The JSON-RPC endpoint the node talks to. */
  readonly rpcUrl: string;
  /** The endpoint as it may be shown (no credentials, no query string). */
  readonly publicRpcUrl: string;
  /** The chain id, read from the endpoint. */
  readonly chainId: number;
  /** True for the anvil the node runs itself in DATA/chain. */
  readonly embedded: boolean;
  /** The chain as viem describes it. */
  readonly chain: Chain;
  /** Reads: calls, logs, blocks, receipts. */
  readonly publicClient: PublicClient<Transport, Chain>;
  /** Signs as the central bank (locally; the key never leaves the node). Prefer deploy and write, which keep the bank's transactions in order. */
  readonly bankClient: WalletClient<Transport, Chain, Account>;
  /** The bank's chain address: the token's minter when it deployed the contracts, else an intermediary the deployment's governor allowed to mint. */
  readonly bankAddress: Address;
  /** A deployment another node made on this chain that the node's schemes settle on instead of deploying their own (`--chain-contract`). */
  readonly joinContract?: Address | undefined;
  /**
   * Deploys a contract as the bank and waits until it is mined.
   * @throws TallyError CHAIN_REVERTED, CHAIN_NO_GAS, CHAIN_TIMEOUT, CHAIN_UNREACHABLE, CHAIN_REFUSED
   */
  deploy(artifact: ContractArtifact, options?: ReceiptOptions): Promise<Deployed>;
  /**
   * Calls a contract function as the bank (simulated first: a revert is refused before sending) and waits until it is mined.
   * @throws TallyError as deploy does
   */
  write(call: ContractWrite, options?: ReceiptOptions): Promise<TransactionReceipt>;
  /**
   * Sends a transaction as the bank and waits until it is mined.
   * @throws TallyError as deploy does
   */
  send(request: TransactionRequest, options?: ReceiptOptions): Promise<TransactionReceipt>;
  /** Clients of the same endpoint sending as another account (a wallet's, in tests and demos). */
  clientsFor(account: Account): ChainClients;
  /**
   * The dev chain's faucet: makes `address` hold at least `weiMin` (FAUCET_WEI_DEFAULT) for gas; answers its balance.
   * @throws TallyError CHAIN_FAUCET_REFUSED on any chain but the embedded one; RangeError for a bad address or amount
   */
  fundGas(address: Address, weiMin?: bigint): Promise<bigint>;
  /** Stops the embedded anvil (its state dumped); nothing to do for another endpoint. */
  close(): Promise<void>;
}

/** Options of openChainService. */
export interface OpenChainServiceOptions {
  /** The node's data folder: the bank's key in its identity, the embedded chain in `chain/`. */
  dataDir: string;
  /** The passphrase the node's keys are sealed with. */
  passphrase: string;
  provider: CryptoProvider;
  /** Another EVM JSON-RPC endpoint; the embedded anvil when absent. */
  rpcUrl?: string | undefined;
  /** A deployment another node made on that chain, to join (see ChainService.joinContract). */
  contract?: Address | undefined;
  /** Where the service says what an operator should know (no gas, a chain that stopped). */
  log?: ((line: string) => void) | undefined;
}

/** The opened service, and what its start wants the operator to read once. */
export interface OpenedChain {
  readonly service: ChainService;
  readonly warnings: readonly string[];
}

/** Runs one task after another (the bank's nonces come from the node: two sends at once would take the same). */
function serialQueue(): <T>(task: () => Promise<T>) => Promise<T> {
  let tail: Promise<unknown> = Promise.resolve();
  return <T>(task: () => Promise<T>) => {
    const run = tail.then(task, task);
    tail = run.catch(() => undefined);
    return run;
  };
}

/**
 * Opens the chain: starts the embedded anvil (or checks the endpoint), loads the bank's account,
 * gives it gas on the embedded chain or warns when it has none elsewhere.
 * @throws TallyError CHAIN_UNREACHABLE for an endpoint that does not answer, CHAIN_START_FAILED or
 *   STATE_CORRUPT when anvil cannot start, and the key file's errors (see loadBankChainAccount)
 */
export async function openChainService(options: OpenChainServiceOptions): Promise<OpenedChain> {
  const log = options.log ?? (() => {});
  const warnings: string[] = [];
  const bank = await loadBankChainAccount({ dataDir: options.dataDir, passphrase: options.passphrase, provider: options.provider });
  if (bank.created) warnings.push(`made the central bank's chain key ${bank.file} (address ${bank.account.address}); keep it with the node's other keys`);
  let anvil: Anvil | null = null;
  let rpcUrl: string;
  if (options.rpcUrl === undefined) {
    anvil = await startAnvil({
      dataDir: options.dataDir,
      onExit: (exit) => {
        if (!exit.requested) log(`the embedded anvil ended by itself (${exit.signal ?? `exit ${exit.code}`}); chain requests fail until the node restarts (see ${anvil?.logFile ?? 'DATA/chain/anvil.log'})`);
      },
    });
    rpcUrl = anvil.rpcUrl;
  } else {
    checkRpcUrl(options.rpcUrl);
    rpcUrl = options.rpcUrl;
  }
  const embedded = anvil !== null;
  const shown = publicRpcUrl(rpcUrl);
  try {
    const chainId = await readChainId(rpcUrl);
    const chain = chainFor(chainId, rpcUrl, embedded);
    const pollMs = embedded ? EMBEDDED_POLL_MS : EXTERNAL_POLL_MS;
    const publicClient = publicClientFor(rpcUrl, chain, pollMs);
    const bankClients: ChainClients = { publicClient, walletClient: walletClientFor(rpcUrl, chain, bank.account, pollMs) };
    const testClient = embedded ? createTestClient({ mode: 'anvil', chain, transport: transportFor(rpcUrl) }) : null;
    const setBalance = async (address: Address, value: bigint) => {
      if (testClient === null) throw new Error('setBalance on a chain that is not the embedded one');
      await testClient.setBalance({ address, value });
    };
    const balance = await publicClient.getBalance({ address: bank.account.address }).catch((e: unknown) => {
      throw toChainError(e, { what: "reading the bank's balance", rpcUrl: shown });
    });
    if (embedded) {
      if (balance < BANK_GAS_WEI / 2n) await setBalance(bank.account.address, BANK_GAS_WEI);
    } else if (balance === 0n) {
      warnings.push(`the central bank's chain account ${bank.account.address} has no ETH on ${shown} (chain ${chainId}): send it some for gas, or the bank's transactions will fail`);
    }
    const inOrder = serialQueue();
    const sendAsBank = async (request: TransactionRequest, what: string, receiptOptions?: ReceiptOptions): Promise<TransactionReceipt> => {
      // Only the submission waits its turn: once the node holds a transaction, the next one's nonce follows it.
      const hash: Hash = await inOrder(() => submitTransaction(bankClients, request, what));
      return confirmTransaction(bankClients, hash, receiptOptions, what);
    };
    const service: ChainService = {
      rpcUrl,
      publicRpcUrl: shown,
      chainId,
      embedded,
      chain,
      publicClient,
      bankClient: bankClients.walletClient,
      bankAddress: bank.account.address,
      joinContract: options.contract,
      async deploy(artifact, receiptOptions) {
        const receipt = await sendAsBank(deployRequest(artifact), 'deploying a contract', receiptOptions);
        if (receipt.contractAddress === null || receipt.contractAddress === undefined) throw new Error(`the receipt of deployment ${receipt.transactionHash} names no contract`);
        return { address: receipt.contractAddress, receipt };
      },
      async write(call, receiptOptions) {
        return sendAsBank(await writeRequest(bankClients, call), `${call.functionName} on ${call.address}`, receiptOptions);
      },
      send(request, receiptOptions) {
        return sendAsBank(request, 'a transaction', receiptOptions);
      },
      clientsFor(account) {
        return { publicClient, walletClient: walletClientFor(rpcUrl, chain, account, pollMs) };
      },
      async fundGas(address, weiMin = FAUCET_WEI_DEFAULT) {
        if (!embedded) {
          throw new TallyError('CHAIN_FAUCET_REFUSED', `the gas faucet serves only the node's embedded dev chain; on ${shown} send ETH to ${address} from a funded account`, { rpcUrl: shown });
        }
        if (!isAddress(address, { strict: false })) throw new RangeError(`fundGas: ${JSON.stringify(address)} is not an address`);
        if (weiMin <= 0n || weiMin > FAUCET_WEI_MAX) throw new RangeError(`fundGas: the amount must be more than 0 and at most ${formatEther(FAUCET_WEI_MAX)} ETH, not ${formatEther(weiMin)}`);
        try {
          const have = await publicClient.getBalance({ address });
          if (have >= weiMin) return have;
          await setBalance(address, weiMin);
          return weiMin;
        } catch (e) {
          throw toChainError(e, { what: `funding ${address}`, rpcUrl: shown });
        }
      },
      async close() {
        await anvil?.stop();
      },
    };
    return { service, warnings };
  } catch (e) {
    await anvil?.stop();
    throw e;
  }
}
