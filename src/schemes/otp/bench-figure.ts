/**
 * The ramp of `bench otp` as an SVG (our Figures 7–10 in one plot): the mean time of a payment of
 * n OTPs for each placement, with ± one standard deviation as error bars, and the line fitted
 * through the samples, on linear axes.
 */
import { plotSvg, type PlotSeries } from '../../sim/bench/plugin.ts';
import type { SeriesReport } from './bench-report.ts';

/** Where a full run writes the figure (the docs folder). */
export const RAMP_SVG_PATH = 'otp-ramp.svg';

const COLOURS: Record<SeriesReport['series'], string> = { isolated: '#b4043a', 'in-process': '#3b4cc0' };
const LABELS: Record<SeriesReport['series'], string> = { isolated: 'isolated SE processes', 'in-process': 'in-process TA (no SE process)' };

/** The SVG text. */
export function rampFigure(series: readonly SeriesReport[], options: { title: string; subtitle: string }): string {
  const plotted = series.map(
    (s): PlotSeries => ({
      label: `${LABELS[s.series]}: ${(s.time.slope * 1000).toFixed(2)} ms per OTP (fit, r² ${s.time.r2.toFixed(3)})`,
      colour: COLOURS[s.series],
      points: s.rows.map((r) => ({ x: r.count, y: r.seconds.mean, sd: r.seconds.sd, title: `${LABELS[s.series]}, n = ${r.count}: ${r.seconds.mean.toFixed(3)} ± ${r.seconds.sd.toFixed(3)} s` })),
      fit: { from: 0, at: (n) => s.time.intercept + s.time.slope * n },
    }),
  );
  return plotSvg({ ...options, panels: [{ xLabel: 'OTPs sent in one payment (n)', yLabel: 'time of the payment, s (mean ± sd)', series: plotted }] });
}
