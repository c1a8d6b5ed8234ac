// Whether dist/ (the compiled JavaScript that `tally` runs) was built from the sources as they are
// now. The build records when it started in dist/BUILD; the build is stale when a file or folder
// under src/ (test files aside: they are not built), the tsconfig files or this check's own
// scripts changed after that moment. A folder's time changes when a file in it is added, removed or
// renamed, so deleted sources are caught too. The check stats every source file: about 5 ms for
// 230 files on the 2-core machine of docs/benchmarks.md.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The project's root folder. */
export const ROOT = fileURLToPath(new URL('../', import.meta.url));
/** Where the build writes. */
export const DIST = join(ROOT, 'dist');
/** The record of a finished build: its format and the start time of the build in ms. */
export const STAMP = join(DIST, 'BUILD');

const CONFIG_FILES = ['tsconfig.json', 'tsconfig.build.json', 'package-lock.json', 'scripts/build.mjs'];

/** The newest change time (ms) of the sources, with the path that has it. */
export function newestSource(root = ROOT) {
  let newest = { ms: 0, path: '' };
  const consider = (path) => {
    const ms = statSync(path).mtimeMs;
    if (ms > newest.ms) newest = { ms, path };
  };
  const walk = (dir) => {
    consider(dir);
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (!entry.name.endsWith('.test.ts')) consider(path);
    }
  };
  walk(join(root, 'src'));
  for (const name of CONFIG_FILES) {
    if (existsSync(join(root, name))) consider(join(root, name));
  }
  return newest;
}

/** The start time recorded by the last finished build, or null when there is none. */
export function buildTime(root = ROOT) {
  try {
    const record = JSON.parse(readFileSync(join(root, 'dist', 'BUILD'), 'utf8'));
    return record.format === 1 && typeof record.startedMs === 'number' ? record.startedMs : null;
  } catch {
    return null;
  }
}

/**
 * 'fresh', 'missing' (never built) or 'stale' with the newest source, which the build predates.
 * @returns {{ state: 'fresh' } | { state: 'missing' } | { state: 'stale', path: string }}
 */
export function buildState(root = ROOT) {
  const built = buildTime(root);
  if (built === null) return { state: 'missing' };
  const newest = newestSource(root);
  return newest.ms > built ? { state: 'stale', path: newest.path } : { state: 'fresh' };
}
