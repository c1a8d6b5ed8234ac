/** `tally pay`: the payer pays a request token, or a payee waiting on a live link. */
import { HOME_OPTION, hostPort, JSON_OPTION, TIMEOUT_OPTION, UsageError } from '../plugin.ts';
import type { ShellVerbSpec } from './wallet-verb.ts';

/** The verb's table entry. */
export const pay: ShellVerbSpec = {
  words: 'pay',
  verb: 'pay',
  secureElement: true,
  usage: 'tally pay NAME REQUEST [--payee KEYID] [--again] [--home DIR] [--json]\ntally pay NAME --connect HOST:PORT [--expect AMOUNT] [--timeout SECONDS] [--home DIR] [--json]',
  summary:
    'Payer, offline: pays a request token (wallets of schemes with token payments) or a payee waiting with `tally receive` over TCP + Noise (--connect, wallets of schemes with link payments).',
  options: [
    ['--connect HOST:PORT', 'the address of a payee running `tally receive ... --listen PORT`'],
    ['--expect AMOUNT', 'refuse unless the payee asks for exactly this amount'],
    TIMEOUT_OPTION,
    HOME_OPTION,
    JSON_OPTION,
  ],
  example: 'PAY=$(tally pay alice "$REQ")\ntally pay alice --connect 127.0.0.1:7000 --expect 5.00',
  positionals: ['REQUEST?'],
  flags: { connect: { type: 'string' }, expect: { type: 'string' }, timeout: { type: 'string' } },
  check(values, args) {
    if ((values['connect'] === undefined) === (args[0] === undefined)) throw new UsageError('give either a REQUEST token or --connect HOST:PORT');
    if (typeof values['connect'] === 'string') hostPort(values['connect']);
  },
  capability: (_values, args) => (args[0] === undefined ? 'link-payments' : 'token-payments'),
};
