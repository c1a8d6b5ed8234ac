/**
 * `bench otp`: the OTP paper's ramp test (§3.1, Figures 7–10) on a real issuer node: payments of
 * 5 … 500 OTPs (one coin of 1.00 each, as the paper's) between two wallets over TCP on loopback
 * with the anonymous Noise secure link, repeated per count; with the trusted apps in isolated
 * secure-element processes (the paper's "with the Secure Enclave") and in this process (without
 * it). Mean and standard deviation per count, the time per OTP as the slope of the fitted line, CPU
 * time per OTP (the proxy for the paper's energy per OTP), bytes per OTP, and the ratio to the
 * cryptographic floor of one OTP (bench-floor.ts). Then what denominations save: 87.00 paid in
 * unit coins and in the bank's denominations. Writes the ramp as an SVG when asked (a full run).
 */
import { listenTcp, rampSettings, type BenchHarness, type BenchPlugin } from '../../sim/bench/plugin.ts';
import { RAMP_SVG_PATH, rampFigure } from './bench-figure.ts';
import { measureFloor } from './bench-floor.ts';
import { payCoins, runDenominations, runRamp, UNIT_MINOR, type Pair } from './bench-ramp.ts';
import { denominationReport, formatOtpReport, otpRatios, PAPER, seriesReport, type OtpBenchReport } from './bench-report.ts';
import { assertAuditBalanced, classOf, makeParty, openWorld } from './bench-setup.ts';
import { COINS_PER_PAYMENT_MAX } from './session.ts';

/** How much to run. */
export interface OtpBenchOptions {
  /** The ramp's counts of OTPs per payment. */
  readonly counts: readonly number[];
  /** Payments per count and placement. */
  readonly reps: number;
  /** Untimed payments of 5 OTPs per placement before the ramp. */
  readonly warmup: number;
  /** OTPs of the payment whose signatures the metering provider counts. */
  readonly meteredCoins: number;
  /** Time per primitive of the floor, ms. */
  readonly floorBudgetMs: number;
  /** The amount of the denominations comparison (minor units), and its payments per way. */
  readonly denominationMinor: bigint;
  readonly denominationReps: number;
  /** Where to write the ramp figure; none when undefined. */
  readonly svgPath?: string | undefined;
}

/** A full run: the paper's eleven counts, 2 repetitions each (the paper: 50; a round of all eleven counts is 1,655 OTPs per placement, about 2½ minutes for both on a 2-core machine), the figure to docs/. */
const FULL: OtpBenchOptions = { counts: PAPER.counts, reps: 2, warmup: 2, meteredCoins: 16, floorBudgetMs: 1000, denominationMinor: 8700n, denominationReps: 3, svgPath: RAMP_SVG_PATH };
/** `--quick`: four counts up to 50, 2 repetitions, no figure. */
const QUICK: OtpBenchOptions = { counts: [5, 10, 20, 50], reps: 2, warmup: 1, meteredCoins: 16, floorBudgetMs: 150, denominationMinor: 8700n, denominationReps: 1, svgPath: undefined };

/**
 * The parameters with what the environment sets: TALLY_OTP_REPS (payments per count),
 * TALLY_OTP_COUNTS (comma-separated), TALLY_OTP_SVG (a path, or `none`).
 * @throws RangeError for a value out of range
 */
export function withEnvironment(base: OtpBenchOptions, env: Readonly<Record<string, string | undefined>>): OtpBenchOptions {
  return rampSettings('TALLY_OTP', base, env);
}

/**
 * Runs `bench otp` in `harness`.
 * @throws RangeError for a count outside 1..COINS_PER_PAYMENT_MAX or fewer than two distinct counts
 */
export async function benchOtp(harness: BenchHarness, options: OtpBenchOptions): Promise<OtpBenchReport> {
  for (const n of options.counts) if (!Number.isInteger(n) || n < 1 || n > COINS_PER_PAYMENT_MAX) throw new RangeError(`a count of OTPs: expected 1 to ${COINS_PER_PAYMENT_MAX}, got ${n}`);
  if (new Set(options.counts).size < 2) throw new RangeError('the ramp needs two distinct counts at least, to fit its line');
  harness.progress('setting up: an issuer node serving OTP, two wallets with isolated secure elements (file counters), two with in-process TAs over the metering provider');
  const world = await openWorld(harness);
  const meter = harness.meter(['payment']);
  const root = await harness.tempDir('otp');
  const isolated: Pair = { series: 'isolated', payer: await makeParty(world, 'P', `${root}/payer`, { kind: 'isolated' }), payee: await makeParty(world, 'Q', `${root}/payee`, { kind: 'isolated' }) };
  const inProcess: Pair = {
    series: 'in-process',
    payer: await makeParty(world, 'P (in-process)', `${root}/payer-in`, { kind: 'in-process', provider: meter.provider }),
    payee: await makeParty(world, 'Q (in-process)', `${root}/payee-in`, { kind: 'in-process', provider: meter.provider }),
  };
  const pairs = [isolated, inProcess];
  const server = await listenTcp(0, '127.0.0.1');
  try {
    const unit = classOf(world, UNIT_MINOR);
    harness.progress(`warm-up: ${options.warmup} payment(s) of 5 OTPs per placement`);
    for (let i = 0; i < options.warmup; i++) for (const pair of pairs) await payCoins(world, server, pair, Array.from({ length: 5 }, () => unit));

    harness.progress(`floor: the signatures of a payment of ${options.meteredCoins} OTPs counted, the RSA and HPKE primitives timed`);
    let counted = meter.disarm();
    await payCoins(world, server, inProcess, Array.from({ length: options.meteredCoins }, () => unit), async (pay) => {
      meter.arm();
      try {
        return await pay();
      } finally {
        counted = meter.disarm();
      }
    });
    const floor = measureFloor({ provider: harness.provider, params: world.params, unit, replay: counted.replay, counts: counted.counts, coins: options.meteredCoins, budgetMs: options.floorBudgetMs });

    const loadStart = harness.loadAverage();
    harness.progress(`ramp: counts ${options.counts.join(', ')}, ${options.reps} repetition(s) each, both placements`);
    const samples = await runRamp({ world, server, pairs, counts: options.counts, reps: options.reps, progress: harness.progress });
    const denominations = await runDenominations({ world, server, pair: isolated, amountMinor: options.denominationMinor, reps: options.denominationReps, progress: harness.progress });
    const float = await assertAuditBalanced(world.node);
    if (float !== 0n) throw new Error(`float:otp holds ${float} after every coin was deposited`);
    const series = pairs.map((p) => seriesReport(p.series, samples, options.counts, floor));
    const report: OtpBenchReport = {
      machine: harness.machine,
      loadAverage: { start: loadStart, end: harness.loadAverage() },
      node: { database: world.node.database },
      transport: 'TCP on loopback, anonymous Noise XX secure link (OTP_LINK_PROLOGUE), one link per payment',
      counts: options.counts,
      reps: options.reps,
      series,
      floor,
      denominations: denominationReport(options.denominationMinor, denominations),
      samples,
    };
    if (options.svgPath !== undefined) {
      const m = harness.machine;
      const svg = rampFigure(series, { title: 'OTP ramp test (paper §3.1, Figures 7–10), measured on Tally', subtitle: `${m.cpu}, ${m.cores} cores, Node ${m.node}; ${options.reps} payments per count; ${m.date}` });
      report.svgPath = await harness.writeFile(options.svgPath, svg);
      harness.progress(`wrote ${report.svgPath}`);
    }
    return report;
  } finally {
    await server.close();
  }
}

/** `npm run bench -- otp`. */
export const otpBench: BenchPlugin<OtpBenchOptions, OtpBenchReport> = {
  name: 'otp',
  paper: 'OTP (otp.txt)',
  reproduces: 'the ramp test of §3.1 (Figures 7–10, time and energy per OTP) and denominations (§5)',
  parameters: { quick: QUICK, full: FULL },
  async run(harness, parameters) {
    const report = await benchOtp(harness, withEnvironment(parameters, harness.env));
    return { report, text: formatOtpReport(report), ratios: otpRatios(report) };
  },
};
