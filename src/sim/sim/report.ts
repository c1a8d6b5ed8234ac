/** The side-by-side text of `tally sim`, and its figure: loss and detections over simulated time (SVG). */
import type { MixReport } from './mix.ts';
import type { SimReport } from './run.ts';

/** Minor units (a decimal string) as EUR with two decimals. */
function euros(minor: string): string {
  const v = BigInt(minor);
  const sign = v < 0n ? '-' : '';
  const a = v < 0n ? -v : v;
  return `${sign}${a / 100n}.${(a % 100n).toString().padStart(2, '0')}`;
}

/** The rows of the table: one line per figure, one column per scheme; then each violation with its replay command (unless `violations` is false). */
export function reportTable(reports: readonly SimReport[], violations = true): string {
  const rows: Array<[string, ...string[]]> = [];
  const row = (label: string, cell: (r: SimReport) => string) => rows.push([label, ...reports.map(cell)]);
  const c = (r: SimReport, name: string) => String(r.counters[name] ?? 0);
  row('scheme', (r) => r.scheme);
  row('seed', (r) => String(r.seed));
  row('result', (r) => (r.ok ? 'ok' : `VIOLATION (${r.violation?.invariant ?? ''})`));
  row('devices', (r) => String(r.params.devices));
  row('steps', (r) => String(r.steps));
  row('simulated time', (r) => `${(r.simulatedMs / 3_600_000).toFixed(1)} h`);
  row('payments made', (r) => c(r, 'payments'));
  row('  credited', (r) => c(r, 'payments.credited'));
  row('  never credited', (r) => c(r, 'payments.stranded'));
  row('collects / claims', (r) => `${c(r, 'collects')} / ${c(r, 'claims')}`);
  row('syncs', (r) => c(r, 'syncs'));
  const faultKinds = [...new Set(reports.flatMap((r) => Object.keys(r.faults)))].sort();
  row('faults injected', (r) => String(Object.values(r.faults).reduce((s, n) => s + n, 0)));
  for (const kind of faultKinds) row(`  ${kind}`, (r) => String(r.faults[kind] ?? 0));
  const attackKinds = [...new Set(reports.flatMap((r) => r.attacks.map((a) => a.kind)))].sort();
  row('attacks: attempted/refused offline/detected/attributed', () => '');
  for (const kind of attackKinds) {
    row(`  ${kind}`, (r) => {
      const a = r.attacks.find((x) => x.kind === kind);
      return a === undefined ? '-' : `${a.attempted}/${a.refusedOffline}/${a.detected}/${a.attributed}`;
    });
  }
  row('attack to detection (simulated, mean/max)', (r) => {
    const d = r.attacks.filter((a) => a.detectionMs !== null);
    if (d.length === 0) return '-';
    const mean = d.reduce((s, a) => s + (a.detectionMs?.mean ?? 0) * a.detected, 0) / Math.max(1, d.reduce((s, a) => s + a.detected, 0));
    return `${(mean / 60_000).toFixed(1)} / ${(Math.max(...d.map((a) => a.detectionMs?.max ?? 0)) / 60_000).toFixed(1)} min`;
  });
  row('money lost / bound (EUR)', (r) => `${euros(r.lossMinor)} / ${euros(r.boundMinor)}`);
  row('bytes per payment', (r) => String(r.bytesPerPayment));
  row('CPU per payment (ms)', (r) => r.timings.cpuMsPerPayment.toFixed(2));
  row('payments a second (wall)', (r) => String(r.timings.paymentsPerSecond));
  const widths = rows[0]?.map((_c, k) => Math.max(...rows.map((r) => (r[k] ?? '').length))) ?? [];
  const lines = rows.map((r) => r.map((cell, k) => (k === 0 ? cell.padEnd(widths[0] ?? 0) : cell.padStart(widths[k] ?? 0))).join('  '));
  if (violations) for (const r of reports) if (r.violation !== null) lines.push('', r.violation.message, `replay: ${r.violation.replay}`);
  return lines.join('\n');
}

/** The text of a mixed run: a column per scheme and one of the totals, then the node's ledger across the schemes. */
export function mixTable(report: MixReport): string {
  const lines = [`one node, one ledger: ${report.mix.join(', ')}; seed ${report.seed}; ${report.steps} steps interleaved`, '', reportTable([...report.schemes, report.total], false)];
  const { audit } = report;
  if (audit !== null) {
    lines.push('', `ledger at the end: ${audit.balanced ? 'balanced' : 'NOT BALANCED'}; issued ${euros(audit.issuedMinor)} = online ${euros(audit.onlineMinor)} + floats ${Object.entries(audit.floats).map(([account, minor]) => `${account} ${euros(minor)}`).join(', ')}`);
    for (const [scheme, s] of Object.entries(audit.schemes)) lines.push(`  ${scheme}: issued to it ${euros(s.mintedMinor)} = its holders' accounts ${euros(s.onlineMinor)} + its float ${euros(s.floatMinor)}`);
  }
  if (report.violation !== null) lines.push('', report.violation.message, `replay: ${report.violation.replay}`);
  return lines.join('\n');
}

const WIDTH = 640;
const HEIGHT = 300;
const MARGIN = 48;
const COLOURS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e'];

/** An SVG of each scheme's money lost (solid) and its bound (dashed) over simulated hours, with detections marked. */
export function reportFigure(reports: readonly SimReport[]): string {
  const tMax = Math.max(1, ...reports.map((r) => r.simulatedMs));
  const yMax = Math.max(1, ...reports.flatMap((r) => r.series.map((p) => Number(BigInt(p.boundMinor)))));
  const x = (t: number) => (MARGIN + (t / tMax) * (WIDTH - 2 * MARGIN)).toFixed(1);
  const y = (v: number) => (HEIGHT - MARGIN - (v / yMax) * (HEIGHT - 2 * MARGIN)).toFixed(1);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" font-family="sans-serif" font-size="11">`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="white"/>`,
    `<line x1="${MARGIN}" y1="${HEIGHT - MARGIN}" x2="${WIDTH - MARGIN}" y2="${HEIGHT - MARGIN}" stroke="black"/>`,
    `<line x1="${MARGIN}" y1="${MARGIN}" x2="${MARGIN}" y2="${HEIGHT - MARGIN}" stroke="black"/>`,
    `<text x="${WIDTH / 2}" y="${HEIGHT - 12}" text-anchor="middle">simulated time, hours (0 to ${(tMax / 3_600_000).toFixed(1)})</text>`,
    `<text x="12" y="${MARGIN - 12}">EUR lost (solid) and bound (dashed), up to ${(yMax / 100).toFixed(2)}; dots: detections</text>`,
  ];
  reports.forEach((r, k) => {
    const colour = COLOURS[k % COLOURS.length] as string;
    const loss = r.series.map((p) => `${x(p.atMs)},${y(Number(BigInt(p.lossMinor)))}`).join(' ');
    const bound = r.series.map((p) => `${x(p.atMs)},${y(Number(BigInt(p.boundMinor)))}`).join(' ');
    parts.push(`<polyline fill="none" stroke="${colour}" stroke-width="2" points="${loss}"/>`);
    parts.push(`<polyline fill="none" stroke="${colour}" stroke-dasharray="4 3" points="${bound}"/>`);
    let seen = 0;
    for (const p of r.series) {
      if (p.detected > seen) parts.push(`<circle cx="${x(p.atMs)}" cy="${y(Number(BigInt(p.lossMinor)))}" r="3" fill="${colour}"/>`);
      seen = p.detected;
    }
    parts.push(`<text x="${WIDTH - MARGIN - 120}" y="${MARGIN + 14 * k}" fill="${colour}">${r.scheme} seed ${r.seed}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}
