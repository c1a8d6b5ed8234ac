/**
 * The `tally` command line: `tally node start`, the wallet, operator and payment verbs of
 * wallet-commands.ts, and `tally demo`. Every command answers `--help` with its usage, options and
 * an example; `tally --help` lists them all. Errors are one clear line and exit code 1; bad usage
 * (a mistyped command gets a "did you mean") exits 2.
 */
import { parseArgs } from 'node:util';
import { currency } from '../core/amount.ts';
import { isTallyError } from '../core/errors.ts';
import { jsonLogger } from './log.ts';
import { SCHEMES, type Scheme } from '../schemes/index.ts';
import { DEFAULT_NODE_URL, helpText, UsageError, type Help, type Outcome, type VerbIo } from './plugin.ts';
import { buildVerbs } from './verbs/index.ts';
import { SETTLE_WORKER_HELP } from './settle-worker.ts';
import { SETTLE_HELD_HELP, SETTLE_RELEASE_HELP } from './settle-held.ts';

const VERBS = buildVerbs(SCHEMES);

const NODE_START_HELP: Help = {
  usage: 'tally node start [--port 8080] [--host 127.0.0.1] [--data ./tally-data] [--database-url URL] [--eth-rpc URL] [--chain-contract 0xADDRESS] [--nats URL [--shards N] [--external-workers]] [--schemes NAME,...] [--currency EUR:2] [--suite ed25519|p256|sm2] [--role standalone|central-bank] [--json]',
  summary:
    "Runs an issuer node until Ctrl-C: standalone (the central bank and one intermediary in one process), or an intermediary enrolled at a central bank (tally node enrol). The first start creates the data folder: keys, certificates, the database and the operator token, printed once and kept in DATA/identity/operator-token. Private keys are encrypted with $TALLY_NODE_PASSPHRASE (or a generated passphrase kept in the data folder). When a scheme settles on an Ethereum chain, the node runs its own anvil (state in DATA/chain/anvil-state.json, stopped with the node) unless --eth-rpc names another node; /v1/info shows the chain.",
  options: [
    ['--port PORT', 'the TCP port (default 8080; 0 picks a free one)'],
    ['--host ADDRESS', 'the address to listen on (default 127.0.0.1)'],
    ['--data DIR', 'the data folder (default ./tally-data)'],
    ['--database-url URL', 'PostgreSQL instead of the embedded PGlite in the data folder (else $DATABASE_URL)'],
    ['--eth-rpc URL', "an Ethereum JSON-RPC endpoint (a geth dev node, a testnet) instead of the embedded anvil (else $TALLY_ETH_RPC); checked at start; the central bank's account there needs ETH for gas"],
    ['--chain-contract 0xADDRESS', "an intermediary joining the currency's shared deployment of the on-chain scheme: the OfflineAccounts contract another bank deployed on that chain (its operator then admits this bank: GET /v1/chain/bank there, POST /v1/chain/operator/intermediaries at the governor)"],
    ['--nats URL', 'settle bulk claims (of the schemes that offer it) through a durable NATS JetStream stream (else $TALLY_NATS), cut into shards by the paying device: settlement workers in the node consume the shards and acknowledge a part after its database commit, so a crash loses no acknowledged payment and credits none twice'],
    ['--shards N', 'the number of shards with --nats (default 1, at most 64); one worker each in the node'],
    ['--external-workers', 'with --nats: the node runs no worker of its own; tally settle worker processes settle its shards'],
    ['--shard-database URL', "with --nats and --database-url: a PostgreSQL database for a shard, once per shard in shard order; the node marks each on first use and refuses one given for another shard; credits between the node's databases travel on the NATS server, and the audit covers every database and what is in flight between them"],
    ['--schemes NAME,...', `the schemes the node serves, comma-separated (else $TALLY_SCHEMES; default all: ${SCHEMES.map((s) => s.name).join(',')}); a node serving none that settles on a chain starts no anvil; wallets of a scheme it does not serve are refused`],
    ['--currency CODE:DECIMALS', 'the currency a new node issues (default EUR:2)'],
    ['--suite NAME', "the signature suite of a new node's keys: ed25519 (default), p256 or sm2; the secure element keys of wallets made there follow it where their scheme says so"],
    ['--role ROLE', 'standalone (the default for a new folder: the central bank and one intermediary in one process) or central-bank (as tally cb start); a folder made by tally node enrol is an intermediary of its central bank'],
    ['--json', 'print machine-readable events, one JSON object a line'],
  ],
  example: 'tally node start --port 8080 --data ./tally-data',
};

const CB_START_HELP: Help = {
  usage: 'tally cb start [--port 8080] [--host 127.0.0.1] [--data ./tally-data] [--database-url URL] [--currency EUR:2] [--suite ed25519|p256|sm2] [--json]',
  summary:
    "Runs a central bank until Ctrl-C (the same as tally node start --role central-bank): the root key, which only certifies; the intermediaries it enrols (tally node enrol, then tally cb approve) and revokes; their reserves, into which it issues the currency (tally cb issue); and the system's audit (tally cb audit). It serves no wallet and no scheme. The first start creates the data folder and prints the operator token and the root key id that intermediaries pin.",
  options: [
    ['--port PORT', 'the TCP port (default 8080; 0 picks a free one)'],
    ['--host ADDRESS', 'the address to listen on (default 127.0.0.1)'],
    ['--data DIR', 'the data folder (default ./tally-data)'],
    ['--database-url URL', 'PostgreSQL instead of the embedded PGlite in the data folder (else $DATABASE_URL)'],
    ['--currency CODE:DECIMALS', 'the currency it issues (default EUR:2)'],
    ['--suite NAME', 'the signature suite of its keys: ed25519 (default), p256 or sm2'],
    ['--json', 'print machine-readable events, one JSON object a line'],
  ],
  example: 'tally cb start --port 9000 --data ./cb-data',
};

const DEMO_HELP: Help = {
  usage: 'tally demo [--two-tier] [--keep] [--json]',
  summary:
    'Tells a whole story against a fresh local node, step by step: each scheme of `tally schemes` its own chapter (wallets, deposits, offline payments by token and over TCP + Noise, refusals, sync, withdrawals), then the audit. Everything is real: a node in a temporary folder, wallets with isolated secure elements.',
  options: [
    ['--two-tier', 'tell the two tiers instead: a central bank, intermediaries enrolled at it (one refused), money issued into their reserves and minted to customers no further than each reserve, a revocation, the system\'s audit'],
    ['--keep', 'keep the temporary folders (node data and wallets) and print where they are'],
    ['--json', 'one JSON object a step'],
  ],
  example: 'tally demo',
};

/** A command of `tally`: its help and its run (answering the exit code). */
interface Command extends Help {
  run(args: string[]): Promise<number>;
}

const COMMANDS: Record<string, Command> = {
  'node start': { ...NODE_START_HELP, run: nodeStart },
  'cb start': { ...CB_START_HELP, run: (args) => nodeStart(['--role', 'central-bank', ...args]) },
  'settle worker': { ...SETTLE_WORKER_HELP, run: async (args) => (await import('./settle-worker.ts')).settleWorker(args) },
  'settle held': { ...SETTLE_HELD_HELP, run: async (args) => (await import('./settle-held.ts')).settleHeld(args) },
  'settle release': { ...SETTLE_RELEASE_HELP, run: async (args) => (await import('./settle-held.ts')).settleRelease(args) },
  ...Object.fromEntries(Object.entries(VERBS).map(([name, verb]) => [name, { ...verb, run: (args: string[]) => runVerb(verb.run, args) }])),
  demo: { ...DEMO_HELP, run: async (args) => (await import('./demo.ts')).runDemo(args, SCHEMES) },
};

/** Every command of `tally` by its words, as `tally --help` lists them. */
export const COMMAND_NAMES: readonly string[] = Object.freeze(Object.keys(COMMANDS));

/** The first words of the two-word commands: node, operator, wallet. */
const GROUPS = [...new Set(COMMAND_NAMES.filter((name) => name.includes(' ')).map((name) => name.split(' ')[0] as string))];

function firstSentence(text: string): string {
  const end = text.search(/\.(\s|$)/);
  return end === -1 ? text : text.slice(0, end + 1);
}

function listing(names: readonly string[]): string {
  const width = Math.max(...names.map((n) => n.length));
  return names.map((name) => `  ${name.padEnd(width)}  ${firstSentence((COMMANDS[name] as Command).summary)}`).join('\n');
}

const USAGE = `usage: tally COMMAND [ARGUMENTS] [OPTIONS]   (tally COMMAND --help shows its options and an example)

commands:
${listing(COMMAND_NAMES)}

Wallets live in --home DIR, else $TALLY_HOME, else ~/.tally. Commands that need the node use the
wallet's node, or --node URL / $TALLY_NODE (default ${DEFAULT_NODE_URL}). Operator commands take the
token from --token, $TALLY_OPERATOR_TOKEN, or --data (the node's data folder). \`tally schemes\`
lists the payment schemes (--scheme NAME) and what their wallets can do; a wallet whose scheme has
a payment password asks for it at a prompt, or reads $TALLY_PASSWORD when standard input is not a
terminal. Amounts are decimal major units, such as 12.50. Every command takes --json.`;

function parseCurrency(text: string) {
  const match = /^([A-Z][A-Z0-9]{2,11}):([0-9]{1,2})$/.exec(text);
  if (match === null) throw new UsageError(`--currency: expected CODE:DECIMALS such as EUR:2, got ${JSON.stringify(text)}`);
  return currency(match[1] as string, Number(match[2]));
}

/**
 * The registry's schemes named in `text` (comma-separated), in the registry's order.
 * @throws UsageError for an empty list or a name the registry does not know, naming the known ones
 */
export function schemesNamed(text: string, flag: string): readonly Scheme[] {
  const names = text.split(',').map((name) => name.trim());
  const known = SCHEMES.map((s) => s.name);
  const unknown = names.filter((name) => !known.includes(name));
  if (names.every((name) => name === '')) throw new UsageError(`${flag}: expected scheme names separated by commas (${known.join(', ')}), got ${JSON.stringify(text)}`);
  if (unknown.length > 0) throw new UsageError(`${flag}: no scheme ${unknown.map((name) => JSON.stringify(name)).join(', ')}; this version runs ${known.join(', ')}`);
  return SCHEMES.filter((s) => names.includes(s.name));
}

async function nodeStart(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      port: { type: 'string', default: '8080' },
      host: { type: 'string', default: '127.0.0.1' },
      data: { type: 'string', default: './tally-data' },
      'database-url': { type: 'string' },
      'eth-rpc': { type: 'string' },
      'chain-contract': { type: 'string' },
      nats: { type: 'string' },
      shards: { type: 'string' },
      'external-workers': { type: 'boolean', default: false },
      'shard-database': { type: 'string', multiple: true },
      schemes: { type: 'string' },
      currency: { type: 'string' },
      suite: { type: 'string' },
      role: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
  });
  const suite = values.suite ?? 'ed25519';
  const role = values.role;
  if (role !== undefined && role !== 'standalone' && role !== 'central-bank') throw new UsageError(`--role: expected standalone or central-bank (an intermediary is made by tally node enrol), got ${JSON.stringify(role)}`);
  if (suite !== 'ed25519' && suite !== 'p256' && suite !== 'sm2') throw new UsageError(`--suite: expected ed25519, p256 or sm2, got ${JSON.stringify(suite)}`);
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--port: expected 0 to 65535, got ${values.port}`);
  const json = values.json === true;
  const fromEnv = process.env['TALLY_ETH_RPC'];
  const ethRpc = values['eth-rpc'] ?? (fromEnv === '' ? undefined : fromEnv);
  if (ethRpc !== undefined && !/^https?:\/\/\S+$/.test(ethRpc)) {
    throw new UsageError(`${values['eth-rpc'] === undefined ? '$TALLY_ETH_RPC' : '--eth-rpc'}: expected an http:// or https:// URL, got ${JSON.stringify(ethRpc)}`);
  }
  const chainContract = values['chain-contract'];
  if (chainContract !== undefined && !/^0x[0-9a-fA-F]{40}$/.test(chainContract)) throw new UsageError(`--chain-contract: expected an address (0x and 40 hex digits), got ${JSON.stringify(chainContract)}`);
  const natsUrl = values.nats ?? (process.env['TALLY_NATS'] === '' ? undefined : process.env['TALLY_NATS']);
  if (natsUrl !== undefined && !/^(nats|tls):\/\/\S+$/.test(natsUrl)) throw new UsageError(`${values.nats === undefined ? '$TALLY_NATS' : '--nats'}: expected a nats:// or tls:// URL, got ${JSON.stringify(natsUrl)}`);
  if (values['external-workers'] === true && natsUrl === undefined) throw new UsageError('--external-workers: workers settle through NATS: give --nats URL too');
  if (values.shards !== undefined && natsUrl === undefined) throw new UsageError('--shards: shards are settled through NATS: give --nats URL too');
  const shards = values.shards === undefined ? 1 : Number(values.shards);
  if (!/^\d+$/.test(values.shards ?? '1') || shards < 1 || shards > 64) throw new UsageError(`--shards: expected 1 to 64, got ${JSON.stringify(values.shards)}`);
  const shardDatabases = values['shard-database'] ?? [];
  if (shardDatabases.length > 0) {
    if (natsUrl === undefined) throw new UsageError('--shard-database: credits between shard databases travel through NATS: give --nats URL too');
    if ((values['database-url'] ?? process.env['DATABASE_URL'] ?? '') === '') throw new UsageError('--shard-database: the node\'s own database must be PostgreSQL too: give --database-url URL');
    if (shardDatabases.length !== shards) throw new UsageError(`--shard-database: ${shardDatabases.length} given for ${shards} shard${shards === 1 ? '' : 's'}: give one per shard (--shards ${shardDatabases.length}?)`);
    for (const url of shardDatabases) if (!/^postgres(ql)?:\/\/\S+$/.test(url)) throw new UsageError(`--shard-database: expected a postgres:// URL, got ${JSON.stringify(url.slice(0, 80))}`);
  }
  const schemesText = values.schemes ?? (process.env['TALLY_SCHEMES'] === '' ? undefined : process.env['TALLY_SCHEMES']);
  const schemes = schemesText === undefined ? SCHEMES : schemesNamed(schemesText, values.schemes === undefined ? '$TALLY_SCHEMES' : '--schemes');
  const { DEFAULT_CURRENCY, startNode } = await import('./node-start.ts');
  const node = await startNode({
    port,
    host: values.host,
    dataDir: values.data,
    databaseUrl: values['database-url'] ?? process.env['DATABASE_URL'],
    currency: values.currency === undefined ? DEFAULT_CURRENCY : parseCurrency(values.currency),
    suite,
    ethRpc,
    ...(chainContract === undefined ? {} : { chainContract: chainContract as `0x${string}` }),
    ...(natsUrl === undefined ? {} : { settle: { natsUrl, shards, localWorkers: values['external-workers'] !== true, ...(shardDatabases.length === 0 ? {} : { shardDatabases }) } }),
    schemes,
    role,
    logger: jsonLogger(),
    print: (text) => process.stdout.write(json ? `${JSON.stringify({ event: 'created', message: text.trim() })}\n` : text),
  });
  // The stop handlers go in before the node says it listens: whoever reads that line may signal at once.
  const stopped = new Promise<void>((done) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      void node.stop().then(done);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  const chain = node.chain;
  const chainLine = chain === undefined ? '' : `Chain ${chain.chainId} at ${chain.rpcUrl} (${chain.embedded ? 'embedded anvil' : 'external'}); the central bank is ${chain.bankAddress}.\n`;
  const what = node.role === 'central-bank' ? 'Central bank' : node.role === 'intermediary' ? 'Intermediary node' : 'Issuer node';
  const rootLine = node.role === 'central-bank' ? `Root key id ${node.rootKeyId}: intermediaries enrol with tally node enrol --central-bank ${node.url} --root ${node.rootKeyId}\n` : '';
  process.stdout.write(
    json
      ? `${JSON.stringify({ event: 'listening', url: node.url, role: node.role, rootKeyId: node.rootKeyId, ...(chain === undefined ? {} : { chain }), ...(node.settle === undefined ? {} : { settle: node.settle }) })}\n`
      : `${what} listening on ${node.url} (Ctrl-C stops it). Try: curl ${node.url}/v1/info\n${rootLine}${chainLine}${node.settle === undefined ? '' : `Settling through NATS stream ${node.settle.stream} in ${node.settle.shards} shard${node.settle.shards === 1 ? '' : 's'}${node.settle.databases === undefined ? '' : `, the ledger spread over ${node.settle.databases} shard database${node.settle.databases === 1 ? '' : 's'} (credits between them on ${node.settle.credits ?? ''})`}.\n`}`,
  );
  await stopped;
  return 0;
}

function wantsJson(args: readonly string[]): boolean {
  return args.includes('--json');
}

async function runVerb(run: (args: string[], io: VerbIo) => Promise<Outcome>, args: string[]): Promise<number> {
  const json = wantsJson(args);
  const io: VerbIo = {
    env: process.env,
    progress: (line) => {
      if (!json) process.stderr.write(`${line} ...\n`);
    },
    announce: (text, value) => process.stdout.write(json ? `${JSON.stringify(value)}\n` : `${text}\n`),
  };
  const outcome = await run(args, io);
  process.stdout.write(json ? `${JSON.stringify(outcome.json)}\n` : `${outcome.text}\n`);
  return outcome.exitCode ?? 0;
}

/**
 * The edit distance between two strings (optimal string alignment: insertions, deletions,
 * substitutions and swaps of neighbours each count one).
 */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  const at = (i: number, j: number) => (d[i] as number[])[j] as number;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      let best = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + (a[i - 1] === b[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, at(i - 2, j - 2) + 1);
      (d[i] as number[])[j] = best;
    }
  }
  return at(a.length, b.length);
}

/** The command a mistyped one most likely meant, or undefined when none is close. */
function didYouMean(argv: readonly string[]): string | undefined {
  let best: { name: string; distance: number } | undefined;
  for (const name of COMMAND_NAMES) {
    const words = name.split(' ');
    const typed = argv.slice(0, words.length).join(' ');
    // `tally balance alice` for `tally wallet balance alice`: the second word alone.
    const distance = words.length === 2 && argv[0] === words[1] ? 0 : editDistance(typed, name);
    if (distance <= 2 && distance < name.length / 2 && (best === undefined || distance < best.distance)) best = { name, distance };
  }
  return best?.name;
}

function isHelpFlag(arg: string | undefined): boolean {
  return arg === '--help' || arg === '-h';
}

/** The command named by the first one or two words of `argv`, with the words it took. */
function findCommand(argv: readonly string[]): { name: string; command: Command; rest: string[] } | undefined {
  for (const take of [2, 1]) {
    const name = argv.slice(0, take).join(' ');
    if (argv.length >= take && Object.hasOwn(COMMANDS, name)) return { name, command: COMMANDS[name] as Command, rest: argv.slice(take) };
  }
  return undefined;
}

/** Explains an unknown command line on stderr; answers exit code 2. */
function unknownCommand(argv: readonly string[]): number {
  const group = GROUPS.find((g) => g === argv[0]);
  const guess = didYouMean(argv);
  const shown = argv.slice(0, group === undefined ? 1 : 2).join(' ');
  const lines = [
    group !== undefined && (argv[1] === undefined || argv[1].startsWith('-'))
      ? `tally: \`tally ${group}\` needs one of: ${COMMAND_NAMES.filter((n) => n.startsWith(`${group} `)).map((n) => n.slice(group.length + 1)).join(', ')}`
      : `tally: unknown command ${JSON.stringify(shown)}${guess === undefined ? '' : `; did you mean \`tally ${guess}\`?`}`,
    '(see tally --help)',
  ];
  process.stderr.write(`${lines.join('\n')}\n`);
  return 2;
}

/** Runs the command line; returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  if (argv.length === 0) {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  if (isHelpFlag(argv[0]) || argv[0] === 'help') {
    const topic = argv.slice(1).filter((a) => !isHelpFlag(a));
    if (topic.length === 0) {
      process.stdout.write(`${USAGE}\n`);
      return 0;
    }
    const found = findCommand(topic);
    if (found === undefined) {
      const group = GROUPS.find((g) => g === topic[0] && topic.length === 1);
      if (group === undefined) return unknownCommand(topic);
      process.stdout.write(`tally ${group} commands:\n${listing(COMMAND_NAMES.filter((n) => n.startsWith(`${group} `)))}\n`);
      return 0;
    }
    process.stdout.write(`${helpText(found.command)}\n`);
    return 0;
  }
  const found = findCommand(argv);
  if (found === undefined) {
    const group = GROUPS.find((g) => g === argv[0]);
    if (group !== undefined && isHelpFlag(argv[1])) {
      process.stdout.write(`tally ${group} commands:\n${listing(COMMAND_NAMES.filter((n) => n.startsWith(`${group} `)))}\n`);
      return 0;
    }
    return unknownCommand(argv);
  }
  const { name, command, rest } = found;
  if (rest.some(isHelpFlag)) {
    process.stdout.write(`${helpText(command)}\n`);
    return 0;
  }
  try {
    return await command.run(rest);
  } catch (e) {
    if (e instanceof UsageError || (e instanceof TypeError && 'code' in e && String(e.code).startsWith('ERR_PARSE_ARGS'))) {
      process.stderr.write(`tally ${name}: ${e.message}\n(see tally ${name} --help)\n`);
      return 2;
    }
    const code = isTallyError(e) ? e.code : 'INTERNAL';
    const said = isTallyError(e) ? e.message : e instanceof Error ? e.message : String(e);
    // A secure element's refusal is told as a refusal of the user's command.
    const message = code === 'SE_REJECTED' ? `${name} refused: ${said}` : said;
    if (wantsJson(argv)) process.stdout.write(`${JSON.stringify({ error: { code, message, ...(isTallyError(e) ? { details: e.details } : {}) } })}\n`);
    process.stderr.write(`tally: ${message} [${code}]\n`);
    return 1;
  }
}
