/**
 * Table I of `bench chain`: lines of code, counted from the tree when the bench runs. A line counts
 * when it holds anything but white space and comments (the TypeScript scanner finds the comments;
 * Solidity's are the same `//`, `///` and `/* *\/`). Counted:
 *
 * - the contracts (contracts/*.sol), the paper's "online contract";
 * - the scheme's folder (src/schemes/chain), tests, test fixtures and the compiled contracts
 *   (contracts.generated.ts) left out, split into the protocol (the pure files: the trusted app,
 *   the records, the session), the adapters (node, wallet, CLI, index) and this benchmark;
 * - the repository's own code the protocol stands on (the paper's "dependent codes"): every file
 *   outside the scheme that its protocol files import, directly or through others (core, pki, the
 *   secure element's trusted-app seam), tests left out; npm packages are not counted;
 * - what runs a trusted app isolated (the analogue of the paper's Occlum settings): the files the
 *   secure element's child process loads (src/secure-element/host-child.ts and what it imports),
 *   less those already counted above.
 */
import { readdir, readFile } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';

/** Test support and generated code: never counted. */
const NOT_COUNTED = /(\.test\.ts|-fixtures\.ts|^test-fixtures\.ts|^contracts\.generated\.ts)$/;
const ADAPTER = /^(node|wallet|cli)(-.+)?\.ts$|^index\.ts$/;
const BENCH = /^bench(-.+)?\.ts$/;

/** One counted group. */
export interface LocRow {
  readonly component: string;
  readonly language: 'Solidity' | 'TypeScript';
  readonly files: number;
  readonly lines: number;
}

/** Table I: our rows, with the paper's beside them in the report. */
export interface LocReport {
  readonly rows: readonly LocRow[];
  /** Per contract file, its lines. */
  readonly contracts: Readonly<Record<string, number>>;
}

type Ts = typeof import('typescript');

/** Lines of `text` holding a token that is not a comment. */
export function codeLines(ts: Ts, text: string): number {
  const scanner = ts.createScanner(ts.ScriptTarget.Latest, false, ts.LanguageVariant.Standard, text);
  const lineStarts = [0];
  for (let i = 0; i < text.length; i++) if (text[i] === '\n') lineStarts.push(i + 1);
  const lineOf = (pos: number) => {
    let lo = 0;
    let hi = lineStarts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((lineStarts[mid] as number) <= pos) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  };
  const lines = new Set<number>();
  const trivia = new Set([ts.SyntaxKind.WhitespaceTrivia, ts.SyntaxKind.NewLineTrivia, ts.SyntaxKind.SingleLineCommentTrivia, ts.SyntaxKind.MultiLineCommentTrivia, ts.SyntaxKind.ShebangTrivia, ts.SyntaxKind.ConflictMarkerTrivia]);
  for (let kind = scanner.scan(); kind !== ts.SyntaxKind.EndOfFileToken; kind = scanner.scan()) {
    if (trivia.has(kind)) continue;
    const first = lineOf(scanner.getTokenStart());
    const last = lineOf(Math.max(scanner.getTokenStart(), scanner.getTokenEnd() - 1));
    for (let line = first; line <= last; line++) lines.add(line);
  }
  return lines.size;
}

async function filesIn(dir: string, keep: (name: string) => boolean): Promise<string[]> {
  return (await readdir(dir, { withFileTypes: true })).filter((e) => e.isFile() && keep(e.name)).map((e) => join(dir, e.name)).sort();
}

/** The relative imports of a TypeScript file, resolved to paths. */
function importsOf(ts: Ts, path: string, text: string): string[] {
  const info = ts.preProcessFile(text, true, true);
  return info.importedFiles.map((f) => f.fileName).filter((s) => s.startsWith('.')).map((s) => resolve(dirname(path), s));
}

/** Every file reachable from `entries` by relative imports (the entries included), tests left out. */
async function closure(ts: Ts, entries: readonly string[]): Promise<Set<string>> {
  const seen = new Set<string>();
  const queue = [...entries];
  while (queue.length > 0) {
    const path = queue.pop() as string;
    if (seen.has(path) || NOT_COUNTED.test(path.split(sep).pop() ?? '')) continue;
    seen.add(path);
    queue.push(...importsOf(ts, path, await readFile(path, 'utf8')));
  }
  return seen;
}

async function count(ts: Ts, paths: Iterable<string>): Promise<{ files: number; lines: number }> {
  let files = 0;
  let lines = 0;
  for (const path of paths) {
    files++;
    lines += codeLines(ts, await readFile(path, 'utf8'));
  }
  return { files, lines };
}

/** Counts Table I in the tree under `repo` as it is now. */
export async function countLines(repo: string): Promise<LocReport> {
  const ts = (await import('typescript')).default;
  const schemeDir = join(repo, 'src', 'schemes', 'chain');
  const contractsDir = join(repo, 'contracts');
  const hostEntry = join(repo, 'src', 'secure-element', 'host-child.ts');
  const contracts: Record<string, number> = {};
  for (const path of await filesIn(contractsDir, (n) => n.endsWith('.sol'))) contracts[relative(repo, path)] = codeLines(ts, await readFile(path, 'utf8'));
  const scheme = await filesIn(schemeDir, (n) => n.endsWith('.ts') && !NOT_COUNTED.test(n));
  const name = (p: string) => p.split(sep).pop() ?? '';
  const protocol = scheme.filter((p) => !ADAPTER.test(name(p)) && !BENCH.test(name(p)));
  const inScheme = (p: string) => p.startsWith(schemeDir + sep);
  const dependent = [...(await closure(ts, protocol))].filter((p) => !inScheme(p));
  const counted = new Set([...scheme, ...dependent]);
  const host = [...(await closure(ts, [hostEntry]))].filter((p) => !counted.has(p) && !inScheme(p));
  const solidity = Object.values(contracts);
  const rows: LocRow[] = [
    { component: 'protocol: the scheme\'s pure files (trusted app, records, session)', language: 'TypeScript', ...(await count(ts, protocol)) },
    { component: 'the scheme\'s adapters (node, wallet, CLI, index)', language: 'TypeScript', ...(await count(ts, scheme.filter((p) => ADAPTER.test(name(p))))) },
    { component: 'this benchmark (bench*.ts)', language: 'TypeScript', ...(await count(ts, scheme.filter((p) => BENCH.test(name(p))))) },
    { component: 'dependent code: what the protocol imports outside the scheme (core, pki, secure-element seam)', language: 'TypeScript', ...(await count(ts, dependent)) },
    { component: 'what runs a TA isolated: the secure element\'s child process beyond the above', language: 'TypeScript', ...(await count(ts, host)) },
    { component: 'contracts (contracts/*.sol)', language: 'Solidity', files: solidity.length, lines: solidity.reduce((a, b) => a + b, 0) },
  ];
  return { rows, contracts };
}
