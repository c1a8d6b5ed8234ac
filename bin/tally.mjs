#!/usr/bin/env node
// The `tally` command. It runs the bundle of the compiled JavaScript in dist/bundle/ (`npm ci`
// builds it through the prepare script; `npm run build` rebuilds it; without esbuild the build
// leaves dist/ unbundled, which runs too). When a source under src/ is newer than that build,
// it never runs the stale build: it says so in one line on stderr and runs the sources through
// tsx's loader instead (about 0.5 s slower), until the next build. TALLY_FROM_SOURCE=1 runs the
// sources without the line. See docs/build.md.
import { existsSync } from 'node:fs';
import { relative } from 'node:path';
import { buildState } from '../scripts/build-state.mjs';

async function entry() {
  const fromSource = process.env['TALLY_FROM_SOURCE'] === '1';
  const build = fromSource ? null : buildState();
  if (build?.state === 'fresh') {
    const bundled = new URL('../dist/bundle/cli.main.js', import.meta.url);
    return import(existsSync(bundled) ? bundled.href : '../dist/cli/main.js');
  }
  if (build !== null) {
    const why = build.state === 'missing' ? 'dist/ is not built' : `${relative(process.cwd(), build.path) || build.path} is newer than dist/`;
    process.stderr.write(`tally: ${why}; running the sources through tsx (npm run build makes it fast again)\n`);
  }
  const { register } = await import('tsx/esm/api');
  register();
  return import('../src/cli/main.ts');
}

const { main } = await entry();
process.exitCode = await main(process.argv.slice(2));
