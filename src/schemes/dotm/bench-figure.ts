/**
 * Figure 10 of DOT-M (§4.2) as an SVG heatmap: rows n_b (the largest at the top, as in the paper),
 * columns n_d, each cell coloured from cool to warm by its median transaction time on a linear
 * scale, with its value written in; a colour bar, axis labels and a title naming the machine.
 */

/** One cell: its median in ms, or null for a cell that was not measured (and why). */
export interface HeatmapCell {
  readonly nb: number;
  readonly nd: number;
  readonly valueMs: number | null;
}

/** What the figure shows. */
export interface HeatmapOptions {
  readonly blocks: readonly number[];
  readonly records: readonly number[];
  readonly cells: readonly HeatmapCell[];
  readonly title: string;
  readonly subtitle: string;
  /** A line under the figure (e.g. what an empty cell means). */
  readonly note?: string | undefined;
}

/** Stops of the "coolwarm" diverging map (Moreland), from cool to warm. */
const STOPS: ReadonlyArray<readonly [number, readonly [number, number, number]]> = [
  [0, [59, 76, 192]],
  [0.25, [124, 159, 249]],
  [0.5, [221, 221, 221]],
  [0.75, [244, 154, 123]],
  [1, [180, 4, 38]],
];

/** The colour at t in [0, 1]. */
function colourAt(t: number): readonly [number, number, number] {
  const x = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0));
  for (let i = 1; i < STOPS.length; i++) {
    const [t1, c1] = STOPS[i] as (typeof STOPS)[number];
    const [t0, c0] = STOPS[i - 1] as (typeof STOPS)[number];
    if (x <= t1) {
      const f = (x - t0) / (t1 - t0);
      const mix = (a: number, b: number) => Math.round(a + f * (b - a));
      return [mix(c0[0], c1[0]), mix(c0[1], c1[1]), mix(c0[2], c1[2])];
    }
  }
  return STOPS[STOPS.length - 1]?.[1] ?? [0, 0, 0];
}

function hex([r, g, b]: readonly [number, number, number]): string {
  return `#${[r, g, b].map((c) => c.toString(16).padStart(2, '0')).join('')}`;
}

/** Dark text on light cells, light text on dark ones. */
function textColour([r, g, b]: readonly [number, number, number]): string {
  return 0.299 * r + 0.587 * g + 0.114 * b > 140 ? '#111111' : '#ffffff';
}

function escape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** A value as the cells print it. */
export function formatCellMs(ms: number): string {
  return ms < 100 ? ms.toFixed(1) : ms.toFixed(0);
}

/** The heatmap as a standalone SVG document. */
export function heatmapSvg(options: HeatmapOptions): string {
  const cellW = 78;
  const cellH = 46;
  const left = 96;
  const top = 84;
  const barGap = 28;
  const barW = 18;
  const gridW = cellW * options.records.length;
  const gridH = cellH * options.blocks.length;
  const width = Math.max(left + gridW + barGap + barW + 70, 900);
  const height = top + gridH + 86;
  const values = options.cells.map((c) => c.valueMs).filter((v): v is number => v !== null);
  const min = values.length === 0 ? 0 : Math.min(...values);
  const max = values.length === 0 ? 1 : Math.max(...values);
  const scale = (v: number) => (max === min ? 0.5 : (v - min) / (max - min));
  const rows = [...options.blocks].sort((a, b) => b - a);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${width / 2}" y="28" text-anchor="middle" font-size="17" font-weight="bold">${escape(options.title)}</text>`,
    `<text x="${width / 2}" y="50" text-anchor="middle" font-size="11" fill="#333333">${escape(options.subtitle)}</text>`,
  ];
  rows.forEach((nb, i) => {
    const y = top + i * cellH;
    out.push(`<text x="${left - 10}" y="${y + cellH / 2 + 5}" text-anchor="end" font-size="13">${nb}</text>`);
    options.records.forEach((nd, j) => {
      const x = left + j * cellW;
      const cell = options.cells.find((c) => c.nb === nb && c.nd === nd);
      const value = cell?.valueMs ?? null;
      if (value === null) {
        out.push(`<rect x="${x}" y="${y}" width="${cellW}" height="${cellH}" fill="#f4f4f4" stroke="#ffffff" stroke-width="2"/>`);
        out.push(`<text x="${x + cellW / 2}" y="${y + cellH / 2 + 5}" text-anchor="middle" font-size="13" fill="#777777">${cell === undefined ? '' : '—'}</text>`);
        return;
      }
      const colour = colourAt(scale(value));
      out.push(`<rect x="${x}" y="${y}" width="${cellW}" height="${cellH}" fill="${hex(colour)}" stroke="#ffffff" stroke-width="2"/>`);
      out.push(`<text x="${x + cellW / 2}" y="${y + cellH / 2 + 5}" text-anchor="middle" font-size="13" fill="${textColour(colour)}">${formatCellMs(value)}</text>`);
    });
  });
  options.records.forEach((nd, j) => {
    out.push(`<text x="${left + j * cellW + cellW / 2}" y="${top + gridH + 20}" text-anchor="middle" font-size="13">${nd}</text>`);
  });
  out.push(`<text x="${left + gridW / 2}" y="${top + gridH + 44}" text-anchor="middle" font-size="14">n_d: earlier records in the blocks paid</text>`);
  out.push(`<text x="24" y="${top + gridH / 2}" text-anchor="middle" font-size="14" transform="rotate(-90 24 ${top + gridH / 2})">n_b: blocks paid</text>`);

  const barX = left + gridW + barGap;
  const steps = 40;
  for (let k = 0; k < steps; k++) {
    const t = 1 - k / steps;
    out.push(`<rect x="${barX}" y="${(top + (k * gridH) / steps).toFixed(2)}" width="${barW}" height="${(gridH / steps + 0.6).toFixed(2)}" fill="${hex(colourAt(t))}"/>`);
  }
  out.push(`<rect x="${barX}" y="${top}" width="${barW}" height="${gridH}" fill="none" stroke="#999999"/>`);
  for (let k = 0; k <= 4; k++) {
    const v = max - (k * (max - min)) / 4;
    const y = top + (k * gridH) / 4;
    out.push(`<line x1="${barX + barW}" y1="${y}" x2="${barX + barW + 4}" y2="${y}" stroke="#555555"/>`);
    out.push(`<text x="${barX + barW + 7}" y="${y + 4}" font-size="11">${formatCellMs(v)}</text>`);
  }
  out.push(`<text x="${barX + barW / 2}" y="${top - 10}" text-anchor="middle" font-size="11">ms</text>`);
  if (options.note !== undefined) out.push(`<text x="${left}" y="${top + gridH + 72}" font-size="11" fill="#444444">${escape(options.note)}</text>`);
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
