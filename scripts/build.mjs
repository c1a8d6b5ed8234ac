// `npm run build` (and `npm ci`, through the prepare script): compiles src/ (test files aside) to
// dist/ with tsc, imports rewritten from .ts to .js (rewriteRelativeImportExtensions); the other
// files under src/ (SQL migrations) are copied beside them. Type checking is `npm run typecheck`'s
// job; the build only emits (noCheck), which takes 6 to 20 s on a busy 2-core machine.
//   --if-stale   build only when dist/ is missing or older than the sources (scripts/build-state.mjs)
// Then esbuild bundles what `tally` runs (the CLI, the secure element's process, the trusted apps)
// into dist/bundle/: one file per entry and shared chunks, so that a command loads a few files
// instead of a few hundred modules (see docs/build.md).
// The new build is written beside dist/ and swapped in whole; a lock folder keeps two builds from
// running at once (the second waits, then finds the first one's build fresh).
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { buildState, DIST, ROOT } from './build-state.mjs';

const LOCK = join(ROOT, 'dist.lock');
const LOCK_WAIT_MS = 120_000;

function sleep(ms) {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return e.code === 'EPERM';
  }
}

/** Takes the build lock (a folder holding the owner's pid); a dead owner's lock is taken over. */
function lock() {
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      mkdirSync(LOCK);
      writeFileSync(join(LOCK, 'pid'), String(process.pid));
      return;
    } catch (e) {
      if (e.code !== 'EEXIST') throw e;
    }
    let owner = NaN;
    try {
      owner = Number(readFileSync(join(LOCK, 'pid'), 'utf8'));
    } catch {
      // The owner has made the folder but not yet written its pid.
    }
    if (Number.isInteger(owner) && owner > 0 && !alive(owner)) {
      rmSync(LOCK, { recursive: true, force: true });
      continue;
    }
    if (Date.now() > deadline) throw new Error(`build: ${relative(ROOT, LOCK)} held for ${LOCK_WAIT_MS / 1000} s; remove it if no build runs`);
    sleep(100);
  }
}

/** Copies the files that are not TypeScript (the SQL migrations) to the same place in the build. */
function copyAssets(from, to) {
  for (const entry of readdirSync(from, { withFileTypes: true })) {
    const source = join(from, entry.name);
    if (entry.isDirectory()) copyAssets(source, join(to, entry.name));
    else if (!entry.name.endsWith('.ts')) {
      mkdirSync(to, { recursive: true });
      copyFileSync(source, join(to, entry.name));
    }
  }
}

/** Packages bundled with the code (plain ES modules); every other package is loaded from node_modules as usual. */
const BUNDLED_PACKAGES = /^(@noble\/|cborg(\/|$)|hono(\/|$)|@hono\/zod-openapi|zod(\/|$)|@asteasolutions\/|viem(\/|$)|ox(\/|$)|abitype(\/|$)|@scure\/)/;

/**
 * The modules of dist/ that start a process or that the secure element's process imports by
 * location. Every output sits directly in dist/bundle/ (an entry is named by its path in dist/
 * with dots for slashes: schemes.ops.trusted-app.js), so one relative URL leads from any of them
 * back into dist/.
 */
function bundleEntries(dist) {
  const modules = ['cli/main.js', 'secure-element/host-child.js', 'sim/bench/node-child.js'];
  for (const scheme of readdirSync(join(dist, 'schemes'), { withFileTypes: true })) {
    if (scheme.isDirectory() && existsSync(join(dist, 'schemes', scheme.name, 'trusted-app.js'))) modules.push(`schemes/${scheme.name}/trusted-app.js`);
  }
  for (const file of readdirSync(join(dist, 'secure-element', 'apps'))) {
    if (file.endsWith('.js')) modules.push(`secure-element/apps/${file}`);
  }
  return Object.fromEntries(modules.map((m) => [m.slice(0, -3).split('/').join('.'), join(dist, m)]));
}

/**
 * Bundles the compiled modules into `dist/bundle/`. Each module's own `import.meta.url` is kept as
 * the URL of its file in dist/ (so a migration folder, the secure element's script or a trusted
 * app's source is found where it was), and `__TALLY_BUNDLE__` tells the code it runs bundled.
 */
async function bundle(dist) {
  let esbuild;
  try {
    esbuild = await import('esbuild');
  } catch {
    process.stderr.write('build: esbuild is not installed (npm ci installs it); dist/bundle not built, tally runs dist/ unbundled\n');
    return;
  }
  const ownUrl = {
    name: 'own-module-url',
    setup(build) {
      build.onResolve({ filter: /^[^./]/ }, (args) => (BUNDLED_PACKAGES.test(args.path) || args.path.startsWith('node:') ? undefined : { path: args.path, external: true }));
      build.onLoad({ filter: /\.js$/ }, async (args) => {
        const text = await readFile(args.path, 'utf8');
        const inDist = relative(dist, args.path);
        if (inDist.startsWith('..') || !text.includes('import.meta.url')) return { contents: text, loader: 'js' };
        const own = `new URL(${JSON.stringify(`../${inDist.split('\\').join('/')}`)}, import.meta.url).href`;
        return { contents: text.replaceAll('import.meta.url', own), loader: 'js' };
      });
    },
  };
  await esbuild.build({
    entryPoints: bundleEntries(dist),
    outdir: join(dist, 'bundle'),
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    chunkNames: 'chunk-[hash]',
    define: { __TALLY_BUNDLE__: 'true' },
    plugins: [ownUrl],
    logLevel: 'warning',
  });
}

async function compile() {
  let tsc;
  try {
    tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  } catch {
    process.stderr.write('build: typescript is not installed (npm ci installs it); dist/ not built\n');
    return false;
  }
  const startedMs = Date.now();
  const target = join(ROOT, `dist.tmp-${process.pid}`);
  rmSync(target, { recursive: true, force: true });
  const result = spawnSync(process.execPath, [tsc, '-p', join(ROOT, 'tsconfig.build.json'), '--outDir', target], { stdio: 'inherit' });
  if (result.status !== 0) {
    rmSync(target, { recursive: true, force: true });
    throw new Error(`build: tsc exited with ${result.status ?? result.signal}`);
  }
  copyAssets(join(ROOT, 'src'), target);
  await bundle(target);
  writeFileSync(join(target, 'BUILD'), `${JSON.stringify({ format: 1, startedMs })}\n`);
  const old = join(ROOT, `dist.old-${process.pid}`);
  if (existsSync(DIST)) renameSync(DIST, old);
  renameSync(target, DIST);
  rmSync(old, { recursive: true, force: true });
  return true;
}

const ifStale = process.argv.includes('--if-stale');
if (!ifStale || buildState().state !== 'fresh') {
  lock();
  try {
    // Another build may have finished while this one waited for the lock.
    if (!ifStale || buildState().state !== 'fresh') {
      const t0 = performance.now();
      if (await compile()) process.stderr.write(`build: dist/ compiled from src/ in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
    }
  } finally {
    rmSync(LOCK, { recursive: true, force: true });
  }
}
