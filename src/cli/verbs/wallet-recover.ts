/** `tally wallet recover`: a secure element that refuses to run is retired and replaced. */
import { HOME_OPTION, JSON_OPTION } from '../plugin.ts';
import type { ShellVerbSpec } from './wallet-verb.ts';

/** The verb's table entry. */
export const walletRecover: ShellVerbSpec = {
  words: 'wallet recover',
  verb: 'recover',
  usage: 'tally wallet recover NAME [--home DIR] [--json]',
  summary:
    "Retires a secure element that refuses to run (ROLLBACK_DETECTED, or a damaged state) and registers a new, empty one for the same user; OPS: the node revokes the old device and credits the online account with what it knows the old one held. Needs the node. DOT-M: the payment password (prompt, or $TALLY_PASSWORD) opens the account key and becomes the new secure element's.",
  options: [HOME_OPTION, JSON_OPTION],
  example: 'tally wallet recover alice',
  positionals: [],
  flags: {},
  capability: () => 'recover',
};
