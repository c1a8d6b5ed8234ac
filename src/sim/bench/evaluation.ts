/**
 * The evaluation page, docs/evaluation.md, as `npm run bench -- all` writes it from one run: the
 * common workload's tables first (what a newcomer compares), then the tables built from what each
 * scheme declares and carries (offline transitivity, what each party learns, what a broken secure
 * element can do), then each paper's own evaluation as its bench reported it. Pure: it formats what
 * it is given (main.ts runs the benches and reads the registry).
 */
import { formatCommon, type CommonReport, type CommonRow } from './common.ts';
import { escapeXml, ticks } from './figure.ts';
import { machineLine, type Machine } from './machine.ts';
import type { SchemeProfile } from './plugin.ts';
import { learned, learnedText, type WireShape } from './privacy.ts';

/** A scheme as the page shows it. */
export interface PageScheme {
  readonly name: string;
  readonly title: string;
  readonly paper: { readonly title: string; readonly authors: string };
  readonly capabilities: readonly string[];
  /** Its profile, when it declares one (`Scheme.common`). */
  readonly profile: SchemeProfile | undefined;
  /** Its wire decoders, for the privacy table. */
  readonly wire: readonly WireShape[];
}

/** One bench's output, as the harness wrote it. */
export interface PageBench {
  readonly name: string;
  readonly paper: string;
  readonly reproduces: string;
  /** The bench's own text (its tables, after the harness's two header lines). */
  readonly text: string;
  /** Its warnings (also at the end of its text). */
  readonly warnings: readonly string[];
  readonly seconds: number;
  /** The bench failed: why (its text is then empty). */
  readonly failed?: string | undefined;
}

/** What the page is written from. */
export interface PageInput {
  readonly machine: Machine;
  readonly quick: boolean;
  /** The 1-minute load average at the start and the end of the whole run. */
  readonly loadAverage: { readonly start: number; readonly end: number };
  readonly seconds: number;
  readonly schemes: readonly PageScheme[];
  readonly common: CommonReport | undefined;
  readonly commonWarnings: readonly string[];
  readonly benches: readonly PageBench[];
  /** Figures in docs/ (file names), by the scheme whose name starts them. */
  readonly figures: readonly string[];
  /** The common workload's figure, when written (a file name in docs/). */
  readonly commonFigure?: string | undefined;
}

const ms = (x: number) => x.toFixed(1);

function summaryRow(scheme: PageScheme, row: CommonRow | undefined): string {
  const hops = scheme.profile === undefined ? '' : String(scheme.profile.transitivity.hops);
  const anonymous = scheme.capabilities.includes('anonymity') ? 'yes' : 'no';
  if (row === undefined) return `| ${scheme.name} | not measured | | | | | | ${hops} | ${anonymous} |`;
  const settle = 'none' in row.settle ? 'not measured' : `${ms(row.settle.latency.p50Ms)} ms`;
  return `| ${scheme.name} | ${ms(row.total.p50Ms)} / ${ms(row.total.p99Ms)} ms | ${row.handshakeBytes + row.sessionBytes} | ${row.signs} / ${row.verifies} | ${row.commits.payer + row.commits.payee} | ${row.ratio.p50.toFixed(2)}x | ${settle} | ${hops} | ${anonymous} |`;
}

/** The privacy table's rows: what the payee and the bank learn, from the fields of the messages each receives. */
export function privacyRows(schemes: readonly PageScheme[]): string[] {
  const lines = ['| scheme | the payee learns | the bank learns | someone on the wire learns |', '|---|---|---|---|'];
  for (const s of schemes) {
    if (s.profile === undefined) continue;
    const payee = learned(s.profile, s.wire, 'payee');
    const bank = learned(s.profile, s.wire, 'bank');
    lines.push(`| ${s.name} | ${learnedText(payee)} | ${learnedText(bank)} | ${s.profile.link} |`);
  }
  return lines;
}

/** The fields behind the privacy table, per scheme and party: the evidence, and any field left unclassified. */
export function privacyEvidence(schemes: readonly PageScheme[]): string[] {
  const lines: string[] = [];
  for (const s of schemes) {
    if (s.profile === undefined) continue;
    for (const party of ['payee', 'bank'] as const) {
      const l = learned(s.profile, s.wire, party);
      const parts = [...l.classes].filter(([k]) => k !== 'protocol').map(([k, fields]) => `${k}: ${fields.map((f) => `\`${f}\``).join(', ')}`);
      if (l.unclassified.length > 0) parts.push(`unclassified: ${l.unclassified.map((f) => `\`${f}\``).join(', ')}`);
      lines.push(`- **${s.name}, ${party}** (${s.profile.messages.filter((m) => m.to === party).map((m) => m.wire + (m.within === undefined ? '' : ` (${m.within})`)).join(', ')}): ${parts.join('; ') || 'nothing beyond the protocol'}`);
    }
  }
  return lines;
}

/** A bar chart of each scheme's payment (total p50) beside its floor (p50). */
export function commonFigure(report: CommonReport, subtitle: string): string {
  const rows = report.rows;
  const width = 760;
  const left = 90;
  const barH = 14;
  const rowH = 44;
  const top = 70;
  const height = top + rows.length * rowH + 50;
  const max = Math.max(1, ...rows.flatMap((r) => [r.total.p50Ms, r.floor.p50Ms]));
  const axis = ticks(max, 6);
  // The ticks stop at or below the largest value: extend them by their step until they pass it.
  const step = axis.length > 1 ? (axis[1] ?? 0) - (axis[0] ?? 0) : max;
  while ((axis[axis.length - 1] ?? 0) < max) axis.push((axis[axis.length - 1] ?? 0) + step);
  const end = axis[axis.length - 1] ?? max;
  const x = (v: number) => left + (v / end) * (width - left - 30);
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${width / 2}" y="22" text-anchor="middle" font-size="15">${escapeXml(`One payment of ${(report.amountMinor / 100).toFixed(2)}: total p50 against its floor`)}</text>`,
    `<text x="${width / 2}" y="42" text-anchor="middle" fill="#555">${escapeXml(subtitle)}</text>`,
  ];
  for (const t of axis) out.push(`<line x1="${x(t)}" y1="${top - 6}" x2="${x(t)}" y2="${height - 40}" stroke="#eee"/>`, `<text x="${x(t)}" y="${height - 24}" text-anchor="middle">${t}</text>`);
  out.push(`<text x="${(left + width) / 2}" y="${height - 6}" text-anchor="middle">ms</text>`);
  rows.forEach((r, i) => {
    const y = top + i * rowH;
    out.push(
      `<text x="${left - 8}" y="${y + barH + 4}" text-anchor="end">${escapeXml(r.scheme)}</text>`,
      `<rect x="${left}" y="${y}" width="${x(r.total.p50Ms) - left}" height="${barH}" fill="#3366cc"><title>${escapeXml(`${r.scheme}: total p50 ${r.total.p50Ms.toFixed(2)} ms`)}</title></rect>`,
      `<rect x="${left}" y="${y + barH + 2}" width="${Math.max(1, x(r.floor.p50Ms) - left)}" height="${barH}" fill="#999999"><title>${escapeXml(`${r.scheme}: floor p50 ${r.floor.p50Ms.toFixed(2)} ms`)}</title></rect>`,
    );
  });
  out.push(`<rect x="${left}" y="52" width="10" height="10" fill="#3366cc"/><text x="${left + 15}" y="61">payment with its link</text>`);
  out.push(`<rect x="${left + 170}" y="52" width="10" height="10" fill="#999999"/><text x="${left + 185}" y="61">floor (signatures + commits)</text>`);
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

/** The page. */
export function evaluationPage(input: PageInput): string {
  const { machine } = input;
  const rows = new Map((input.common?.rows ?? []).map((r) => [r.scheme, r]));
  const lines: string[] = [
    '# The five schemes side by side',
    '',
    `Written by \`npm run bench -- all${input.quick ? ' --quick' : ''}\` from one run; do not edit by hand. The detailed record of each scheme's benchmark is [benchmarks.md](benchmarks.md).`,
    '',
    machineLine(machine),
    '',
    input.quick
      ? `**This is a \`--quick\` run**: few payments per figure, no paper figures redrawn; its numbers show the shape, not settled values.`
      : 'A full run.',
    `The run took ${Math.round(input.seconds)} s; the 1-minute load average was ${input.loadAverage.start.toFixed(1)} at the start and ${input.loadAverage.end.toFixed(1)} at the end on ${machine.cores} cores${input.loadAverage.start > machine.cores / 2 ? ': the machine was busy with other work, so every time here is noisy (the ratios to floors measured in the same run are what to compare)' : ''}.`,
    '',
    '## At a glance',
    '',
    `One payment of ${((input.common?.amountMinor ?? 1250) / 100).toFixed(2)} ${input.common?.rows[0]?.currency ?? 'EUR'} between two secure elements in their own processes, over TCP on loopback and a Noise link (below for how each scheme carries it); hops is how many offline payments value may pass through before a device must go online.`,
    '',
    '| scheme | total p50 / p99 | bytes on the wire | signatures / verifications | SE commits | total / floor p50 | settlement p50 | offline hops | payer anonymous to payee |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---|',
    ...input.schemes.map((s) => summaryRow(s, rows.get(s.name))),
    '',
    'How to read it: OPS and chain-tee settle by account (the node or the chain sees who paid whom); OTP and OPERA carry bearer coins or tokens whose escrow tags open only on a double spend; DOT-M blocks carry their whole path of holders. The tables below give the evidence.',
    '',
    '## The common workload',
    '',
  ];
  if (input.common === undefined) lines.push('Not run.');
  else {
    lines.push(formatCommon(input.common));
    if (input.commonFigure !== undefined) lines.push('', `![total p50 against the floor](${input.commonFigure})`);
    lines.push(
      '',
      'What is counted, and what is not: the signatures and verifications are those made through the metering provider, which the secure elements\' keys and the wallets\' checks use (the users\' signatures binding a link to their certificates, in OPS and DOT-M, are made by the bench users\' keys outside it); primitives outside a signature suite are not counted there (OTP\'s RSA blind signatures and HPKE sealing, OPERA\'s anonymous proof and AEAD work, the Noise handshake\'s X25519), so for OTP and OPERA the crypto floor is below the real cryptographic cost: their own benches below time those primitives. Bytes are the payload through the socket both ways (TCP/IP headers not counted). Commits are read off each secure element\'s file counter around the payment.',
    );
    for (const w of input.commonWarnings) lines.push('', w);
  }
  lines.push('', '## Offline transitivity', '', 'How many offline payments value may pass through before a device must go online, from what each scheme declares (its constants in code).', '', '| scheme | hops | until | source |', '|---|---:|---|---|');
  for (const s of input.schemes) if (s.profile !== undefined) lines.push(`| ${s.name} | ${s.profile.transitivity.hops} | ${s.profile.transitivity.until} | ${s.profile.transitivity.cite} |`);
  lines.push(
    '',
    '## What each party learns',
    '',
    "Built from the messages each party receives: the field paths are read off each message's codec (`Scheme.wire()`), and each scheme classes its fields in its `bench-common.ts`; a party learns every class in what it receives (fields of the protocol itself left out).",
    '',
    ...privacyRows(input.schemes),
    '',
    'The fields behind each cell:',
    '',
    ...privacyEvidence(input.schemes),
    '',
    '## What a broken secure element can do, and what bounds it',
    '',
    '| scheme | a broken or cloned secure element can | what bounds it | source |',
    '|---|---|---|---|',
  );
  for (const s of input.schemes) if (s.profile !== undefined) lines.push(`| ${s.name} | ${s.profile.brokenSe.can} | ${s.profile.brokenSe.bound} | ${s.profile.brokenSe.cite} |`);
  lines.push('', "## Each paper's own evaluation", '', "Each scheme's benchmark as it ran in this run, with the paper's figures beside ours where the paper has them; figures drawn by a full run are linked.");
  for (const b of input.benches) {
    const scheme = input.schemes.find((s) => s.name === b.name);
    lines.push('', `### ${b.name}${scheme === undefined ? '' : `: ${scheme.paper.title}`}`, '', `${b.paper}: ${b.reproduces} (${Math.round(b.seconds)} s).`);
    const figures = input.figures.filter((f) => f.startsWith(`${b.name}-`));
    if (figures.length > 0) lines.push('', input.quick ? 'The figure as the last full run drew it (a `--quick` run draws none):' : 'The figure this run drew:', '', ...figures.map((f) => `![${f}](${f})`));
    // The bench's text ends with its own warnings, as the harness wrote them.
    if (b.failed !== undefined) lines.push('', `The bench failed in this run: ${b.failed}`);
    else lines.push('', b.text);
  }
  return `${lines.join('\n')}\n`;
}
