/** OTP, a sustainable offline P2P payment scheme: coins wrapped in bank-certified one-time programs run by the wallets' TEEs. */
import type { Scheme } from '../scheme.ts';
import { otpCli } from './cli.ts';
import { OTP_TA_BUILD } from './wallet-build.ts';

/** The OTP scheme. */
export const otp: Scheme = {
  name: 'otp',
  title: 'OTP: bearer coins wrapped in one-time programs the bank certifies, signed blindly, paid anonymously between two secure elements',
  paper: {
    // The text the project holds (shared/seeds/otp.txt) starts at the abstract: it names neither title nor authors.
    title: 'A sustainable offline peer-to-peer payment scheme with one-time programs (title as the abstract words it)',
    authors: 'not named in the text held',
    institution: 'not named in the text held',
  },
  capabilities: ['link-payments', 'deposit', 'withdraw', 'sync', 'anonymity'],
  node: async () => (await import('./node.ts')).otpNodePart,
  wallet: { trustedApps: [{ scheme: 'otp', description: 'OTP trusted app (the player), software build', ...OTP_TA_BUILD }] },
  cli: otpCli,
  bench: async (use) => use((await import('./bench.ts')).otpBench),
  common: async () => (await import('./bench-common.ts')).otpCommon,
  settle: async () => [(await import('./bench-settle.ts')).otpSettle],
  wire: async () => (await import('./wire.ts')).OTP_WIRE,
  trustedApp: async () => (await import('./trusted-app.ts')).otpTrustedApp,
  sim: async () => (await import('./sim.ts')).otpSim,
};
