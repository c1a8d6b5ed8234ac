/** `tally wallet history`: the wallet's events, oldest first; it needs neither the secure element nor the lock. */
import { TallyError } from '../../core/errors.ts';
import { resolveHome } from '../../wallet/home.ts';
import { readHistory, readWalletData } from '../../wallet/wallet-common.ts';
import { HOME_OPTION, JSON_OPTION, parse, type Verb } from '../plugin.ts';

/** The verb. */
export const walletHistory: Verb = {
    usage: 'tally wallet history NAME [--home DIR] [--json]',
    summary: "Lists the wallet's events, oldest first.",
    options: [HOME_OPTION, JSON_OPTION],
    example: 'tally wallet history alice',
    async run(argv, io) {
      const { values, args } = parse(argv, {}, ['NAME']);
      // Reading the history needs neither the secure element nor the lock: it works on a wallet whose SE is broken.
      const home = resolveHome(values.home, io.env);
      const read = await readWalletData(home, args[0] as string);
      if (read === null) throw new TallyError('WALLET_NOT_FOUND', `no wallet named ${args[0] as string} in ${home}`, { name: args[0] as string });
      const code = read.data.currency.code;
      const { events, damaged, file } = await readHistory(read.paths);
      const lines = events.map((e) => `${new Date(e.at).toISOString()}  ${e.kind.padEnd(16)} ${e.amount === undefined ? '' : `${e.amount} ${code}  `}${e.detail ?? ''}`);
      if (lines.length === 0) lines.push('No history yet.');
      const warnings = damaged.map((d) => `warning: history line ${d.line} of ${file} is damaged (${d.reason}); skipped`);
      return { text: [...lines, ...warnings].join('\n'), json: { name: read.data.name, currency: code, events, damaged: damaged.map((d) => ({ ...d, file })) } };
    },
};
