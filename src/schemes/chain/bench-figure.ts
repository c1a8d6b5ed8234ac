/**
 * Figure 3 of `bench chain` as an SVG, in the paper's form (the time of each run of P1–P5): our runs
 * as lines with points, and the paper's figures from its text as dashed lines of the same colour
 * (P1's "46 to 50 ms" as a band), on linear axes from 0.
 */
import { escapeXml, ticks } from '../../sim/bench/plugin.ts';
import { PAPER, type Figure3Row, type Operation } from './bench-report.ts';

/** Where a full run writes the figure (the docs folder). */
export const FIGURE3_SVG_PATH = 'chain-figure3.svg';

const WIDTH = 880;
const HEIGHT = 470;
const PAD = { left: 64, right: 260, top: 60, bottom: 56 };
const COLOURS: Readonly<Record<Exclude<Operation, 'P2 exchange'>, string>> = { P1: '#3b4cc0', P2: '#b4043a', P3: '#1b9e77', P4: '#d95f02', P5: '#7570b3' };
const NAMES: Readonly<Record<Exclude<Operation, 'P2 exchange'>, string>> = { P1: 'P1 open', P2: 'P2 transfer', P3: 'P3 upload + finalize (3)', P4: 'P4 withdraw + recharge', P5: 'P5 logout + finalize + clean' };

/** The SVG text of Figure 3 (P1–P5; the whole exchange is left to the tables). */
export function figure3Svg(rows: readonly Figure3Row[], options: { title: string; subtitle: string }): string {
  const shown = rows.filter((r): r is Figure3Row & { operation: keyof typeof COLOURS } => r.operation in COLOURS);
  const runs = Math.max(2, ...shown.map((r) => r.samples.length));
  const yMax = Math.max(PAPER.figure3.P5, PAPER.figure3.P1.high, ...shown.flatMap((r) => r.samples)) * 1.08;
  const plotW = WIDTH - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const x = (run: number) => PAD.left + ((run - 1) / (runs - 1)) * plotW;
  const y = (v: number) => PAD.top + plotH - (Math.max(0, v) / yMax) * plotH;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="sans-serif" font-size="12">`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="#ffffff"/>`,
    `<text x="${WIDTH / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${escapeXml(options.title)}</text>`,
    `<text x="${WIDTH / 2}" y="40" text-anchor="middle" fill="#444444">${escapeXml(options.subtitle)}</text>`,
  ];
  for (const t of ticks(yMax, 8)) {
    out.push(`<line x1="${PAD.left}" y1="${y(t).toFixed(1)}" x2="${PAD.left + plotW}" y2="${y(t).toFixed(1)}" stroke="#e5e5e5"/>`, `<text x="${PAD.left - 6}" y="${(y(t) + 4).toFixed(1)}" text-anchor="end">${t}</text>`);
  }
  for (const t of ticks(runs, 10).filter((t) => t >= 1)) {
    out.push(`<line x1="${x(t).toFixed(1)}" y1="${PAD.top + plotH}" x2="${x(t).toFixed(1)}" y2="${PAD.top + plotH + 5}" stroke="#333333"/>`, `<text x="${x(t).toFixed(1)}" y="${PAD.top + plotH + 18}" text-anchor="middle">${t}</text>`);
  }
  out.push(
    `<rect x="${PAD.left}" y="${PAD.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#333333"/>`,
    `<text x="${PAD.left + plotW / 2}" y="${HEIGHT - 16}" text-anchor="middle">run</text>`,
    `<text x="18" y="${PAD.top + plotH / 2}" text-anchor="middle" transform="rotate(-90 18 ${PAD.top + plotH / 2})">time, ms</text>`,
  );
  // The paper's figures first, under our series.
  const band = PAPER.figure3.P1;
  out.push(`<rect x="${PAD.left}" y="${y(band.high).toFixed(1)}" width="${plotW}" height="${(y(band.low) - y(band.high)).toFixed(1)}" fill="${COLOURS.P1}" fill-opacity="0.12"/>`);
  for (const op of ['P2', 'P3', 'P4', 'P5'] as const) {
    const v = PAPER.figure3[op];
    out.push(`<line x1="${PAD.left}" y1="${y(v).toFixed(1)}" x2="${PAD.left + plotW}" y2="${y(v).toFixed(1)}" stroke="${COLOURS[op]}" stroke-dasharray="6 4" stroke-width="1.4"/>`);
  }
  for (const row of shown) {
    const colour = COLOURS[row.operation];
    const points = row.samples.map((v, i) => `${x(i + 1).toFixed(1)},${y(v).toFixed(1)}`);
    out.push(`<polyline points="${points.join(' ')}" fill="none" stroke="${colour}" stroke-width="1.2"/>`);
    row.samples.forEach((v, i) => out.push(`<circle cx="${x(i + 1).toFixed(1)}" cy="${y(v).toFixed(1)}" r="2.2" fill="${colour}"><title>${escapeXml(`${NAMES[row.operation]}, run ${i + 1}: ${v.toFixed(2)} ms`)}</title></circle>`));
  }
  const lx = PAD.left + plotW + 14;
  out.push(`<text x="${lx}" y="${PAD.top + 4}" font-weight="bold">ours (mean ± sd)</text>`);
  shown.forEach((row, i) => {
    const ly = PAD.top + 24 + i * 34;
    const colour = COLOURS[row.operation];
    const paper = row.operation === 'P1' ? `${band.low}–${band.high}` : String(PAPER.figure3[row.operation]);
    out.push(
      `<line x1="${lx}" y1="${ly - 4}" x2="${lx + 18}" y2="${ly - 4}" stroke="${colour}" stroke-width="2"/>`,
      `<text x="${lx + 24}" y="${ly}">${escapeXml(NAMES[row.operation])}</text>`,
      `<text x="${lx + 24}" y="${ly + 14}" fill="#444444">${escapeXml(`${row.ms.mean.toFixed(1)} ± ${row.ms.sd.toFixed(1)} ms; paper ${paper} ms`)}</text>`,
    );
  });
  const ly = PAD.top + 24 + shown.length * 34 + 8;
  out.push(
    `<line x1="${lx}" y1="${ly - 4}" x2="${lx + 18}" y2="${ly - 4}" stroke="#333333" stroke-dasharray="6 4" stroke-width="1.4"/>`,
    `<text x="${lx + 24}" y="${ly}">the paper (SGX), dashed;</text>`,
    `<text x="${lx + 24}" y="${ly + 14}">P1 46–50 ms shaded</text>`,
    '</svg>',
    '',
  );
  return out.join('\n');
}
