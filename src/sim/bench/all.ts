/**
 * `npm run bench -- all [--quick]`: each scheme's own benchmark, then the common workload, in one
 * run; writes docs/evaluation.md (evaluation.ts) and the common workload's figure
 * (docs/evaluation-common.svg). Progress on stderr; the page's path on stdout.
 * TALLY_ALL_BENCHES=ops,otp runs only those schemes' own benchmarks (and the common workload of
 * all of them, unless TALLY_COMMON_SCHEMES says otherwise).
 */
import { readdir, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Scheme } from '../../schemes/scheme.ts';
import { commonBench, commonSources, type CommonReport } from './common.ts';
import { commonFigure, evaluationPage, type PageBench, type PageScheme } from './evaluation.ts';
import { runBench, type RunOptions } from './harness.ts';
import { thisMachine } from './machine.ts';

const DOCS_DIR = fileURLToPath(new URL('../../../docs/', import.meta.url));
export const EVALUATION_PAGE = 'evaluation.md';
export const EVALUATION_FIGURE = 'evaluation-common.svg';

/** What `all` wrote. */
export interface AllResult {
  readonly page: string;
  readonly figure: string | undefined;
  readonly text: string;
  readonly warnings: readonly string[];
}

/** The bench's own text, without the harness's `Machine:` line and title (the page has its own). */
function body(text: string): string {
  return text.split('\n').slice(3).join('\n');
}

/** The schemes as the page shows them: their profiles and wire decoders loaded. */
export async function pageSchemes(schemes: readonly Scheme[]): Promise<PageScheme[]> {
  const out: PageScheme[] = [];
  for (const scheme of schemes) {
    if (scheme.common === undefined) continue;
    const workload = await scheme.common();
    out.push({
      name: scheme.name,
      title: scheme.title,
      paper: scheme.paper,
      capabilities: scheme.capabilities,
      profile: workload.profile,
      wire: (await scheme.wire?.()) ?? [],
    });
  }
  return out;
}

/** Runs everything and writes the page into `docsDir` (docs/ by default). */
export async function runAll(schemes: readonly Scheme[], options: RunOptions & { readonly docsDir?: string | undefined }): Promise<AllResult> {
  const started = performance.now();
  const machine = thisMachine();
  const loadStart = loadavg()[0] ?? Number.NaN;
  const only = options.env['TALLY_ALL_BENCHES']?.split(',').map((s) => s.trim()).filter((s) => s !== '');
  const benches: PageBench[] = [];
  for (const scheme of schemes) {
    if (scheme.bench === undefined || (only !== undefined && !only.includes(scheme.name))) continue;
    const benchStart = performance.now();
    const progress = (line: string) => options.progress(`${scheme.name}: ${line}`);
    options.progress(`${scheme.name}: its own benchmark${options.quick ? ' (--quick)' : ''}`);
    try {
      const output = await scheme.bench((plugin) => runBench(plugin, { ...options, progress }));
      benches.push({ name: scheme.name, paper: output.json.paper, reproduces: output.json.reproduces, text: body(output.text), warnings: output.warnings, seconds: (performance.now() - benchStart) / 1000 });
      for (const w of output.warnings) options.progress(`${scheme.name}: ${w}`);
    } catch (e) {
      const failed = e instanceof Error ? e.message : String(e);
      options.progress(`${scheme.name}: its benchmark failed: ${failed}`);
      benches.push({ name: scheme.name, paper: scheme.paper.title, reproduces: '', text: '', warnings: [], seconds: (performance.now() - benchStart) / 1000, failed });
    }
  }
  options.progress('common: one payment of 12.50 on every scheme');
  const common = await runBench(commonBench(commonSources(schemes)), { ...options, progress: (line) => options.progress(`common: ${line}`) });
  for (const w of common.warnings) options.progress(`common: ${w}`);
  const report = common.json.report as CommonReport;
  const docsDir = options.docsDir ?? DOCS_DIR;
  let figure: string | undefined;
  if (report.rows.length > 0) {
    figure = EVALUATION_FIGURE;
    const m = machine;
    await writeFile(join(docsDir, figure), commonFigure(report, `${m.cpu}, ${m.cores} cores, Node ${m.node}; ${m.date}; load ${m.loadAverage.toFixed(1)}${options.quick ? '; --quick' : ''}`));
  }
  const figures = (await readdir(docsDir)).filter((f) => f.endsWith('.svg')).sort();
  const text = evaluationPage({
    machine,
    quick: options.quick,
    loadAverage: { start: loadStart, end: loadavg()[0] ?? Number.NaN },
    seconds: (performance.now() - started) / 1000,
    schemes: await pageSchemes(schemes),
    common: report,
    commonWarnings: common.warnings,
    benches,
    figures,
    commonFigure: figure,
  });
  const page = join(docsDir, EVALUATION_PAGE);
  await writeFile(page, text);
  return { page, figure: figure === undefined ? undefined : join(docsDir, figure), text, warnings: [...benches.flatMap((b) => b.warnings), ...common.warnings] };
}
