/**
 * `tally demo`: a whole story against a fresh local node, told step by step: the factory step,
 * then each scheme of the registry tells its own chapter (its CLI part's `demo`), then the ledger's
 * audit. Everything is real: an issuer node on a local port with its own PGlite database, wallets in
 * a temporary home with isolated secure element processes, payments by token and over TCP + Noise. Steps are numbered as they are
 * told. `--keep` leaves the folders.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { Scheme } from '../schemes/index.ts';
import { enrollOem } from '../wallet/factory.ts';
import { NodeClient } from '../wallet/node-client.ts';
import { auditAnswer } from '../wallet/node-answers.ts';
import { DEFAULT_CURRENCY, startNode } from './node-start.ts';

/** One told step as `--json` prints it; numbered steps carry their `number`. */
interface Step {
  step: string;
  [key: string]: unknown;
}

/** Runs the demo; returns the exit code (1 when the audit does not balance or a refusal is missing). */
export async function runDemo(argv: string[], schemes: readonly Scheme[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { keep: { type: 'boolean', default: false }, json: { type: 'boolean', default: false }, 'two-tier': { type: 'boolean', default: false } }, strict: true });
  const json = values.json === true;
  if (values['two-tier'] === true) return (await import('./demo-two-tier.ts')).runTwoTierDemo({ keep: values.keep === true, json, schemes });
  let told = 0;
  const write = (text: string, step: Step) => process.stdout.write(json ? `${JSON.stringify(step)}\n` : `${text}\n`);
  /** A numbered step: its number is the next one, whatever came before. */
  const say = (text: string, step: Step) => {
    told += 1;
    write(`${told}. ${text.replace(/\n/g, `\n${' '.repeat(String(told).length + 2)}`)}`, { number: told, ...step });
  };
  /** A line under the last step, without a number of its own. */
  const aside = (text: string, step: Step) => write(`${' '.repeat(String(told).length + 2)}${text}`, step);

  const root = await mkdtemp(join(tmpdir(), 'tally-demo-'));
  const home = join(root, 'home');
  const silent = { log: () => undefined };
  const node = await startNode({
    port: 0,
    host: '127.0.0.1',
    dataDir: join(root, 'node'),
    env: { TALLY_NODE_PASSPHRASE: 'demo passphrase' },
    currency: DEFAULT_CURRENCY,
    logger: silent,
    print: () => undefined,
  });
  const opened: { close(): Promise<void> }[] = [];
  let exit = 0;
  try {
    say(`An issuer node runs at ${node.url} (data in ${root}/node, embedded PGlite).`, { step: 'node', url: node.url });
    const client = new NodeClient(node.url);
    const mint = async (account: string, amount: string, key: string) => {
      await client.operator(node.operatorToken, 'POST', '/v1/operator/mint', { body: { account, amount }, idempotencyKey: key });
    };
    const oem = await enrollOem(home, client, node.operatorToken, schemes.flatMap((s) => s.wallet.trustedApps));
    say(`Factory step: the operator enrols a software OEM (${oem.keyId.slice(0, 16)}...) and allows the trusted app builds (${oem.measurements.map((m) => `${m.scheme} ${m.measurement.slice(0, 16)}...`).join(', ')}).`, { step: 'oem', oem: oem.keyId, measurement: oem.measurement });

    // Each scheme of the registry tells its own chapter.
    for (const scheme of schemes) {
      await scheme.cli.demo?.({
        home,
        node,
        mint,
        say,
        aside,
        missed: () => {
          exit = 1;
        },
        keep: (wallet) => opened.push(wallet),
      });
    }

    const audit = (await client.operator(node.operatorToken, 'GET', '/v1/audit', { answer: auditAnswer })).body;
    say(`The node's audit: ${audit.balanced ? 'balanced' : 'NOT balanced'} (issued money = online accounts + the offline float of every scheme).`, { step: 'audit', ...audit });
    if (!audit.balanced) exit = 1;
  } finally {
    for (const w of opened) await w.close().catch(() => undefined);
    await node.stop();
    if (values.keep !== true) await rm(root, { recursive: true, force: true });
    else process.stderr.write(`kept ${root}\n`);
  }
  return exit;
}
