/**
 * The freshness check that keeps `tally` from running a build older than its sources
 * (scripts/build-state.mjs, docs/build.md), on a project tree in a temporary folder.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, unlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { buildState } from '../scripts/build-state.mjs';

const dirs: string[] = [];
after(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

/** Sets a path's modification time, seconds from now. */
async function age(path: string, secondsFromNow: number): Promise<void> {
  const at = new Date(Date.now() + secondsFromNow * 1000);
  await utimes(path, at, at);
}

/** A tree whose files and folders are an hour old, built a minute ago. */
async function builtTree(): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'tally-build-'));
  dirs.push(root);
  await mkdir(join(root, 'src', 'core'), { recursive: true });
  await mkdir(join(root, 'dist'));
  for (const [path, text] of [
    ['src/core/a.ts', 'export const a = 1;\n'],
    ['src/core/a.test.ts', '\n'],
    ['src/core/001.sql', 'select 1;\n'],
    ['tsconfig.json', '{}\n'],
  ] as const) {
    await writeFile(join(root, path), text);
    await age(join(root, path), -3600);
  }
  for (const folder of ['src/core', 'src']) await age(join(root, folder), -3600);
  await writeFile(join(root, 'dist', 'BUILD'), `${JSON.stringify({ format: 1, startedMs: Date.now() - 60_000 })}\n`);
  return root;
}

test('a build newer than every source is fresh; no build is missing; a damaged record is missing', async () => {
  const root = await builtTree();
  assert.deepEqual(buildState(root), { state: 'fresh' });
  await writeFile(join(root, 'dist', 'BUILD'), 'not json');
  assert.deepEqual(buildState(root), { state: 'missing' });
  await unlink(join(root, 'dist', 'BUILD'));
  assert.deepEqual(buildState(root), { state: 'missing' });
});

test('an edited source, SQL file or tsconfig makes the build stale and is named', async () => {
  for (const path of ['src/core/a.ts', 'src/core/001.sql', 'tsconfig.json']) {
    const root = await builtTree();
    await age(join(root, path), 0);
    assert.deepEqual(buildState(root), { state: 'stale', path: join(root, path) }, path);
  }
});

test('a source added or deleted makes the build stale (through its folder); an edited test file does not', async () => {
  const added = await builtTree();
  await writeFile(join(added, 'src', 'core', 'b.ts'), 'export const b = 2;\n');
  await age(join(added, 'src', 'core', 'b.ts'), -3600);
  assert.equal(buildState(added).state, 'stale');
  const deleted = await builtTree();
  await unlink(join(deleted, 'src', 'core', 'a.ts'));
  assert.deepEqual(buildState(deleted), { state: 'stale', path: join(deleted, 'src', 'core') });
  const test = await builtTree();
  await age(join(test, 'src', 'core', 'a.test.ts'), 0);
  assert.deepEqual(buildState(test), { state: 'fresh' });
});

test('the bundle that tally runs: the CLI, the SE process, every trusted app and the bench\'s node process; each module still finds its own file in dist/', async () => {
  const { readdir, readFile } = await import('node:fs/promises');
  const { existsSync } = await import('node:fs');
  const { fileURLToPath } = await import('node:url');
  const root = fileURLToPath(new URL('../', import.meta.url));
  const bundle = join(root, 'dist', 'bundle');
  assert.equal(buildState(root).state, 'fresh', 'the test runner builds first');
  const expected = ['cli.main.js', 'secure-element.host-child.js', 'sim.bench.node-child.js'];
  for (const scheme of await readdir(join(root, 'src', 'schemes'), { withFileTypes: true })) {
    if (scheme.isDirectory() && existsSync(join(root, 'src', 'schemes', scheme.name, 'trusted-app.ts'))) expected.push(`schemes.${scheme.name}.trusted-app.js`);
  }
  for (const app of await readdir(join(root, 'src', 'secure-element', 'apps'))) {
    if (app.endsWith('.ts') && !app.endsWith('.test.ts')) expected.push(`secure-element.apps.${app.slice(0, -3)}.js`);
  }
  assert.ok(expected.includes('schemes.ops.trusted-app.js'));
  for (const entry of expected) assert.ok(existsSync(join(bundle, entry)), `dist/bundle/${entry}`);
  let urls = 0;
  for (const file of await readdir(bundle)) {
    const text = await readFile(join(bundle, file), 'utf8');
    for (const m of text.matchAll(/import\.meta\.url/g)) {
      const before = text.slice(Math.max(0, (m.index ?? 0) - 300), m.index);
      const own = /new URL\("\.\.\/([^"]+)", $/.exec(before);
      assert.ok(own !== null, `${file}: import.meta.url left as the bundle's own URL: ...${before.slice(-80)}`);
      assert.ok(existsSync(join(root, 'dist', own[1] as string)), `${file}: ${own[1]} is in dist/`);
      urls += 1;
    }
  }
  assert.ok(urls >= 5, `modules that locate files by their own URL: ${urls}`);
});
