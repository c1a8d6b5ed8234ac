/**
 * The architecture's import rules, read from the source text (docs: ARCHITECTURE "Layers"):
 * the pure layers load nothing Node-only; a scheme is a folder whose files are pure unless their
 * name makes them an adapter, and an adapter imports only the plug-in module of the layer it plugs
 * into; schemes never import each other; the shell never imports a scheme. Test support for
 * src/purity.test.ts and src/layering.test.ts: the product never loads it.
 *
 * The parts, one concept a file: the import scanner (layering/source.ts), files and paths
 * (layering/files.ts), the purity check (layering/purity.ts), the rule table (layering/rules.ts)
 * and the naming check (layering/naming.ts); this file holds the layering check that joins them.
 */
import { dirname, resolve } from 'node:path';
import { checkSource } from './layering/source.ts';
import { resolveRelative, shown, underSrc, type FileSystem } from './layering/files.ts';
import { purityFindings } from './layering/purity.ts';
import { roleOf, RULES, targetClass, type Role } from './layering/rules.ts';

export { checkSource, isBuiltinSpecifier, type ImportRef, type SourceProblem, type SourceReport } from './layering/source.ts';
export { disk, isSource, memoryFiles, walk, type FileSystem } from './layering/files.ts';
export { checkPurity, purityFindings, type PurityFinding } from './layering/purity.ts';
export { ADAPTER_NAMES, roleOf, RULES, targetClass, type Role, type Rule, type TargetClass } from './layering/rules.ts';
export { schemeFolders, schemeNamed, schemeNamings, words, type Naming } from './layering/naming.ts';

/** One import that breaks a rule, or one purity problem (rule `pure`). */
export interface Violation {
  /** Under the repository, `src/...`. */
  readonly file: string;
  readonly line: number;
  /** What is imported (`src/...`, a package, `global <name>`). */
  readonly target: string;
  readonly rule: Role | 'pure';
  readonly says: string;
}

/** The key of a violation in a known list: the file and what it imports, without the line. */
export function violationKey(violation: Pick<Violation, 'file' | 'target'>): string {
  return `${violation.file} → ${violation.target}`;
}

/** Checks each file's imports against the rule of its role (files are absolute paths under root). */
export function layeringViolations(root: string, files: readonly string[], fs: FileSystem): Violation[] {
  const violations: Violation[] = [];
  for (const file of files) {
    const source = underSrc(root, file);
    const role = roleOf(source);
    const rule = RULES[role];
    const text = fs.read(file);
    if (text === undefined) continue;
    for (const ref of checkSource(shown(root, file), text).imports) {
      if (!ref.specifier.startsWith('.')) continue; // packages and built-ins: the purity check's part
      // A module that does not exist yet (a plug-in module during a move) is still judged by its path.
      const target = resolveRelative(file, ref.specifier, fs) ?? resolve(dirname(file), ref.specifier).replace(/\.js$/, '.ts');
      const reached = targetClass(source, underSrc(root, target));
      const access = rule.allow[reached];
      if (access === 'any' || (access === 'type' && ref.typeOnly)) continue;
      const how = ref.kind === 'url' ? 'locates' : ref.typeOnly ? 'imports (types only)' : 'imports';
      violations.push({ file: shown(root, file), line: ref.line, target: shown(root, target), rule: role, says: `${how} ${reached}: ${rule.says}` });
    }
  }
  return violations;
}

/** The scheme files that are pure by default (their role is scheme-pure or schemes-shared). */
export function pureSchemeFiles(root: string, files: readonly string[]): string[] {
  return files.filter((file) => ['scheme-pure', 'schemes-shared'].includes(roleOf(underSrc(root, file))));
}

/** Every violation of the layering in `files`, with the purity of the scheme files that are pure by default. */
export function architectureViolations(root: string, files: readonly string[], fs: FileSystem): Violation[] {
  const pure = purityFindings(root, pureSchemeFiles(root, files), fs).map(
    (found): Violation => ({ file: found.file, line: found.line, target: found.subject, rule: 'pure', says: found.text }),
  );
  return [...pure, ...layeringViolations(root, files, fs)];
}

/** Compares violations with a known list: what is new, and which known entries no longer occur. */
export function againstKnown(violations: readonly Violation[], known: readonly string[]): { unexpected: Violation[]; gone: string[] } {
  const knownSet = new Set(known);
  const found = new Set(violations.map(violationKey));
  return {
    unexpected: violations.filter((violation) => !knownSet.has(violationKey(violation))),
    gone: known.filter((key) => !found.has(key)),
  };
}
