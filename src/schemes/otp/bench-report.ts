/**
 * What `bench otp` reports: per placement and count the mean and standard deviation of the
 * payment's time (Figures 7–10), the line fitted through the samples (time per OTP), CPU time and
 * bytes per OTP, the ratio to the cryptographic floor; the denominations comparison; and the
 * paper's own figures beside ours, as Markdown tables.
 */
import { fitLine, meanSd, type FloorRatio, type Line, type MeanSd, type RampRun } from '../../sim/bench/plugin.ts';
import type { OtpFloor } from './bench-floor.ts';
import type { DenominationRow, Pair, RampSample } from './bench-ramp.ts';

/** What the paper reports in §3.1 (iPhone 7 with the Secure Enclave, Bluetooth multipeer). */
export const PAPER = {
  counts: [5, 10, 20, 30, 40, 50, 100, 200, 300, 400, 500],
  repetitions: 50,
  secondsPerOtp: 0.78,
  /** Figure 13: 100 OTPs, at rest and at the top of the battery's temperature. */
  hundredOtpSeconds: { rest: 39, hot: 44 },
  /** Equation (1): 892 mAh for 500 OTPs, the worst case. */
  mAhPerOtp: 1.784,
  fiveHundredOverSeconds: 360,
} as const;

/** One count of one placement. */
export interface CountRow {
  readonly count: number;
  readonly seconds: MeanSd;
  /** The session alone (the link opened), seconds. */
  readonly sessionSeconds: MeanSd;
  readonly sessionBytes: number;
  readonly handshakeBytes: number;
  /** CPU time of the payment, ms: this process (both wallets, the link, and an in-process TA) and the SE child processes. */
  readonly cpuMs: { readonly bench: number; readonly elements: number };
}

/** One placement's ramp. */
export interface SeriesReport {
  readonly series: Pair['series'];
  readonly rows: CountRow[];
  /** Seconds against OTPs, through every sample. */
  readonly time: Line;
  /** CPU ms (all processes) against OTPs. */
  readonly cpu: Line;
  /** Session bytes against OTPs. */
  readonly bytes: Line;
  /** Time per OTP (the slope) over the floor per OTP. */
  readonly floorRatio: number;
}

/** Everything `bench otp` measured. */
export interface OtpBenchReport extends RampRun {
  readonly series: SeriesReport[];
  readonly floor: OtpFloor;
  readonly denominations: { readonly amountMinor: string; readonly rows: Array<{ way: DenominationRow['way']; coins: Readonly<Record<string, number>>; count: number; seconds: MeanSd; sessionBytes: number; cpuMs: number }> };
  readonly samples: RampSample[];
  svgPath?: string;
}

const cpuOf = (s: { cpuMs: { bench: number; elements: number } }) => s.cpuMs.bench + s.cpuMs.elements;
const average = (xs: readonly number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;

/** The ramp's samples of one placement, summarised. */
export function seriesReport(series: Pair['series'], samples: readonly RampSample[], counts: readonly number[], floor: OtpFloor): SeriesReport {
  const mine = samples.filter((s) => s.series === series);
  const rows = counts.map((count) => {
    const at = mine.filter((s) => s.count === count);
    return {
      count,
      seconds: meanSd(at.map((s) => s.totalMs / 1000)),
      sessionSeconds: meanSd(at.map((s) => s.sessionMs / 1000)),
      sessionBytes: average(at.map((s) => s.sessionBytes)),
      handshakeBytes: average(at.map((s) => s.handshakeBytes)),
      cpuMs: { bench: average(at.map((s) => s.cpuMs.bench)), elements: average(at.map((s) => s.cpuMs.elements)) },
    };
  });
  const time = fitLine(mine.map((s) => [s.count, s.totalMs / 1000]));
  return {
    series,
    rows,
    time,
    cpu: fitLine(mine.map((s) => [s.count, cpuOf(s)])),
    bytes: fitLine(mine.map((s) => [s.count, s.sessionBytes])),
    floorRatio: (time.slope * 1000) / floor.perOtpMs,
  };
}

/** The denominations rows, summarised. */
export function denominationReport(amountMinor: bigint, rows: readonly DenominationRow[]): OtpBenchReport['denominations'] {
  return {
    amountMinor: amountMinor.toString(),
    rows: rows.map((r) => ({ way: r.way, coins: r.coins, count: r.count, seconds: meanSd(r.samples.map((s) => s.totalMs / 1000)), sessionBytes: average(r.samples.map((s) => s.sessionBytes)), cpuMs: average(r.samples.map(cpuOf)) })),
  };
}

/** Each placement's time per OTP over the floor per OTP. */
export function otpRatios(report: OtpBenchReport): FloorRatio[] {
  return report.series.map((s) => ({ what: `${s.series} time per OTP / crypto floor per OTP`, value: s.floorRatio }));
}

const f = (x: number, digits = 3) => x.toFixed(digits);
const ms = (seconds: number) => (seconds * 1000).toFixed(2);
const NAMES: Record<Pair['series'], string> = { isolated: 'isolated SE processes (file counters)', 'in-process': 'in-process TA (no SE process)' };

/** The report as Markdown. */
export function formatOtpReport(report: OtpBenchReport): string {
  const lines: string[] = [];
  lines.push(
    `Node: ${report.node.database}; ${report.transport}; ${report.reps} repetition(s) per count (the paper: ${PAPER.repetitions}); load average ${f(report.loadAverage.start, 1)} → ${f(report.loadAverage.end, 1)}`,
    'Each payment: n fresh coins of 1.00 (one OTP each), withdrawn blindly through the node before it and deposited by the payee after it (untimed); timed from the TCP connect to the session\'s done.',
    '',
  );
  const iso = report.series.find((s) => s.series === 'isolated');
  const inp = report.series.find((s) => s.series === 'in-process');
  lines.push('Ramp (Figures 7–10): time of a payment of n OTPs, mean ± sd, seconds', '', `| n | ${report.series.map((s) => NAMES[s.series]).join(' | ')} | bytes on the link (session) |`, `|---:|${report.series.map(() => '---:|').join('')}---:|`);
  for (const [i, count] of report.counts.entries()) {
    const cells = report.series.map((s) => `${f(s.rows[i]?.seconds.mean ?? Number.NaN)} ± ${f(s.rows[i]?.seconds.sd ?? Number.NaN)}`);
    lines.push(`| ${count} | ${cells.join(' | ')} | ${Math.round(report.series[0]?.rows[i]?.sessionBytes ?? Number.NaN)} |`);
  }
  lines.push('', 'Per OTP: the slope of the line through every sample (and its intercept, r²); CPU time of all processes per OTP (slope), bytes per OTP (slope)', '', '| | time per OTP, ms | intercept, ms | r² | CPU per OTP, ms | bytes per OTP | time / crypto floor |', '|---|---:|---:|---:|---:|---:|---:|');
  for (const s of report.series) lines.push(`| ${NAMES[s.series]} | ${ms(s.time.slope)} | ${ms(s.time.intercept)} | ${f(s.time.r2, 4)} | ${f(s.cpu.slope, 2)} | ${Math.round(s.bytes.slope)} | ${f(s.floorRatio, 1)}× |`);
  const fl = report.floor;
  lines.push(
    '',
    `Crypto floor per OTP: ${f(fl.perOtpMs)} ms = metered ${f(fl.meteredMs)} ms (${f(fl.metered.signs, 2)} Ed25519 signature(s) + ${f(fl.metered.verifies, 2)} verification(s) per OTP, counted by the metering provider and replayed) + 2 × RSA-2048 PSS verify ${f(fl.rsaVerifyMs)} ms + HPKE seal of the coin (${fl.coinBytes} B) ${f(fl.hpkeSealCoinMs)} ms + HPKE seal of the escrow tag (${fl.tagBytes} B) ${f(fl.hpkeSealTagMs)} ms + HPKE open of the coin ${f(fl.hpkeOpenCoinMs)} ms (the last four timed here: the meter does not see RSA or X25519)`,
  );
  const d = report.denominations;
  lines.push('', `Denominations: paying ${(Number(d.amountMinor) / 100).toFixed(2)} between the isolated SEs, mean ± sd of ${d.rows[0]?.seconds.n ?? 0} payment(s) each`, '', '| coins paid | coins | time, s | bytes (session) | CPU, ms |', '|---|---:|---:|---:|---:|');
  for (const r of d.rows) {
    const mix = Object.entries(r.coins).sort(([a], [b]) => Number(b) - Number(a)).map(([v, n]) => `${n} × ${(Number(v) / 100).toFixed(2)}`).join(' + ');
    lines.push(`| ${r.way}: ${mix} | ${r.count} | ${f(r.seconds.mean)} ± ${f(r.seconds.sd)} | ${Math.round(r.sessionBytes)} | ${f(r.cpuMs, 1)} |`);
  }
  if (iso !== undefined) {
    const hundred = iso.time.intercept + 100 * iso.time.slope;
    const five = iso.time.intercept + 500 * iso.time.slope;
    lines.push(
      '',
      'The paper (iPhone 7, Secure Enclave, Bluetooth) beside ours (isolated SE processes, TCP on loopback)',
      '',
      '| | paper | ours | paper / ours |',
      '|---|---:|---:|---:|',
      `| time per OTP | ${PAPER.secondsPerOtp} s | ${ms(iso.time.slope)} ms | ${f(PAPER.secondsPerOtp / iso.time.slope, 0)}× |`,
      `| 100 OTPs | ${PAPER.hundredOtpSeconds.rest}–${PAPER.hundredOtpSeconds.hot} s (Figure 13) | ${f(hundred)} s (fitted) | ${f(PAPER.hundredOtpSeconds.rest / hundred, 0)}× |`,
      `| 500 OTPs | > 6 min | ${f(five)} s (fitted) | ${f(PAPER.fiveHundredOverSeconds / five, 0)}× (at least) |`,
      `| energy per OTP | ${PAPER.mAhPerOtp} mAh (charge, Eq. 1) | ${f(iso.cpu.slope, 2)} ms CPU (proxy) | — |`,
    );
    if (inp !== undefined) lines.push('', `Without the SE processes (Figures 9–10): ${ms(inp.time.slope)} ms per OTP in-process against ${ms(iso.time.slope)} ms with them (${f(iso.time.slope / inp.time.slope, 2)}×); the paper gives no figure, only "significantly smaller".`);
  }
  if (report.svgPath !== undefined) lines.push('', `Figure: ${report.svgPath}`);
  return lines.join('\n');
}
