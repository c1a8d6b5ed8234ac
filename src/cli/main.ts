/**
 * The `tally` command line. `tally node start [--port 8080] [--host 127.0.0.1] [--data ./tally-data]
 * [--database-url URL] [--currency EUR:2] [--json]`. Errors are one clear line and exit code 1;
 * bad usage exits 2.
 */
import { parseArgs } from 'node:util';
import { currency } from '../core/amount.ts';
import { isTallyError } from '../core/errors.ts';
import { jsonLogger } from './log.ts';
import { DEFAULT_NODE_URL, UsageError, VERBS, type Outcome, type VerbIo } from './wallet-commands.ts';

const NODE_USAGE = `tally node start [--port 8080] [--host 127.0.0.1] [--data ./tally-data] [--database-url URL] [--currency EUR:2] [--suite ed25519|p256|sm2] [--json]
      Runs an issuer node. PostgreSQL when --database-url or DATABASE_URL is given, embedded PGlite in
      the data folder otherwise. Keys are encrypted with TALLY_NODE_PASSPHRASE (or a generated
      passphrase kept in the data folder). --suite picks the signature suite of a new node's keys
      (the central bank's, the intermediary's, the node's); DOT-M wallets made there follow it.`;

const USAGE = `usage:
  ${NODE_USAGE}
${Object.values(VERBS)
  .map((verb) => `  ${verb.usage}`)
  .join('\n')}
  tally demo [--keep] [--json]   (narrates a full OPS story against a fresh local node)

Wallets live in --home DIR, else $TALLY_HOME, else ~/.tally. Commands that need the node use the
wallet's node, or --node URL / $TALLY_NODE (default ${DEFAULT_NODE_URL}). Operator commands take the
token from --token, $TALLY_OPERATOR_TOKEN, or --data (the node's data folder). A DOT-M wallet
(--scheme dotm) asks for its payment password at a prompt, or reads $TALLY_PASSWORD when standard
input is not a terminal; its payments run over a live link (receive --listen / pay --connect).`;


function parseCurrency(text: string) {
  const match = /^([A-Z][A-Z0-9]{2,11}):([0-9]{1,2})$/.exec(text);
  if (match === null) throw new UsageError(`--currency: expected CODE:DECIMALS such as EUR:2, got ${JSON.stringify(text)}`);
  return currency(match[1] as string, Number(match[2]));
}

async function nodeStart(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      port: { type: 'string', default: '8080' },
      host: { type: 'string', default: '127.0.0.1' },
      data: { type: 'string', default: './tally-data' },
      'database-url': { type: 'string' },
      currency: { type: 'string' },
      suite: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
  });
  const suite = values.suite ?? 'ed25519';
  if (suite !== 'ed25519' && suite !== 'p256' && suite !== 'sm2') throw new UsageError(`--suite: expected ed25519, p256 or sm2, got ${JSON.stringify(suite)}`);
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--port: expected 0 to 65535, got ${values.port}`);
  const json = values.json === true;
  const { DEFAULT_CURRENCY, startNode } = await import('./node-start.ts');
  const node = await startNode({
    port,
    host: values.host,
    dataDir: values.data,
    databaseUrl: values['database-url'] ?? process.env['DATABASE_URL'],
    currency: values.currency === undefined ? DEFAULT_CURRENCY : parseCurrency(values.currency),
    suite,
    logger: jsonLogger(),
    print: (text) => process.stdout.write(json ? `${JSON.stringify({ event: 'created', message: text.trim() })}\n` : text),
  });
  process.stdout.write(json ? `${JSON.stringify({ event: 'listening', url: node.url })}\n` : `Issuer node listening on ${node.url} (Ctrl-C stops it). Try: curl ${node.url}/v1/info\n`);
  await new Promise<void>((stopped) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      void node.stop().then(stopped);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  return 0;
}

const COMMANDS: Record<string, (args: string[]) => Promise<number>> = {
  'node start': nodeStart,
};

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
  return 0;
}

/** Runs the command line; returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  if (argv[0] === '--help' || argv[0] === 'help' || argv.length === 0) {
    process.stdout.write(`${USAGE}\n`);
    return argv.length === 0 ? 2 : 0;
  }
  const two = argv.slice(0, 2).join(' ');
  const one = argv[0] as string;
  let run: (() => Promise<number>) | undefined;
  if (COMMANDS[two] !== undefined) run = () => (COMMANDS[two] as (a: string[]) => Promise<number>)(argv.slice(2));
  else if (VERBS[two] !== undefined) run = () => runVerb((VERBS[two] as (typeof VERBS)[string]).run, argv.slice(2));
  else if (VERBS[one] !== undefined) run = () => runVerb((VERBS[one] as (typeof VERBS)[string]).run, argv.slice(1));
  else if (one === 'demo') run = async () => (await import('./demo.ts')).runDemo(argv.slice(1));
  if (run === undefined) {
    process.stderr.write(`tally: unknown command ${JSON.stringify(argv.join(' '))}\n${USAGE}\n`);
    return 2;
  }
  try {
    return await run();
  } catch (e) {
    if (e instanceof UsageError || (e instanceof TypeError && 'code' in e && String(e.code).startsWith('ERR_PARSE_ARGS'))) {
      process.stderr.write(`tally: ${e.message}\n(see tally --help)\n`);
      return 2;
    }
    const code = isTallyError(e) ? e.code : 'INTERNAL';
    const message = isTallyError(e) ? e.message : e instanceof Error ? e.message : String(e);
    if (wantsJson(argv)) process.stdout.write(`${JSON.stringify({ error: { code, message, ...(isTallyError(e) ? { details: e.details } : {}) } })}\n`);
    process.stderr.write(`tally: ${message} [${code}]\n`);
    return 1;
  }
}
