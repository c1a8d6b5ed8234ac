/** OPS, the offline payment system of the two-tier hierarchical infrastructure (Visa Research). */
import type { Scheme } from '../scheme.ts';
import { opsCli } from './cli.ts';
import { OPS_TA_BUILD } from './wallet-build.ts';

/** The OPS scheme. */
export const ops: Scheme = {
  name: 'ops',
  title: 'OPS: offline payments between trusted applications, certified by a two-tier hierarchy of the central bank and intermediaries',
  paper: {
    title: 'Towards a Two-Tier Hierarchical Infrastructure: An Offline Payment System for Central Bank Digital Currencies',
    authors: 'M. Christodorescu, W. C. Gu, R. Kumaresan, M. Minaei, M. Ozdayi, B. Price, S. Raghuraman, M. Saad, C. Sheffield, M. Xu, M. Zamani',
    institution: 'Visa Research',
  },
  capabilities: ['token-payments', 'link-payments', 'deposit', 'withdraw', 'sync', 'collect', 'claim', 'recover', 'no-secure-element'],
  node: async () => (await import('./node.ts')).opsNodePart,
  wallet: { trustedApps: [{ scheme: 'ops', description: 'OPS trusted app, software build', ...OPS_TA_BUILD }] },
  bench: async (use) => use((await import('./bench.ts')).opsBench),
  wire: async () => (await import('./wire.ts')).OPS_WIRE,
  trustedApp: async () => (await import('./trusted-app.ts')).opsTrustedApp,
  settle: async () => [(await import('./bench-settle.ts')).opsSettle, (await import('./bench-settle-sync.ts')).opsSyncSettle],
  common: async () => (await import('./bench-common.ts')).opsCommon,
  sim: async () => (await import('./sim.ts')).opsSim,
  cli: opsCli,
};
