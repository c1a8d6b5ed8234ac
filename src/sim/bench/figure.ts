/**
 * A benchmark's figure as an SVG, for any scheme: one or more panels side by side, each with linear
 * axes from zero, series of points with ± one standard deviation as error bars, and for a series a
 * fitted curve drawn dashed (a line through the samples, or what a model of them predicts).
 */

/** One measured point: the mean at `x`, its standard deviation, and the text shown on hover. */
export interface PlotPoint {
  readonly x: number;
  readonly y: number;
  readonly sd: number;
  readonly title: string;
}

/** A series of one panel. */
export interface PlotSeries {
  /** The legend's text. */
  readonly label: string;
  readonly colour: string;
  readonly points: readonly PlotPoint[];
  /** A fitted curve, drawn dashed from `from` to the panel's largest x. */
  readonly fit?: { readonly from: number; readonly at: (x: number) => number } | undefined;
}

/** One panel: its axes' labels and its series. */
export interface Panel {
  readonly xLabel: string;
  readonly yLabel: string;
  readonly series: readonly PlotSeries[];
}

const HEIGHT = 440;
const PAD = { left: 70, right: 20, top: 56, bottom: 60 };
/** Points of a curve that is not a straight line. */
const CURVE_STEPS = 64;

/** Text made safe inside SVG. */
export function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** Round tick steps (1, 2, 5 × 10^k) giving about `want` ticks up to `max`. */
export function ticks(max: number, want: number): number[] {
  const raw = max / want;
  const base = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * base).find((s) => s >= raw) ?? 10 * base;
  const out: number[] = [];
  for (let v = 0; v <= max + 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

const f1 = (v: number) => v.toFixed(1);

function panelSvg(panel: Panel, left: number, width: number): string[] {
  const xMax = Math.max(...panel.series.flatMap((s) => s.points.map((p) => p.x)));
  const yMax = Math.max(...panel.series.flatMap((s) => s.points.map((p) => p.y + p.sd))) * 1.05;
  const x0 = left + PAD.left;
  const plotW = width - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const x = (v: number) => x0 + (v / xMax) * plotW;
  const y = (v: number) => PAD.top + plotH - (Math.min(yMax, Math.max(0, v)) / yMax) * plotH;
  const out: string[] = [];
  for (const t of ticks(xMax, 10)) out.push(`<line x1="${f1(x(t))}" y1="${PAD.top + plotH}" x2="${f1(x(t))}" y2="${PAD.top + plotH + 5}" stroke="#333333"/>`, `<text x="${f1(x(t))}" y="${PAD.top + plotH + 18}" text-anchor="middle">${t}</text>`);
  for (const t of ticks(yMax, 8)) out.push(`<line x1="${x0}" y1="${f1(y(t))}" x2="${x0 + plotW}" y2="${f1(y(t))}" stroke="#e5e5e5"/>`, `<text x="${x0 - 6}" y="${f1(y(t) + 4)}" text-anchor="end">${t}</text>`);
  const midY = PAD.top + plotH / 2;
  out.push(
    `<rect x="${x0}" y="${PAD.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#333333"/>`,
    `<text x="${x0 + plotW / 2}" y="${HEIGHT - 18}" text-anchor="middle">${escapeXml(panel.xLabel)}</text>`,
    `<text x="${left + 18}" y="${midY}" text-anchor="middle" transform="rotate(-90 ${left + 18} ${midY})">${escapeXml(panel.yLabel)}</text>`,
  );
  for (const [i, s] of panel.series.entries()) {
    if (s.fit !== undefined) {
      const { from, at } = s.fit;
      const xs = Array.from({ length: CURVE_STEPS + 1 }, (_, k) => from + ((xMax - from) * k) / CURVE_STEPS);
      out.push(`<polyline points="${xs.map((v) => `${f1(x(v))},${f1(y(at(v)))}`).join(' ')}" fill="none" stroke="${s.colour}" stroke-dasharray="5 4" stroke-width="1.2"/>`);
    }
    for (const p of s.points) {
      const cx = f1(x(p.x));
      out.push(
        `<line x1="${cx}" y1="${f1(y(p.y - p.sd))}" x2="${cx}" y2="${f1(y(p.y + p.sd))}" stroke="${s.colour}"/>`,
        `<circle cx="${cx}" cy="${f1(y(p.y))}" r="3.2" fill="${s.colour}"><title>${escapeXml(p.title)}</title></circle>`,
      );
    }
    const ly = PAD.top + 16 + i * 18;
    out.push(`<circle cx="${x0 + 14}" cy="${ly - 4}" r="3.2" fill="${s.colour}"/>`, `<text x="${x0 + 24}" y="${ly}">${escapeXml(s.label)}</text>`);
  }
  return out;
}

/** The SVG text: a title, a subtitle, and the panels side by side, `panelWidth` each. */
export function plotSvg(options: { title: string; subtitle: string; panels: readonly Panel[]; panelWidth?: number | undefined }): string {
  const panelWidth = options.panelWidth ?? 720;
  const width = panelWidth * options.panels.length;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${HEIGHT}" viewBox="0 0 ${width} ${HEIGHT}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${HEIGHT}" fill="#ffffff"/>`,
    `<text x="${width / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${escapeXml(options.title)}</text>`,
    `<text x="${width / 2}" y="40" text-anchor="middle" fill="#444444">${escapeXml(options.subtitle)}</text>`,
  ];
  for (const [i, panel] of options.panels.entries()) out.push(...panelSvg(panel, i * panelWidth, panelWidth));
  out.push('</svg>', '');
  return out.join('\n');
}
