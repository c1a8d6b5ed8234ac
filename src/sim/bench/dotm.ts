/**
 * `bench dotm`: DOT-M's Figure 10 and Table 3 (§4.2), measured in one run.
 * - For each cell (n_b, n_d) of the paper's grid, the payer P is fed exactly n_b blocks carrying
 *   n_d earlier records in all (untimed), then pays them all to the payee R: the nine steps of
 *   §3.3.3 between two secure elements in their own processes (file counters), over TCP on
 *   loopback with a Noise secure link, one link per run, the handshake timed apart. Median and p90
 *   of the transaction, bytes on the wire and their time at NFC's 424 kbit/s. The runs go in
 *   rounds over the whole grid, so other load on the machine is spread over every cell.
 * - Signatures and verifications of one transaction per cell, counted on in-process secure
 *   elements by a metered provider, beside Table 3's.
 * - The crypto floor of each cell: our counts times one sign and one verify of the suite the
 *   secure element uses; and the transaction's own operations replayed.
 * Writes Figure 10 as an SVG heatmap when asked (by default for a full run).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import type { SuiteName } from '../../core/crypto/suite.ts';
import { nodeProvider } from '../../providers/node-crypto.ts';
import { listenTcp, type TcpServer } from '../../channel/tcp.ts';
import { RECORDS_PER_BLOCK_MAX } from '../../schemes/dotm/messages.ts';
import { failureCode } from '../../schemes/dotm/session.ts';
import { CryptoMeter, measureOperations, table3Counts, type OperationTimes, type PhaseCounts } from './dotm-counts.ts';
import { formatCellMs, heatmapSvg } from './dotm-figure.ts';
import { checkShape, linkEnd, openMemoryLinks, openTcpLinks, PHASES, transact, type LinkEnd, type StepTimes, type TransactionOutcome } from './dotm-payment.ts';
import {
  BLOCK_VALUE_MINOR,
  drain,
  feedPayer,
  makeBank,
  makeCarriers,
  recordsPerBlock,
  registerParty,
  startInProcessElement,
  startIsolatedElement,
  type BenchBank,
  type BenchParty,
  type Carriers,
} from './dotm-setup.ts';
import { quantile } from './stats.ts';

/** n_b of Figure 10's rows. */
export const FIGURE10_BLOCKS: readonly number[] = [1, 2, 4, 6, 10, 16, 20];
/** n_d of Figure 10's columns. */
export const FIGURE10_RECORDS: readonly number[] = [1, 6, 12, 18, 24, 36, 42, 60];
/** n_b of `--quick`'s reduced grid. */
export const QUICK_BLOCKS: readonly number[] = [1, 4];
/** n_d of `--quick`'s reduced grid. */
export const QUICK_RECORDS: readonly number[] = [1, 12];
/** NFC's highest ISO 14443 rate, which the paper's serial line imitated (§4.1). */
export const NFC_BITS_PER_SECOND = 424_000;
/** Suites the bench can issue every key in. */
export const DOTM_BENCH_SUITES = ['ed25519', 'sm2'] as const;
/** Where a full run writes Figure 10. */
export const FIGURE10_SVG_PATH = fileURLToPath(new URL('../../../docs/dotm-figure10.svg', import.meta.url));

/** How much to run. */
export interface DotmBenchOptions {
  blocks: readonly number[];
  records: readonly number[];
  /** Timed runs per cell. */
  runs: number;
  /** Untimed runs per cell before them. */
  warmup: number;
  /** The suite of every key: the central bank's, the users', the secure elements'. */
  suite: (typeof DOTM_BENCH_SUITES)[number];
  /** Iterations of the floor measurements. */
  floorIterations: number;
  /** Where to write the heatmap; none when undefined. */
  svgPath?: string | undefined;
  progress: (line: string) => void;
}

/** Latency figures of a cell, ms. */
export interface Spread {
  readonly samples: number;
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly meanMs: number;
  readonly minMs: number;
  readonly maxMs: number;
}

/** What every cell says: its shape, its amount, Table 3's counts. */
interface CellBase {
  readonly nb: number;
  readonly nd: number;
  /** Records carried by each block before the payment. */
  readonly shares: readonly number[];
  /** v: every block in full, minor units. */
  readonly vMinor: number;
  readonly table3: PhaseCounts;
}

/** A cell measured. */
export interface MeasuredCell extends CellBase {
  readonly status: 'measured';
  /** The nine steps on the open link (handshake excluded). */
  readonly total: Spread;
  /** TCP connect, Noise XX and both bindings. */
  readonly handshake: Spread;
  /** Each secure-element command as its wallet saw it, p50 ms. */
  readonly steps: Readonly<StepTimes>;
  /** Bytes both ways per run: the transaction's, and the handshake's apart. */
  readonly bytes: { readonly transaction: number; readonly handshake: number };
  /** The transaction's bytes at NFC's 424 kbit/s. */
  readonly nfcMs: number;
  readonly ours: PhaseCounts;
  readonly floor: {
    /** Our signs × one sign + our verifies × one verify. */
    readonly perOperationMs: number;
    /** The transaction's own signatures and verifications, replayed. */
    readonly replayMs: number;
    /** Bytes those operations hash. */
    readonly replayMessageBytes: number;
  };
  /** median / floor. */
  readonly ratio: { readonly perOperation: number; readonly replay: number };
}

/** A cell the trusted app refused to pay, with its reason (it is never timed). */
export interface RefusedCell extends CellBase {
  readonly status: 'refused';
  readonly code: string;
  readonly message: string;
}

/** One cell of the grid. */
export type DotmCell = MeasuredCell | RefusedCell;

/** Everything `bench dotm` measured. */
export interface DotmBenchReport {
  machine: { cpus: string; cores: number; memoryGiB: number; node: string; platform: string };
  /** The 1-minute load average when the cells started and when they ended: other work on the machine shows here. */
  loadAverage: { start: number; end: number };
  date: string;
  suite: SuiteName;
  transport: string;
  runsPerCell: number;
  warmupPerCell: number;
  /** How v is chosen. */
  amountRule: string;
  operations: OperationTimes;
  blocks: readonly number[];
  records: readonly number[];
  cells: DotmCell[];
  svgPath?: string | undefined;
}

/**
 * Options from the command line's `quick` and the environment: TALLY_DOTM_RUNS (runs per cell),
 * TALLY_DOTM_SUITE (ed25519 or sm2), TALLY_DOTM_SVG (a path, or `none`), TALLY_DOTM_BLOCKS and
 * TALLY_DOTM_RECORDS (comma-separated grids).
 * @throws RangeError for a value out of range
 */
export function dotmBenchOptions(quick: boolean, env: Record<string, string | undefined>, progress: (line: string) => void): DotmBenchOptions {
  const grid = (name: string, fallback: readonly number[]): readonly number[] => {
    const text = env[name];
    if (text === undefined || text === '') return fallback;
    const values = text.split(',').map((s) => Number(s.trim()));
    if (values.some((v) => !Number.isInteger(v) || v < 0)) throw new RangeError(`${name}: expected comma-separated integers, got ${JSON.stringify(text)}`);
    return values;
  };
  const runs = env['TALLY_DOTM_RUNS'] === undefined ? (quick ? 3 : 20) : Number(env['TALLY_DOTM_RUNS']);
  if (!Number.isInteger(runs) || runs < 1 || runs > 1000) throw new RangeError(`TALLY_DOTM_RUNS: expected 1 to 1000, got ${env['TALLY_DOTM_RUNS']}`);
  const suite = env['TALLY_DOTM_SUITE'] ?? 'ed25519';
  if (suite !== 'ed25519' && suite !== 'sm2') throw new RangeError(`TALLY_DOTM_SUITE: expected ${DOTM_BENCH_SUITES.join(' or ')}, got ${suite}`);
  const svg = env['TALLY_DOTM_SVG'];
  return {
    blocks: grid('TALLY_DOTM_BLOCKS', quick ? QUICK_BLOCKS : FIGURE10_BLOCKS),
    records: grid('TALLY_DOTM_RECORDS', quick ? QUICK_RECORDS : FIGURE10_RECORDS),
    runs,
    warmup: 1,
    suite,
    floorIterations: quick ? 20 : 200,
    svgPath: svg === 'none' ? undefined : (svg ?? (quick ? undefined : FIGURE10_SVG_PATH)),
    progress,
  };
}

function spread(samplesMs: readonly number[]): Spread {
  const sorted = [...samplesMs].sort((a, b) => a - b);
  return {
    samples: sorted.length,
    p50Ms: quantile(sorted, 0.5),
    p90Ms: quantile(sorted, 0.9),
    meanMs: sorted.reduce((s, x) => s + x, 0) / sorted.length,
    minMs: sorted[0] ?? Number.NaN,
    maxMs: sorted[sorted.length - 1] ?? Number.NaN,
  };
}

const median = (values: readonly number[]) => quantile([...values].sort((a, b) => a - b), 0.5);
/** Sizes vary by a few bytes with the encodings of amounts and times: the mean, rounded. */
const meanBytes = (values: readonly number[]) => Math.round(values.reduce((s, x) => s + x, 0) / values.length);

/** The two wallets of one side of the bench (isolated for timing, in-process for counting). */
interface Pair {
  readonly payer: BenchParty;
  readonly payee: BenchParty;
}

/** What every cell shares. */
interface Bench {
  readonly bank: BenchBank;
  readonly carriers: Carriers;
  readonly timed: Pair & { readonly ends: readonly [LinkEnd, LinkEnd] };
  readonly counted: Pair & { readonly meter: CryptoMeter };
  readonly server: TcpServer;
  readonly operations: OperationTimes;
  readonly options: DotmBenchOptions;
}

/** The upkeep after a run: R's blocks redeemed, P's left-overs too, both logs acknowledged. */
async function settle(bench: Bench, pair: Pair): Promise<void> {
  await drain(bench.bank, pair.payee, { redeem: true });
  await drain(bench.bank, pair.payer, { redeem: true });
}

/** True when the refusal is the per-block limit on a cell with a block at RECORDS_PER_BLOCK_MAX records. */
function refusedForLimit(e: unknown, shares: readonly number[]): boolean {
  return failureCode(e) === 'LIMIT_REACHED' && shares.some((k) => k >= RECORDS_PER_BLOCK_MAX);
}

/** A cell whose transaction was counted, collecting its timed runs. */
interface Plan {
  readonly base: CellBase;
  readonly v: bigint;
  readonly counted: ReturnType<CryptoMeter['disarm']>;
  readonly totals: number[];
  readonly handshakes: number[];
  readonly steps: StepTimes[];
  readonly transactionBytes: number[];
  readonly handshakeBytes: number[];
}

/**
 * Counts one transaction of the cell on the in-process secure elements; answers the refusal
 * instead when the payer's TA refuses the cell for its per-block limit.
 * @throws Error or TallyError for any other failure, or a payment of another shape than the cell's
 */
async function countCell(bench: Bench, nb: number, nd: number): Promise<Plan | RefusedCell> {
  const shares = recordsPerBlock(nb, nd);
  const v = BLOCK_VALUE_MINOR * BigInt(nb);
  const base: CellBase = { nb, nd, shares, vMinor: Number(v), table3: table3Counts(nb, nd) };
  const { payer, payee, meter } = bench.counted;
  let counted: ReturnType<CryptoMeter['disarm']>;
  try {
    await feedPayer(bench.bank, bench.carriers, payer, shares);
    await drain(bench.bank, payer, { redeem: false });
    const links = openMemoryLinks(payee);
    meter.arm();
    try {
      const outcome = await transact(links, { bank: bench.bank, payer, payee, v, provider: meter.provider, onPhase: (p) => meter.enter(p) });
      checkShape(outcome.transaction.tsd, nb, nd, v);
    } finally {
      links.close();
      counted = meter.disarm();
      await settle(bench, bench.counted);
    }
  } catch (e) {
    if (!refusedForLimit(e, shares)) throw e;
    const message = e instanceof Error ? e.message : String(e);
    bench.options.progress(`(${nb}, ${nd}): refused by the payer's TA [${failureCode(e)}]: ${message}`);
    return { ...base, status: 'refused', code: failureCode(e), message };
  }
  bench.options.progress(`(${nb}, ${nd}): signs ${counted.counts.signs} (Table 3: ${base.table3.signs}), verifies ${counted.counts.verifies} (Table 3: ${base.table3.verifies})`);
  return { base, v, counted, totals: [], handshakes: [], steps: [], transactionBytes: [], handshakeBytes: [] };
}

/**
 * One run of a cell on the isolated secure elements over TCP + Noise: feed (untimed), the nine
 * steps (timed), the checks, the upkeep (untimed). Warm-up runs are not kept.
 * @throws Error when the payment does not have the cell's shape or value is not conserved
 */
async function timedRun(bench: Bench, plan: Plan, keep: boolean): Promise<void> {
  const { nb, nd, shares } = plan.base;
  const { payer, payee, ends } = bench.timed;
  await feedPayer(bench.bank, bench.carriers, payer, shares);
  await drain(bench.bank, payer, { redeem: false });
  const links = await openTcpLinks(bench.server, ends[0], ends[1], bench.bank);
  let outcome: TransactionOutcome;
  try {
    outcome = await transact(links, { bank: bench.bank, payer, payee, v: plan.v, provider: nodeProvider });
  } finally {
    links.close();
  }
  checkShape(outcome.transaction.tsd, nb, nd, plan.v);
  // Conservation: the payer gave every block in full, the payee holds them all.
  const [paid, received] = await Promise.all([payer.se.call('status', {}), payee.se.call('status', {})]);
  if (paid.balance !== 0n || received.balance !== plan.v || received.blocks.length !== nb) {
    throw new Error(`(${nb}, ${nd}): after paying ${plan.v} the payer holds ${paid.balance}, the payee ${received.balance} in ${received.blocks.length} blocks`);
  }
  await settle(bench, bench.timed);
  if (!keep) return;
  plan.totals.push(outcome.ms);
  plan.handshakes.push(links.handshakeMs);
  plan.steps.push(outcome.times);
  plan.transactionBytes.push((links.counter?.totalBytes ?? 0) - links.handshakeBytes);
  plan.handshakeBytes.push(links.handshakeBytes);
}

/** A cell from its runs and counts, with its floors (the replay timed now). */
function finish(bench: Bench, plan: Plan): MeasuredCell {
  const total = spread(plan.totals);
  const ours = plan.counted.counts;
  const perOperationMs = ours.signs * bench.operations.signMs + ours.verifies * bench.operations.verifyMs;
  const replayMs = plan.counted.replay.medianMs(bench.options.floorIterations);
  const stepP50 = (k: keyof StepTimes) => median(plan.steps.map((s) => s[k]));
  const transactionBytes = meanBytes(plan.transactionBytes);
  return {
    ...plan.base,
    status: 'measured',
    total,
    handshake: spread(plan.handshakes),
    steps: { request: stepP50('request'), pay: stepP50('pay'), accept: stepP50('accept'), confirm: stepP50('confirm'), complete: stepP50('complete') },
    bytes: { transaction: transactionBytes, handshake: meanBytes(plan.handshakeBytes) },
    nfcMs: (transactionBytes * 8 * 1000) / NFC_BITS_PER_SECOND,
    ours,
    floor: { perOperationMs, replayMs, replayMessageBytes: plan.counted.replay.messageBytes },
    ratio: { perOperation: total.p50Ms / perOperationMs, replay: total.p50Ms / replayMs },
  };
}

/**
 * The grid: every cell counted, then the timed runs in rounds, one run of every cell per round,
 * so that whatever else the machine does during the bench falls on all cells alike.
 */
async function measureGrid(bench: Bench): Promise<DotmCell[]> {
  const { options } = bench;
  const counted: Array<Plan | RefusedCell> = [];
  for (const nb of options.blocks) for (const nd of options.records) counted.push(await countCell(bench, nb, nd));
  const plans = counted.filter((c): c is Plan => !('status' in c));
  const rounds = options.warmup + options.runs;
  for (let round = 0; round < rounds; round++) {
    const started = performance.now();
    for (const plan of plans) await timedRun(bench, plan, round >= options.warmup);
    options.progress(`round ${round + 1} of ${rounds}${round < options.warmup ? ' (warm-up)' : ''}: ${plans.length} cells in ${ms((performance.now() - started) / 1000)} s`);
  }
  const cells = counted.map((c) => ('status' in c ? c : finish(bench, c)));
  for (const c of cells) {
    if (c.status !== 'measured') continue;
    options.progress(
      `(${c.nb}, ${c.nd}): median ${ms(c.total.p50Ms)} ms, p90 ${ms(c.total.p90Ms)} ms, ${c.bytes.transaction} bytes, floor ${ms(c.floor.perOperationMs)} ms, replay ${ms(c.floor.replayMs)} ms`,
    );
  }
  return cells;
}

/** Runs `bench dotm`. */
export async function benchDotm(options: DotmBenchOptions): Promise<DotmBenchReport> {
  for (const nb of options.blocks) if (!Number.isInteger(nb) || nb < 1 || nb > 20) throw new RangeError(`n_b: expected 1 to 20, got ${nb}`);
  for (const nd of options.records) if (!Number.isInteger(nd) || nd < 0 || nd > 60) throw new RangeError(`n_d: expected 0 to 60, got ${nd}`);
  const root = await mkdtemp(join(tmpdir(), 'tally-bench-dotm-'));
  const closers: Array<() => Promise<void>> = [];
  try {
    options.progress(`setting up: a central bank in ${options.suite}, two isolated secure elements (file counters), two in-process ones for counting`);
    const bank = makeBank(options.suite);
    const carriers = makeCarriers(bank);
    const party = async (name: string, start: Promise<Awaited<ReturnType<typeof startIsolatedElement>>>) => {
      const se = await start;
      closers.push(() => se.close());
      return registerParty(bank, name, se);
    };
    const meter = new CryptoMeter(nodeProvider);
    const timedPayer = await party('P', startIsolatedElement(join(root, 'payer'), options.suite));
    const timedPayee = await party('R', startIsolatedElement(join(root, 'payee'), options.suite));
    const countedPayer = await party('P (counted)', startInProcessElement(join(root, 'payer-counted'), options.suite, meter.provider));
    const countedPayee = await party('R (counted)', startInProcessElement(join(root, 'payee-counted'), options.suite, meter.provider));
    const server = await listenTcp(0, '127.0.0.1');
    closers.push(() => server.close());
    options.progress(`floor: one ${options.suite} sign and verify (${nodeProvider.name} provider, as the secure element's process uses)`);
    const operations = measureOperations(options.suite, Math.max(64, options.floorIterations * 16));
    const bench: Bench = {
      bank,
      carriers,
      timed: { payer: timedPayer, payee: timedPayee, ends: [linkEnd(timedPayer), linkEnd(timedPayee)] },
      counted: { payer: countedPayer, payee: countedPayee, meter },
      server,
      operations,
      options,
    };
    const loadStart = loadavg()[0] ?? Number.NaN;
    const cells = await measureGrid(bench);
    const cpu = cpus()[0];
    const report: DotmBenchReport = {
      machine: { cpus: cpu?.model ?? 'unknown', cores: cpus().length, memoryGiB: Math.round(totalmem() / 2 ** 30), node: process.version, platform: `${process.platform}-${process.arch}` },
      loadAverage: { start: loadStart, end: loadavg()[0] ?? Number.NaN },
      date: new Date().toISOString().slice(0, 10),
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
      await writeFile(options.svgPath, figure10(report));
      report.svgPath = options.svgPath;
      options.progress(`wrote ${options.svgPath}`);
    }
    return report;
  } finally {
    for (const close of closers.reverse()) await close().catch(() => undefined);
    await rm(root, { recursive: true, force: true });
  }
}

/** Figure 10 from a report: the heatmap of median transaction times. */
export function figure10(report: DotmBenchReport): string {
  const m = report.machine;
  const refused = report.cells.filter((c) => c.status === 'refused');
  return heatmapSvg({
    blocks: report.blocks,
    records: report.records,
    cells: report.cells.map((c) => ({ nb: c.nb, nd: c.nd, valueMs: c.status === 'measured' ? c.total.p50Ms : null })),
    title: `DOT-M Figure 10 in Tally: median transaction time (ms), ${report.suite}`,
    subtitle: `${m.cpus}, Node ${m.node}, ${m.platform}; ${report.date}; ${report.runsPerCell} runs per cell; isolated SEs, TCP loopback + Noise, handshake excluded`,
    note:
      refused.length === 0
        ? undefined
        : `—: refused by the payer's TA (${refused.map((c) => `(${c.nb}, ${c.nd}) ${c.code}`).join('; ')}): a block of ${RECORDS_PER_BLOCK_MAX} records may not take another (RECORDS_PER_BLOCK_MAX).`,
  });
}

const ms = (x: number) => x.toFixed(2);
const ratio = (x: number) => `${x.toFixed(1)}x`;

/** The report as Markdown tables, every ratio from this run. */
export function formatDotmReport(report: DotmBenchReport): string {
  const m = report.machine;
  const cellAt = (nb: number, nd: number) => report.cells.find((c) => c.nb === nb && c.nd === nd);
  const lines = [
    `Machine: ${m.cpus}, ${m.cores} cores, ${m.memoryGiB} GiB, Node ${m.node}, ${m.platform}; ${report.date}; load average ${report.loadAverage.start.toFixed(1)} at the start, ${report.loadAverage.end.toFixed(1)} at the end`,
    `Suite ${report.suite}; ${report.transport}; ${report.runsPerCell} timed runs per cell (+${report.warmupPerCell} untimed); v: ${report.amountRule}`,
    '',
    'Median transaction time, ms (rows n_b, columns n_d; the nine steps on an open link, handshake excluded)',
    '',
    `| n_b \\ n_d | ${report.records.join(' | ')} |`,
    `|---|${report.records.map(() => '---:').join('|')}|`,
  ];
  for (const nb of report.blocks) {
    const row = report.records.map((nd) => {
      const c = cellAt(nb, nd);
      return c === undefined ? '' : c.status === 'measured' ? formatCellMs(c.total.p50Ms) : `— (${c.code})`;
    });
    lines.push(`| **${nb}** | ${row.join(' | ')} |`);
  }
  const op = report.operations;
  lines.push(
    '',
    `Per cell: p90; handshake p50; bytes both ways (transaction, then handshake); the transaction's bytes at NFC's ${NFC_BITS_PER_SECOND / 1000} kbit/s; signatures and verifications, ours / Table 3; floor = ours × one ${op.suite} sign (${ms(op.signMs * 1000)} µs) and verify (${ms(op.verifyMs * 1000)} µs) of ${op.messageBytes} bytes; replay = the transaction's own operations timed again`,
    '',
    '| n_b | n_d | median ms | p90 ms | handshake ms | bytes | handshake bytes | NFC ms | signs ours / T3 | verifies ours / T3 | verifies ratio | floor ms | median / floor | replay ms | median / replay |',
    '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  );
  for (const c of report.cells) {
    if (c.status === 'refused') {
      lines.push(`| ${c.nb} | ${c.nd} | refused: ${c.code} | | | | | | — / ${c.table3.signs} | — / ${c.table3.verifies} | | | | | |`);
      continue;
    }
    lines.push(
      `| ${c.nb} | ${c.nd} | ${ms(c.total.p50Ms)} | ${ms(c.total.p90Ms)} | ${ms(c.handshake.p50Ms)} | ${c.bytes.transaction} | ${c.bytes.handshake} | ${ms(c.nfcMs)} | ${c.ours.signs} / ${c.table3.signs} | ${c.ours.verifies} / ${c.table3.verifies} | ${ratio(c.ours.verifies / c.table3.verifies)} | ${ms(c.floor.perOperationMs)} | ${ratio(c.ratio.perOperation)} | ${ms(c.floor.replayMs)} | ${ratio(c.ratio.replay)} |`,
    );
  }
  const measured = report.cells.filter((c): c is MeasuredCell => c.status === 'measured');
  const shown = [measured[0], measured[measured.length - 1]].filter((c, i, all): c is MeasuredCell => c !== undefined && all.indexOf(c) === i);
  for (const c of shown) {
    lines.push('', `By step at (${c.nb}, ${c.nd}): signatures / verifications, ours against Table 3; the step's secure-element command, p50 ms`, '', '| step | ours signs | T3 signs | ours verifies | T3 verifies | SE command ms |', '|---|---:|---:|---:|---:|---:|');
    const stepOf: Record<(typeof PHASES)[number], string> = {
      'step 1': `request ${ms(c.steps.request)}`,
      'wallet 2.3': '(payer wallet, no SE)',
      'steps 2-3': `pay ${ms(c.steps.pay)}`,
      'steps 4-6': `accept ${ms(c.steps.accept)}`,
      'steps 7-8': `confirm ${ms(c.steps.confirm)}`,
      'step 9': `complete ${ms(c.steps.complete)}`,
    };
    for (const p of PHASES) {
      const o = c.ours.byPhase[p];
      const t = c.table3.byPhase[p];
      lines.push(`| ${p} | ${o.signs} | ${t.signs} | ${o.verifies} | ${t.verifies} | ${stepOf[p]} |`);
    }
    lines.push(`| all | ${c.ours.signs} | ${c.table3.signs} | ${c.ours.verifies} | ${c.table3.verifies} | |`);
  }
  if (report.svgPath !== undefined) lines.push('', `Figure 10 written to ${report.svgPath}`);
  return lines.join('\n');
}
