/**
 * The toy scheme: a purse in a secure element, loaded online and spent offline as signed receipts.
 * Test-only: not in the registry; the registry's test mounts it to show that a scheme is its folder
 * plus one line in the list.
 */
import type { Scheme } from '../scheme.ts';
import { toyCli } from './cli.ts';

/** The toy scheme. */
export const toy: Scheme = {
  name: 'toy',
  title: 'a toy purse (test only): loaded online, spent offline as signed receipts',
  paper: { title: 'none: a test scheme', authors: 'Tally', institution: 'Tally' },
  capabilities: ['token-payments', 'deposit'],
  node: async () => (await import('./node.ts')).toyNodePart,
  wallet: { trustedApps: [] },
  cli: toyCli,
};
