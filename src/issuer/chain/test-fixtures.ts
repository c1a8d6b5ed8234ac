/**
 * For the chain tests (not exported): a small contract compiled with solc in the test, a data
 * folder with an identity, and a look at the processes running (Linux /proc) to show that an anvil
 * ended or was never started.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import solc from 'solc';
import type { Abi, Address, Hex } from 'viem';
import { currency } from '../../core/amount.ts';
import { nodeProvider } from '../../providers/node-crypto.ts';
import { loadOrCreateIdentity } from '../identity/node-identity.ts';
import { ANVIL_STATE_FILE, CHAIN_DIR } from './anvil.ts';
import type { ChainService } from './service.ts';
import type { ContractArtifact } from './transactions.ts';

/** The passphrase of the test data folders. */
export const PASSPHRASE = 'chain test passphrase';

/** The largest value Box takes; more reverts with TooBig(value, max). */
export const BOX_MAX = 1_000_000n;

const BOX_SOURCE = `// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;
contract Box {
  uint256 public value;
  error TooBig(uint256 value, uint256 max);
  function set(uint256 v) external {
    if (v > ${BOX_MAX}) revert TooBig(v, ${BOX_MAX});
    value = v;
  }
}
`;

let compiled: ContractArtifact | undefined;

/**
 * Box, compiled by solc (once per test process): a stored number, and a custom error for a value over BOX_MAX.
 * @throws Error with solc's messages when it does not compile
 */
export function boxContract(): ContractArtifact {
  if (compiled !== undefined) return compiled;
  const input = { language: 'Solidity', sources: { 'Box.sol': { content: BOX_SOURCE } }, settings: { outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object'] } } } };
  const output = JSON.parse(String(solc.compile(JSON.stringify(input)))) as {
    errors?: { severity: string; formattedMessage: string }[];
    contracts?: { 'Box.sol'?: { Box?: { abi: Abi; evm: { bytecode: { object: string } } } } };
  };
  const errors = (output.errors ?? []).filter((e) => e.severity === 'error');
  const box = output.contracts?.['Box.sol']?.Box;
  if (errors.length > 0 || box === undefined) throw new Error(`solc: ${errors.map((e) => e.formattedMessage).join('\n') || 'no Box in the output'}`);
  compiled = { abi: box.abi, bytecode: `0x${box.evm.bytecode.object}` as Hex };
  return compiled;
}

/** Deploys Box as the bank and answers its address. */
export async function deployBox(chain: ChainService): Promise<Address> {
  return (await chain.deploy(boxContract())).address;
}

/** Box's stored value. */
export async function boxValue(chain: ChainService, address: Address): Promise<bigint> {
  const value = await chain.publicClient.readContract({ address, abi: boxContract().abi, functionName: 'value' });
  if (typeof value !== 'bigint') throw new TypeError(`Box.value answered ${String(value)}`);
  return value;
}

/** Sets Box's value as the bank. */
export async function setBox(chain: ChainService, address: Address, value: bigint): Promise<void> {
  await chain.write({ address, abi: boxContract().abi, functionName: 'set', args: [value] });
}

/** Makes the identity (keys, the bank's chain key among them) of a new data folder. */
export async function withIdentity(dataDir: string): Promise<void> {
  await loadOrCreateIdentity({ dataDir, passphrase: PASSPHRASE, provider: nodeProvider, currency: currency('EUR', 2), now: Date.now() });
}

/** True when /proc lists processes (Linux): the process checks run only there. */
export async function canListProcesses(): Promise<boolean> {
  try {
    await readFile('/proc/self/cmdline');
    return true;
  } catch {
    return false;
  }
}

/** The live processes (zombies left out: they have ended) whose command line contains `needle`. */
export async function processesWith(needle: string): Promise<number[]> {
  const found: number[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^[0-9]+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const cmdline = (await readFile(`/proc/${name}/cmdline`, 'utf8')).replaceAll('\0', ' ');
      const stat = await readFile(`/proc/${name}/stat`, 'utf8');
      const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
      if (cmdline.includes(needle) && state !== 'Z' && state !== 'X') found.push(Number(name));
    } catch {
      // It ended while being read.
    }
  }
  return found;
}

/** The live processes of the embedded chain of `dataDir`: anvil and its watcher (their command lines name the state file). */
export function chainProcessesOf(dataDir: string): Promise<number[]> {
  return processesWith(join(dataDir, CHAIN_DIR, ANVIL_STATE_FILE));
}

/** The pid of the anvil (not its watcher) of `dataDir`'s embedded chain, or undefined. */
export async function anvilPidOf(dataDir: string): Promise<number | undefined> {
  for (const pid of await chainProcessesOf(dataDir)) {
    const comm = await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '');
    if (comm.trim() === 'anvil') return pid;
  }
  return undefined;
}

/** Waits until no live process mentions `needle`, at most `timeoutMs`; answers those still there. */
export async function untilNoProcessWith(needle: string, timeoutMs: number): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const left = await processesWith(needle);
    if (left.length === 0 || Date.now() > deadline) return left;
    await new Promise((wait) => setTimeout(wait, 100));
  }
}
