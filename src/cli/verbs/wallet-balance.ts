/** `tally wallet balance`: what the wallet holds online and offline, as its scheme reports it. */
import { HOME_OPTION, JSON_OPTION } from '../plugin.ts';
import type { ShellVerbSpec } from './wallet-verb.ts';

/** The verb's table entry. */
export const walletBalance: ShellVerbSpec = {
  words: 'wallet balance',
  verb: 'balance',
  usage: 'tally wallet balance NAME [--home DIR] [--json]',
  summary: 'Shows the online balance (from the node, when it answers), the offline balance in the secure element, payments not yet collected, limits and unfinished steps.',
  options: [HOME_OPTION, JSON_OPTION],
  example: 'tally wallet balance alice',
  positionals: [],
  flags: {},
};
