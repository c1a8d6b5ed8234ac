/**
 * Builds the verbs that run on one wallet from the schemes' CLI parts: a shell verb (balance,
 * deposit, pay, ...) runs the handler of the wallet's scheme, a scheme's own verb runs on that
 * scheme's wallets only. Which wallet may run what is decided from the capabilities its scheme
 * declares: a verb it lacks is answered WALLET_UNSUPPORTED naming the verbs that scheme offers.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { TallyError } from '../../core/errors.ts';
import type { Scheme } from '../../schemes/index.ts';
import { resolveHome } from '../../wallet/home.ts';
import type { Capability } from '../../wallet/plugin.ts';
import { readWalletData } from '../../wallet/wallet-common.ts';
import { common, prestartSecureElement, UsageError, type Help, type Verb, type VerbIo, type WalletVerbHandler, type WalletVerbName } from '../plugin.ts';

type Options = NonNullable<ParseArgsConfig['options']>;

/** A shell verb: its help, flags and positionals, and the capability it needs. */
export interface ShellVerbSpec extends Help {
  /** Its words on the command line (`wallet deposit`). */
  readonly words: string;
  readonly verb: WalletVerbName;
  /** Positionals after NAME; a trailing `?` marks an optional one. */
  readonly positionals: readonly string[];
  readonly flags: Options;
  /** The verb runs the wallet's secure element (for a wallet that has one): its process is started before the wallet is read (see prestartSecureElement). */
  readonly secureElement?: boolean;
  /** What a wallet must be able to do for it (from the parsed flags and positionals); none: every wallet. */
  capability?(values: Readonly<Record<string, unknown>>, args: readonly string[]): Capability | null;
  /** Usage checks on the parsed flags and positionals. @throws UsageError */
  check?(values: Readonly<Record<string, unknown>>, args: readonly string[]): void;
}

/** For every verb that runs on a wallet, by its words: whether a scheme's wallets can run it. */
export type VerbCapabilities = ReadonlyMap<string, (scheme: Scheme) => boolean>;

/** The verbs a scheme's wallets can run. */
export function offeredVerbs(scheme: Scheme, needs: VerbCapabilities): string[] {
  return [...needs].filter(([, offered]) => offered(scheme)).map(([words]) => `tally ${words}`);
}

/** Whether a scheme runs a shell verb: it has a handler for it and, when the verb needs one, one of its capabilities. */
export function runsShellVerb(scheme: Scheme, spec: ShellVerbSpec, capabilities: readonly (Capability | null)[]): boolean {
  if (spec.verb !== 'create' && scheme.cli.handlers[spec.verb] === undefined) return false;
  return capabilities.some((c) => c === null || scheme.capabilities.includes(c));
}

function unsupported(name: string, scheme: Scheme, words: string, needs: VerbCapabilities, capability: Capability | null): TallyError<'WALLET_UNSUPPORTED'> {
  return new TallyError(
    'WALLET_UNSUPPORTED',
    `wallet ${name} is a ${scheme.name} wallet, which ${capability === null ? `has no \`tally ${words}\`` : `does not offer ${capability}`} (needed by \`tally ${words}\`); it offers: ${offeredVerbs(scheme, needs).join(', ')}`,
    { name, reason: capability ?? 'scheme' },
  );
}

function parsed(argv: string[], options: Options, positionals: readonly string[]) {
  const result = parseArgs({ args: argv, options: { ...common, ...options }, allowPositionals: true, strict: true });
  const required = positionals.filter((p) => !p.endsWith('?')).length;
  if (result.positionals.length < required || result.positionals.length > positionals.length) {
    const shown = positionals.map((p) => (p.endsWith('?') ? `[${p.slice(0, -1)}]` : p)).join(' ');
    throw new UsageError(`expected ${shown === '' ? 'no arguments' : shown}, got ${result.positionals.length === 0 ? 'none' : result.positionals.map((p) => JSON.stringify(p)).join(' ')}`);
  }
  return { values: result.values as Record<string, unknown>, args: result.positionals };
}

/** Reads which scheme the named wallet is of. @throws TallyError WALLET_NOT_FOUND, WALLET_UNSUPPORTED (a scheme this build does not run) */
export async function schemeOfWallet(schemes: readonly Scheme[], home: string, name: string): Promise<Scheme> {
  const read = await readWalletData(home, name);
  if (read === null) throw new TallyError('WALLET_NOT_FOUND', `no wallet named ${name} in ${home}: create it with \`tally wallet create ${name}\``, { name });
  const scheme = schemes.find((s) => s.name === read.data.scheme);
  if (scheme === undefined) throw new TallyError('WALLET_UNSUPPORTED', `wallet ${name} is a ${read.data.scheme} wallet, a scheme this version does not run (it runs ${schemes.map((s) => s.name).join(', ')})`, { name, reason: 'scheme' });
  return scheme;
}

/**
 * Starts a secure element process at once, for a verb that will run the wallet's SE: Node's start
 * and the process's code load overlap with this process loading the verb and reading the wallet.
 * The process serves whichever trusted app the wallet's first command opens; one left unused (a
 * wallet without an SE, a refusal before any SE command) exits with this process.
 */
function prestartEarly(): void {
  prestartSecureElement().catch(() => undefined);
}

/** Refuses a flag that only other schemes declare. */
function refuseForeignFlags(values: Readonly<Record<string, unknown>>, scheme: Scheme, foreign: ReadonlyMap<string, string[]>, ownOf: (s: Scheme) => Options): void {
  const own = ownOf(scheme);
  for (const [flag, owners] of foreign) {
    // A boolean flag left at its default (false) was not given.
    if (values[flag] === undefined || values[flag] === false || Object.hasOwn(own, flag)) continue;
    throw new UsageError(`--${flag} is for ${owners.join(' and ')} wallets, not ${scheme.name}`);
  }
}

/** Every flag the schemes add to a verb, and which schemes add it. */
function schemeFlags(schemes: readonly Scheme[], ownOf: (s: Scheme) => Options): { options: Options; owners: Map<string, string[]> } {
  const options: Options = {};
  const owners = new Map<string, string[]>();
  for (const scheme of schemes) {
    for (const [flag, option] of Object.entries(ownOf(scheme))) {
      options[flag] = option;
      owners.set(flag, [...(owners.get(flag) ?? []), scheme.name]);
    }
  }
  return { options, owners };
}

/** A shell verb over every scheme of the registry. */
export function shellVerb(spec: ShellVerbSpec, schemes: readonly Scheme[], needs: () => VerbCapabilities): Verb {
  const ownOf = (s: Scheme): Options => s.cli.flags?.[spec.verb]?.options ?? {};
  const extra = schemeFlags(schemes, ownOf);
  const help = schemes.flatMap((s) => s.cli.flags?.[spec.verb]?.help ?? []);
  const words = spec.words;
  return {
    usage: spec.usage,
    summary: [spec.summary, ...schemes.flatMap((s) => s.cli.notes?.[spec.verb] ?? [])].join(' '),
    options: [...help, ...spec.options],
    example: spec.example,
    async run(argv: string[], io: VerbIo) {
      const { values, args } = parsed(argv, { ...spec.flags, ...extra.options }, ['NAME', ...spec.positionals]);
      const [name, ...rest] = args as [string, ...string[]];
      spec.check?.(values, rest);
      if (spec.secureElement === true) prestartEarly();
      const home = resolveHome(typeof values['home'] === 'string' ? values['home'] : undefined, io.env);
      const scheme = await schemeOfWallet(schemes, home, name);
      refuseForeignFlags(values, scheme, extra.owners, ownOf);
      const capability = spec.capability?.(values, rest) ?? null;
      if (capability !== null && !scheme.capabilities.includes(capability)) throw unsupported(name, scheme, words, needs(), capability);
      const handler: WalletVerbHandler | undefined = scheme.cli.handlers[spec.verb];
      if (handler === undefined) throw unsupported(name, scheme, words, needs(), null);
      return handler({ home, name, args: rest, values, io });
    },
  };
}

/** A verb some schemes have of their own (a payee's `collect`, say), run on a wallet of a scheme that has it. */
export function schemeVerb(words: string, schemes: readonly Scheme[], needs: () => VerbCapabilities): Verb {
  const owners = schemes.filter((s) => s.cli.verbs?.[words] !== undefined);
  const first = owners[0]?.cli.verbs?.[words];
  if (first === undefined) throw new RangeError(`no scheme has a verb ${words}`);
  const extra = schemeFlags(owners, (s) => s.cli.verbs?.[words]?.flags ?? {});
  return {
    usage: first.usage,
    summary: first.summary,
    options: first.options,
    example: first.example,
    async run(argv: string[], io: VerbIo) {
      const { values, args } = parsed(argv, extra.options, ['NAME', ...first.positionals]);
      const [name, ...rest] = args as [string, ...string[]];
      if (owners.some((s) => s.cli.verbs?.[words]?.secureElement === true)) prestartEarly();
      const home = resolveHome(typeof values['home'] === 'string' ? values['home'] : undefined, io.env);
      const scheme = await schemeOfWallet(schemes, home, name);
      const verb = scheme.cli.verbs?.[words];
      if (verb === undefined || !scheme.capabilities.includes(verb.capability)) throw unsupported(name, scheme, words, needs(), first.capability);
      refuseForeignFlags(values, scheme, extra.owners, (s) => s.cli.verbs?.[words]?.flags ?? {});
      return verb.run({ home, name, args: rest, values, io });
    },
  };
}
