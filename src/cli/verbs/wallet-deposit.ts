/** `tally wallet deposit`: online account to offline value. */
import { HOME_OPTION, JSON_OPTION } from '../plugin.ts';
import type { ShellVerbSpec } from './wallet-verb.ts';

/** The verb's table entry. */
export const walletDeposit: ShellVerbSpec = {
  words: 'wallet deposit',
  verb: 'deposit',
  secureElement: true,
  usage: 'tally wallet deposit NAME AMOUNT [--blocks N] [--home DIR] [--json]',
  summary: 'Moves AMOUNT from the online account into the secure element (online to offline); needs the node.',
  options: [HOME_OPTION, JSON_OPTION],
  example: 'tally wallet deposit alice 60.00',
  positionals: ['AMOUNT'],
  flags: {},
  capability: () => 'deposit',
};
