/** `tally wallet create`: a new wallet of one of the registry's schemes. */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { Scheme } from '../../schemes/index.ts';
import { resolveHome } from '../../wallet/home.ts';
import { common, HOME_OPTION, JSON_OPTION, NODE_OPTION, nodeUrl, UsageError, type Verb } from '../plugin.ts';

/** The verb over the registry's schemes: `--scheme` picks one (the first by default). */
export function walletCreate(schemes: readonly Scheme[]): Verb {
  const names = schemes.map((s) => s.name);
  const extra: NonNullable<ParseArgsConfig['options']> = {};
  for (const scheme of schemes) Object.assign(extra, scheme.cli.flags?.create?.options ?? {});
  return {
    usage: `tally wallet create NAME [--scheme ${names.join('|')}] [--no-secure-element] [--node URL] [--home DIR] [--json]`,
    summary: [
      'Creates a wallet of a scheme (`tally schemes` lists them) and registers its user at the node; with a secure element (the default), provisions it in its own process and registers the device.',
      ...schemes.flatMap((s) => s.cli.notes?.create ?? []),
    ].join(' '),
    options: [[`--scheme ${names.join('|')}`, `the payment scheme (default ${names[0] ?? '?'}; \`tally schemes\` lists them)`], ...schemes.flatMap((s) => s.cli.flags?.create?.help ?? []), NODE_OPTION, HOME_OPTION, JSON_OPTION],
    example: `tally wallet create alice --scheme ${names[0] ?? ''}`,
    async run(argv, io) {
      const parsed = parseArgs({ args: argv, options: { ...common, scheme: { type: 'string', default: names[0] }, node: { type: 'string' }, ...extra }, allowPositionals: true, strict: true });
      const values: Record<string, unknown> = { ...parsed.values };
      const [name, ...rest] = parsed.positionals;
      if (name === undefined || rest.length > 0) throw new UsageError(`expected NAME, got ${parsed.positionals.length === 0 ? 'none' : parsed.positionals.map((p) => JSON.stringify(p)).join(' ')}`);
      const scheme = schemes.find((s) => s.name === values['scheme']);
      if (scheme === undefined) throw new UsageError(`--scheme ${String(values['scheme'])}: this version runs ${names.join(' and ')}`);
      const own = scheme.cli.flags?.create?.options ?? {};
      for (const flag of Object.keys(extra)) {
        if (values[flag] !== undefined && values[flag] !== false && !Object.hasOwn(own, flag)) throw new UsageError(`--${flag} is not for ${scheme.name} wallets`);
      }
      const create = scheme.cli.handlers.create;
      if (create === undefined) throw new UsageError(`${scheme.name} wallets are not created from the command line`);
      values['node'] = nodeUrl(values['node'], io.env);
      return create({ home: resolveHome(typeof values['home'] === 'string' ? values['home'] : undefined, io.env), name, args: [], values, io });
    },
  };
}
