/** DOT-M, the dual offline transaction scheme for trusted mobile devices (National Fintech Evaluation Center). */
import type { Scheme } from '../scheme.ts';
import { dotmCli } from './cli.ts';
import { DOTM_TA_BUILD } from './wallet-build.ts';

/** The DOT-M scheme. */
export const dotm: Scheme = {
  name: 'dotm',
  title: 'DOT-M: currency blocks signed by the central bank, paid in nine steps between two secure elements',
  paper: {
    title: 'DOT-M: A Dual Offline Transaction Scheme of Central Bank Digital Currency for Trusted Mobile Devices (Extended Version)',
    authors: 'B. Yang, Y. Zhang, D. Tong',
    institution: 'National Fintech Evaluation Center and Bank Card Test Center, Beijing',
  },
  capabilities: ['link-payments', 'deposit', 'withdraw', 'sync', 'recover', 'payment-password'],
  node: async () => (await import('./node.ts')).dotmNodePart,
  wallet: { trustedApps: [{ scheme: 'dotm', description: 'DOT-M trusted app, software build', ...DOTM_TA_BUILD }] },
  bench: async (use) => use((await import('./bench.ts')).dotmBench),
  settle: async () => [(await import('./bench-settle.ts')).dotmSettle],
  common: async () => (await import('./bench-common.ts')).dotmCommon,
  wire: async () => (await import('./wire.ts')).DOTM_WIRE,
  trustedApp: async () => (await import('./trusted-app.ts')).dotmTrustedApp,
  sim: async () => (await import('./sim.ts')).dotmSim,
  cli: dotmCli,
};
