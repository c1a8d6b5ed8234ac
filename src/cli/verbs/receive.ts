/** `tally receive`: the payee waits for one payer on a live link. */
import { HOME_OPTION, JSON_OPTION, portNumber, TIMEOUT_OPTION, UsageError } from '../plugin.ts';
import type { ShellVerbSpec } from './wallet-verb.ts';

/** The verb's table entry. */
export const receive: ShellVerbSpec = {
  words: 'receive',
  verb: 'receive',
  secureElement: true,
  usage: 'tally receive NAME AMOUNT --listen PORT [--host 127.0.0.1] [--memo TEXT] [--timeout SECONDS] [--home DIR] [--json]',
  summary: 'Payee, offline: waits for one payer (`tally pay NAME --connect HOST:PORT`) over TCP + Noise and takes AMOUNT.',
  options: [
    ['--listen PORT', 'the TCP port to listen on (0 picks a free one and prints it)'],
    ['--host ADDRESS', 'the address to listen on (default 127.0.0.1)'],
    TIMEOUT_OPTION,
    HOME_OPTION,
    JSON_OPTION,
  ],
  example: 'tally receive bob 5.00 --listen 7000 &\ntally pay alice --connect 127.0.0.1:7000 && tally collect bob',
  positionals: ['AMOUNT'],
  flags: { listen: { type: 'string' }, host: { type: 'string', default: '127.0.0.1' }, timeout: { type: 'string' } },
  check(values) {
    if (values['listen'] === undefined) throw new UsageError('--listen PORT is needed');
    portNumber(String(values['listen']));
  },
  capability: () => 'link-payments',
};
