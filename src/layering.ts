/**
 * The architecture's import rules, read from the source text (docs: ARCHITECTURE "Layers"):
 * the pure layers load nothing Node-only; a scheme is a folder whose files are pure unless their
 * name makes them an adapter, and an adapter imports only the plug-in module of the layer it plugs
 * into; schemes never import each other; the shell never imports a scheme. Test support for
 * src/purity.test.ts and src/layering.test.ts: the product never loads it.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { basename, dirname, extname, join, relative, resolve, sep } from 'node:path';
import ts from 'typescript';

const BUILTINS = new Set(builtinModules);
/** Globals only Node has (the browser has none of them). */
const NODE_GLOBALS = new Set(['process', 'Buffer', 'require', '__dirname', '__filename']);
/** Files a pure file may never load, by path under src/: Node-only code and the layers above. */
const FORBIDDEN: readonly [RegExp, string][] = [
  [/^providers\//, 'a Node-only provider'],
  [/^secure-element\/host/, 'a Node-only secure-element host'],
  [/^channel\/tcp/, 'a Node-only transport'],
  [/^(wallet|issuer|cli|web|sim)\//, 'a higher layer'],
];

/** True when a module specifier names a Node built-in (`node:*`, `fs`, `fs/promises`, ...). */
export function isBuiltinSpecifier(specifier: string): boolean {
  if (specifier.startsWith('node:')) return true;
  return BUILTINS.has(specifier) || BUILTINS.has(specifier.split('/')[0] as string);
}

/** One module a file names: imported, re-exported, or located with `new URL(..., import.meta.url)`. */
export interface ImportRef {
  readonly specifier: string;
  /** `import type` / `export type`: erased, loads nothing at run time. */
  readonly typeOnly: boolean;
  /** `url`: a module located for another realm (a child process, a worker), not loaded here. */
  readonly kind: 'import' | 'url';
  readonly line: number;
}

/** One thing a pure file may not do: `subject` is the specifier or `global <name>`. */
export interface SourceProblem {
  readonly line: number;
  readonly subject: string;
  readonly message: string;
}

interface SourceReport {
  /** `file:line: message`, for reading. */
  readonly problems: string[];
  readonly details: SourceProblem[];
  readonly imports: ImportRef[];
}

function isDeclarationName(node: ts.Identifier): boolean {
  const parent = node.parent;
  return (
    (ts.isVariableDeclaration(parent) ||
      ts.isFunctionDeclaration(parent) ||
      ts.isFunctionExpression(parent) ||
      ts.isParameter(parent) ||
      ts.isClassDeclaration(parent) ||
      ts.isClassExpression(parent) ||
      ts.isInterfaceDeclaration(parent) ||
      ts.isTypeAliasDeclaration(parent) ||
      ts.isEnumDeclaration(parent) ||
      ts.isModuleDeclaration(parent) ||
      ts.isTypeParameterDeclaration(parent) ||
      ts.isImportClause(parent) ||
      ts.isNamespaceImport(parent) ||
      ts.isImportSpecifier(parent) ||
      ts.isImportEqualsDeclaration(parent) ||
      ts.isBindingElement(parent)) &&
    parent.name === node
  );
}

/** True when the identifier stands for a variable (not a property name, label or declaration). */
function isReference(node: ts.Identifier): boolean {
  const parent = node.parent;
  if (ts.isShorthandPropertyAssignment(parent)) return true;
  if (ts.isPropertyAccessExpression(parent)) return parent.expression === node;
  if (ts.isQualifiedName(parent)) return parent.left === node;
  if (ts.isExportSpecifier(parent)) return parent.parent.parent.moduleSpecifier === undefined && (parent.propertyName ?? parent.name) === node;
  if (ts.isBindingElement(parent) && parent.propertyName === node) return false;
  if (ts.isLabeledStatement(parent) || ts.isBreakOrContinueStatement(parent)) return false;
  const named = parent as ts.Node & { name?: ts.Node };
  if (named.name === node) return false;
  return true;
}

/** True for `import.meta.url`. */
function isImportMetaUrl(node: ts.Node): boolean {
  return ts.isPropertyAccessExpression(node) && ts.isMetaProperty(node.expression) && node.expression.keywordToken === ts.SyntaxKind.ImportKeyword && node.name.text === 'url';
}

/**
 * Checks one source text: Node built-in imports (static, re-export, dynamic, `require`, type
 * imports) and Node globals. Returns the problems and every import, for following relative ones.
 */
export function checkSource(fileName: string, text: string): SourceReport {
  const source = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const details: SourceProblem[] = [];
  const imports: ImportRef[] = [];
  const declared = new Set<string>();
  const globalUses: ts.Identifier[] = [];
  const lineOf = (node: ts.Node) => source.getLineAndCharacterOfPosition(node.getStart(source)).line + 1;
  const problem = (node: ts.Node, subject: string, message: string) => details.push({ line: lineOf(node), subject, message });
  const noteImport = (node: ts.Node, specifier: string, typeOnly: boolean) => {
    imports.push({ specifier, typeOnly, kind: 'import', line: lineOf(node) });
    if (isBuiltinSpecifier(specifier)) problem(node, specifier, `imports Node built-in "${specifier}"`);
  };

  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier)) {
      noteImport(node, node.moduleSpecifier.text, node.importClause?.isTypeOnly ?? false);
    } else if (ts.isExportDeclaration(node) && node.moduleSpecifier !== undefined && ts.isStringLiteral(node.moduleSpecifier)) {
      noteImport(node, node.moduleSpecifier.text, node.isTypeOnly);
    } else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) {
      const expression = node.moduleReference.expression;
      if (ts.isStringLiteral(expression)) noteImport(node, expression.text, node.isTypeOnly);
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument) && ts.isStringLiteral(node.argument.literal)) {
      noteImport(node, node.argument.literal.text, true);
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      const [first] = node.arguments;
      if (first !== undefined && ts.isStringLiteralLike(first)) noteImport(node, first.text, false);
      else problem(node, 'import(...)', 'dynamic import of a computed specifier (cannot be checked)');
    } else if (ts.isNewExpression(node) && ts.isIdentifier(node.expression) && node.expression.text === 'URL') {
      // A module located to be loaded elsewhere (the secure element's child process): a dependency
      // of this file all the same, though it runs in another realm.
      const [first, second] = node.arguments ?? [];
      if (first !== undefined && second !== undefined && ts.isStringLiteralLike(first) && first.text.startsWith('.') && isImportMetaUrl(second)) {
        imports.push({ specifier: first.text, typeOnly: false, kind: 'url', line: lineOf(node) });
      }
    } else if (ts.isPropertyAccessExpression(node) && ts.isIdentifier(node.expression) && node.expression.text === 'globalThis' && NODE_GLOBALS.has(node.name.text)) {
      problem(node, `global ${node.name.text}`, `uses Node global "globalThis.${node.name.text}"`);
    } else if (
      ts.isElementAccessExpression(node) &&
      ts.isIdentifier(node.expression) &&
      node.expression.text === 'globalThis' &&
      ts.isStringLiteralLike(node.argumentExpression) &&
      NODE_GLOBALS.has(node.argumentExpression.text)
    ) {
      problem(node, `global ${node.argumentExpression.text}`, `uses Node global "globalThis.${node.argumentExpression.text}"`);
    } else if (ts.isIdentifier(node) && NODE_GLOBALS.has(node.text)) {
      if (isDeclarationName(node)) declared.add(node.text);
      else if (isReference(node)) globalUses.push(node);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  // A file that declares its own `process` (say, a function) may use it.
  for (const use of globalUses) {
    if (!declared.has(use.text)) problem(use, `global ${use.text}`, `uses Node global "${use.text}"`);
  }
  const problems = details.map((found) => `${fileName}:${found.line}: ${found.message}`);
  return { problems, details, imports };
}

/** How the checker sees files: the real disk, or an in-memory map in the self-tests. */
export interface FileSystem {
  read(path: string): string | undefined;
  exists(path: string): boolean;
}

/** The real files. */
export const disk: FileSystem = {
  read: (path) => (existsSync(path) ? readFileSync(path, 'utf8') : undefined),
  exists: (path) => existsSync(path),
};

/** An in-memory tree, absolute path → text. */
export function memoryFiles(files: Readonly<Record<string, string>>): FileSystem {
  return { read: (path) => files[path], exists: (path) => Object.hasOwn(files, path) };
}

function resolveRelative(from: string, specifier: string, fs: FileSystem): string | undefined {
  const base = resolve(dirname(from), specifier);
  const candidates = [base, base.replace(/\.js$/, '.ts'), `${base}.ts`, join(base, 'index.ts')];
  return candidates.find((path) => path.endsWith('.ts') && fs.exists(path));
}

/** The path under src/, with forward slashes. */
function underSrc(root: string, path: string): string {
  return relative(join(root, 'src'), path).split(sep).join('/');
}

/** The path under the repository, with forward slashes. */
function shown(root: string, path: string): string {
  return relative(root, path).split(sep).join('/');
}

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

/** Every file under `dir` whose name passes `keep`. */
export function walk(dir: string, keep: (name: string) => boolean): string[] {
  if (!existsSync(dir)) return [];
  const found: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) found.push(...walk(path, keep));
    else if (entry.isFile() && keep(entry.name)) found.push(path);
  }
  return found;
}

/** Shipped TypeScript: not a test, not a declaration file. */
export const isSource = (name: string) => name.endsWith('.ts') && !name.endsWith('.test.ts') && !name.endsWith('.d.ts');

/** What a file under src/ is, by where it lives and how it is named. */
export type Role =
  | 'scheme-pure'
  | 'scheme-index'
  | 'scheme-node'
  | 'scheme-wallet'
  | 'scheme-cli'
  | 'scheme-bench'
  | 'scheme-test'
  | 'registry'
  | 'scheme-type'
  | 'schemes-shared'
  | 'schemes-test'
  | 'face'
  | 'shell'
  | 'other';

/** Test support in a scheme folder: never shipped, so neither pure nor bound to the plug-in modules. */
const TEST_SUPPORT = /(\.test\.ts|^test-fixtures\.ts|^ta-fixtures\.ts|-fixtures\.ts)$/;

/** The adapters of a scheme folder, by file name; every other file in the folder is pure. */
export const ADAPTER_NAMES: readonly (readonly [RegExp, Role])[] = [
  [/^node(-.+)?\.ts$/, 'scheme-node'],
  [/^wallet(-.+)?\.ts$/, 'scheme-wallet'],
  [/^cli(-.+)?\.ts$/, 'scheme-cli'],
  [/^bench(-.+)?\.ts$/, 'scheme-bench'],
];

/** The faces read the registry; every other layer outside src/schemes/ is shell. */
const FACES = new Set(['cli', 'sim', 'web']);
const SHELL = new Set(['core', 'pki', 'channel', 'secure-element', 'providers', 'host', 'issuer', 'wallet']);

/** The scheme a path under src/ belongs to, or undefined outside every scheme folder. */
function schemeOf(path: string): string | undefined {
  return /^schemes\/([^/]+)\//.exec(path)?.[1];
}

/** The role of a file, from its path under src/. */
export function roleOf(path: string): Role {
  const name = basename(path);
  if (schemeOf(path) !== undefined) {
    if (TEST_SUPPORT.test(name)) return 'scheme-test';
    if (/^schemes\/[^/]+\/index\.ts$/.test(path)) return 'scheme-index';
    return ADAPTER_NAMES.find(([pattern]) => pattern.test(name))?.[1] ?? 'scheme-pure';
  }
  if (/^schemes\/[^/]+$/.test(path)) {
    if (TEST_SUPPORT.test(name)) return 'schemes-test';
    if (name === 'index.ts') return 'registry';
    if (name === 'scheme.ts') return 'scheme-type';
    return 'schemes-shared';
  }
  const layer = path.split('/')[0] as string;
  if (FACES.has(layer)) return 'face';
  if (SHELL.has(layer)) return 'shell';
  return 'other';
}

/**
 * What an import reaches, seen from the importing file. In a scheme folder: `own-*` for the
 * importer's own scheme (its pure files, its adapters and index.ts, its test support), and
 * `scheme-index` / `scheme-file` for any other scheme's index.ts / other files.
 */
export type TargetClass =
  | 'core'
  | 'pki'
  | 'channel'
  | 'channel-node'
  | 'secure-element'
  | 'secure-element-host'
  | 'issuer-plugin'
  | 'wallet-plugin'
  | 'cli-plugin'
  | 'bench-plugin'
  | 'issuer'
  | 'wallet'
  | 'cli'
  | 'sim'
  | 'web'
  | 'providers'
  | 'host'
  | 'registry'
  | 'scheme-type'
  | 'schemes-shared'
  | 'own-pure'
  | 'own-adapter'
  | 'own-test'
  | 'scheme-index'
  | 'scheme-file'
  | 'other';

/** Classes outside the scheme folders, first match wins (plug-in modules before their layer). */
const TARGETS: readonly (readonly [TargetClass, RegExp])[] = [
  ['registry', /^schemes\/index\.ts$/],
  ['scheme-type', /^schemes\/scheme\.ts$/],
  ['schemes-shared', /^schemes\/[^/]+$/],
  ['issuer-plugin', /^issuer\/plugin\.ts$/],
  ['wallet-plugin', /^wallet\/plugin\.ts$/],
  ['cli-plugin', /^cli\/plugin\.ts$/],
  ['bench-plugin', /^sim\/bench\/plugin\.ts$/],
  ['core', /^core\//],
  ['pki', /^pki\//],
  ['channel-node', /^channel\/tcp/],
  ['channel', /^channel\//],
  ['secure-element-host', /^secure-element\/host/],
  ['secure-element', /^secure-element\//],
  ['issuer', /^issuer\//],
  ['wallet', /^wallet\//],
  ['cli', /^cli\//],
  ['sim', /^sim\//],
  ['web', /^web\//],
  ['providers', /^providers\//],
  ['host', /^host\//],
];

/** The class of `target` (a path under src/) as imported by `source` (a path under src/). */
export function targetClass(source: string, target: string): TargetClass {
  const scheme = schemeOf(target);
  if (scheme !== undefined) {
    if (scheme !== schemeOf(source)) return /^schemes\/[^/]+\/index\.ts$/.test(target) ? 'scheme-index' : 'scheme-file';
    const role = roleOf(target);
    return role === 'scheme-pure' ? 'own-pure' : role === 'scheme-test' ? 'own-test' : 'own-adapter';
  }
  return TARGETS.find(([, pattern]) => pattern.test(target))?.[0] ?? 'other';
}

/** `any`: imported for values or types; `type`: only by an import that is erased (`import type`). */
type Access = 'any' | 'type';

/** One rule of the table: what a file of a role may import, and the rule in words. */
export interface Rule {
  readonly says: string;
  readonly allow: Readonly<Partial<Record<TargetClass, Access>>>;
}

const ALL_TARGETS: readonly TargetClass[] = [...TARGETS.map(([name]) => name), 'own-pure', 'own-adapter', 'own-test', 'scheme-index', 'scheme-file', 'other'];

function allBut(...denied: TargetClass[]): Partial<Record<TargetClass, Access>> {
  return Object.fromEntries(ALL_TARGETS.filter((name) => !denied.includes(name)).map((name) => [name, 'any' as const]));
}

/** The pure lower layers every scheme file may use (the Node-only parts of each are excluded by name or by the purity check). */
const BELOW = { core: 'any', pki: 'any', channel: 'any', 'secure-element': 'any' } as const;
/** The pure files and the adapters of the importing file's own scheme. */
const OWN = { 'own-pure': 'any', 'own-adapter': 'any' } as const;
const PLUGINS_TYPE = { 'issuer-plugin': 'type', 'wallet-plugin': 'type', 'cli-plugin': 'type', 'bench-plugin': 'type' } as const;

/** The layering, role → what it may import. Anything not listed is a violation. */
export const RULES: Readonly<Record<Role, Rule>> = {
  'scheme-pure': {
    says: "a scheme's protocol file is pure: it imports only core, pki, channel, secure-element's pure parts and its own scheme's pure files",
    allow: { ...BELOW, 'own-pure': 'any' },
  },
  'scheme-index': {
    says: "a scheme's index.ts imports its own folder, the pure layers, and the plug-in modules and the Scheme type for types only",
    allow: { ...BELOW, ...OWN, ...PLUGINS_TYPE, 'scheme-type': 'type' },
  },
  'scheme-node': {
    says: "a scheme's node adapter imports only src/issuer/plugin.ts of the issuer",
    allow: { ...BELOW, ...OWN, 'issuer-plugin': 'any' },
  },
  'scheme-wallet': {
    says: "a scheme's wallet adapter imports only src/wallet/plugin.ts of the shell",
    allow: { ...BELOW, ...OWN, 'wallet-plugin': 'any' },
  },
  'scheme-cli': {
    says: "a scheme's CLI adapter imports only src/cli/plugin.ts and src/wallet/plugin.ts of the shell",
    allow: { ...BELOW, ...OWN, 'cli-plugin': 'any', 'wallet-plugin': 'any' },
  },
  'scheme-bench': {
    says: "a scheme's benchmark imports only src/sim/bench/plugin.ts, src/issuer/plugin.ts and src/wallet/plugin.ts of the shell",
    allow: { ...BELOW, ...OWN, 'bench-plugin': 'any', 'issuer-plugin': 'any', 'wallet-plugin': 'any' },
  },
  'scheme-test': {
    says: "a scheme's tests may use the whole shell, but schemes never import each other",
    allow: allBut('scheme-index', 'scheme-file'),
  },
  registry: {
    says: "the registry imports each scheme's index.ts, never a scheme's other files",
    allow: { ...BELOW, ...PLUGINS_TYPE, 'scheme-index': 'any', 'scheme-type': 'any' },
  },
  'scheme-type': {
    says: 'the Scheme type imports the plug-in modules for types only, and no scheme',
    allow: { ...BELOW, ...PLUGINS_TYPE },
  },
  'schemes-shared': {
    says: 'a shared file in src/schemes/ is pure and imports no scheme',
    allow: { ...BELOW },
  },
  'schemes-test': {
    says: "a test in src/schemes/ reaches a scheme only through its index.ts",
    allow: allBut('scheme-file'),
  },
  face: {
    says: 'a face (src/cli, src/sim, src/web) reaches the schemes only through the registry src/schemes/index.ts',
    allow: allBut('scheme-index', 'scheme-file'),
  },
  shell: {
    says: 'the shell and the lower layers never import a scheme, nor the registry',
    allow: allBut('scheme-index', 'scheme-file', 'registry'),
  },
  other: { says: 'outside the layers', allow: allBut() },
};

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

/** The words of a text, split at non-letters and at camelCase and CONSTANT_CASE boundaries, lower case. */
export function words(text: string): string[] {
  return text
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .replace(/([A-Z])([A-Z][a-z])/g, '$1 $2')
    .split(/[^A-Za-z0-9]+/)
    .filter((word) => word.length > 0)
    .map((word) => word.toLowerCase());
}

/** The scheme named in `text` (a scheme's folder name as a word, or its words in a row), if any. */
export function schemeNamed(text: string, schemes: readonly string[]): string | undefined {
  const found = words(text).join(' ');
  return schemes.find((scheme) => ` ${found} `.includes(` ${words(scheme).join(' ')} `));
}

/** One line (0: the file's own path) of a shell file that names a scheme. */
export interface Naming {
  readonly file: string;
  readonly line: number;
  readonly scheme: string;
}

/** Every line of `files` (and every file path) that names one of `schemes`. */
export function schemeNamings(root: string, files: readonly string[], schemes: readonly string[], fs: FileSystem): Naming[] {
  const namings: Naming[] = [];
  for (const file of files) {
    const name = shown(root, file);
    const inPath = schemeNamed(underSrc(root, file), schemes);
    if (inPath !== undefined) namings.push({ file: name, line: 0, scheme: inPath });
    const lines = (fs.read(file) ?? '').split('\n');
    lines.forEach((text, index) => {
      const scheme = schemeNamed(text, schemes);
      if (scheme !== undefined) namings.push({ file: name, line: index + 1, scheme });
    });
  }
  return namings;
}

/** The scheme folders under src/schemes/ of the real tree. */
export function schemeFolders(root: string): string[] {
  const dir = join(root, 'src', 'schemes');
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .map((entry) => entry.name)
    .sort();
}
