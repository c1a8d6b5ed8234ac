/**
 * Benchmarks: `npm run bench -- <name> [--json] [--quick]`. Each prints figures and ratios measured
 * in the same run. Progress goes to stderr, results to stdout.
 */
import { parseArgs } from 'node:util';
import { benchDotm, dotmBenchOptions, formatDotmReport } from './dotm.ts';
import { benchLedger, formatLedgerReport } from './ledger.ts';
import { benchOps, formatOpsReport } from './ops.ts';
import { benchSecureElement, formatSeReport } from './se.ts';
import { benchWalletAge, formatWalletAgeReport } from './wallet-age.ts';

const BENCHES = {
  se: async (quick: boolean) => {
    const report = await benchSecureElement({
      cryptoBudgetMs: quick ? 150 : 1000,
      iterations: quick ? 40 : 400,
      progress: (line) => process.stderr.write(`bench se: ${line}\n`),
    });
    return { report, text: formatSeReport(report) };
  },
  ledger: async (quick: boolean) => {
    const report = await benchLedger({
      transfers: quick ? 100 : 1000,
      postgresUrl: process.env['DATABASE_URL'] ?? process.env['TEST_DATABASE_URL'],
      progress: (line) => process.stderr.write(`bench ledger: ${line}\n`),
    });
    return { report, text: formatLedgerReport(report) };
  },
  ops: async (quick: boolean) => {
    const report = await benchOps({
      payments: quick ? 30 : 400,
      claimsPerRow: quick ? 64 : 512,
      claimConcurrencies: quick ? [1, 4] : [1, 8],
      floorIterations: quick ? 200 : 1000,
      postgresUrl: process.env['DATABASE_URL'] ?? process.env['TEST_DATABASE_URL'],
      progress: (line) => process.stderr.write(`bench ops: ${line}\n`),
    });
    return { report, text: formatOpsReport(report) };
  },
  dotm: async (quick: boolean) => {
    // Options beyond --quick come from TALLY_DOTM_RUNS, TALLY_DOTM_SUITE, TALLY_DOTM_SVG, TALLY_DOTM_BLOCKS, TALLY_DOTM_RECORDS.
    const report = await benchDotm(dotmBenchOptions(quick, process.env, (line) => process.stderr.write(`bench dotm: ${line}\n`)));
    return { report, text: formatDotmReport(report) };
  },
  'wallet-age': async (quick: boolean) => ((report) => ({ report, text: formatWalletAgeReport(report) }))(await benchWalletAge({ settled: 100_000, storeRounds: quick ? 10 : 40, jsonRounds: quick ? 2 : 5, progress: (line) => process.stderr.write(`bench wallet-age: ${line}\n`) })),
} as const;

function usage(): string {
  return `usage: npm run bench -- <${Object.keys(BENCHES).join('|')}> [--json] [--quick]`;
}

async function main(): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ allowPositionals: true, options: { json: { type: 'boolean' }, quick: { type: 'boolean' }, help: { type: 'boolean' } } });
  } catch (e) {
    process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n${usage()}\n`);
    return 2;
  }
  if (parsed.values.help === true) {
    process.stdout.write(`${usage()}\n`);
    return 0;
  }
  const name = parsed.positionals[0];
  if (name === undefined || !Object.hasOwn(BENCHES, name) || parsed.positionals.length > 1) {
    process.stderr.write(`unknown or missing benchmark ${JSON.stringify(name ?? '')}\n${usage()}\n`);
    return 2;
  }
  const { report, text } = await BENCHES[name as keyof typeof BENCHES](parsed.values.quick === true);
  process.stdout.write(parsed.values.json === true ? `${JSON.stringify(report, null, 2)}\n` : `${text}\n`);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`bench failed: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  },
);
