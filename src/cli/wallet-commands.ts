/**
 * The wallet, operator and payment verbs of `tally`. Each verb parses its own flags, runs, and
 * returns a result with a line of text for people and an object for `--json` (amounts as decimal
 * strings). Errors are thrown as TallyError and printed by main.ts as one line.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { toHex } from '../core/bytes.ts';
import { isTallyError, TallyError } from '../core/errors.ts';
import { enrollOem } from '../wallet/factory.ts';
import { resolveHome } from '../wallet/home.ts';
import { NodeClient } from '../wallet/node-client.ts';
import { auditAnswer, mintAnswer, withRaw } from '../wallet/node-answers.ts';
import { decodeText, operatorTokenCodec } from '../wallet/files.ts';
import { Wallet, type InboxEntry } from '../wallet/wallet.ts';
import { readHistory, readWalletData } from '../wallet/wallet-common.ts';
import { DotmWallet, walletScheme, type DotmTransfer } from '../wallet/dotm-wallet.ts';
import { readPassword } from './password.ts';

/** Thrown for bad usage (exit code 2). */
export class UsageError extends Error {}

/** What a verb returns. */
export interface Outcome {
  text: string;
  json: Record<string, unknown>;
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

const HOME_OPTION = ['--home DIR', 'the folder of wallets (else $TALLY_HOME, else ~/.tally)'] as const;
const JSON_OPTION = ['--json', 'print one JSON object instead of text (amounts as decimal strings with a "currency" field)'] as const;
const NODE_OPTION = ['--node URL', 'the issuer node (else $TALLY_NODE, else http://127.0.0.1:8080)'] as const;
const OPERATOR_OPTIONS = [
  NODE_OPTION,
  ['--token T', 'the operator token (else $TALLY_OPERATOR_TOKEN)'],
  ['--data DIR', "read the operator token from the node's data folder (DIR/identity/operator-token)"],
] as const;
const TIMEOUT_OPTION = ['--timeout SECONDS', `how long to wait for the peer and for each of its messages (default ${LINK_WAIT_MS_DEFAULT / 1000})`] as const;

const common = {
  home: { type: 'string' },
  json: { type: 'boolean', default: false },
} as const satisfies ParseArgsConfig['options'];

function parse<O extends NonNullable<ParseArgsConfig['options']>>(args: string[], options: O, positionals: string[]) {
  const parsed = parseArgs({ args, options: { ...common, ...options }, allowPositionals: true, strict: true });
  if (parsed.positionals.length !== positionals.length) {
    throw new UsageError(`expected ${positionals.length === 0 ? 'no arguments' : positionals.join(' ')}, got ${parsed.positionals.length === 0 ? 'none' : parsed.positionals.map((p) => JSON.stringify(p)).join(' ')}`);
  }
  return { values: parsed.values, args: parsed.positionals as string[] };
}

function nodeUrl(flag: unknown, env: VerbIo['env']): string {
  return typeof flag === 'string' ? flag : (env['TALLY_NODE'] ?? DEFAULT_NODE_URL);
}

async function operatorToken(values: Record<string, unknown>, env: VerbIo['env']): Promise<string> {
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

async function withWallet<T>(values: Record<string, unknown>, name: string | undefined, env: VerbIo['env'], run: (wallet: Wallet) => Promise<T>): Promise<T> {
  if (name === undefined) throw new UsageError('a wallet NAME is needed');
  const wallet = await Wallet.open(resolveHome(values['home'] as string | undefined, env), name);
  try {
    return await run(wallet);
  } finally {
    await wallet.close();
  }
}

/** True when the named wallet of the home is a DOT-M wallet. */
async function isDotm(values: Record<string, unknown>, name: string | undefined, env: VerbIo['env']): Promise<boolean> {
  if (name === undefined) return false;
  return (await walletScheme(resolveHome(values['home'] as string | undefined, env), name)) === 'dotm';
}

/**
 * Opens a DOT-M wallet, opens its account key with `password` when one is given (the verbs that need
 * the node or a link; `optional`: a locked wallet or a missing password leaves the key sealed),
 * finishes what a crash cut short (§3.3.5), runs, closes.
 */
async function withDotm<T>(
  values: Record<string, unknown>,
  name: string,
  env: VerbIo['env'],
  run: (wallet: DotmWallet, recovered: string[], resumed: Awaited<ReturnType<DotmWallet['recover']>>) => Promise<T>,
  unlock?: { password: string | null; optional?: boolean },
): Promise<T> {
  const wallet = await DotmWallet.open(resolveHome(values['home'] as string | undefined, env), name);
  try {
    if (unlock?.password != null) {
      try {
        await wallet.unlockAccount(unlock.password);
      } catch (e) {
        if (unlock.optional !== true || !isTallyError(e, 'SE_REJECTED') || e.details.reason !== 'PASSWORD_LOCKED') throw e;
      }
    } else if (unlock !== undefined && unlock.optional !== true) {
      throw new TallyError('PASSWORD_MISSING', 'the payment password is needed', {});
    }
    const recovered = await wallet.recover();
    return await run(wallet, recovered.finished, recovered);
  } finally {
    await wallet.close();
  }
}

/** The payment password of a DOT-M verb that needs the account key. */
function dotmPassword(env: VerbIo['env']): Promise<string> {
  return readPassword(env, 'Payment password: ');
}

/** The password when one is at hand (for a verb that works, less fully, without it), else null. */
async function optionalPassword(env: VerbIo['env']): Promise<string | null> {
  try {
    return await dotmPassword(env);
  } catch (e) {
    if (isTallyError(e, 'PASSWORD_MISSING')) return null;
    throw e;
  }
}

/** DOT-M's nine steps need both devices at once: the token verbs do not apply. */
async function refuseForDotm(values: Record<string, unknown>, name: string | undefined, env: VerbIo['env'], verb: string): Promise<void> {
  if (await isDotm(values, name, env)) {
    throw new TallyError('WALLET_UNSUPPORTED', `wallet ${name}: \`tally ${verb}\` is for OPS; a DOT-M transaction runs over a live link (tally receive NAME AMOUNT --listen PORT / tally pay NAME --connect HOST:PORT)`, { name: name as string, reason: 'scheme' });
  }
}

function transferText(wallet: DotmWallet, r: DotmTransfer, role: 'payer' | 'payee'): string {
  const c = wallet.currency.code;
  const shape = `${r.blocks} block(s), ${r.records} earlier record(s)`;
  if (r.status === 'rolled-back') return `Rolled back ${r.amount} ${c} (transaction ${r.tsn}): the payer's success message did not come (${r.error ?? ''}). If the payer paid, the node gives it back after both sync.`;
  return role === 'payer' ? `Paid ${r.amount} ${c} over the link (transaction ${r.tsn}, ${shape}); the payee confirmed.` : `Received ${r.amount} ${c} (transaction ${r.tsn}, ${shape}).`;
}

function shortEntry(wallet: Wallet, e: InboxEntry) {
  return { amount: e.credited ?? wallet.format(BigInt(e.amount)), sender: e.sender, index: e.index, state: e.state, ...(e.reason === undefined ? {} : { reason: e.reason }), ...(e.waiting === undefined ? {} : { waiting: e.waiting }) };
}

/** What `wallet recover` prints. */
function recoveredOutcome(name: string, r: { retired: string; device: string; folder: string; setAside: { steps: number; payments: number }; escrow?: string; releaseAt?: string }, currency: string): Outcome {
  const lines = [
    `Retired secure element ${r.retired} (kept in ${r.folder}); new secure element ${r.device}, offline balance 0.`,
    r.escrow === undefined
      ? 'What the node knows the retired one holds stays with it at the node; nothing was moved or created.'
      : `The node revoked the old device and holds ${r.escrow} ${currency}, what it knows the old one held, for its payments that still surface; the rest comes to your online account at a sync from ${r.releaseAt ?? '?'}.`,
    ...(r.setAside.steps + r.setAside.payments > 0 ? [`Set aside with it (see the history): ${r.setAside.steps} unfinished step(s), ${r.setAside.payments} received payment(s) not yet collected.`] : []),
  ];
  return { text: lines.join('\n'), json: { name, ...r } };
}

/** Lines for the steps a refusal ended when the wallet was opened. */
function endedLines(ended: readonly { kind: string; why: string; code: string }[]): string[] {
  return ended.map((x) => `an earlier ${x.kind} was refused and is no longer pending: ${x.why}`);
}

const operatorFlags = { node: { type: 'string' }, token: { type: 'string' }, data: { type: 'string' } } as const;

/** Every verb but `node start`, by its words. */
export const VERBS: Record<string, Verb> = {
  'operator mint': {
    usage: 'tally operator mint ACCOUNT AMOUNT [--node URL] [--token T | --data DIR] [--home DIR] [--json]',
    summary: 'Operator: the central bank issues AMOUNT (decimal major units, such as 100.00) into an online account. ACCOUNT is an account id (user:...) or the NAME of a wallet of this home.',
    options: [...OPERATOR_OPTIONS, HOME_OPTION, JSON_OPTION],
    example: 'tally operator mint alice 100.00',
    async run(argv, io) {
      const { values, args } = parse(argv, operatorFlags, ['ACCOUNT', 'AMOUNT']);
      const [target, amount] = args as [string, string];
      let account = target;
      let url = nodeUrl(values.node, io.env);
      if (!target.includes(':')) {
        const home = resolveHome(values.home, io.env);
        // A damaged wallet file is STATE_CORRUPT naming the file, not a raw parse error.
        const read = await readWalletData(home, target);
        if (read === null) throw new TallyError('WALLET_NOT_FOUND', `${target} is neither an account id (user:...) nor a wallet in ${home}`, { name: target });
        account = read.data.user.account;
        if (values.node === undefined) url = read.data.node;
      }
      const node = new NodeClient(url);
      const answer = await node.operator(await operatorToken(values, io.env), 'POST', '/v1/operator/mint', { answer: mintAnswer,
        body: { account, amount },
        idempotencyKey: `mint-${toHex(crypto.getRandomValues(new Uint8Array(12)))}`,
      });
      const t = answer.body.transfer;
      return { text: `Minted ${t.amount} ${t.currency} into ${account} (transfer ${t.id}).`, json: { account, amount: t.amount, currency: t.currency, transfer: t.id } };
    },
  },
  'operator oem': {
    usage: 'tally operator oem [--node URL] [--token T | --data DIR] [--home DIR] [--json]',
    summary: "Operator, the factory step: creates this home's software OEM key if needed, enrols it at the node and allows the current builds of the OPS and DOT-M trusted apps. Run it once per home and node, before creating wallets with a secure element.",
    options: [...OPERATOR_OPTIONS, HOME_OPTION, JSON_OPTION],
    example: 'tally operator oem --data ./tally-data',
    async run(argv, io) {
      const { values } = parse(argv, operatorFlags, []);
      const home = resolveHome(values.home, io.env);
      const node = new NodeClient(nodeUrl(values.node, io.env));
      const result = await enrollOem(home, node, await operatorToken(values, io.env));
      return {
        text: `${result.created ? 'Created' : 'Reused'} the software OEM key ${result.keyId} in ${home}; enrolled at ${node.url}; trusted app build ${result.measurement} allowed.`,
        json: { home, node: node.url, oem: result.keyId, measurement: result.measurement, created: result.created },
      };
    },
  },
  audit: {
    usage: 'tally audit [--node URL] [--token T | --data DIR] [--json]',
    summary: "Operator: the node's audit of its ledger: the money issued must equal the online accounts plus the offline float.",
    options: [...OPERATOR_OPTIONS, JSON_OPTION],
    example: 'tally audit --data ./tally-data',
    async run(argv, io) {
      const { values } = parse(argv, operatorFlags, []);
      const node = new NodeClient(nodeUrl(values.node, io.env));
      type Exposure = { scheme: string; floatAccount: string; float: string; expected: string; difference: string; attributed: string; unexplained: string; balanced: boolean; exposed: { device: string; amount: string; fraud: boolean }[] };
      type Audit = {
        balanced: boolean;
        ledgerBalanced: boolean;
        currency: string;
        currencies: { currency: string; totalIssued: string; totalOnline: string; totalOfflineFloat: string; balanced: boolean }[];
        exposure: Exposure[];
        problemCount: number;
        transferCount: number;
      };
      const answer = await node.operator(await operatorToken(values, io.env), 'GET', '/v1/audit', { answer: withRaw(auditAnswer) });
      const body: Audit = answer.body.value;
      const cur = body.currency;
      const lines = [
        `Audit: ${body.balanced ? 'balanced' : 'NOT BALANCED'}.`,
        `Ledger ${body.ledgerBalanced ? 'balanced' : 'NOT BALANCED'} (${body.transferCount} transfers, ${body.problemCount} problems).`,
        ...body.currencies.map((c) => `${c.currency}: issued ${c.totalIssued} = online ${c.totalOnline} + offline float ${c.totalOfflineFloat} ${c.currency}${c.balanced ? '' : '  <- does not add up'}`),
        ...body.exposure.flatMap((e) => [
          `${e.scheme}: ${e.floatAccount} holds ${e.float} ${cur}; devices and payees are known to be owed ${e.expected} ${cur}; difference ${e.difference} ${cur}` +
            (e.balanced ? '' : `, of which ${e.unexplained} ${cur} nobody is named for yet  <- value created offline, or devices that have not synced`),
          ...e.exposed.map((h) => `  device ${h.device} paid out ${h.amount} ${cur} more than the node knows it received${h.fraud ? ' (named in a fraud case)' : ''}`),
        ]),
      ];
      return { text: lines.join('\n'), json: answer.body.raw };
    },
  },
  'wallet create': {
    usage: 'tally wallet create NAME [--scheme ops|dotm] [--no-secure-element] [--node URL] [--home DIR] [--json]',
    summary: 'Creates a wallet and registers its user at the node; with a secure element (the default), provisions it in its own process and registers the device. A DOT-M wallet asks for its payment password at a prompt, or reads $TALLY_PASSWORD.',
    options: [
      ['--scheme ops|dotm', 'the payment scheme (default ops)'],
      ['--no-secure-element', 'an OPS wallet without a secure element: it receives payments and claims them online'],
      NODE_OPTION,
      HOME_OPTION,
      JSON_OPTION,
    ],
    example: 'tally wallet create alice --scheme ops',
    async run(argv, io) {
      const { values, args } = parse(argv, { scheme: { type: 'string', default: 'ops' }, 'no-secure-element': { type: 'boolean', default: false }, node: { type: 'string' } }, ['NAME']);
      if (values.scheme !== 'ops' && values.scheme !== 'dotm') throw new UsageError(`--scheme ${values.scheme}: this version runs ops and dotm`);
      const home = resolveHome(values.home, io.env);
      if (values.scheme === 'dotm') {
        if (values['no-secure-element'] === true) throw new UsageError('a DOT-M wallet always has a secure element');
        const password = await readPassword(io.env, 'Payment password for the new wallet: ', { confirm: true });
        const wallet = await DotmWallet.create({ home, name: args[0] as string, node: nodeUrl(values.node, io.env), password, progress: io.progress });
        try {
          const data = wallet.snapshot();
          const keys = data.dotm;
          return {
            text: `Created DOT-M wallet ${data.name} (wallet key ${keys?.wallet ?? '?'}, user key ${keys?.user ?? '?'}), account ${data.user.account}, at ${data.node}.`,
            json: { name: data.name, scheme: data.scheme, home, node: data.node, account: data.user.account, user: keys?.user ?? null, wallet: keys?.wallet ?? null },
          };
        } finally {
          await wallet.close();
        }
      }
      const wallet = await Wallet.create({ home, name: args[0] as string, node: nodeUrl(values.node, io.env), secureElement: values['no-secure-element'] !== true, progress: io.progress });
      try {
        const data = wallet.snapshot();
        return {
          text: `Created wallet ${data.name} (${data.device === null ? 'no secure element: receives and claims' : `secure element ${data.device.keyId}`}), account ${data.user.account}, at ${data.node}.`,
          json: { name: data.name, scheme: data.scheme, home, node: data.node, account: data.user.account, user: data.user.keyId, device: data.device?.keyId ?? null },
        };
      } finally {
        await wallet.close();
      }
    },
  },
  'wallet balance': {
    usage: 'tally wallet balance NAME [--home DIR] [--json]',
    summary: 'Shows the online balance (from the node, when it answers), the offline balance in the secure element, payments not yet collected, limits and unfinished steps; a DOT-M wallet lists its currency blocks.',
    options: [HOME_OPTION, JSON_OPTION],
    example: 'tally wallet balance alice',
    async run(argv, io) {
      const { values, args } = parse(argv, {}, ['NAME']);
      if (await isDotm(values, args[0], io.env)) {
        const password = await optionalPassword(io.env);
        return withDotm(values, args[0] as string, io.env, async (wallet, _recovered, resumed) => {
          const b = await wallet.balance();
          const c = wallet.currency.code;
          const lines = [
            `online:  ${b.online === null ? `unknown (${b.onlineError ?? 'node unreachable'})` : `${b.online} ${c}`}`,
            `offline: ${b.offline} ${c} in ${b.blocks.length} currency block(s)`,
            ...b.blocks.map((k) => `  block ${k.serial}  value ${k.value} ${c}  remaining ${k.remaining} ${c}  ${k.count} offline transaction(s)${k.held ? '  (held by an open offer)' : ''}`),
            ...(b.unsyncedEvents > 0 ? [`${b.unsyncedEvents} offline event(s) await the node (tally sync)`] : []),
            `payment password: ${b.passwordTriesLeft === 0 ? 'LOCKED' : `${b.passwordTriesLeft} tries left`}`,
            ...(b.pendingSteps > 0 ? [`unfinished steps: ${b.pendingSteps} (${resumed.waiting.map((w) => `${w.kind}: ${w.why}`).join('; ')})`] : []),
            ...endedLines(resumed.ended),
          ];
          return { text: lines.join('\n'), json: { name: wallet.name, scheme: 'dotm', currency: c, ...b, ...(resumed.ended.length === 0 ? {} : { ended: resumed.ended }) } };
        }, { password, optional: true });
      }
      return withWallet(values, args[0], io.env, async (wallet) => {
        const resumed = await wallet.resume();
        const b = await wallet.balance();
        const c = wallet.currency.code;
        const lines = [
          `online:  ${b.online === null ? `unknown (${b.onlineError ?? 'node unreachable'})` : `${b.online} ${c}`}`,
          ...(b.offline === null ? [] : [`offline: ${b.offline} ${c} (holding limit ${b.holdingLimit} ${c}, ${b.offlinePaymentsLeft} offline payments left before a sync)`]),
          `incoming: ${b.incoming} ${c} accepted, not yet ${wallet.hasSecureElement ? 'collected' : 'claimed'}`,
          ...(b.pendingSteps > 0 ? [`unfinished steps: ${b.pendingSteps} (${resumed.waiting.map((w) => `${w.kind}: ${w.why}`).join('; ')})`] : []),
          ...endedLines(resumed.ended),
        ];
        return { text: lines.join('\n'), json: { name: wallet.name, currency: c, ...b, ...(resumed.ended.length === 0 ? {} : { ended: resumed.ended }) } };
      });
    },
  },
  'wallet history': {
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
      const { events, damaged } = await readHistory(read.paths);
      const lines = events.map((e) => `${new Date(e.at).toISOString()}  ${e.kind.padEnd(16)} ${e.amount === undefined ? '' : `${e.amount} ${code}  `}${e.detail ?? ''}`);
      if (lines.length === 0) lines.push('No history yet.');
      const warnings = damaged.map((d) => `warning: ${read.paths.history} line ${d.line} is damaged (${d.reason}); skipped`);
      return { text: [...lines, ...warnings].join('\n'), json: { name: read.data.name, currency: code, events, damaged: damaged.map((d) => ({ ...d, file: read.paths.history })) } };
    },
  },
  'wallet deposit': {
    usage: 'tally wallet deposit NAME AMOUNT [--blocks N] [--home DIR] [--json]',
    summary: 'Moves AMOUNT from the online account into the secure element (online to offline); needs the node.',
    options: [['--blocks N', 'DOT-M: split the amount into N currency blocks (1 to 20, default 1)'], HOME_OPTION, JSON_OPTION],
    example: 'tally wallet deposit alice 60.00',
    async run(argv, io) {
      const { values, args } = parse(argv, { blocks: { type: 'string' } }, ['NAME', 'AMOUNT']);
      if (await isDotm(values, args[0], io.env)) {
        const count = values.blocks === undefined ? 1 : Number(values.blocks);
        if (!/^[0-9]{1,2}$/.test(values.blocks ?? '1')) throw new UsageError(`--blocks: expected a number from 1 to 20, got ${JSON.stringify(values.blocks)}`);
        const password = await dotmPassword(io.env);
        return withDotm(values, args[0] as string, io.env, async (wallet) => {
          const r = await wallet.deposit(args[1] as string, count);
          return { text: `Deposited ${r.amount} ${wallet.currency.code} as ${r.blocks} currency block(s) signed by the central bank; offline balance ${r.offline} ${wallet.currency.code}.`, json: { name: wallet.name, currency: wallet.currency.code, ...r } };
        }, { password });
      }
      if (values.blocks !== undefined) throw new UsageError('--blocks is for DOT-M wallets');
      return withWallet(values, args[0], io.env, async (wallet) => {
        const r = await wallet.deposit(args[1] as string);
        return { text: `Deposited ${r.amount} ${wallet.currency.code} into the secure element; offline balance ${r.offline} ${wallet.currency.code}.`, json: { name: wallet.name, currency: wallet.currency.code, ...r } };
      });
    },
  },
  'wallet withdraw': {
    usage: 'tally wallet withdraw NAME AMOUNT [--home DIR] [--json]',
    summary: 'Moves AMOUNT from the secure element back to the online account (offline to online); needs the node.',
    options: [HOME_OPTION, JSON_OPTION],
    example: 'tally wallet withdraw alice 20.00',
    async run(argv, io) {
      const { values, args } = parse(argv, {}, ['NAME', 'AMOUNT']);
      if (await isDotm(values, args[0], io.env)) {
        const password = await dotmPassword(io.env);
        return withDotm(values, args[0] as string, io.env, async (wallet) => {
          const r = await wallet.withdraw(args[1] as string, password);
          const c = wallet.currency.code;
          return {
            text:
              r.outcome === 'credited'
                ? `Withdrew ${r.amount} ${c} to the online account; online balance ${r.online ?? 'unknown'} ${c}.`
                : r.outcome === 'refused'
                  ? `Gave up ${r.amount} ${c} of currency blocks, but the node refused to credit them: ${r.refusal?.message ?? ''} [${r.refusal?.code ?? ''}].`
                  : r.outcome === 'pending'
                    ? `Gave up ${r.amount} ${c} of currency blocks; the node has not taken the redemption yet: it is credited at a later sync (tally sync ${wallet.name}).`
                    : `Gave up ${r.amount} ${c} of currency blocks; the node is unreachable now: it credits them at the next sync (tally sync ${wallet.name}).`,
            json: { name: wallet.name, currency: c, ...r },
          };
        }, { password });
      }
      return withWallet(values, args[0], io.env, async (wallet) => {
        const r = await wallet.withdraw(args[1] as string);
        return { text: `Withdrew ${r.amount} ${wallet.currency.code} to the online account; online balance ${r.online ?? 'unknown'} ${wallet.currency.code}.`, json: { name: wallet.name, currency: wallet.currency.code, ...r } };
      });
    },
  },
  'wallet recover': {
    usage: 'tally wallet recover NAME [--home DIR] [--json]',
    summary:
      'Retires a secure element that refuses to run (ROLLBACK_DETECTED, or a damaged state) and registers a new, empty one for the same user; OPS: the node revokes the old device and credits the online account with what it knows the old one held. Needs the node. DOT-M: the payment password (prompt, or $TALLY_PASSWORD) opens the account key and becomes the new secure element\'s.',
    options: [HOME_OPTION, JSON_OPTION],
    example: 'tally wallet recover alice',
    async run(argv, io) {
      const { values, args } = parse(argv, {}, ['NAME']);
      if (await isDotm(values, args[0], io.env)) {
        // The wallet's payment password: it opens the account key, and the new secure element takes it.
        const password = await dotmPassword(io.env);
        const wallet = await DotmWallet.open(resolveHome(values.home, io.env), args[0] as string);
        try {
          return recoveredOutcome(wallet.name, await wallet.recoverDevice(password, io.progress), wallet.currency.code);
        } finally {
          await wallet.close();
        }
      }
      return withWallet(values, args[0], io.env, async (wallet) => {
        const r = await wallet.recoverDevice(io.progress);
        return recoveredOutcome(wallet.name, r, wallet.currency.code);
      });
    },
  },
  request: {
    usage: 'tally request NAME AMOUNT [--memo TEXT] [--home DIR] [--json]',
    summary: 'Payee, offline (OPS): prints a payment request token for AMOUNT naming this wallet; give it to the payer for `tally pay`.',
    options: [['--memo TEXT', 'a note carried in the request'], HOME_OPTION, JSON_OPTION],
    example: 'REQ=$(tally request bob 12.50 --memo beans)',
    async run(argv, io) {
      const { values, args } = parse(argv, { memo: { type: 'string' } }, ['NAME', 'AMOUNT']);
      await refuseForDotm(values, args[0], io.env, 'request');
      return withWallet(values, args[0], io.env, async (wallet) => {
        const { token, request } = wallet.request(args[1] as string, values.memo);
        return { text: token, json: { name: wallet.name, amount: wallet.format(request.amount), currency: wallet.currency.code, token } };
      });
    },
  },
  pay: {
    usage: 'tally pay NAME REQUEST [--payee KEYID] [--again] [--home DIR] [--json]\ntally pay NAME --connect HOST:PORT [--expect AMOUNT] [--timeout SECONDS] [--home DIR] [--json]',
    summary: 'Payer, offline: pays a request token (OPS) or a payee waiting with `tally receive` (--connect; OPS and DOT-M). With a REQUEST token: the secure element pays it and the payment token is printed; give it to the payee for `tally accept`. With --connect: pays the payee waiting with `tally receive` over TCP + Noise (OPS and DOT-M; DOT-M asks for the payment password, or reads $TALLY_PASSWORD).',
    options: [
      ['--connect HOST:PORT', 'the address of a payee running `tally receive ... --listen PORT`'],
      ['--expect AMOUNT', 'refuse unless the payee asks for exactly this amount'],
      ['--payee KEYID', 'refuse a request token signed by another user (the full key id or its first 8+ hex digits)'],
      ['--again', 'pay a request token that was paid once already'],
      TIMEOUT_OPTION,
      HOME_OPTION,
      JSON_OPTION,
    ],
    example: 'PAY=$(tally pay alice "$REQ")\ntally pay alice --connect 127.0.0.1:7000 --expect 5.00',
    async run(argv, io) {
      const parsed = parseArgs({ args: argv, options: { ...common, connect: { type: 'string' }, expect: { type: 'string' }, timeout: { type: 'string' }, again: { type: 'boolean', default: false }, payee: { type: 'string' } }, allowPositionals: true, strict: true });
      const values = parsed.values;
      const [name, token, ...rest] = parsed.positionals;
      if (rest.length > 0 || (values.connect === undefined) === (token === undefined)) throw new UsageError('give either a REQUEST token or --connect HOST:PORT');
      if (token === undefined && (values.again === true || values.payee !== undefined)) throw new UsageError('--again and --payee are for a REQUEST token');
      if (values.connect !== undefined && name !== undefined && (await isDotm(values, name, io.env))) {
        const { host, port } = hostPort(values.connect);
        const password = await dotmPassword(io.env);
        return withDotm(values, name, io.env, async (wallet) => {
          const r = await wallet.payTo(host, port, { password, ...(values.expect === undefined ? {} : { expect: values.expect }), timeoutMs: seconds(values.timeout) });
          return { text: transferText(wallet, r, 'payer'), json: { name: wallet.name, scheme: 'dotm', currency: wallet.currency.code, ...r } };
        }, { password });
      }
      if (token !== undefined) await refuseForDotm(values, name, io.env, 'pay REQUEST');
      return withWallet(values, name, io.env, async (wallet) => {
        if (token !== undefined) {
          const r = await wallet.pay(token, { again: values.again === true, ...(values.payee === undefined ? {} : { payee: values.payee }) });
          const amount = wallet.format(r.payment.amount);
          const who = `${r.payee.name === undefined ? 'user' : JSON.stringify(r.payee.name)} ${r.payee.keyId}${r.payee.receiverRole === 'device' ? ` (its device ${r.payee.receiver})` : ''}`;
          // Whom it paid goes to stderr, so that `PAY=$(tally pay ...)` still captures the token alone.
          io.progress(`Paying ${amount} ${wallet.currency.code} to ${who}, who signed the request: payment ${r.entry.index}, hand the payee the token below`);
          return {
            text: r.token,
            json: { name: wallet.name, amount, currency: wallet.currency.code, index: r.entry.index, receiver: r.entry.receiver, payee: r.payee, token: r.token },
          };
        }
        const { host, port } = hostPort(values.connect as string);
        const r = await wallet.payTo(host, port, { ...(values.expect === undefined ? {} : { expect: values.expect }), timeoutMs: seconds(values.timeout) });
        const amount = wallet.format(r.payment.amount);
        return {
          text: r.confirmed
            ? `Paid ${amount} ${wallet.currency.code} over the link; the payee confirmed.`
            : `Paid ${amount} ${wallet.currency.code}, but the payee did not confirm (${r.error ?? 'no receipt'}). The payment is kept; hand it over as this token:\n${r.token}`,
          json: { name: wallet.name, amount, currency: wallet.currency.code, index: r.payment.index.toString(), confirmed: r.confirmed, token: r.token, ...(r.error === undefined ? {} : { error: r.error }) },
        };
      });
    },
  },
  accept: {
    usage: 'tally accept NAME PAYMENT [--home DIR] [--json]',
    summary: 'Payee, offline (OPS): verifies a payment token (certificates, revocations, signature, replay) and stores it; then `tally collect` (with a secure element) or `tally claim` (without one).',
    options: [HOME_OPTION, JSON_OPTION],
    example: 'tally accept bob "$PAY" && tally collect bob',
    async run(argv, io) {
      const { values, args } = parse(argv, {}, ['NAME', 'PAYMENT']);
      await refuseForDotm(values, args[0], io.env, 'accept');
      return withWallet(values, args[0], io.env, async (wallet) => {
        const e = await wallet.accept(args[1] as string);
        const amount = wallet.format(BigInt(e.amount));
        return { text: `Accepted ${amount} ${wallet.currency.code} from device ${e.sender} (payment ${e.index}); ${wallet.hasSecureElement ? 'collect it' : 'claim it when online'}.`, json: { name: wallet.name, currency: wallet.currency.code, ...shortEntry(wallet, e) } };
      });
    },
  },
  receive: {
    usage: 'tally receive NAME AMOUNT --listen PORT [--host 127.0.0.1] [--memo TEXT] [--timeout SECONDS] [--home DIR] [--json]',
    summary: 'Payee, offline: waits for one payer (`tally pay NAME --connect HOST:PORT`) over TCP + Noise and takes AMOUNT. An OPS payment is stored like an accepted one: `tally collect` it (or `tally claim` it without a secure element); a DOT-M payment is in the wallet at once.',
    options: [
      ['--listen PORT', 'the TCP port to listen on (0 picks a free one and prints it)'],
      ['--host ADDRESS', 'the address to listen on (default 127.0.0.1)'],
      ['--memo TEXT', 'OPS: a note carried in the request'],
      TIMEOUT_OPTION,
      HOME_OPTION,
      JSON_OPTION,
    ],
    example: 'tally receive bob 5.00 --listen 7000 &\ntally pay alice --connect 127.0.0.1:7000 && tally collect bob',
    async run(argv, io) {
      const { values, args } = parse(argv, { listen: { type: 'string' }, host: { type: 'string', default: '127.0.0.1' }, memo: { type: 'string' }, timeout: { type: 'string' } }, ['NAME', 'AMOUNT']);
      if (values.listen === undefined) throw new UsageError('--listen PORT is needed');
      const port = portNumber(values.listen);
      if (await isDotm(values, args[0], io.env)) {
        const password = await dotmPassword(io.env);
        return withDotm(values, args[0] as string, io.env, async (wallet) => {
          const r = await wallet.receive(args[1] as string, {
            port,
            host: values.host,
            timeoutMs: seconds(values.timeout),
            onListening: (real) => io.announce(`Waiting for a payer on ${values.host}:${real} ...`, { event: 'listening', host: values.host, port: real }),
          });
          return { text: transferText(wallet, r, 'payee'), json: { name: wallet.name, scheme: 'dotm', currency: wallet.currency.code, ...r } };
        }, { password });
      }
      return withWallet(values, args[0], io.env, async (wallet) => {
        const e = await wallet.receive(args[1] as string, {
          port,
          host: values.host,
          timeoutMs: seconds(values.timeout),
          ...(values.memo === undefined ? {} : { memo: values.memo }),
          onListening: (real) => io.announce(`Waiting for a payer on ${values.host}:${real} ...`, { event: 'listening', host: values.host, port: real }),
        });
        const amount = wallet.format(BigInt(e.amount));
        return { text: `Received ${amount} ${wallet.currency.code} from device ${e.sender} (payment ${e.index}).`, json: { name: wallet.name, currency: wallet.currency.code, ...shortEntry(wallet, e) } };
      });
    },
  },
  collect: {
    usage: 'tally collect NAME [--home DIR] [--json]',
    summary: 'Payee, offline (OPS, with a secure element): moves the accepted and received payments into the secure element, so they can be spent again.',
    options: [HOME_OPTION, JSON_OPTION],
    example: 'tally collect bob',
    async run(argv, io) {
      const { values, args } = parse(argv, {}, ['NAME']);
      await refuseForDotm(values, args[0], io.env, 'collect');
      return withWallet(values, args[0], io.env, async (wallet) => {
        const resumed = await wallet.resume();
        const r = await wallet.collect();
        const sum = r.collected.reduce((s, e) => s + BigInt(e.amount), 0n);
        const text = [
          ...endedLines(resumed.ended),
          `Collected ${r.collected.length} payment(s), ${wallet.format(sum)} ${wallet.currency.code}; offline balance ${r.offline} ${wallet.currency.code}.`,
          ...r.refused.map((e) => `Refused by the secure element: ${wallet.format(BigInt(e.amount))} ${wallet.currency.code} from ${e.sender} (payment ${e.index}): ${e.reason ?? ''}`),
          ...r.waiting.map((e) => `Waiting: ${wallet.format(BigInt(e.amount))} ${wallet.currency.code} from ${e.sender} (payment ${e.index}) cannot go in yet (${e.waiting ?? ''}); it is kept and tried again after the next sync.`),
        ].join('\n');
        return {
          text,
          json: { name: wallet.name, currency: wallet.currency.code, collected: r.collected.map((e) => shortEntry(wallet, e)), refused: r.refused.map((e) => shortEntry(wallet, e)), waiting: r.waiting.map((e) => shortEntry(wallet, e)), offline: r.offline },
        };
      });
    },
  },
  claim: {
    usage: 'tally claim NAME [--home DIR] [--json]',
    summary: 'Payee without a secure element (OPS): has the node credit the accepted payments to the online account; needs the node.',
    options: [HOME_OPTION, JSON_OPTION],
    example: 'tally claim carol',
    async run(argv, io) {
      const { values, args } = parse(argv, {}, ['NAME']);
      await refuseForDotm(values, args[0], io.env, 'claim');
      return withWallet(values, args[0], io.env, async (wallet) => {
        const r = await wallet.claim();
        // What the node credited, from its answer.
        const sum = r.claimed.reduce((s, e) => s + (e.credited === undefined ? BigInt(e.amount) : wallet.parseCredited(e.credited)), 0n);
        const text = [`Claimed ${r.claimed.length} payment(s), the node credited ${wallet.format(sum)} ${wallet.currency.code}; online balance ${r.online ?? 'unknown'} ${wallet.currency.code}.`, ...r.refused.map((e) => `Refused by the node: ${wallet.format(BigInt(e.amount))} ${wallet.currency.code} from ${e.sender} (payment ${e.index}): ${e.reason ?? ''}`)].join('\n');
        return { text, json: { name: wallet.name, currency: wallet.currency.code, claimed: r.claimed.map((e) => shortEntry(wallet, e)), refused: r.refused.map((e) => shortEntry(wallet, e)), online: r.online } };
      });
    },
  },
  sync: {
    usage: 'tally sync NAME [--home DIR] [--json]',
    summary: "Sends the secure element's signed report of offline payments to the node, applies its answer and fetches the revocation list; needs the node.",
    options: [HOME_OPTION, JSON_OPTION],
    example: 'tally sync alice',
    async run(argv, io) {
      const { values, args } = parse(argv, {}, ['NAME']);
      if (await isDotm(values, args[0], io.env)) {
        const password = await dotmPassword(io.env);
        return withDotm(values, args[0] as string, io.env, async (wallet, recovered) => {
          const r = await wallet.sync();
          const refused = r.results.filter((x) => x.status === 'refused');
          const lines = [
            `Synced: ${r.uploaded} offline event(s) uploaded; revocation list version ${r.crlVersion}.`,
            ...(recovered.length > 0 ? [`Recovered after a crash: ${recovered.join(', ')}.`] : []),
            ...refused.map((x) => `event ${x.seq} refused: ${x.message ?? ''} [${x.code ?? ''}]`),
            ...(r.findings.length > 0 ? [`${r.findings.length} double-spending finding(s) at the node`] : []),
          ];
          return { text: lines.join('\n'), json: { name: wallet.name, scheme: 'dotm', currency: wallet.currency.code, recovered, ...r } };
        }, { password });
      }
      return withWallet(values, args[0], io.env, async (wallet) => {
        const r = await wallet.sync();
        const fraud = r.fraud.map((f) => `fraud case: ${f.kind} by device ${f.device}`);
        const retried = r.retried === undefined ? [] : [`Payments that waited for this sync: ${r.retried.collected} collected, ${r.retried.waiting} still waiting, ${r.retried.refused} refused.`];
        return { text: [`Synced; revocation list version ${r.crlVersion}.`, ...endedLines(r.ended ?? []), ...fraud, ...retried].join('\n'), json: { name: wallet.name, ...r } };
      });
    },
  },
};

function formatMinorUnits(minor: bigint, decimals: number): string {
  const sign = minor < 0n ? '-' : '';
  const digits = (minor < 0n ? -minor : minor).toString().padStart(decimals + 1, '0');
  return decimals === 0 ? `${sign}${digits}` : `${sign}${digits.slice(0, -decimals)}.${digits.slice(-decimals)}`;
}

function hostPort(text: string): { host: string; port: number } {
  const match = /^(.+):([0-9]{1,5})$/.exec(text);
  if (match === null) throw new UsageError(`--connect: expected HOST:PORT, got ${JSON.stringify(text)}`);
  return { host: (match[1] as string).replace(/^\[(.*)\]$/, '$1'), port: portNumber(match[2] as string) };
}

function portNumber(text: string): number {
  const port = Number(text);
  if (!/^[0-9]{1,5}$/.test(text) || port > 65535) throw new UsageError(`expected a port from 0 to 65535, got ${JSON.stringify(text)}`);
  return port;
}

function seconds(text: string | undefined): number {
  if (text === undefined) return LINK_WAIT_MS_DEFAULT;
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0 || value > 3600) throw new UsageError(`--timeout: expected seconds from 1 to 3600, got ${JSON.stringify(text)}`);
  return Math.round(value * 1000);
}
