/** `tally wallet withdraw`: offline value back to the online account. */
import { HOME_OPTION, JSON_OPTION } from '../plugin.ts';
import type { ShellVerbSpec } from './wallet-verb.ts';

/** The verb's table entry. */
export const walletWithdraw: ShellVerbSpec = {
  words: 'wallet withdraw',
  verb: 'withdraw',
  secureElement: true,
  usage: 'tally wallet withdraw NAME AMOUNT [--home DIR] [--json]',
  summary: 'Moves AMOUNT from the secure element back to the online account (offline to online); needs the node.',
  options: [HOME_OPTION, JSON_OPTION],
  example: 'tally wallet withdraw alice 20.00',
  positionals: ['AMOUNT'],
  flags: {},
  capability: () => 'withdraw',
};
