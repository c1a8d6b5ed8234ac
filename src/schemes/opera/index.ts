/** OPERA, offline anonymous cash in one-time-readable token storage: bank-signed tokens moved between genuine wallets by a three-stage exchange. */
import type { Scheme } from '../scheme.ts';
import { operaCli } from './cli.ts';
import { OPERA_TA_BUILD } from './wallet-build.ts';

/** The OPERA scheme. */
export const opera: Scheme = {
  name: 'opera',
  title: 'OPERA: bank-signed tokens in one-time-readable wallet storage, moved between anonymously attested wallets by a three-stage exchange that resumes from a log',
  paper: {
    title: 'OPERA: A Complete Offline and Anonymous Digital Cash Transaction System with a One-Time Readable Memory',
    authors: 'Ki-Woong Park, Sung Hoon Baek',
    institution: 'Sejong University; Jungwon University',
  },
  capabilities: ['link-payments', 'deposit', 'withdraw', 'sync', 'anonymity'],
  node: async () => (await import('./node.ts')).operaNodePart,
  wallet: { trustedApps: [{ scheme: 'opera', description: 'OPERA trusted app (the ODW), software build', ...OPERA_TA_BUILD, anonymousCredential: { enrollPath: '/v1/opera/makers' } }] },
  cli: operaCli,
  bench: async (use) => use((await import('./bench.ts')).operaBench),
  common: async () => (await import('./bench-common.ts')).operaCommon,
  settle: async () => [(await import('./bench-settle.ts')).operaSettle],
  wire: async () => (await import('./wire.ts')).OPERA_WIRE,
  trustedApp: async () => (await import('./trusted-app.ts')).operaTrustedApp,
  sim: async () => (await import('./sim.ts')).operaSim,
};
