/**
 * `bench opera`: the paper's evaluation of operational efficiency (§5.2, Figure 8) on a real issuer
 * node: payments of 100, 200, … 1000 tokens of the smallest denomination (0.01) between two ODWs in
 * isolated secure-element processes (file counters), over TCP on loopback with the anonymous Noise
 * link, repeated per count. Mean and standard deviation of each payment's total time (8a) and time
 * per token (8b), the split into the three stages, the lines fitted through the samples (per token
 * and per payment), bytes and CPU time; the floors (the anonymous proof, the metered signatures per
 * token, a token's AEAD and hash work, the SE commits) and the ratios to them. Writes Figure 8 as an
 * SVG when asked (a full run).
 */
import { listenTcp, rampSettings, type BenchHarness, type BenchPlugin } from '../../sim/bench/plugin.ts';
import { FIGURE8_SVG_PATH, figure8Svg } from './bench-figure.ts';
import { measureFloor } from './bench-floor.ts';
import { payTokens, runRamp, type Pair } from './bench-ramp.ts';
import { formatOperaReport, operaRatios, PAPER, summarise, type OperaBenchReport } from './bench-report.ts';
import { assertAuditBalanced, makeParty, openWorld } from './bench-setup.ts';
import { TOKENS_PER_MESSAGE_MAX } from './messages.ts';

/** How much to run. */
export interface OperaBenchOptions {
  /** The ramp's counts of tokens per payment. */
  readonly counts: readonly number[];
  /** Payments per count. */
  readonly reps: number;
  /** Untimed payments of 5 tokens per pair before the ramp. */
  readonly warmup: number;
  /** The sizes of the two metered payments whose difference is one token's signatures. */
  readonly meteredCounts: readonly [number, number];
  /** Time per primitive of the floor, ms; anonymous proofs timed; commits timed. */
  readonly floorBudgetMs: number;
  readonly proofIterations: number;
  readonly commitIterations: number;
  /** Where to write Figure 8; none when undefined. */
  readonly svgPath?: string | undefined;
}

/** A full run: the paper's ten counts, 3 repetitions each (5,500 tokens a round), Figure 8 to docs/. */
const FULL: OperaBenchOptions = { counts: PAPER.counts, reps: 3, warmup: 2, meteredCounts: [8, 128], floorBudgetMs: 500, proofIterations: 20, commitIterations: 200, svgPath: FIGURE8_SVG_PATH };
/** `--quick`: four counts up to 100, 2 repetitions, no figure. */
const QUICK: OperaBenchOptions = { counts: [10, 20, 50, 100], reps: 2, warmup: 1, meteredCounts: [4, 32], floorBudgetMs: 100, proofIterations: 5, commitIterations: 50, svgPath: undefined };

/**
 * The parameters with what the environment sets: TALLY_OPERA_REPS (payments per count),
 * TALLY_OPERA_COUNTS (comma-separated), TALLY_OPERA_SVG (a path, or `none`).
 * @throws RangeError for a value out of range
 */
export function withEnvironment(base: OperaBenchOptions, env: Readonly<Record<string, string | undefined>>): OperaBenchOptions {
  return rampSettings('TALLY_OPERA', base, env);
}

/**
 * Runs `bench opera` in `harness`.
 * @throws RangeError for a count outside 1..TOKENS_PER_MESSAGE_MAX or fewer than two distinct counts
 */
export async function benchOpera(harness: BenchHarness, options: OperaBenchOptions): Promise<OperaBenchReport> {
  for (const n of [...options.counts, ...options.meteredCounts]) if (!Number.isInteger(n) || n < 1 || n > TOKENS_PER_MESSAGE_MAX) throw new RangeError(`a count of tokens: expected 1 to ${TOKENS_PER_MESSAGE_MAX}, got ${n}`);
  if (new Set(options.counts).size < 2) throw new RangeError('the ramp needs two distinct counts at least, to fit its line');
  harness.progress('setting up: an issuer node serving OPERA, two ODWs in isolated secure elements (file counters) and two in-process over the metering provider, each credentialed after a quote of its swtpm');
  const world = await openWorld(harness);
  const meter = harness.meter(['payment']);
  const root = await harness.tempDir('opera');
  const isolated: Pair = { series: 'isolated', payer: await makeParty(world, 'A', `${root}/payer`, { kind: 'isolated' }), payee: await makeParty(world, 'B', `${root}/payee`, { kind: 'isolated' }) };
  const inProcess: Pair = {
    series: 'in-process',
    payer: await makeParty(world, 'A (in-process)', `${root}/payer-in`, { kind: 'in-process', provider: meter.provider }),
    payee: await makeParty(world, 'B (in-process)', `${root}/payee-in`, { kind: 'in-process', provider: meter.provider }),
  };
  const server = await listenTcp(0, '127.0.0.1');
  try {
    harness.progress(`warm-up: ${options.warmup} payment(s) of 5 tokens per pair`);
    for (let i = 0; i < options.warmup; i++) for (const pair of [isolated, inProcess]) await payTokens(world, server, pair, 5);

    harness.progress(`floor: the signatures of payments of ${options.meteredCounts.join(' and ')} tokens counted, the anonymous proof, a token's AEAD and hash work and two SE commits timed`);
    const floor = await measureFloor({ world, server, inProcess, isolated, meter, counts: options.meteredCounts, budgetMs: options.floorBudgetMs, proofIterations: options.proofIterations, commitIterations: options.commitIterations });

    const loadStart = harness.loadAverage();
    harness.progress(`ramp: counts ${options.counts.join(', ')}, ${options.reps} repetition(s) each`);
    const samples = await runRamp({ world, server, pair: isolated, counts: options.counts, reps: options.reps, progress: harness.progress });
    const float = await assertAuditBalanced(world.node);
    if (float !== 0n) throw new Error(`float:opera holds ${float} after every token was deposited`);
    const report: OperaBenchReport = {
      machine: harness.machine,
      loadAverage: { start: loadStart, end: harness.loadAverage() },
      node: { database: world.node.database },
      transport: 'TCP on loopback, anonymous Noise XX link (OPERA_LINK_PROLOGUE), one link per payment',
      reps: options.reps,
      ...summarise(samples, options.counts, floor),
      samples,
    };
    if (options.svgPath !== undefined) {
      const m = harness.machine;
      const svg = figure8Svg(report, { title: 'OPERA Figure 8 (paper §5.2): computation overhead against the number of tokens, measured on Tally', subtitle: `${m.cpu}, ${m.cores} cores, Node ${m.node}; ${options.reps} payments per count; ${m.date}` });
      report.svgPath = await harness.writeFile(options.svgPath, svg);
      harness.progress(`wrote ${report.svgPath}`);
    }
    return report;
  } finally {
    await server.close();
  }
}

/** `npm run bench -- opera`. */
export const operaBench: BenchPlugin<OperaBenchOptions, OperaBenchReport> = {
  name: 'opera',
  paper: 'OPERA (opera.txt)',
  reproduces: 'the operational efficiency of §5.2 (Figure 8: total time and time per token for 100 to 1000 tokens)',
  parameters: { quick: QUICK, full: FULL },
  async run(harness, parameters) {
    const report = await benchOpera(harness, withEnvironment(parameters, harness.env));
    return { report, text: formatOperaReport(report), ratios: operaRatios(report) };
  },
};
