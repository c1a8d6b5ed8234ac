import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { isTallyError } from '../core/errors.ts';
import { measureTrustedApp as measureBuild } from '../wallet/factory.ts';
import { CLOSURE_FILES_MAX, importClosure, measureTrustedApp, runtimeImports, SOURCE_ROOT } from './measure.ts';

const dirs: string[] = [];
after(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

/** A source tree in a temporary folder: path → text. */
async function tree(files: Record<string, string>): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'tally-measure-'));
  dirs.push(root);
  for (const [path, text] of Object.entries(files)) {
    await mkdir(dirname(join(root, path)), { recursive: true });
    await writeFile(join(root, path), text);
  }
  return root;
}

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');

/** The relative imports that run, as the TypeScript compiler's own parser sees them. */
function compilerImports(path: string, text: string): string[] {
  const file = ts.createSourceFile(path, text, ts.ScriptTarget.ES2022, true, ts.ScriptKind.TS);
  const found: string[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier) && node.importClause?.isTypeOnly !== true) found.push(node.moduleSpecifier.text);
    else if (ts.isExportDeclaration(node) && node.moduleSpecifier !== undefined && ts.isStringLiteral(node.moduleSpecifier) && !node.isTypeOnly) found.push(node.moduleSpecifier.text);
    else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword && node.arguments[0] !== undefined && ts.isStringLiteralLike(node.arguments[0])) found.push(node.arguments[0].text);
    ts.forEachChild(node, visit);
  };
  visit(file);
  return found.filter((s) => s.startsWith('./') || s.startsWith('../'));
}

async function sourceFiles(dir: string): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) found.push(...(await sourceFiles(path)));
    else if (entry.name.endsWith('.ts')) found.push(path);
  }
  return found;
}

describe('runtimeImports', () => {
  test('finds what the TypeScript parser finds, in every source file of the project', async () => {
    const files = await sourceFiles(SOURCE_ROOT);
    assert.ok(files.length > 100, `only ${files.length} files under ${SOURCE_ROOT}`);
    for (const path of files) {
      const text = await readFile(path, 'utf8');
      assert.deepEqual(runtimeImports(text), compilerImports(path, text), path);
    }
  });

  test('follows imports, re-exports, side-effect and literal dynamic imports; skips type-only ones, comments, strings and templates', () => {
    const source = [
      "import { a } from './a.ts';",
      "import * as b from '../b.ts';",
      "import c, { type C } from './c.ts';",
      "import type { D } from './d.ts';",
      "import type E from './e.ts';",
      "import './f.ts';",
      "export * from './g.ts';",
      "export { h } from './h.ts';",
      "export type { I } from './i.ts';",
      "export { a as aa };",
      "export const j = await import('./j.ts');",
      "import { k } from 'node:fs';",
      "// import { l } from './l.ts';",
      "/* import { m } from './m.ts'; */",
      "const n = \"import { n } from './n.ts'\";",
      "const o = `import { o } from './o.ts' ${`nested ${'}'}`}`;",
      "const p = /import { p } from '.\\/p.ts'/;",
      "const q = { import: 1, export: 2 };",
      "import { r } from './r.ts';",
    ].join('\n');
    assert.deepEqual(runtimeImports(source), ['./a.ts', '../b.ts', './c.ts', './f.ts', './g.ts', './h.ts', './j.ts', './r.ts']);
  });

  test('a type declared without a semicolon does not hide the import after it', () => {
    assert.deepEqual(runtimeImports("export type T = { a: string }\nimport { b } from './b.ts'\n"), ['./b.ts']);
    assert.deepEqual(runtimeImports("import type { A } from './a.ts'\nimport { b } from './b.ts'\n"), ['./b.ts']);
  });
});

describe('measureTrustedApp', () => {
  const base = {
    'app/entry.ts': "import { helper } from './helper.ts';\nimport type { T } from '../types.ts';\nexport const app = helper;\n",
    'app/helper.ts': "import { deep } from '../lib/deep.ts';\nexport const helper = deep;\n",
    'lib/deep.ts': "import { app } from '../app/entry.ts';\nexport const deep = 1;\nvoid app;\n",
    'types.ts': 'export type T = number;\n',
    'outside.ts': 'export const unrelated = 1;\n',
  };

  test('the closure is the entry and what it runs, sorted; an import cycle ends; a type-only import is not in it', async () => {
    const root = await tree(base);
    const files = await importClosure('app/entry.ts', root);
    assert.deepEqual(
      files.map((f) => f.path),
      ['app/entry.ts', 'app/helper.ts', 'lib/deep.ts'],
    );
  });

  test('changing any file of the closure changes the measurement, even at the same length', async () => {
    const before = hex(await measureTrustedApp('app/entry.ts', await tree(base)));
    for (const path of ['app/entry.ts', 'app/helper.ts', 'lib/deep.ts']) {
      const text = base[path as keyof typeof base];
      const changed = text.replace('export const', 'export let  ');
      assert.equal(changed.length, text.length);
      const after = hex(await measureTrustedApp('app/entry.ts', await tree({ ...base, [path]: changed })));
      assert.notEqual(after, before, path);
    }
  });

  test('a file outside the closure (a type-only import included) leaves the measurement alone', async () => {
    const before = hex(await measureTrustedApp('app/entry.ts', await tree(base)));
    const changed = await tree({ ...base, 'outside.ts': 'export const unrelated = 2;\n', 'types.ts': 'export type T = string;\n' });
    assert.equal(hex(await measureTrustedApp('app/entry.ts', changed)), before);
  });

  test('moving bytes from one file to another or renaming a file changes the measurement', async () => {
    const before = hex(await measureTrustedApp('app/entry.ts', await tree(base)));
    const renamed = await tree({
      ...base,
      'app/entry.ts': base['app/entry.ts'].replace('./helper.ts', './helper2.ts'),
      'app/helper.ts': '',
      'app/helper2.ts': base['app/helper.ts'],
    });
    assert.notEqual(hex(await measureTrustedApp('app/entry.ts', renamed)), before);
  });

  test('refuses a missing import, an import outside the source folder, and a closure past its bound', async () => {
    const missing = await tree({ 'entry.ts': "import './gone.ts';\n" });
    await assert.rejects(measureTrustedApp('entry.ts', missing), (e) => isTallyError(e, 'STATE_CORRUPT') && /gone\.ts/.test(e.message));
    const escape = await tree({ 'src/entry.ts': "import '../escape.ts';\n", 'escape.ts': '' });
    await assert.rejects(measureTrustedApp('entry.ts', join(escape, 'src')), (e) => isTallyError(e, 'STATE_CORRUPT') && e.details.reason === 'outside');
    const chain: Record<string, string> = {};
    for (let i = 0; i <= CLOSURE_FILES_MAX; i++) chain[`f${i}.ts`] = `import './f${i + 1}.ts';\n`;
    chain[`f${CLOSURE_FILES_MAX + 1}.ts`] = '';
    await assert.rejects(measureTrustedApp('f0.ts', await tree(chain)), (e) => isTallyError(e, 'STATE_CORRUPT') && e.details.reason === 'too many files');
  });

  test("the OPS and DOT-M trusted apps' closures hold what they run (pki/chain.ts included), no test file and no other scheme", async () => {
    const ops = (await importClosure('schemes/ops/trusted-app.ts')).map((f) => f.path);
    const dotm = (await importClosure('schemes/dotm/trusted-app.ts')).map((f) => f.path);
    for (const path of ['schemes/ops/trusted-app.ts', 'schemes/ops/pay-verify.ts', 'schemes/ops/messages.ts', 'pki/chain.ts', 'secure-element/trusted-app.ts']) assert.ok(ops.includes(path), path);
    for (const path of ['schemes/dotm/trusted-app.ts', 'schemes/dotm/block.ts', 'schemes/dotm/online.ts', 'pki/chain.ts']) assert.ok(dotm.includes(path), path);
    for (const path of [...ops, ...dotm]) assert.ok(!path.endsWith('.test.ts'), path);
    assert.ok(!ops.some((p) => p.startsWith('schemes/dotm/')) && !dotm.some((p) => p.startsWith('schemes/ops/')));
    const opsBuild = await measureBuild({ entry: 'schemes/ops/trusted-app.ts' });
    assert.equal(hex(opsBuild), hex(await measureTrustedApp('schemes/ops/trusted-app.ts')));
    assert.notEqual(hex(opsBuild), hex(await measureBuild({ entry: 'schemes/dotm/trusted-app.ts' })));
  });

  test('the compiled build in dist/ measures the same sources, so a wallet run from either form is the same build', async () => {
    const build = spawnSync(process.execPath, [fileURLToPath(new URL('../../scripts/build.mjs', import.meta.url)), '--if-stale'], { stdio: 'inherit' });
    assert.equal(build.status, 0);
    const compiled = new URL('../../dist/secure-element/measure.js', import.meta.url).href;
    const run = spawnSync(
      process.execPath,
      ['--input-type=module', '-e', `const m = await import(${JSON.stringify(compiled)}); process.stdout.write(Buffer.from(await m.measureTrustedApp('schemes/ops/trusted-app.ts')).toString('hex'));`],
      { encoding: 'utf8' },
    );
    assert.equal(run.status, 0, run.stderr);
    assert.equal(run.stdout, hex(await measureTrustedApp('schemes/ops/trusted-app.ts')));
  });
});
