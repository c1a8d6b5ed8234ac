/** `tally sync`: the wallet reports to the node and takes its answer and revocation list. */
import { HOME_OPTION, JSON_OPTION } from '../plugin.ts';
import type { ShellVerbSpec } from './wallet-verb.ts';

/** The verb's table entry. */
export const sync: ShellVerbSpec = {
  words: 'sync',
  verb: 'sync',
  secureElement: true,
  usage: 'tally sync NAME [--home DIR] [--json]',
  summary: "Sends the secure element's signed report of offline payments to the node, applies its answer and fetches the revocation list; needs the node.",
  options: [HOME_OPTION, JSON_OPTION],
  example: 'tally sync alice',
  positionals: [],
  flags: {},
  capability: () => 'sync',
};
