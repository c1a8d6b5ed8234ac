/**
 * The CLI's plug-in module: what a scheme's CLI part implements (its handlers for the shell's
 * wallet verbs, the flags it adds to them, its own verbs) and the helpers a verb uses (argument
 * parsing, the common options, the help text). The one module of src/cli a scheme imports.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { isTallyError } from '../core/errors.ts';
import type { Capability } from '../wallet/plugin.ts';
import { decodeText, operatorTokenCodec } from '../wallet/files.ts';
import { readPassword } from './password.ts';

export { readPassword };

/** Thrown for bad usage (exit code 2). */
export class UsageError extends Error {}

/** What a verb returns. */
export interface Outcome {
  text: string;
  json: Record<string, unknown>;
  /** The exit code when it is not 0 (the outcome is still printed: a simulation that found a violation). */
  exitCode?: number | undefined;
}

/** What `--help` shows of a command: its synopsis, what it does, its options and an example. */
export interface Help {
  /** The synopsis: words, arguments and flags (several forms separated by a newline). */
  usage: string;
  /** What it does, in a sentence or two. */
  summary: string;
  /** Each option with what it means. */
  options: readonly (readonly [flag: string, meaning: string])[];
  /** A command line showing it in use. */
  example: string;
}

/** A verb: its help and its run. */
export interface Verb extends Help {
  run(args: string[], io: VerbIo): Promise<Outcome>;
}

/** The `--help` text of a command. */
export function helpText(help: Help): string {
  const width = Math.max(...help.options.map(([flag]) => flag.length));
  return [
    `usage: ${help.usage.split('\n').join('\n       ')}`,
    '',
    help.summary,
    ...(help.options.length === 0 ? [] : ['', 'options:', ...help.options.map(([flag, meaning]) => `  ${flag.padEnd(width)}  ${meaning}`)]),
    '',
    'example:',
    `  ${help.example.split('\n').join('\n  ')}`,
  ].join('\n');
}

/** What a verb may use besides its arguments. */
export interface VerbIo {
  env: Readonly<Record<string, string | undefined>>;
  /** Progress for long steps (stderr; silent with --json). */
  progress(line: string): void;
  /** A line that must reach the user before the verb ends (e.g. the port it listens on). */
  announce(text: string, json: Record<string, unknown>): void;
}

/** The node a command talks to when none is given. */
export const DEFAULT_NODE_URL = 'http://127.0.0.1:8080';
/** How long `receive` waits for a payer, and each side for the next message, by default. */
export const LINK_WAIT_MS_DEFAULT = 120_000;

export const HOME_OPTION = ['--home DIR', 'the folder of wallets (else $TALLY_HOME, else ~/.tally)'] as const;
export const JSON_OPTION = ['--json', 'print one JSON object instead of text (amounts as decimal strings with a "currency" field)'] as const;
export const NODE_OPTION = ['--node URL', 'the issuer node (else $TALLY_NODE, else http://127.0.0.1:8080)'] as const;
export const OPERATOR_OPTIONS = [
  NODE_OPTION,
  ['--token T', 'the operator token (else $TALLY_OPERATOR_TOKEN)'],
  ['--data DIR', "read the operator token from the node's data folder (DIR/identity/operator-token)"],
] as const;
/** The flags of the operator's verbs. */
export const OPERATOR_FLAGS = { node: { type: 'string' }, token: { type: 'string' }, data: { type: 'string' } } as const;
export const TIMEOUT_OPTION = ['--timeout SECONDS', `how long to wait for the peer and for each of its messages (default ${LINK_WAIT_MS_DEFAULT / 1000})`] as const;

export const common = {
  home: { type: 'string' },
  json: { type: 'boolean', default: false },
} as const satisfies ParseArgsConfig['options'];

export function parse<O extends NonNullable<ParseArgsConfig['options']>>(args: string[], options: O, positionals: string[]) {
  const parsed = parseArgs({ args, options: { ...common, ...options }, allowPositionals: true, strict: true });
  if (parsed.positionals.length !== positionals.length) {
    throw new UsageError(`expected ${positionals.length === 0 ? 'no arguments' : positionals.join(' ')}, got ${parsed.positionals.length === 0 ? 'none' : parsed.positionals.map((p) => JSON.stringify(p)).join(' ')}`);
  }
  return { values: parsed.values, args: parsed.positionals as string[] };
}

export function nodeUrl(flag: unknown, env: VerbIo['env']): string {
  return typeof flag === 'string' ? flag : (env['TALLY_NODE'] ?? DEFAULT_NODE_URL);
}

export async function operatorToken(values: Record<string, unknown>, env: VerbIo['env']): Promise<string> {
  if (typeof values['token'] === 'string') return values['token'];
  const fromEnv = env['TALLY_OPERATOR_TOKEN'];
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  if (typeof values['data'] === 'string') {
    const path = join(values['data'], 'identity', 'operator-token');
    const text = await readFile(path, 'utf8').catch(() => null);
    if (text !== null) return decodeText(operatorTokenCodec, text.trim(), path);
    throw new UsageError(`no operator token in ${path}`);
  }
  throw new UsageError('the operator token is needed: give --token, set TALLY_OPERATOR_TOKEN, or point --data at the node\'s data folder');
}


/** Lines for the steps a refusal ended when the wallet was opened. */
export function endedLines(ended: readonly { kind: string; why: string; code: string }[]): string[] {
  return ended.map((x) => `an earlier ${x.kind} was refused and is no longer pending: ${x.why}`);
}

/** The password when one is at hand (for a verb that works, less fully, without it), else null. */
export async function optionalPassword(env: VerbIo['env'], prompt: string): Promise<string | null> {
  try {
    return await readPassword(env, prompt);
  } catch (e) {
    if (isTallyError(e, 'PASSWORD_MISSING')) return null;
    throw e;
  }
}

export function hostPort(text: string): { host: string; port: number } {
  const match = /^(.+):([0-9]{1,5})$/.exec(text);
  if (match === null) throw new UsageError(`--connect: expected HOST:PORT, got ${JSON.stringify(text)}`);
  return { host: (match[1] as string).replace(/^\[(.*)\]$/, '$1'), port: portNumber(match[2] as string) };
}

export function portNumber(text: string): number {
  const port = Number(text);
  if (!/^[0-9]{1,5}$/.test(text) || port > 65535) throw new UsageError(`expected a port from 0 to 65535, got ${JSON.stringify(text)}`);
  return port;
}

export function seconds(text: string | undefined): number {
  if (text === undefined) return LINK_WAIT_MS_DEFAULT;
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0 || value > 3600) throw new UsageError(`--timeout: expected seconds from 1 to 3600, got ${JSON.stringify(text)}`);
  return Math.round(value * 1000);
}

/** The shell's wallet verbs that a scheme's CLI part runs for its wallets. */
export type WalletVerbName = 'create' | 'balance' | 'deposit' | 'withdraw' | 'sync' | 'recover' | 'receive' | 'pay';

/** What a handler of a wallet verb gets: the wallet's home and name, the other positionals and the parsed flags. */
export interface WalletVerbContext {
  readonly home: string;
  /** The wallet's name. */
  readonly name: string;
  /** The positionals after NAME. */
  readonly args: readonly string[];
  readonly values: Readonly<Record<string, unknown>>;
  readonly io: VerbIo;
}

/** The positional at `k` after NAME (the verb's parser checked how many there are). @throws UsageError when it is missing */
export function positional(context: WalletVerbContext, k: number): string {
  const value = context.args[k];
  if (value === undefined) throw new UsageError('an argument is missing');
  return value;
}

/** A string flag of the verb, or undefined when it was not given. */
export function stringFlag(context: WalletVerbContext, name: string): string | undefined {
  const value = context.values[name];
  return typeof value === 'string' ? value : undefined;
}

/**
 * Starts a secure element process ahead of the wallet's first command, for a handler whose verb
 * will use the secure element: the process starts up (Node and its code) while this one still
 * loads and opens the wallet. An unused one exits with the command. `trustedApp`: the module of the
 * trusted app the wallet will open (its AppLocation.module), loaded by the process meanwhile.
 */
export async function prestartSecureElement(trustedApp?: string): Promise<void> {
  (await import('../secure-element/host-isolated.ts')).prestartIsolatedHost(trustedApp);
}

/** Runs a verb for one wallet. */
export type WalletVerbHandler = (context: WalletVerbContext) => Promise<Outcome>;

/** Flags a scheme adds to a verb, with their help lines. */
export interface VerbFlags {
  readonly options: NonNullable<ParseArgsConfig['options']>;
  readonly help: readonly (readonly [flag: string, meaning: string])[];
}

/** A verb of one scheme only (a payee's `collect`, say), run on a wallet of that scheme. */
export interface SchemeVerb extends Help {
  /** What a wallet must be able to do for it; another scheme's wallet is answered WALLET_UNSUPPORTED. */
  readonly capability: Capability;
  /** Positionals after NAME. */
  readonly positionals: readonly string[];
  readonly flags: NonNullable<ParseArgsConfig['options']>;
  /** The verb runs the wallet's secure element: its process is started before the wallet is read. */
  readonly secureElement?: boolean;
  readonly run: WalletVerbHandler;
}

/** How the operator's `mint` reaches a scheme's money outside the node's ledger (a token on a chain). */
export interface OperatorMint {
  /** A target of this kind given as it is (an address). */
  readonly target: RegExp;
  /** What the target is, for the verb's help. */
  readonly describe: string;
  /** The target of a wallet of this scheme, and its node. */
  resolve(name: string, home: string | undefined, env: VerbIo['env']): Promise<{ address: string; node: string }>;
  /** The node's route taking `{to, amount}` with the operator token. */
  readonly path: string;
}

/** What a scheme's CLI part offers. */
export interface CliPart {
  /** Handlers of the shell's wallet verbs for this scheme's wallets. */
  readonly handlers: Readonly<Partial<Record<WalletVerbName, WalletVerbHandler>>>;
  /** A sentence this scheme adds to a shell verb's help (what the verb does for its wallets). */
  readonly notes?: Readonly<Partial<Record<WalletVerbName, string>>>;
  /** Flags this scheme adds to the shell's verbs. */
  readonly flags?: Readonly<Partial<Record<WalletVerbName, VerbFlags>>>;
  /** Verbs of this scheme only, by their words. */
  readonly verbs?: Readonly<Record<string, SchemeVerb>>;
  /** The operator's verbs of this scheme, by their words (`operator ...`): run against the node with the operator token, on no wallet. */
  readonly operatorVerbs?: Readonly<Record<string, Verb>>;
  /** Where the operator's `mint` issues this scheme's money, when it is not the node's ledger. */
  readonly operatorMint?: OperatorMint | undefined;
  /** The scheme's chapter of `tally demo`: told against a running node and home. */
  readonly demo?: (context: DemoContext) => Promise<void>;
  /** The scheme's chapter of `tally demo --two-tier`: a payment from a customer of one bank to a customer of another, settled through the central bank. */
  readonly twoTierDemo?: (context: TwoTierDemoContext) => Promise<void>;
}

/** One intermediary of `tally demo --two-tier`, as a scheme's chapter uses it. */
export interface DemoBank {
  readonly name: string;
  /** Its key id at the central bank. */
  readonly keyId: string;
  /** Where its customers' wallets live (each bank's own home, its OEM enrolled there). */
  readonly home: string;
  readonly node: { readonly url: string; readonly operatorToken: string };
  /** Mints into an online account at this bank, from its reserve. */
  mint(account: string, amount: string, key: string): Promise<void>;
  /** Stops the bank's node (its folder and database stay). */
  stop(): Promise<void>;
  /** Starts it again over its folder, at the same address. */
  start(): Promise<void>;
}

/** What a scheme's chapter of `tally demo --two-tier` uses. */
export interface TwoTierDemoContext extends Omit<DemoContext, 'home' | 'node' | 'mint'> {
  readonly centralBank: { readonly url: string; readonly operatorToken: string };
  readonly bankA: DemoBank;
  readonly bankB: DemoBank;
  /** Both banks synced until claims, decisions and movements have gone round; the system's audit (its `balanced` the story checks). */
  settle(): Promise<Record<string, unknown>>;
  /** Bank A's and Bank B's reserves at the central bank now, in major units. */
  reserves(): Promise<{ a: string; b: string }>;
}

/** What a scheme's chapter of `tally demo` uses. */
export interface DemoContext {
  readonly home: string;
  readonly node: { readonly url: string; readonly operatorToken: string };
  /** Mints into an online account. */
  mint(account: string, amount: string, key: string): Promise<void>;
  /** A numbered step. */
  say(text: string, step: { step: string; [key: string]: unknown }): void;
  /** A line under the last step. */
  aside(text: string, step: { step: string; [key: string]: unknown }): void;
  /** Counts a refusal the story expected but did not see (the demo then exits 1). */
  missed(what: string): void;
  /** Closes the wallet at the end. */
  keep(opened: { close(): Promise<void> }): void;
}
