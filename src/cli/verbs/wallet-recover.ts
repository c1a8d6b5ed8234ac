/** `tally wallet recover`: a secure element that refuses to run is retired and replaced. */
import { HOME_OPTION, JSON_OPTION } from '../plugin.ts';
import type { ShellVerbSpec } from './wallet-verb.ts';

/** The verb's table entry. */
export const walletRecover: ShellVerbSpec = {
  words: 'wallet recover',
  verb: 'recover',
  usage: 'tally wallet recover NAME [--home DIR] [--json]',
  summary: 'Retires a secure element that refuses to run (ROLLBACK_DETECTED, or a damaged state) and registers a new, empty one for the same user. Needs the node.',
  options: [HOME_OPTION, JSON_OPTION],
  example: 'tally wallet recover alice',
  positionals: [],
  flags: {},
  capability: () => 'recover',
};
