/**
 * The Ethereum chain of simulated runs (chain-tee settles on one): a real anvil, started once per
 * process on loopback (fixed chain id, no prefunded accounts) and taken back to its first block by
 * evm_revert at the start of every run, so that each run finds the same empty chain. The chain's
 * time follows the simulated clock: the next block is stamped at the simulated second, blocks
 * mined within one step follow one second apart (anvil's timestamp interval), and the clock is
 * moved up to the chain's latest block; no block time comes from the wall clock.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { type Hex } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { toHex } from '../../core/bytes.ts';
import { anvilBinary, ANVIL_CHAIN_ID, freePort } from '../../issuer/chain/anvil.ts';
import { chainFor, publicClientFor, walletClientFor, type ChainClients } from '../../issuer/chain/client.ts';
import type { SimChain, SimClock } from './plugin.ts';

/** How long anvil may take to listen. */
const START_TIMEOUT_MS = 20_000;
/** Ports tried (one may be taken between its choice and anvil's bind). */
const START_TRIES = 3;
/** How often the sim's clients poll for a receipt (anvil mines each transaction at once). */
const POLL_MS = 10;
/** The genesis block's time, Unix seconds: fixed and before any simulated clock (2023-11-14), never the wall clock's. */
const GENESIS_S = 1_700_000_000;
/** Ether given to an address for gas, wei. */
const GAS_WEI = 10n ** 21n;

/** The process's anvil: its endpoint and the snapshot of its first block. */
interface Running {
  readonly child: ChildProcess;
  readonly rpcUrl: string;
  pristine: Hex;
  /** Requests to the endpoint made so far (JSON-RPC ids). */
  calls: number;
}

let running: Promise<Running> | null = null;

async function rpc<T>(anvil: { rpcUrl: string; calls: number }, method: string, params: unknown[] = []): Promise<T> {
  const response = await fetch(anvil.rpcUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ jsonrpc: '2.0', id: ++anvil.calls, method, params }) });
  const body = (await response.json()) as { result?: T; error?: { message?: string } };
  if (body.error !== undefined) throw new Error(`anvil ${method}: ${body.error.message ?? JSON.stringify(body.error)}`);
  return body.result as T;
}

function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}

/** Starts anvil on a free port and waits until this anvil (not another on the port) answers. */
async function start(): Promise<Running> {
  let lastError: unknown = new Error('anvil did not start');
  for (let attempt = 0; attempt < START_TRIES; attempt++) {
    const port = await freePort();
    const child = spawn(anvilBinary(), ['--host', '127.0.0.1', '--port', String(port), '--chain-id', String(ANVIL_CHAIN_ID), '--accounts', '0', '--timestamp', String(GENESIS_S)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const listen = (chunk: Buffer) => (output = (output + chunk.toString('utf8')).slice(-4096));
    child.stdout?.on('data', listen);
    child.stderr?.on('data', listen);
    const rpcUrl = `http://127.0.0.1:${port}`;
    const deadline = Date.now() + START_TIMEOUT_MS;
    try {
      while (!output.includes(`Listening on 127.0.0.1:${port}`)) {
        if (child.exitCode !== null || child.signalCode !== null) throw new Error(`anvil exited: ${output}`);
        if (Date.now() > deadline) throw new Error(`anvil did not listen on ${rpcUrl} within ${START_TIMEOUT_MS} ms: ${output}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      // Read on and drop its log, so a full pipe never stalls it.
      child.stdout?.off('data', listen);
      child.stdout?.resume();
      child.stderr?.resume();
      const anvil = { child, rpcUrl, pristine: '0x' as Hex, calls: 0 };
      anvil.pristine = await rpc<Hex>(anvil, 'evm_snapshot');
      return anvil;
    } catch (e) {
      lastError = e;
      await stop(child);
    }
  }
  throw lastError;
}

/**
 * The chain of one run: the process's anvil back at its first block, its time at the simulated
 * clock's. Starts anvil on first use.
 */
export async function openSimChain(clock: SimClock): Promise<SimChain> {
  running ??= start();
  let anvil: Running;
  try {
    anvil = await running;
  } catch (e) {
    running = null;
    throw e;
  }
  // A snapshot is used up by the revert to it: take it again for the next run.
  if (!(await rpc<boolean>(anvil, 'evm_revert', [anvil.pristine]))) throw new Error('anvil refused to go back to its first block');
  anvil.pristine = await rpc<Hex>(anvil, 'evm_snapshot');
  await rpc(anvil, 'anvil_setBlockTimestampInterval', [1]);
  const chain = chainFor(ANVIL_CHAIN_ID, anvil.rpcUrl, false);
  const publicClient = publicClientFor(anvil.rpcUrl, chain, POLL_MS);
  const latest = async () => BigInt((await rpc<{ timestamp: Hex }>(anvil, 'eth_getBlockByNumber', ['latest', false])).timestamp);
  const follow = async () => {
    const chainS = await latest();
    const simS = BigInt(Math.ceil(clock.now() / 1000));
    if (simS > chainS) await rpc(anvil, 'evm_setNextBlockTimestamp', [Number(simS)]);
    else if (chainS * 1000n > BigInt(clock.now())) clock.advance(Number(chainS * 1000n - BigInt(clock.now())));
  };
  await follow();
  return {
    rpcUrl: anvil.rpcUrl,
    reader: publicClient,
    follow,
    async fund(address) {
      await rpc(anvil, 'anvil_setBalance', [address, `0x${GAS_WEI.toString(16)}`]);
    },
    clients(secret) {
      const account = privateKeyToAccount(`0x${toHex(secret)}`);
      return { publicClient, walletClient: walletClientFor(anvil.rpcUrl, chain, account, POLL_MS) } satisfies ChainClients;
    },
  };
}

/** Stops the process's anvil; call it when no more runs follow. */
export async function closeSimChain(): Promise<void> {
  const was = running;
  running = null;
  if (was === null) return;
  const anvil = await was.catch(() => null);
  if (anvil !== null) await stop(anvil.child);
}
