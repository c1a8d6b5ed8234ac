/**
 * Figure 8 of the paper as measured by `bench opera`, an SVG of two panels: (a) the total time of a
 * payment of n tokens, with the line fitted through the samples; (b) the time per token, with what
 * that line predicts of it (slope + intercept / n: the fixed part amortised over the tokens).
 * Means with ± one standard deviation as error bars.
 */
import { plotSvg } from '../../sim/bench/plugin.ts';
import type { OperaBenchReport } from './bench-report.ts';

/** Where a full run writes the figure (the docs folder). */
export const FIGURE8_SVG_PATH = 'opera-figure8.svg';

const COLOUR = '#b4043a';
const LABEL = 'isolated ODWs (SE processes, file counters)';

/** The SVG text. */
export function figure8Svg(report: Pick<OperaBenchReport, 'rows' | 'time'>, options: { title: string; subtitle: string }): string {
  const { slope, intercept, r2 } = report.time;
  const from = Math.min(...report.rows.map((r) => r.count));
  return plotSvg({
    ...options,
    panelWidth: 560,
    panels: [
      {
        xLabel: '(a) tokens sent in one payment (n)',
        yLabel: 'total time of the payment, s (mean ± sd)',
        series: [
          {
            label: `${LABEL}: ${(slope * 1000).toFixed(2)} ms per token (fit, r² ${r2.toFixed(3)})`,
            colour: COLOUR,
            points: report.rows.map((r) => ({ x: r.count, y: r.seconds.mean, sd: r.seconds.sd, title: `n = ${r.count}: ${r.seconds.mean.toFixed(3)} ± ${r.seconds.sd.toFixed(3)} s` })),
            fit: { from: 0, at: (n) => intercept + slope * n },
          },
        ],
      },
      {
        xLabel: '(b) tokens sent in one payment (n)',
        yLabel: 'time per token, ms (mean ± sd)',
        series: [
          {
            label: `${LABEL}: ${(slope * 1000).toFixed(2)} + ${(intercept * 1000).toFixed(0)} / n ms`,
            colour: COLOUR,
            points: report.rows.map((r) => ({ x: r.count, y: r.perTokenMs.mean, sd: r.perTokenMs.sd, title: `n = ${r.count}: ${r.perTokenMs.mean.toFixed(2)} ± ${r.perTokenMs.sd.toFixed(2)} ms per token` })),
            fit: { from, at: (n) => (slope + intercept / n) * 1000 },
          },
        ],
      },
    ],
  });
}
