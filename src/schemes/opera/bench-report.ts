/**
 * What `bench opera` reports: per count the mean and standard deviation of a payment's total time
 * (Figure 8a) and of its time per token (Figure 8b), its split into the three stages, the bytes and
 * the CPU time; the lines fitted through the samples (per token: the slope; per payment whatever its
 * size: the intercept, the part the tokens amortise); the floors and the ratios to them; and the
 * paper's trend beside ours, as Markdown tables.
 */
import { fitLine, meanSd, type FloorRatio, type Line, type MeanSd, type RampRun } from '../../sim/bench/plugin.ts';
import type { OperaFloor } from './bench-floor.ts';
import { STAGES, type Stage } from './bench-payment.ts';
import type { RampSample } from './bench-ramp.ts';

/** What the paper gives in §5.2: the counts of Figure 8 and its trend, no figures in its text. */
export const PAPER = {
  counts: [100, 200, 300, 400, 500, 600, 700, 800, 900, 1000],
  /** "tokens with the least monetary value". */
  trend: 'the total time grows with the number of tokens (each token of Stage 2 costs a symmetric-key and a hash computation) and the time per token falls, Stage 1 and Stage 3 being amortised over more tokens',
} as const;

/** One count of the ramp. */
export interface CountRow {
  readonly count: number;
  /** Figure 8a: the payment, seconds. */
  readonly seconds: MeanSd;
  /** Figure 8b: the payment's time over its tokens, ms. */
  readonly perTokenMs: MeanSd;
  readonly stageMs: Readonly<Record<Stage, number>>;
  /** Of Stage 2's time, the share spent inside the ODW commands (the two sides take turns: the rest is the link and the wallet apps). */
  readonly odwShare: number;
  readonly stageBytes: Readonly<Record<Stage, number>>;
  /** CPU of this process and of the two SE processes, ms. */
  readonly cpuMs: number;
}

/** Everything `bench opera` measured. */
export interface OperaBenchReport extends RampRun {
  readonly rows: CountRow[];
  /** Seconds against tokens, through every sample; and each stage's ms against tokens. */
  readonly time: Line;
  readonly stages: Readonly<Record<Stage, Line>>;
  /** Stage 2 bytes and CPU ms against tokens. */
  readonly bytes: Line;
  readonly cpu: Line;
  readonly floor: OperaFloor;
  readonly ratios: { readonly perToken: number; readonly perTokenWithCommits: number; readonly stage1: number };
  readonly samples: RampSample[];
  svgPath?: string;
}

const average = (xs: readonly number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;

/** The ramp's samples summarised, with the floor and the ratios to it. */
export function summarise(samples: readonly RampSample[], counts: readonly number[], floor: OperaFloor): Omit<OperaBenchReport, 'machine' | 'loadAverage' | 'node' | 'transport' | 'reps' | 'samples'> {
  const rows = counts.map((count): CountRow => {
    const at = samples.filter((s) => s.count === count);
    const per = (f: (s: RampSample) => Readonly<Record<Stage, number>>) => Object.fromEntries(STAGES.map((k) => [k, average(at.map((s) => f(s)[k]))])) as Record<Stage, number>;
    return {
      count,
      seconds: meanSd(at.map((s) => s.totalMs / 1000)),
      perTokenMs: meanSd(at.map((s) => s.totalMs / count)),
      stageMs: per((s) => s.stageMs),
      odwShare: average(at.map((s) => s.odwMs.stage2 / s.stageMs.stage2)),
      stageBytes: per((s) => s.stageBytes),
      cpuMs: average(at.map((s) => s.cpuMs.bench + s.cpuMs.elements)),
    };
  });
  const time = fitLine(samples.map((s) => [s.count, s.totalMs / 1000]));
  const stages = Object.fromEntries(STAGES.map((k) => [k, fitLine(samples.map((s) => [s.count, s.stageMs[k]]))])) as Record<Stage, Line>;
  const stage1Mean = average(samples.map((s) => s.stageMs.stage1));
  return {
    counts,
    rows,
    time,
    stages,
    bytes: fitLine(samples.map((s) => [s.count, s.stageBytes.stage2])),
    cpu: fitLine(samples.map((s) => [s.count, s.cpuMs.bench + s.cpuMs.elements])),
    floor,
    ratios: { perToken: (time.slope * 1000) / floor.perTokenMs, perTokenWithCommits: (time.slope * 1000) / (floor.perTokenMs + floor.commitsPerTokenMs), stage1: stage1Mean / floor.stage1Ms },
  };
}

/** The measurements over their floors. */
export function operaRatios(report: OperaBenchReport): FloorRatio[] {
  return [
    { what: 'time per token / crypto floor per token', value: report.ratios.perToken },
    { what: 'time per token / (crypto floor + two SE commits) per token', value: report.ratios.perTokenWithCommits },
    { what: 'Stage 1 / (one anonymous proof + one verification)', value: report.ratios.stage1 },
  ];
}

const f = (x: number, digits = 3) => x.toFixed(digits);
const counted = (c: { signs: number; verifies: number }) => `${f(c.signs, 2)} sign + ${f(c.verifies, 2)} verify`;

/** Where the per-token time went from the smallest count to the largest, in words. */
export function trendLine(report: Pick<OperaBenchReport, 'rows' | 'time'>): string {
  const first = report.rows[0];
  const last = report.rows[report.rows.length - 1];
  if (first === undefined || last === undefined || first === last) return '';
  const falls = last.perTokenMs.mean < first.perTokenMs.mean;
  return `Time per token ${falls ? 'falls' : 'does not fall'} from ${f(first.perTokenMs.mean, 2)} ms at n = ${first.count} to ${f(last.perTokenMs.mean, 2)} ms at n = ${last.count}: the fit says a payment costs ${f(report.time.intercept * 1000, 1)} ms whatever its size plus ${f(report.time.slope * 1000, 2)} ms per token, so the time per token is ${f(report.time.slope * 1000, 2)} + ${f(report.time.intercept * 1000, 1)} / n ms.`;
}

/** The report as Markdown. */
export function formatOperaReport(report: OperaBenchReport): string {
  const fl = report.floor;
  const lines: string[] = [
    `Node: ${report.node.database}; ${report.transport}; ${report.reps} repetition(s) per count; load average ${f(report.loadAverage.start, 1)} → ${f(report.loadAverage.end, 1)}`,
    'Each payment: n fresh tokens of 0.01 charged into the payer\'s ODW through the node before it and deposited back by the payee after it (untimed); timed from the TCP connect to the payee\'s FIN. ODWs in isolated SE processes with file counters.',
    '',
    'Figure 8: a payment of n tokens, mean ± sd; its stages (means); bytes on the link both ways',
    '',
    '| n | total, s (8a) | per token, ms (8b) | Stage 1, ms | Stage 2, ms | Stage 3, ms | Stage 2 in the ODWs | bytes Stage 1 | bytes Stage 2 | bytes Stage 3 | CPU, ms |',
    '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of report.rows) {
    const s = r.stageMs;
    const b = r.stageBytes;
    lines.push(`| ${r.count} | ${f(r.seconds.mean)} ± ${f(r.seconds.sd)} | ${f(r.perTokenMs.mean, 2)} ± ${f(r.perTokenMs.sd, 2)} | ${f(s.stage1, 1)} | ${f(s.stage2, 1)} | ${f(s.stage3, 1)} | ${f(r.odwShare * 100, 0)}% | ${Math.round(b.stage1)} | ${Math.round(b.stage2)} | ${Math.round(b.stage3)} | ${f(r.cpuMs, 0)} |`);
  }
  lines.push('', 'Lines through every sample: per token (slope) and per payment whatever its size (intercept)', '', '| | per token, ms | per payment, ms | r² |', '|---|---:|---:|---:|');
  lines.push(`| total | ${f(report.time.slope * 1000, 2)} | ${f(report.time.intercept * 1000, 1)} | ${f(report.time.r2, 4)} |`);
  for (const k of STAGES) lines.push(`| ${k.replace('stage', 'Stage ')} | ${f(report.stages[k].slope, 2)} | ${f(report.stages[k].intercept, 1)} | ${f(report.stages[k].r2, 4)} |`);
  lines.push(`| CPU (all processes) | ${f(report.cpu.slope, 2)} | ${f(report.cpu.intercept, 1)} | ${f(report.cpu.r2, 4)} |`);
  lines.push('', `Bytes per token on the link (Stage 2, Msgs 2-3 and 2-4 in their frames): ${f(report.bytes.slope, 1)}`, '', trendLine(report));
  const a = fl.aead;
  lines.push(
    '',
    `Floors, measured in this run. Anonymous proof (BBS, ${fl.proofBytes} B): prove ${f(fl.proveMs, 2)} ms, verify ${f(fl.verifyMs, 2)} ms (p50).`,
    `Metered (payments of ${fl.meteredCounts.join(' and ')} tokens between in-process ODWs): per token ${STAGES.map((k) => `${k.replace('stage', 'Stage ')} ${counted(fl.perToken[k])}`).join(', ')}; per payment ${STAGES.map((k) => `${k.replace('stage', 'Stage ')} ${counted(fl.perPayment[k])}`).join(', ')}; a token's replayed: ${f(fl.meteredPerTokenMs)} ms.`,
    `AEAD and hash of a token (XChaCha20-Poly1305, HKDF-SHA-256, OTK steps of ${fl.otkHash.toUpperCase().replace('SHA', 'SHA-')}; token ${fl.tokenBytes} B, 2-3 ${fl.msg23Bytes} B, 2-4 ${fl.msg24Bytes} B): sealToken ${f(a.sealToken)} + openToken ${f(a.openToken)} + 2-3 seal ${f(a.seal23)} / open ${f(a.open23)} + 2-4 seal ${f(a.seal24)} / open ${f(a.open24)} + 4 × OTK step ${f(a.nextOtk)} + escrow tag HPKE seal ${f(a.sealTag)} = ${f(fl.aeadPerTokenMs)} ms.`,
    `Crypto floor per token: ${f(fl.perTokenMs)} ms. Two SE commits per token (sealed states of ${fl.commitSealedBytes.join(' and ')} B): ${f(fl.commitsPerTokenMs)} ms. Stage 1 floor (critical path): ${f(fl.stage1Ms, 2)} ms.`,
    '',
    '| | measured | floor | ratio |',
    '|---|---:|---:|---:|',
    `| time per token | ${f(report.time.slope * 1000, 2)} ms | ${f(fl.perTokenMs)} ms (crypto) | ${f(report.ratios.perToken, 1)}× |`,
    `| time per token | ${f(report.time.slope * 1000, 2)} ms | ${f(fl.perTokenMs + fl.commitsPerTokenMs)} ms (crypto + 2 commits) | ${f(report.ratios.perTokenWithCommits, 1)}× |`,
    `| Stage 1 (mean) | ${f(report.ratios.stage1 * fl.stage1Ms, 1)} ms | ${f(fl.stage1Ms, 2)} ms (prove + verify) | ${f(report.ratios.stage1, 1)}× |`,
    '',
    `The paper (§5.2, a board prototype, counts ${PAPER.counts[0]} to ${PAPER.counts[PAPER.counts.length - 1]} of the least valuable token) gives no figures in its text, only the trend of Figure 8: ${PAPER.trend}.`,
  );
  if (report.svgPath !== undefined) lines.push('', `Figure: ${report.svgPath}`);
  return lines.join('\n');
}
