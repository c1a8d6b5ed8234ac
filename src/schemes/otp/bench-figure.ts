/**
 * The ramp of `bench otp` as an SVG (our Figures 7–10 in one plot): the mean time of a payment of
 * n OTPs for each placement, with ± one standard deviation as error bars, and the line fitted
 * through the samples, on linear axes.
 */
import type { SeriesReport } from './bench-report.ts';

/** Where a full run writes the figure (the docs folder). */
export const RAMP_SVG_PATH = 'otp-ramp.svg';

const WIDTH = 720;
const HEIGHT = 440;
const PAD = { left: 70, right: 20, top: 56, bottom: 60 };
const COLOURS: Record<SeriesReport['series'], string> = { isolated: '#b4043a', 'in-process': '#3b4cc0' };
const LABELS: Record<SeriesReport['series'], string> = { isolated: 'isolated SE processes', 'in-process': 'in-process TA (no SE process)' };

function escape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** Round tick steps (1, 2, 5 × 10^k) giving about `want` ticks up to `max`. */
function ticks(max: number, want: number): number[] {
  const raw = max / want;
  const base = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * base).find((s) => s >= raw) ?? 10 * base;
  const out: number[] = [];
  for (let v = 0; v <= max + 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

/** The SVG text. */
export function rampFigure(series: readonly SeriesReport[], options: { title: string; subtitle: string }): string {
  const counts = series.flatMap((s) => s.rows.map((r) => r.count));
  const xMax = Math.max(...counts);
  const yMax = Math.max(...series.flatMap((s) => s.rows.map((r) => r.seconds.mean + r.seconds.sd))) * 1.05;
  const plotW = WIDTH - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const x = (v: number) => PAD.left + (v / xMax) * plotW;
  const y = (v: number) => PAD.top + plotH - (Math.max(0, v) / yMax) * plotH;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="sans-serif" font-size="12">`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="#ffffff"/>`,
    `<text x="${WIDTH / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${escape(options.title)}</text>`,
    `<text x="${WIDTH / 2}" y="40" text-anchor="middle" fill="#444444">${escape(options.subtitle)}</text>`,
  ];
  for (const t of ticks(xMax, 10)) {
    out.push(`<line x1="${x(t).toFixed(1)}" y1="${PAD.top + plotH}" x2="${x(t).toFixed(1)}" y2="${PAD.top + plotH + 5}" stroke="#333333"/>`, `<text x="${x(t).toFixed(1)}" y="${PAD.top + plotH + 18}" text-anchor="middle">${t}</text>`);
  }
  for (const t of ticks(yMax, 8)) {
    out.push(
      `<line x1="${PAD.left}" y1="${y(t).toFixed(1)}" x2="${PAD.left + plotW}" y2="${y(t).toFixed(1)}" stroke="#e5e5e5"/>`,
      `<text x="${PAD.left - 6}" y="${(y(t) + 4).toFixed(1)}" text-anchor="end">${t}</text>`,
    );
  }
  out.push(
    `<rect x="${PAD.left}" y="${PAD.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#333333"/>`,
    `<text x="${PAD.left + plotW / 2}" y="${HEIGHT - 18}" text-anchor="middle">OTPs sent in one payment (n)</text>`,
    `<text x="18" y="${PAD.top + plotH / 2}" text-anchor="middle" transform="rotate(-90 18 ${PAD.top + plotH / 2})">time of the payment, s (mean ± sd)</text>`,
  );
  for (const [i, s] of series.entries()) {
    const colour = COLOURS[s.series];
    const line = s.time;
    out.push(`<line x1="${x(0).toFixed(1)}" y1="${y(line.intercept).toFixed(1)}" x2="${x(xMax).toFixed(1)}" y2="${y(line.intercept + line.slope * xMax).toFixed(1)}" stroke="${colour}" stroke-dasharray="5 4" stroke-width="1.2"/>`);
    for (const r of s.rows) {
      const cx = x(r.count).toFixed(1);
      const { mean, sd } = r.seconds;
      out.push(
        `<line x1="${cx}" y1="${y(mean - sd).toFixed(1)}" x2="${cx}" y2="${y(mean + sd).toFixed(1)}" stroke="${colour}"/>`,
        `<circle cx="${cx}" cy="${y(mean).toFixed(1)}" r="3.2" fill="${colour}"><title>${escape(`${LABELS[s.series]}, n = ${r.count}: ${mean.toFixed(3)} ± ${sd.toFixed(3)} s`)}</title></circle>`,
      );
    }
    const ly = PAD.top + 16 + i * 18;
    out.push(
      `<circle cx="${PAD.left + 14}" cy="${ly - 4}" r="3.2" fill="${colour}"/>`,
      `<text x="${PAD.left + 24}" y="${ly}">${escape(`${LABELS[s.series]}: ${(line.slope * 1000).toFixed(2)} ms per OTP (fit, r² ${line.r2.toFixed(3)})`)}</text>`,
    );
  }
  out.push('</svg>', '');
  return out.join('\n');
}
