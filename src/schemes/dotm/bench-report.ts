/**
 * The report of `bench dotm`: its shape (`--json`), the Markdown tables beside Table 3, and
 * Figure 10 as a heatmap.
 */
import type { SuiteName } from '../../core/crypto/suite.ts';
import type { Machine, Spread } from '../../sim/bench/plugin.ts';
import type { DotmCounts, OperationTimes } from './bench-counts.ts';
import { formatCellMs, heatmapSvg } from './bench-figure.ts';
import { PHASES, type StepTimes } from './bench-payment.ts';
import { RECORDS_PER_BLOCK_MAX } from './messages.ts';

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
/** Where a full run writes Figure 10 (in the repository's docs folder). */
export const FIGURE10_SVG_PATH = 'dotm-figure10.svg';

/** What every cell says: its shape, its amount, Table 3's counts. */
export interface CellBase {
  readonly nb: number;
  readonly nd: number;
  /** Records carried by each block before the payment. */
  readonly shares: readonly number[];
  /** v: every block in full, minor units. */
  readonly vMinor: number;
  readonly table3: DotmCounts;
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
  readonly ours: DotmCounts;
  /** The online steps around this cell's runs, through the node, p50 ms: issue and load of fresh blocks (null when the cell has none), one redemption, one sync (events uploaded, ack applied). */
  readonly online: { readonly issueMs: number | null; readonly redeemMs: number; readonly syncMs: number };
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
  machine: Machine;
  /** The node the wallets registered with and synced to. */
  node: { readonly database: 'pglite' | 'postgres' };
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
/** Figure 10 from a report: the heatmap of median transaction times. */
export function figure10(report: DotmBenchReport): string {
  const m = report.machine;
  const refused = report.cells.filter((c) => c.status === 'refused');
  return heatmapSvg({
    blocks: report.blocks,
    records: report.records,
    cells: report.cells.map((c) => ({ nb: c.nb, nd: c.nd, valueMs: c.status === 'measured' ? c.total.p50Ms : null })),
    title: `DOT-M Figure 10 in Tally: median transaction time (ms), ${report.suite}`,
    subtitle: `${m.cpu}, Node ${m.node}, ${m.platform}; ${report.date}; ${report.runsPerCell} runs per cell; isolated SEs, TCP loopback + Noise, handshake excluded`,
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
  const cellAt = (nb: number, nd: number) => report.cells.find((c) => c.nb === nb && c.nd === nd);
  const lines = [
    `Load average ${report.loadAverage.start.toFixed(1)} when the cells started, ${report.loadAverage.end.toFixed(1)} at the end; a real issuer node (${report.node.database}) issued every block, registered every wallet and acknowledged every event`,
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
  lines.push(
    '',
    `Online steps through the node (${report.node.database}), untimed in the transaction, p50 ms: the payer's fresh blocks issued (POST /v1/dotm/issue) and loaded; one redemption in the secure element; one sync (events uploaded to POST /v1/dotm/events, the node's ack applied)`,
    '',
    '| n_b | n_d | issue + load | redeem | sync |',
    '|---:|---:|---:|---:|---:|',
  );
  for (const c of report.cells) {
    if (c.status === 'measured') lines.push(`| ${c.nb} | ${c.nd} | ${c.online.issueMs === null ? '—' : ms(c.online.issueMs)} | ${ms(c.online.redeemMs)} | ${ms(c.online.syncMs)} |`);
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

