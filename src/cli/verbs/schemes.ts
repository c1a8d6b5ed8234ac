/** `tally schemes`: the schemes this build runs, the paper each implements, its verbs and capabilities. */
import type { Scheme } from '../../schemes/index.ts';
import { JSON_OPTION, parse, type Verb } from '../plugin.ts';
import { offeredVerbs, type VerbCapabilities } from './wallet-verb.ts';

/** The verb over the registry. */
export function schemesVerb(schemes: readonly Scheme[], needs: () => VerbCapabilities): Verb {
  return {
    usage: 'tally schemes [--json]',
    summary: 'Lists the payment schemes this build runs: the paper each implements, what its wallets can do (capabilities) and the verbs they take.',
    options: [JSON_OPTION],
    example: 'tally schemes --json',
    async run(argv) {
      parse(argv, {}, []);
      // The wallet's plug-in module (and the shell behind it) loads only when this verb runs.
      const { CAPABILITIES } = await import('../../wallet/plugin.ts');
      const list = schemes.map((s) => ({
        name: s.name,
        title: s.title,
        paper: s.paper,
        capabilities: s.capabilities.map((c) => ({ name: c, meaning: CAPABILITIES[c] })),
        verbs: offeredVerbs(s, needs()).map((v) => v.replace(/^tally /, '')),
      }));
      const text = list
        .map((s) => [`${s.name}  ${s.title}`, `  paper: "${s.paper.title}", ${s.paper.authors} (${s.paper.institution})`, `  can: ${s.capabilities.map((c) => c.name).join(', ')}`, `  verbs: ${s.verbs.join(', ')}`].join('\n'))
        .join('\n\n');
      return { text, json: { schemes: list } };
    },
  };
}
