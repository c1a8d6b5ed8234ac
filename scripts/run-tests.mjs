// Runs every *.test.ts under src/ with node:test through tsx (Node 20 has no glob for --test).
// The tests run the sources; the `tally` processes they start run dist/, so it is rebuilt first
// when the sources are newer (scripts/build.mjs --if-stale).
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

function collect(dir) {
  const found = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) found.push(...collect(path));
    else if (entry.name.endsWith('.test.ts')) found.push(path);
  }
  return found;
}

const build = spawnSync(process.execPath, [fileURLToPath(new URL('./build.mjs', import.meta.url)), '--if-stale'], { stdio: 'inherit' });
if (build.status !== 0) process.exit(build.status ?? 1);

// The longest files start first (node:test runs the files in the order given), so that the two
// lanes finish together rather than one running a long file alone at the end; the rest follow in
// name order. Longest first, from the per-file times of a whole run (TALLY_TEST_TIMES, below).
const LONGEST = [
  'src/sim/sim/sim.test.ts',
  'src/e2e/two-tier.e2e.test.ts',
  'src/e2e/two-tier-ops.e2e.test.ts',
  'src/schemes/opera/faults.test.ts',
  'src/sim/bench/settle.test.ts',
  'src/schemes/ops/claims-bulk.test.ts',
  'src/e2e/two-tier-opera.e2e.test.ts',
  'src/schemes/dotm/cli.e2e.test.ts',
  'src/e2e/wallet-steps.e2e.test.ts',
  'src/e2e/two-tier-otp.e2e.test.ts',
  'src/schemes/chain/node.test.ts',
  'src/schemes/chain/crash-chain.test.ts',
  'src/e2e/two-tier-dotm.e2e.test.ts',
  'src/e2e/two-tier-chain.e2e.test.ts',
  'src/schemes/ops/settle-kill.test.ts',
  'src/schemes/opera/trusted-app.test.ts',
  'src/schemes/chain/cli.e2e.test.ts',
  'src/schemes/chain/crash-pay.test.ts',
  'src/schemes/ops/cli.e2e.test.ts',
  'src/cli/node-start.test.ts',
  'src/e2e/link.e2e.test.ts',
  'src/schemes/ops/ops.test.ts',
  'src/schemes/opera/cli.e2e.test.ts',
  'src/sim/fuzz/fuzz.test.ts',
  'src/schemes/chain/crash.test.ts',
  'src/schemes/opera/node-settle-change.test.ts',
];

function longestFirst(found) {
  const first = LONGEST.filter((path) => found.includes(path));
  return [...first, ...found.filter((path) => !first.includes(path))];
}

const only = process.argv.slice(2);
const files = only.length > 0 ? only : longestFirst(collect('src').sort());
// A test file ends when its tests have: one whose process stays alive after them (a handle left
// open) would otherwise hold the whole run, since node:test waits for each file's process to exit
// (--test-force-exit). A test or file that hangs fails after TEST_TIMEOUT_MS with its name, rather
// than holding the run until CI gives up on it without saying which; the longest file takes about
// three and a half minutes on a loaded two-core machine.
const TEST_TIMEOUT_MS = 15 * 60_000;
// The tests that start a node on a new data folder copy one new PGlite cluster instead of each
// running initdb (src/issuer/db/test-pglite-cluster.ts): the first to need it makes it here, for
// the whole run.
const shared = mkdtempSync(join(tmpdir(), 'tally-test-run-'));
// $TALLY_TEST_TIMES=FILE also writes each file's time there, longest first, as JSON: the sum of
// its top-level tests (scripts/test-times-reporter.mjs), which is how LONGEST above is kept, and
// the CPU its process and the processes it started used (scripts/test-cpu.mjs), which is what a
// shorter suite on a busy two-core machine has to cut.
const times = process.env.TALLY_TEST_TIMES;
const timeLines = join(shared, 'test-times.jsonl');
const cpuLines = join(shared, 'test-cpu.jsonl');
const reporters = times === undefined || times === ''
  ? ['--test-reporter=spec']
  : ['--test-reporter=spec', '--test-reporter-destination=stdout', `--test-reporter=${fileURLToPath(new URL('./test-times-reporter.mjs', import.meta.url))}`, '--test-reporter-destination=/dev/null'];
// Each test file's process inherits these, and records its CPU at exit.
const cpuImport = times === undefined || times === '' ? [] : ['--import', new URL('./test-cpu.mjs', import.meta.url).href];

/** Sums the recorded test times per file into $TALLY_TEST_TIMES. */
function writeTimes() {
  let text = '';
  try {
    text = readFileSync(timeLines, 'utf8');
  } catch {
    // No test ended.
  }
  const byFile = new Map();
  let cpuText = '';
  try {
    cpuText = readFileSync(cpuLines, 'utf8');
  } catch {
    // No file recorded its CPU (not Linux).
  }
  const cpu = new Map();
  for (const line of cpuText.split('\n').filter((l) => l !== '')) {
    const { file, cpuMs, childrenMs } = JSON.parse(line);
    cpu.set(file.startsWith(process.cwd()) ? file.slice(process.cwd().length + 1) : file, { cpuMs, childrenMs });
  }
  for (const line of text.split('\n').filter((l) => l !== '')) {
    const { file, ms, failed } = JSON.parse(line);
    const name = file.startsWith(process.cwd()) ? file.slice(process.cwd().length + 1) : file;
    const row = byFile.get(name) ?? { file: name, ms: 0, tests: 0, failed: 0 };
    row.ms += ms;
    row.tests += 1;
    row.failed += failed ? 1 : 0;
    byFile.set(name, row);
  }
  const rows = [...byFile.values()].map((r) => ({ ...r, ms: Math.round(r.ms), ...cpu.get(r.file) })).sort((a, b) => b.ms - a.ms);
  const cpuMs = rows.reduce((sum, r) => sum + (r.cpuMs ?? 0), 0);
  writeFileSync(times, `${JSON.stringify({ files: rows.length, ms: rows.reduce((sum, r) => sum + r.ms, 0), cpuMs, rows }, null, 1)}\n`);
}
let result;
try {
  result = spawnSync(
    process.execPath,
    ['--import', 'tsx', ...cpuImport, '--test', ...reporters, '--test-concurrency=2', '--test-force-exit', `--test-timeout=${TEST_TIMEOUT_MS}`, ...files],
    { stdio: 'inherit', env: { ...process.env, TALLY_TEST_PGLITE_CLUSTER: join(shared, 'pglite-cluster'), TALLY_TEST_TIMES_LINES: timeLines, TALLY_TEST_CPU_LINES: cpuLines } },
  );
  if (times !== undefined && times !== '') writeTimes();
} finally {
  rmSync(shared, { recursive: true, force: true });
}
process.exit(result.status ?? 1);
