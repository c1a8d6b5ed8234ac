/**
 * The purity check: a pure file, and every project file it loads at run time, imports no Node
 * built-in, uses no Node global and loads nothing Node-only or from a higher layer (ARCHITECTURE
 * "Layers"). Test support: the product never loads it.
 */
import { extname } from 'node:path';
import { checkSource } from './source.ts';
import { resolveRelative, shown, underSrc, type FileSystem } from './files.ts';

/** Files a pure file may never load, by path under src/: Node-only code and the layers above. */
const FORBIDDEN: readonly [RegExp, string][] = [
  [/^providers\//, 'a Node-only provider'],
  [/^secure-element\/host/, 'a Node-only secure-element host'],
  [/^channel\/tcp/, 'a Node-only transport'],
  [/^(wallet|issuer|cli|web|sim)\//, 'a higher layer'],
];

/** One purity problem: `file` did `subject` (a specifier, a loaded file or `global <name>`). */
export interface PurityFinding {
  readonly file: string;
  readonly line: number;
  readonly subject: string;
  readonly text: string;
}

/**
 * Checks every pure file and, transitively, every project file they load at run time. A loaded
 * file outside the pure set must itself be pure and must not be Node-only or from a higher layer.
 */
export function purityFindings(root: string, pure: readonly string[], fs: FileSystem): PurityFinding[] {
  const pureSet = new Set(pure);
  const findings: PurityFinding[] = [];
  const reachedFrom = new Map<string, string | undefined>(pure.map((file) => [file, undefined]));
  const queue = [...pure];
  for (let file = queue.shift(); file !== undefined; file = queue.shift()) {
    const via = reachedFrom.get(file);
    const suffix = via === undefined ? '' : ` (loaded by ${shown(root, via)})`;
    const name = shown(root, file);
    const text = fs.read(file);
    if (text === undefined) {
      findings.push({ file: name, line: 0, subject: name, text: `${name}: cannot be read${suffix}` });
      continue;
    }
    const report = checkSource(name, text);
    for (const found of report.details) findings.push({ file: name, line: found.line, subject: found.subject, text: `${name}:${found.line}: ${found.message}${suffix}` });
    for (const { specifier, typeOnly, kind, line } of report.imports) {
      if (typeOnly || kind === 'url' || !specifier.startsWith('.')) continue;
      const target = resolveRelative(file, specifier, fs);
      if (target === undefined) {
        // Data files (JSON, WASM) are not code that could reach Node.
        if (!['', '.ts', '.js', '.mts', '.mjs', '.cts', '.cjs'].includes(extname(specifier))) continue;
        findings.push({ file: name, line, subject: specifier, text: `${name}: cannot resolve "${specifier}"${suffix}` });
        continue;
      }
      if (!pureSet.has(target)) {
        const forbidden = FORBIDDEN.find(([pattern]) => pattern.test(underSrc(root, target)));
        if (forbidden !== undefined) {
          // Flagged as a whole: its own imports would only repeat the point.
          findings.push({ file: name, line, subject: shown(root, target), text: `${name}: imports ${shown(root, target)}, ${forbidden[1]}${suffix}` });
          continue;
        }
      }
      if (!reachedFrom.has(target)) {
        reachedFrom.set(target, file);
        queue.push(target);
      }
    }
  }
  return findings;
}

/** The purity problems as text, one line each. */
export function checkPurity(root: string, pure: readonly string[], fs: FileSystem): string[] {
  return purityFindings(root, pure, fs).map((found) => found.text);
}
