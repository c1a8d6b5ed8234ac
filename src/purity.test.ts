/**
 * The pure layers (core, pki, trusted apps, scheme messages and sessions) must run in Node, in a
 * worker and in the browser alike: no Node built-in, no Node global, and no import of a file that
 * is Node-only or from a higher layer, directly or through the files they import.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, extname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
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
/** Scheme and trusted-app files that are pure by the architecture. */
const PURE_NAME = /^(trusted-app.*|messages|payer|payee|session.*|pay-verify|block)\.ts$/;

/** True when a module specifier names a Node built-in (`node:*`, `fs`, `fs/promises`, ...). */
function isBuiltinSpecifier(specifier: string): boolean {
  if (specifier.startsWith('node:')) return true;
  return BUILTINS.has(specifier) || BUILTINS.has(specifier.split('/')[0] as string);
}

interface ImportRef {
  readonly specifier: string;
  /** `import type` / `export type`: erased, loads nothing at run time. */
  readonly typeOnly: boolean;
}

interface SourceReport {
  readonly problems: string[];
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

/**
 * Checks one source text: Node built-in imports (static, re-export, dynamic, `require`, type
 * imports) and Node globals. Returns the problems and every import, for following relative ones.
 */
function checkSource(fileName: string, text: string): SourceReport {
  const source = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const problems: string[] = [];
  const imports: ImportRef[] = [];
  const declared = new Set<string>();
  const globalUses: ts.Identifier[] = [];
  const where = (node: ts.Node) => `${fileName}:${source.getLineAndCharacterOfPosition(node.getStart(source)).line + 1}`;
  const noteImport = (node: ts.Node, specifier: string, typeOnly: boolean) => {
    imports.push({ specifier, typeOnly });
    if (isBuiltinSpecifier(specifier)) problems.push(`${where(node)}: imports Node built-in "${specifier}"`);
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
      else problems.push(`${where(node)}: dynamic import of a computed specifier (cannot be checked)`);
    } else if (ts.isPropertyAccessExpression(node) && ts.isIdentifier(node.expression) && node.expression.text === 'globalThis' && NODE_GLOBALS.has(node.name.text)) {
      problems.push(`${where(node)}: uses Node global "globalThis.${node.name.text}"`);
    } else if (
      ts.isElementAccessExpression(node) &&
      ts.isIdentifier(node.expression) &&
      node.expression.text === 'globalThis' &&
      ts.isStringLiteralLike(node.argumentExpression) &&
      NODE_GLOBALS.has(node.argumentExpression.text)
    ) {
      problems.push(`${where(node)}: uses Node global "globalThis.${node.argumentExpression.text}"`);
    } else if (ts.isIdentifier(node) && NODE_GLOBALS.has(node.text)) {
      if (isDeclarationName(node)) declared.add(node.text);
      else if (isReference(node)) globalUses.push(node);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  // A file that declares its own `process` (say, a function) may use it.
  for (const use of globalUses) {
    if (!declared.has(use.text)) problems.push(`${where(use)}: uses Node global "${use.text}"`);
  }
  return { problems, imports };
}

/** How the checker sees files: the real disk, or an in-memory map in the self-tests. */
interface FileSystem {
  read(path: string): string | undefined;
  exists(path: string): boolean;
}

const disk: FileSystem = {
  read: (path) => (existsSync(path) ? readFileSync(path, 'utf8') : undefined),
  exists: (path) => existsSync(path),
};

function resolveRelative(from: string, specifier: string, fs: FileSystem): string | undefined {
  const base = resolve(dirname(from), specifier);
  const candidates = [base, base.replace(/\.js$/, '.ts'), `${base}.ts`, join(base, 'index.ts')];
  return candidates.find((path) => path.endsWith('.ts') && fs.exists(path));
}

/** The path under src/, with forward slashes. */
function underSrc(root: string, path: string): string {
  return relative(join(root, 'src'), path).split(sep).join('/');
}

/**
 * Checks every pure file and, transitively, every project file they load at run time. A loaded
 * file outside the pure set must itself be pure and must not be Node-only or from a higher layer.
 */
function checkPurity(root: string, pure: readonly string[], fs: FileSystem): string[] {
  const pureSet = new Set(pure);
  const findings: string[] = [];
  const reachedFrom = new Map<string, string | undefined>(pure.map((file) => [file, undefined]));
  const queue = [...pure];
  const show = (path: string) => relative(root, path).split(sep).join('/');
  for (let file = queue.shift(); file !== undefined; file = queue.shift()) {
    const via = reachedFrom.get(file);
    const suffix = via === undefined ? '' : ` (loaded by ${show(via)})`;
    const text = fs.read(file);
    if (text === undefined) {
      findings.push(`${show(file)}: cannot be read${suffix}`);
      continue;
    }
    const report = checkSource(show(file), text);
    for (const problem of report.problems) findings.push(problem + suffix);
    for (const { specifier, typeOnly } of report.imports) {
      if (typeOnly || !specifier.startsWith('.')) continue;
      const target = resolveRelative(file, specifier, fs);
      if (target === undefined) {
        // Data files (JSON, WASM) are not code that could reach Node.
        if (!['', '.ts', '.js', '.mts', '.mjs', '.cts', '.cjs'].includes(extname(specifier))) continue;
        findings.push(`${show(file)}: cannot resolve "${specifier}"${suffix}`);
        continue;
      }
      if (!pureSet.has(target)) {
        const forbidden = FORBIDDEN.find(([pattern]) => pattern.test(underSrc(root, target)));
        if (forbidden !== undefined) {
          // Flagged as a whole: its own imports would only repeat the point.
          findings.push(`${show(file)}: imports ${show(target)}, ${forbidden[1]}${suffix}`);
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

function walk(dir: string, keep: (name: string) => boolean): string[] {
  if (!existsSync(dir)) return [];
  const found: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) found.push(...walk(path, keep));
    else if (entry.isFile() && keep(entry.name)) found.push(path);
  }
  return found;
}

const isSource = (name: string) => name.endsWith('.ts') && !name.endsWith('.test.ts') && !name.endsWith('.d.ts');

/** The files the architecture calls pure (folders that do not exist yet contribute nothing). */
function pureFiles(root: string): string[] {
  const src = join(root, 'src');
  return [
    ...walk(join(src, 'core'), isSource),
    ...walk(join(src, 'pki'), isSource),
    ...walk(join(src, 'channel'), (name) => isSource(name) && !name.startsWith('tcp')),
    ...walk(join(src, 'schemes'), (name) => isSource(name) && PURE_NAME.test(name)),
    ...walk(join(src, 'secure-element', 'apps'), (name) => isSource(name) && PURE_NAME.test(name)),
  ].sort();
}

describe('purity of the isomorphic layers', () => {
  it('finds the pure files: all of core, none of its tests', () => {
    const files = pureFiles(REPO).map((path) => relative(REPO, path).split(sep).join('/'));
    for (const expected of ['src/channel/link.ts', 'src/schemes/ops/trusted-app.ts', 'src/schemes/ops/pay-verify.ts', 'src/core/index.ts', 'src/core/cbor.ts', 'src/core/codec.ts', 'src/core/crypto/suite.ts', 'src/core/crypto/noble.ts']) {
      assert.ok(files.includes(expected), expected);
    }
    assert.ok(!files.some((file) => file.endsWith('.test.ts')));
    assert.ok(!files.some((file) => file.startsWith('src/providers/')));
  });

  it('pure files use no Node built-in or global and load no Node-only file', () => {
    const findings = checkPurity(REPO, pureFiles(REPO), disk);
    if (findings.length > 0) assert.fail(`the pure layers must run in a browser too:\n  ${findings.join('\n  ')}`);
  });
});

describe('the purity checker itself', () => {
  const flagged = (text: string) => checkSource('fake.ts', text).problems;

  it('flags a node: import (so the check can fail)', () => {
    assert.deepEqual(flagged("import x from 'node:fs';\nexport const y = x;\n"), ['fake.ts:1: imports Node built-in "node:fs"']);
  });

  it('flags bare built-ins, subpaths, re-exports, dynamic imports, require and type imports', () => {
    const cases: [string, string][] = [
      ["import { createHash } from 'crypto';", 'imports Node built-in "crypto"'],
      ["import { readFile } from 'fs/promises';", 'imports Node built-in "fs/promises"'],
      ["import { posix } from 'path/posix';", 'imports Node built-in "path/posix"'],
      ["export * from 'node:path';", 'imports Node built-in "node:path"'],
      ["export { Worker } from 'worker_threads';", 'imports Node built-in "worker_threads"'],
      ["const m = await import('node:worker_threads');", 'imports Node built-in "node:worker_threads"'],
      ['const m = await import(`node:os`);', 'imports Node built-in "node:os"'],
      ['const m = await import(name);', 'dynamic import of a computed specifier (cannot be checked)'],
      ["import type { KeyObject } from 'node:crypto';", 'imports Node built-in "node:crypto"'],
      ["import fs = require('fs');", 'imports Node built-in "fs"'],
      ["let k: typeof import('node:test');", 'imports Node built-in "node:test"'],
      ["const fs = require('fs');", 'uses Node global "require"'],
      ['const b = Buffer.from([1]);', 'uses Node global "Buffer"'],
      ['const env = process.env.HOME;', 'uses Node global "process"'],
      ["if (typeof process !== 'undefined') {}", 'uses Node global "process"'],
      ['const o = { process };', 'uses Node global "process"'],
      ['function f(b: Buffer) { return b; }', 'uses Node global "Buffer"'],
      ['const p = globalThis.process;', 'uses Node global "globalThis.process"'],
      ["const p = globalThis['Buffer'];", 'uses Node global "globalThis.Buffer"'],
      ['const d = __dirname;', 'uses Node global "__dirname"'],
    ];
    for (const [text, problem] of cases) {
      const problems = flagged(text);
      assert.ok(
        problems.some((p) => p.endsWith(problem)),
        `${text} → ${JSON.stringify(problems)}`,
      );
    }
  });

  it('does not flag words in comments and strings, property names, local declarations or packages', () => {
    const clean = [
      '// the host process keeps the Buffer; require nothing here',
      '/** Runs in any process. @see node:fs */',
      "import { ed25519 } from '@noble/curves/ed25519.js';",
      "import { encodeCbor } from './cbor.ts';",
      "import { fs } from 'fs-extra-not-builtin';",
      "const text = 'node:fs process Buffer require';",
      'const o = { process: 1, Buffer: 2, require: 3 };',
      'const v = o.process + o.Buffer;',
      'interface Steps { process(): void; require: boolean }',
      'function run(steps: Steps) { steps.process(); }',
      'class Machine { process() { return 1; } }',
      'export function process(input: number): number { return input; }',
      'export const twice = process(process(1));',
      'const { require: needed } = { require: true };',
    ].join('\n');
    assert.deepEqual(flagged(clean), []);
  });

  it('follows relative imports and flags Node-only files, higher layers and impure helpers', () => {
    const root = '/repo';
    const files: Record<string, string> = {
      '/repo/src/schemes/x/payer.ts': [
        "import { a } from './messages.ts';",
        "import { p } from '../../providers/node-crypto.ts';",
        "import { h } from '../../secure-element/host-child.ts';",
        "import { w } from '../../wallet/sdk.ts';",
        "import { t } from '../../secure-element/trusted-app.ts';",
        "import type { S } from '../../secure-element/host.ts';",
        "import { m } from './missing.ts';",
        "import { n } from '../missing';",
        "import data from './table.json';",
      ].join('\n'),
      '/repo/src/schemes/x/messages.ts': "import { c } from '../../core/codec.ts';",
      '/repo/src/core/codec.ts': 'export const c = 1;',
      '/repo/src/providers/node-crypto.ts': "import { sign } from 'node:crypto';",
      '/repo/src/secure-element/host-child.ts': 'export const h = 1;',
      '/repo/src/secure-element/host.ts': "import { spawn } from 'node:child_process';",
      '/repo/src/wallet/sdk.ts': 'export const w = 1;',
      '/repo/src/secure-element/trusted-app.ts': "import { u } from './util.ts';",
      '/repo/src/secure-element/util.ts': 'export const u = Buffer.alloc(1);',
    };
    const memory: FileSystem = { read: (path) => files[path], exists: (path) => Object.hasOwn(files, path) };
    const pure = ['/repo/src/schemes/x/payer.ts', '/repo/src/schemes/x/messages.ts', '/repo/src/core/codec.ts'];
    assert.deepEqual(checkPurity(root, pure, memory).sort(), [
      'src/schemes/x/payer.ts: cannot resolve "../missing"',
      'src/schemes/x/payer.ts: cannot resolve "./missing.ts"',
      'src/schemes/x/payer.ts: imports src/providers/node-crypto.ts, a Node-only provider',
      'src/schemes/x/payer.ts: imports src/secure-element/host-child.ts, a Node-only secure-element host',
      'src/schemes/x/payer.ts: imports src/wallet/sdk.ts, a higher layer',
      'src/secure-element/util.ts:1: uses Node global "Buffer" (loaded by src/secure-element/trusted-app.ts)',
    ]);
  });

  it('knows built-in names from node:module, with and without the node: prefix', () => {
    assert.ok(isBuiltinSpecifier('fs'));
    assert.ok(isBuiltinSpecifier('node:sqlite'));
    assert.ok(isBuiltinSpecifier('stream/web'));
    assert.ok(!isBuiltinSpecifier('@noble/hashes/sha2.js'));
    assert.ok(!isBuiltinSpecifier('cborg'));
    assert.ok(!isBuiltinSpecifier('./fs.ts'));
  });
});
