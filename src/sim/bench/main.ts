/**
 * Benchmarks: `npm run bench -- <name> [--json] [--quick]`. Each runs in the one harness
 * (harness.ts): a `Machine:` line, its tables with every ratio measured in the same run, and a
 * warning when a ratio below 1 shows the run was too noisy. Progress goes to stderr, results to
 * stdout.
 */
import { parseArgs } from 'node:util';
import { SCHEMES } from '../../schemes/index.ts';
import { runBench, type BenchOutput, type RunOptions } from './harness.ts';
import { runAll } from './all.ts';
import { cliBench } from './cli.ts';
import { commonBench, commonSources } from './common.ts';
import { crossingsBench } from './crossings.ts';
import { ledgerBench } from './ledger.ts';
import type { BenchPlugin } from './plugin.ts';
import { seBench } from './se.ts';
import { settleBench, settleSources } from './settle.ts';
import { walletAgeBench } from './wallet-age.ts';

/** A benchmark ready to run, whatever its parameters and report. */
interface Entry {
  readonly name: string;
  run(options: RunOptions): Promise<BenchOutput>;
}

function entry<P, R>(plugin: BenchPlugin<P, R>): Entry {
  return { name: plugin.name, run: (options) => runBench(plugin, options) };
}

/** The benchmarks: the generic ones, then each scheme's from the registry (loaded when it runs). */
const BENCHES: readonly Entry[] = [
  entry(cliBench),
  entry(seBench),
  entry(ledgerBench),
  entry(crossingsBench),
  entry(walletAgeBench),
  entry(settleBench(settleSources(SCHEMES))),
  entry(commonBench(commonSources(SCHEMES))),
  ...SCHEMES.flatMap((scheme) => {
    if (scheme.bench === undefined) return [];
    return [{ name: scheme.name, run: async (options: RunOptions) => (await scheme.bench?.((plugin) => runBench(plugin, options))) ?? Promise.reject(new Error(`${scheme.name} has no benchmark`)) }];
  }),
];

function usage(): string {
  return `usage: npm run bench -- <${BENCHES.map((b) => b.name).join('|')}|all> [--json] [--quick] [--shards 1,2,4 (settle)]\n  all: every scheme's benchmark and the common workload; writes docs/evaluation.md`;
}

async function main(): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ allowPositionals: true, options: { json: { type: 'boolean' }, quick: { type: 'boolean' }, help: { type: 'boolean' }, shards: { type: 'string' } } });
  } catch (e) {
    process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n${usage()}\n`);
    return 2;
  }
  if (parsed.values.help === true) {
    process.stdout.write(`${usage()}\n`);
    return 0;
  }
  const name = parsed.positionals[0];
  if (name === 'all' && parsed.positionals.length === 1) {
    const result = await runAll(SCHEMES, { quick: parsed.values.quick === true, env: process.env, progress: (line) => process.stderr.write(`bench all: ${line}\n`) });
    process.stdout.write(parsed.values.json === true ? `${JSON.stringify({ page: result.page, figure: result.figure ?? null, warnings: result.warnings }, null, 2)}\n` : `${result.text}\nwrote ${result.page}\n`);
    return 0;
  }
  const bench = BENCHES.find((b) => b.name === name);
  if (bench === undefined || parsed.positionals.length > 1) {
    process.stderr.write(`unknown or missing benchmark ${JSON.stringify(name ?? '')}\n${usage()}\n`);
    return 2;
  }
  if (parsed.values.shards !== undefined && bench.name !== 'settle') {
    process.stderr.write(`--shards: only the settle benchmark runs in shards\n${usage()}\n`);
    return 2;
  }
  const output = await bench.run({
    quick: parsed.values.quick === true,
    env: parsed.values.shards === undefined ? process.env : { ...process.env, TALLY_SETTLE_SHARDS: parsed.values.shards },
    progress: (line) => process.stderr.write(`bench ${bench.name}: ${line}\n`),
  });
  process.stdout.write(parsed.values.json === true ? `${JSON.stringify(output.json, null, 2)}\n` : `${output.text}\n`);
  // The warning also goes to stderr, so that a reader of --json output sees it.
  for (const warning of output.warnings) process.stderr.write(`bench ${bench.name}: ${warning}\n`);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    const cause = e instanceof Error && e.cause instanceof Error ? ` (${e.cause.message})` : '';
    process.stderr.write(`bench failed: ${e instanceof Error ? e.message : String(e)}${cause}\n`);
    process.exit(1);
  },
);
