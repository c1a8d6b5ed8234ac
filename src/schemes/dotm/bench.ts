/**
 * `bench dotm`: DOT-M's Figure 10 and Table 3 (§4.2), measured in one run on a real issuer node.
 * - For each cell (n_b, n_d) of the paper's grid, the payer P is fed exactly n_b blocks carrying
 *   n_d earlier records in all (untimed; the node issues every block), then pays them all to the
 *   payee R: the nine steps of §3.3.3 between two secure elements in their own processes (file
 *   counters), over TCP on loopback with a Noise secure link, one link per run, the handshake
 *   timed apart. Median and p90 of the transaction, bytes on the wire and their time at NFC's
 *   424 kbit/s. The runs go in rounds over the whole grid, so other load on the machine is spread
 *   over every cell. Around each run, the online steps through the node (issue and load, redeem,
 *   sync) are timed apart.
 * - Signatures and verifications of one transaction per cell, counted on in-process secure
 *   elements by the harness's metering provider, beside Table 3's.
 * - The crypto floor of each cell: our counts times one sign and one verify of the suite the
 *   secure element uses; and the transaction's own operations replayed.
 * Writes Figure 10 as an SVG heatmap when asked (by default for a full run).
 */
import { type BenchHarness, type BenchPlugin, type FloorRatio, listenTcp } from '../../sim/bench/plugin.ts';
import { measureOperations } from './bench-counts.ts';
import { measureGrid, type Bench, type GridOptions } from './bench-grid.ts';
import { linkEnd, PHASES } from './bench-payment.ts';
import { DOTM_BENCH_SUITES, FIGURE10_BLOCKS, FIGURE10_RECORDS, FIGURE10_SVG_PATH, figure10, formatDotmReport, QUICK_BLOCKS, QUICK_RECORDS, type DotmBenchReport } from './bench-report.ts';
import { BLOCK_VALUE_MINOR, makeCarriers, openWorld, registerParty, startInProcessElement, startIsolatedElement, type DotmElement } from './bench-setup.ts';

/** How much to run. */
export interface DotmBenchOptions extends GridOptions {
  /** The suite of every key: the node's (the central bank's), the users', the secure elements'. */
  readonly suite: (typeof DOTM_BENCH_SUITES)[number];
  /** Where to write the heatmap; none when undefined. */
  readonly svgPath?: string | undefined;
}

/** A full run: Figure 10's grid, 20 runs per cell, the heatmap written to docs/. */
const FULL: DotmBenchOptions = { blocks: FIGURE10_BLOCKS, records: FIGURE10_RECORDS, runs: 20, warmup: 1, suite: 'ed25519', floorIterations: 200, svgPath: FIGURE10_SVG_PATH };
/** `--quick`: a 2 × 2 grid, 3 runs per cell, no figure. */
const QUICK: DotmBenchOptions = { blocks: QUICK_BLOCKS, records: QUICK_RECORDS, runs: 3, warmup: 1, suite: 'ed25519', floorIterations: 20, svgPath: undefined };

/**
 * The parameters with what the environment sets: TALLY_DOTM_RUNS (runs per cell),
 * TALLY_DOTM_SUITE (ed25519 or sm2), TALLY_DOTM_SVG (a path, or `none`), TALLY_DOTM_BLOCKS and
 * TALLY_DOTM_RECORDS (comma-separated grids).
 * @throws RangeError for a value out of range
 */
export function withEnvironment(base: DotmBenchOptions, env: Readonly<Record<string, string | undefined>>): DotmBenchOptions {
  const grid = (name: string, fallback: readonly number[]): readonly number[] => {
    const text = env[name];
    if (text === undefined || text === '') return fallback;
    const values = text.split(',').map((s) => Number(s.trim()));
    if (values.some((v) => !Number.isInteger(v) || v < 0)) throw new RangeError(`${name}: expected comma-separated integers, got ${JSON.stringify(text)}`);
    return values;
  };
  const runs = env['TALLY_DOTM_RUNS'] === undefined ? base.runs : Number(env['TALLY_DOTM_RUNS']);
  if (!Number.isInteger(runs) || runs < 1 || runs > 1000) throw new RangeError(`TALLY_DOTM_RUNS: expected 1 to 1000, got ${env['TALLY_DOTM_RUNS']}`);
  const suite = env['TALLY_DOTM_SUITE'] ?? base.suite;
  if (suite !== 'ed25519' && suite !== 'sm2') throw new RangeError(`TALLY_DOTM_SUITE: expected ${DOTM_BENCH_SUITES.join(' or ')}, got ${suite}`);
  const svg = env['TALLY_DOTM_SVG'];
  return {
    ...base,
    blocks: grid('TALLY_DOTM_BLOCKS', base.blocks),
    records: grid('TALLY_DOTM_RECORDS', base.records),
    runs,
    suite,
    svgPath: svg === 'none' ? undefined : (svg ?? base.svgPath),
  };
}

/**
 * Runs `bench dotm` in `harness`: a node serving DOT-M, four wallets registered with it (two
 * isolated to time, two in-process over the metering provider to count), the carriers, the grid.
 * @throws RangeError for a cell outside 1 ≤ n_b ≤ 20, 0 ≤ n_d ≤ 60
 */
export async function benchDotm(harness: BenchHarness, options: DotmBenchOptions): Promise<DotmBenchReport> {
  for (const nb of options.blocks) if (!Number.isInteger(nb) || nb < 1 || nb > 20) throw new RangeError(`n_b: expected 1 to 20, got ${nb}`);
  for (const nd of options.records) if (!Number.isInteger(nd) || nd < 0 || nd > 60) throw new RangeError(`n_d: expected 0 to 60, got ${nd}`);
  const root = await harness.tempDir('dotm');
  harness.progress(`setting up: an issuer node with keys in ${options.suite}, two isolated secure elements (file counters), two in-process ones for counting, all registered with it`);
  const world = await openWorld(harness, options.suite);
  const carriers = await makeCarriers(world);
  const party = async (name: string, start: Promise<DotmElement>) => registerParty(world, name, await start);
  const meter = harness.meter(PHASES);
  const timedPayer = await party('P', startIsolatedElement(world, `${root}/payer`));
  const timedPayee = await party('R', startIsolatedElement(world, `${root}/payee`));
  const countedPayer = await party('P (counted)', startInProcessElement(world, `${root}/payer-counted`, meter.provider));
  const countedPayee = await party('R (counted)', startInProcessElement(world, `${root}/payee-counted`, meter.provider));
  const server = await listenTcp(0, '127.0.0.1');
  try {
    harness.progress(`floor: one ${options.suite} sign and verify (${harness.provider.name} provider, as the secure element's process uses)`);
    const operations = measureOperations(harness.provider, options.suite, Math.max(64, options.floorIterations * 16));
    const bench: Bench = {
      world,
      carriers,
      timed: { payer: timedPayer, payee: timedPayee, ends: [linkEnd(timedPayer), linkEnd(timedPayee)] },
      counted: { payer: countedPayer, payee: countedPayee, meter },
      server,
      operations,
      options,
    };
    const loadStart = harness.loadAverage();
    const cells = await measureGrid(bench);
    const report: DotmBenchReport = {
      machine: harness.machine,
      node: { database: world.node.database },
      loadAverage: { start: loadStart, end: harness.loadAverage() },
      date: harness.machine.date,
      suite: options.suite,
      transport: 'TCP on loopback, Noise XX secure link (DOTM_LINK_PROLOGUE), one link per run',
      runsPerCell: options.runs,
      warmupPerCell: options.warmup,
      amountRule: `every block in full: each block is worth ${BLOCK_VALUE_MINOR} minor units and v = n_b × ${BLOCK_VALUE_MINOR}, so the payer is left with nothing`,
      operations,
      blocks: options.blocks,
      records: options.records,
      cells,
    };
    if (options.svgPath !== undefined) {
      const written = await harness.writeFile(options.svgPath, figure10(report));
      report.svgPath = written;
      harness.progress(`wrote ${written}`);
    }
    return report;
  } finally {
    await server.close();
  }
}

/** Each measured cell's median over its two floors. */
export function dotmRatios(report: DotmBenchReport): FloorRatio[] {
  return report.cells.flatMap((c) =>
    c.status === 'measured'
      ? [
          { what: `(${c.nb}, ${c.nd}) median / per-operation floor`, value: c.ratio.perOperation },
          { what: `(${c.nb}, ${c.nd}) median / replayed operations`, value: c.ratio.replay },
        ]
      : [],
  );
}

/** `npm run bench -- dotm`. */
export const dotmBench: BenchPlugin<DotmBenchOptions, DotmBenchReport> = {
  name: 'dotm',
  paper: 'DOT-M (dotm.txt)',
  reproduces: 'Figure 10 and Table 3 (§4.2)',
  parameters: { quick: QUICK, full: FULL },
  async run(harness, parameters) {
    const report = await benchDotm(harness, withEnvironment(parameters, harness.env));
    return { report, text: formatDotmReport(report), ratios: dotmRatios(report) };
  },
};
