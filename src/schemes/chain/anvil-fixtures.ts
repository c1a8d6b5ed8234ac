/**
 * Test support: a real anvil (the Ethereum node from @foundry-rs/anvil) on a free loopback port,
 * viem clients on it, and the two chain-tee contracts deployed by the central bank. One anvil per
 * test file, shared by its tests; `snapshot`/`revert` give each test a clean chain.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import {
  createPublicClient,
  createTestClient,
  createWalletClient,
  defineChain,
  getAddress,
  http,
  keccak256,
  parseEther,
  stringToHex,
  type Address,
  type Hex,
  type PublicClient,
  type TestClient,
  type WalletClient,
  type Chain,
  type Transport,
  type Account,
} from 'viem';
import { privateKeyToAccount, type PrivateKeyAccount } from 'viem/accounts';
import { offlineAccountsAbi, offlineAccountsBytecode, tallyTokenAbi, tallyTokenBytecode } from './contracts.generated.ts';

/** The chain id anvil runs with in tests. */
export const ANVIL_CHAIN_ID = 31337;
/** The hardfork anvil runs (the contracts are compiled for it). */
export const ANVIL_HARDFORK = 'cancun';
/** How long anvil may take to answer JSON-RPC after it was started. */
export const ANVIL_START_TIMEOUT_MS = 20_000;
/** Tries at starting anvil (a free port can be taken between choosing it and anvil binding it). */
export const ANVIL_START_TRIES = 3;
/** The settlement window of the test deployment, in seconds. */
export const SETTLE_WINDOW_SECONDS = 3600n;
/** The token's minor digits in tests. */
export const TOKEN_DECIMALS = 2;
/** How often viem polls for receipts (anvil mines each transaction at once). */
const POLLING_MS = 10;

/** The anvil binary shipped by the platform's @foundry-rs/anvil package. */
export function anvilBinary(): string {
  const arch = process.arch === 'x64' ? 'amd64' : process.arch;
  const pkg = `@foundry-rs/anvil-${process.platform}-${arch}/package.json`;
  const manifest = createRequire(import.meta.url).resolve(pkg);
  return join(dirname(manifest), 'bin', process.platform === 'win32' ? 'anvil.exe' : 'anvil');
}

/** A free TCP port on loopback (anvil has no `--port 0`). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error('no port from the OS'))));
    });
  });
}

/** A deterministic test key from a label. */
export function testKey(label: string): Hex {
  return keccak256(stringToHex(`tally/chain/test/${label}`));
}

/** A test account from a label (its key derived from the label). */
export function testAccount(label: string): PrivateKeyAccount {
  return privateKeyToAccount(testKey(label));
}

/** A running anvil with its clients and the deployed contracts. */
export interface AnvilEnv {
  readonly url: string;
  readonly chain: Chain;
  readonly publicClient: PublicClient<Transport, Chain>;
  readonly testClient: TestClient<'anvil', Transport, Chain>;
  /** The central bank: deployed both contracts, mints, registers enclaves. */
  readonly bank: PrivateKeyAccount;
  readonly token: Address;
  readonly accounts: Address;
  /** Gas used by each deployment. */
  readonly deployGas: { readonly token: bigint; readonly accounts: bigint };
  /** A wallet client that sends as `account` (funded with ether on first use). */
  wallet(account: PrivateKeyAccount): Promise<WalletClient<Transport, Chain, Account>>;
  /** Takes a snapshot of the chain; `revert` returns to it (each snapshot can be reverted once). */
  snapshot(): Promise<Hex>;
  revert(id: Hex): Promise<void>;
  /** Stops anvil. */
  close(): Promise<void>;
}

function startAnvil(port: number): ChildProcess {
  // Not --silent: the line saying it listens tells this anvil from another that took the port first.
  const args = ['--host', '127.0.0.1', '--port', String(port), '--chain-id', String(ANVIL_CHAIN_ID), '--hardfork', ANVIL_HARDFORK];
  return spawn(anvilBinary(), args, { stdio: ['ignore', 'pipe', 'pipe'] });
}

/**
 * Waits until this anvil says it listens on `port` and answers eth_chainId there; fails when it
 * exits (another process holding the port makes it exit) or the timeout passes. An answer alone is
 * not enough: another test's anvil that took the port between its choice and this bind would give
 * one, and this file's tests would then deploy on, and revert, a chain that is not theirs.
 */
async function waitForRpc(url: string, port: number, child: ChildProcess, stderr: () => string): Promise<void> {
  let listening = false;
  let stdout = '';
  const scan = (chunk: Buffer) => {
    stdout = (stdout + chunk.toString('utf8')).slice(-4096);
    if (stdout.includes(`Listening on 127.0.0.1:${port}`)) {
      listening = true;
      // Read on and drop what follows, so a full pipe never stalls anvil.
      child.stdout?.off('data', scan);
      child.stdout?.resume();
    }
  };
  child.stdout?.on('data', scan);
  const deadline = Date.now() + ANVIL_START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`anvil exited (${child.exitCode ?? child.signalCode}): ${stderr()}`);
    if (listening) {
      try {
        const response = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_chainId', params: [] }),
        });
        if (response.ok) return;
      } catch {
        // Not answering yet.
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`anvil did not answer on ${url} within ${ANVIL_START_TIMEOUT_MS} ms: ${stderr()}`);
}

function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}

/** Starts anvil on a free port (or the ports `pickPort` gives, one a try) and deploys TallyToken and OfflineAccounts as the bank. */
export async function startAnvilEnv(options: { pickPort?: () => Promise<number> } = {}): Promise<AnvilEnv> {
  let child: ChildProcess | undefined;
  let url = '';
  let lastError: unknown;
  for (let attempt = 0; attempt < ANVIL_START_TRIES && child === undefined; attempt++) {
    const port = await (options.pickPort ?? freePort)();
    const started = startAnvil(port);
    let stderr = '';
    started.stderr?.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-2000)));
    url = `http://127.0.0.1:${port}`;
    try {
      await waitForRpc(url, port, started, () => stderr);
      child = started;
    } catch (error) {
      lastError = error;
      await stop(started);
    }
  }
  if (child === undefined) throw lastError instanceof Error ? lastError : new Error('anvil did not start');
  const running = child;
  try {
    return await connect(url, running);
  } catch (error) {
    await stop(running);
    throw error;
  }
}

async function connect(url: string, child: ChildProcess): Promise<AnvilEnv> {
  const chain = defineChain({
    id: ANVIL_CHAIN_ID,
    name: 'anvil',
    nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 },
    rpcUrls: { default: { http: [url] } },
  });
  const transport = http(url, { batch: false });
  const publicClient = createPublicClient({ chain, transport, pollingInterval: POLLING_MS });
  const testClient = createTestClient({ chain, transport, mode: 'anvil', pollingInterval: POLLING_MS });
  const funded = new Set<Address>();
  const wallet = async (account: PrivateKeyAccount) => {
    if (!funded.has(account.address)) {
      await testClient.setBalance({ address: account.address, value: parseEther('1000') });
      funded.add(account.address);
    }
    return createWalletClient({ chain, transport, account, pollingInterval: POLLING_MS });
  };
  const bank = testAccount('bank');
  const bankWallet = await wallet(bank);
  const deploy = async (hash: Hex) => {
    const receipt = await publicClient.waitForTransactionReceipt({ hash });
    if (receipt.contractAddress === null || receipt.contractAddress === undefined) throw new Error(`deployment ${hash} made no contract`);
    return { address: getAddress(receipt.contractAddress), gas: receipt.gasUsed };
  };
  const token = await deploy(
    await bankWallet.deployContract({ abi: tallyTokenAbi, bytecode: tallyTokenBytecode, args: ['Tally euro', 'EUR', TOKEN_DECIMALS, bank.address] }),
  );
  const accounts = await deploy(
    await bankWallet.deployContract({ abi: offlineAccountsAbi, bytecode: offlineAccountsBytecode, args: [token.address, bank.address, SETTLE_WINDOW_SECONDS] }),
  );
  return {
    url,
    chain,
    publicClient,
    testClient,
    bank,
    token: token.address,
    accounts: accounts.address,
    deployGas: { token: token.gas, accounts: accounts.gas },
    wallet,
    // Funding is part of the chain's state: a revert may undo it, so it is redone after one.
    snapshot: () => testClient.snapshot(),
    revert: async (id) => {
      await testClient.revert({ id });
      funded.clear();
    },
    close: () => stop(child),
  };
}
