/**
 * The grid of `bench dotm` (Figure 10's cells): every cell's transaction counted once on
 * in-process secure elements over the metering provider, then timed on isolated ones over TCP +
 * Noise, in rounds over the whole grid; the online steps around each run go through the node.
 */
import { median, spread, type CryptoMeter, type Metered, type TcpServer } from '../../sim/bench/plugin.ts';
import { table3Counts, type OperationTimes } from './bench-counts.ts';
import { checkShape, openMemoryLinks, openTcpLinks, transact, type LinkEnd, type Phase, type StepTimes, type TransactionOutcome } from './bench-payment.ts';
import { NFC_BITS_PER_SECOND, type CellBase, type DotmCell, type MeasuredCell, type RefusedCell } from './bench-report.ts';
import { BLOCK_VALUE_MINOR, drain, feedPayer, onlineTimes, recordsPerBlock, type BenchParty, type Carriers, type DotmWorld, type OnlineTimes } from './bench-setup.ts';
import { RECORDS_PER_BLOCK_MAX } from './messages.ts';
import { failureCode } from './session.ts';

/** Which cells, and how many runs of each. */
export interface GridOptions {
  readonly blocks: readonly number[];
  readonly records: readonly number[];
  /** Timed runs per cell. */
  readonly runs: number;
  /** Untimed runs per cell before them. */
  readonly warmup: number;
  /** Iterations of the floor measurements. */
  readonly floorIterations: number;
}

const ms = (x: number) => x.toFixed(2);
/** Sizes vary by a few bytes with the encodings of amounts and times: the mean, rounded. */
const meanBytes = (values: readonly number[]) => Math.round(values.reduce((s, x) => s + x, 0) / values.length);

/** The two wallets of one side of the bench (isolated for timing, in-process for counting). */
interface Pair {
  readonly payer: BenchParty;
  readonly payee: BenchParty;
}

/** What every cell shares. */
export interface Bench {
  readonly world: DotmWorld;
  readonly carriers: Carriers;
  readonly timed: Pair & { readonly ends: readonly [LinkEnd, LinkEnd] };
  readonly counted: Pair & { readonly meter: CryptoMeter<Phase> };
  readonly server: TcpServer;
  readonly operations: OperationTimes;
  readonly options: GridOptions;
}

/** The upkeep after a run: R's blocks redeemed, P's left-overs too, both logs acknowledged. */
async function settle(bench: Bench, pair: Pair, times: OnlineTimes): Promise<void> {
  await drain(bench.world, pair.payee, { redeem: true }, times);
  await drain(bench.world, pair.payer, { redeem: true }, times);
}

/** True when the refusal is the per-block limit on a cell with a block at RECORDS_PER_BLOCK_MAX records. */
function refusedForLimit(e: unknown, shares: readonly number[]): boolean {
  return failureCode(e) === 'LIMIT_REACHED' && shares.some((k) => k >= RECORDS_PER_BLOCK_MAX);
}

/** A cell whose transaction was counted, collecting its timed runs. */
interface Plan {
  readonly base: CellBase;
  readonly v: bigint;
  readonly counted: Metered<Phase>;
  readonly totals: number[];
  readonly online: OnlineTimes;
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
  let counted: Metered<Phase>;
  const untimed = onlineTimes();
  try {
    await feedPayer(bench.world, bench.carriers, payer, shares, untimed);
    await drain(bench.world, payer, { redeem: false }, untimed);
    const links = openMemoryLinks(payee);
    meter.arm();
    try {
      const outcome = await transact(links, { pinned: bench.world.node.certificates, payer, payee, v, provider: meter.provider, onPhase: (p) => meter.enter(p) });
      checkShape(outcome.transaction.tsd, nb, nd, v);
    } finally {
      links.close();
      counted = meter.disarm();
      await settle(bench, bench.counted, untimed);
    }
  } catch (e) {
    if (!refusedForLimit(e, shares)) throw e;
    const message = e instanceof Error ? e.message : String(e);
    bench.world.harness.progress(`(${nb}, ${nd}): refused by the payer's TA [${failureCode(e)}]: ${message}`);
    return { ...base, status: 'refused', code: failureCode(e), message };
  }
  bench.world.harness.progress(`(${nb}, ${nd}): signs ${counted.counts.signs} (Table 3: ${base.table3.signs}), verifies ${counted.counts.verifies} (Table 3: ${base.table3.verifies})`);
  return { base, v, counted, totals: [], online: onlineTimes(), handshakes: [], steps: [], transactionBytes: [], handshakeBytes: [] };
}

/**
 * One run of a cell on the isolated secure elements over TCP + Noise: feed (untimed), the nine
 * steps (timed), the checks, the upkeep (untimed). Warm-up runs are not kept.
 * @throws Error when the payment does not have the cell's shape or value is not conserved
 */
async function timedRun(bench: Bench, plan: Plan, keep: boolean): Promise<void> {
  const { nb, nd, shares } = plan.base;
  const { payer, payee, ends } = bench.timed;
  const { harness, node } = bench.world;
  // The online steps of kept runs are kept with them.
  const times = keep ? plan.online : onlineTimes();
  await feedPayer(bench.world, bench.carriers, payer, shares, times);
  await drain(bench.world, payer, { redeem: false }, times);
  const links = await openTcpLinks(bench.server, ends[0], ends[1], node.certificates, harness.provider);
  let outcome: TransactionOutcome;
  try {
    outcome = await transact(links, { pinned: node.certificates, payer, payee, v: plan.v, provider: harness.provider });
  } finally {
    links.close();
  }
  checkShape(outcome.transaction.tsd, nb, nd, plan.v);
  // Conservation: the payer gave every block in full, the payee holds them all.
  const [paid, received] = await Promise.all([payer.se.call('status', {}), payee.se.call('status', {})]);
  if (paid.balance !== 0n || received.balance !== plan.v || received.blocks.length !== nb) {
    throw new Error(`(${nb}, ${nd}): after paying ${plan.v} the payer holds ${paid.balance}, the payee ${received.balance} in ${received.blocks.length} blocks`);
  }
  await settle(bench, bench.timed, times);
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
    online: { issueMs: plan.online.issue.length === 0 ? null : median(plan.online.issue), redeemMs: median(plan.online.redeem), syncMs: median(plan.online.sync) },
    floor: { perOperationMs, replayMs, replayMessageBytes: plan.counted.replay.messageBytes },
    ratio: { perOperation: total.p50Ms / perOperationMs, replay: total.p50Ms / replayMs },
  };
}

/**
 * The grid: every cell counted, then the timed runs in rounds, one run of every cell per round,
 * so that whatever else the machine does during the bench falls on all cells alike.
 */
export async function measureGrid(bench: Bench): Promise<DotmCell[]> {
  const { options } = bench;
  const { progress } = bench.world.harness;
  const counted: Array<Plan | RefusedCell> = [];
  for (const nb of options.blocks) for (const nd of options.records) counted.push(await countCell(bench, nb, nd));
  const plans = counted.filter((c): c is Plan => !('status' in c));
  const rounds = options.warmup + options.runs;
  for (let round = 0; round < rounds; round++) {
    const started = performance.now();
    for (const plan of plans) await timedRun(bench, plan, round >= options.warmup);
    progress(`round ${round + 1} of ${rounds}${round < options.warmup ? ' (warm-up)' : ''}: ${plans.length} cells in ${ms((performance.now() - started) / 1000)} s`);
  }
  const cells = counted.map((c) => ('status' in c ? c : finish(bench, c)));
  for (const c of cells) {
    if (c.status !== 'measured') continue;
    progress(
      `(${c.nb}, ${c.nd}): median ${ms(c.total.p50Ms)} ms, p90 ${ms(c.total.p90Ms)} ms, ${c.bytes.transaction} bytes, floor ${ms(c.floor.perOperationMs)} ms, replay ${ms(c.floor.replayMs)} ms`,
    );
  }
  return cells;
}

