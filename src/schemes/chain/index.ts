/** chain-tee: offline accounts in each device's TEE, reconciled by a Solidity contract on an Ethereum chain. */
import type { Scheme } from '../scheme.ts';
import { chainCli } from './cli.ts';
import { CHAIN_TA_BUILD } from './wallet-build.ts';

/** The chain-tee scheme. */
export const chain: Scheme = {
  name: 'chain',
  title: 'chain-tee: offline accounts in each device\'s TEE, paid device to device and reconciled by a contract on an Ethereum chain',
  paper: {
    title: 'A Secure and Flexible Blockchain-Based Offline Payment Protocol',
    authors: 'W. Jie, W. Qiu, A. S. V. Koe, J. Li, Y. Wang, Y. Wu, J. Li, Z. Zheng',
    institution: 'Beihang University and Guangzhou University',
  },
  capabilities: ['link-payments', 'deposit', 'withdraw', 'sync', 'close'],
  node: async () => (await import('./node.ts')).chainNodePart,
  wallet: { trustedApps: [{ scheme: 'chain', description: 'chain-tee trusted app (the enclave program), software build', ...CHAIN_TA_BUILD }] },
  cli: chainCli,
  bench: async (use) => use((await import('./bench.ts')).chainBench),
  sim: async () => (await import('./sim.ts')).chainSim,
  common: async () => (await import('./bench-common.ts')).chainCommon,
  wire: async () => (await import('./wire.ts')).CHAIN_WIRE,
  trustedApp: async () => (await import('./trusted-app.ts')).chainTrustedApp,
};
