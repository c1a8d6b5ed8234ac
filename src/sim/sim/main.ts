/**
 * `npm run sim -- --seeds N [--start S] [--scheme NAME|NAME,NAME,...|all] [--devices D] [--payments P] [--attackers F]
 * [--faults F] [--check-every K] [--quick] [--jobs J] [--json]`: the long campaign, seeds S, S+1, ...
 * S+N-1 of each simulated scheme, one after the other. Prints a line per seed (stderr), stops at the
 * first seed that breaks an invariant and prints the command that replays it (exit 1); a failing
 * seed found here becomes a regression test in src/sim/sim/sim.test.ts. With `--jobs J` the seeds
 * are cut into J runs of consecutive seeds, each a process of its own (one per core), and their
 * summaries added up; the first violation stops the others.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { SCHEMES } from '../../schemes/index.ts';
import { runMix, type MixReport } from './mix.ts';
import { SIM_FLAGS, SIM_OPTION_HELP, simParameters, type SimFlags } from './options.ts';
import { runSim, type SimReport } from './run.ts';
import { closeSimDatabases } from './world.ts';

const USAGE = `usage: npm run sim -- --seeds N [--start S] [--scheme NAME|all] [options] [--json]

  --seeds N      how many seeds (default 100)
  --start S      the first seed (default 1)
  --scheme NAME  one scheme, all (default) of those with a simulation one after the other, or
                 several joined by commas (ops,dotm,otp): each seed one mixed population on one node
  --jobs J       run the seeds in J processes side by side, each on consecutive seeds (default 1)
${SIM_OPTION_HELP.map(([flag, meaning]) => `  ${flag.padEnd(13)}  ${meaning}`).join('\n')}`;

async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: { ...SIM_FLAGS, seeds: { type: 'string' }, start: { type: 'string' }, jobs: { type: 'string' }, json: { type: 'boolean', default: false }, help: { type: 'boolean', default: false } }, strict: true });
  } catch (e) {
    process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n${USAGE}\n`);
    return 2;
  }
  const { values } = parsed;
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const seeds = Number(values.seeds ?? '100');
  const start = Number(values.start ?? '1');
  if (!Number.isSafeInteger(seeds) || seeds < 1 || !Number.isSafeInteger(start) || start < 0) {
    process.stderr.write(`--seeds and --start must be whole numbers\n${USAGE}\n`);
    return 2;
  }
  const jobs = Number(values.jobs ?? '1');
  if (!/^\d+$/.test(values.jobs ?? '1') || !Number.isSafeInteger(jobs) || jobs < 1 || jobs > JOBS_MAX) {
    process.stderr.write(`--jobs must be a whole number from 1 to ${JOBS_MAX}, got ${JSON.stringify(values.jobs)}\n${USAGE}\n`);
    return 2;
  }
  if (jobs > 1 && seeds > 1) return inParallel(argv, start, seeds, Math.min(jobs, seeds), values.json === true);
  const name = values.scheme ?? 'all';
  if (name.includes(',')) return mixCampaign(name, values, start, seeds);
  const schemes = SCHEMES.filter((s) => s.sim !== undefined && (name === 'all' || s.name === name));
  if (schemes.length === 0) {
    process.stderr.write(`no simulated scheme ${JSON.stringify(name)}: ${SCHEMES.filter((s) => s.sim !== undefined).map((s) => s.name).join(', ')}\n`);
    return 2;
  }
  const summary: Summary[] = [];
  for (const scheme of schemes) {
    let payments = 0;
    let wallMs = 0;
    let failed: SimReport['violation'] = null;
    let ran = 0;
    for (let seed = start; seed < start + seeds; seed++) {
      const params = seedParameters(values, seed);
      if (params === null) return 2;
      const report = await runSim(scheme, { ...params, seed });
      ran++;
      payments += report.counters['payments'] ?? 0;
      wallMs += report.timings.wallMs;
      process.stderr.write(`${scheme.name} seed ${seed}: ${report.ok ? 'ok' : 'VIOLATION'} (${report.counters['payments'] ?? 0} payments, ${report.attacks.reduce((s, a) => s + a.attempted, 0)} attacks, ${report.timings.wallMs} ms)\n`);
      if (!report.ok) {
        failed = report.violation;
        process.stderr.write(`${report.violation?.message ?? ''}\nreplay: ${report.violation?.replay ?? ''}\n`);
        break;
      }
    }
    summary.push({ scheme: scheme.name, seeds: ran, payments, wallMs, failed });
    if (failed !== null) break;
  }
  const ok = summary.every((s) => s.failed === null);
  if (values.json) process.stdout.write(`${JSON.stringify({ ok, start, summary })}\n`);
  else for (const s of summary) process.stdout.write(`${s.scheme}: ${s.seeds} seeds, ${s.payments} payments, ${Math.round((s.payments / Math.max(1, s.wallMs)) * 1000)} payments a second, ${s.failed === null ? 'no violation' : `VIOLATION — replay: ${s.failed.replay}`}\n`);
  return ok ? 0 : 1;
}

/** Most processes `--jobs` starts. */
const JOBS_MAX = 64;

type Summary = { scheme: string; seeds: number; payments: number; wallMs: number; failed: SimReport['violation'] };

/**
 * The campaign in `jobs` processes: each runs this command on its share of consecutive seeds with
 * `--json` and without `--jobs`; their lines per seed go to stderr as they come, their summaries are
 * added up by scheme. When one stops on a violation, the others are stopped: the answer names that
 * violation and its replay (exit 1). The seeds and payments counted are those of the seeds that ran.
 */
async function inParallel(argv: readonly string[], start: number, seeds: number, jobs: number, json: boolean): Promise<number> {
  // The command's own flags but those this function sets for each process.
  const own: string[] = [];
  for (let k = 0; k < argv.length; k++) {
    const a = argv[k] as string;
    if (a === '--jobs' || a === '--seeds' || a === '--start') k++;
    else if (a !== '--json' && !/^--(jobs|seeds|start)=/.test(a)) own.push(a);
  }
  const began = Date.now();
  const children: ChildProcess[] = [];
  let stopped = false;
  const runs = Array.from({ length: jobs }, (_j, j) => {
    const from = start + Math.floor((seeds * j) / jobs);
    const to = start + Math.floor((seeds * (j + 1)) / jobs);
    const child = spawn(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), ...own, '--seeds', String(to - from), '--start', String(from), '--json'], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(child);
    let out = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    return new Promise<{ code: number | null; summary: Summary[] | null }>((done) =>
      child.on('close', (code) => {
        let summary: Summary[] | null = null;
        try {
          summary = (JSON.parse(out.trim().split('\n').at(-1) ?? '') as { summary: Summary[] }).summary;
        } catch {
          summary = null;
        }
        if (code === 1 && !stopped) {
          stopped = true;
          for (const other of children) if (other !== child && other.exitCode === null) other.kill('SIGTERM');
        }
        done({ code, summary });
      }),
    );
  });
  const results = await Promise.all(runs);
  const merged = new Map<string, Summary>();
  for (const { summary } of results) {
    for (const s of summary ?? []) {
      const m = merged.get(s.scheme) ?? { scheme: s.scheme, seeds: 0, payments: 0, wallMs: 0, failed: null };
      merged.set(s.scheme, { scheme: s.scheme, seeds: m.seeds + s.seeds, payments: m.payments + s.payments, wallMs: m.wallMs + s.wallMs, failed: m.failed ?? s.failed });
    }
  }
  const summary = [...merged.values()];
  const failed = summary.some((s) => s.failed !== null);
  // A process that ended otherwise (a crash, a bad flag, stopped by a violation elsewhere) leaves its seeds unaccounted.
  const broken = results.filter((r, j) => r.summary === null && !(stopped && children[j]?.signalCode === 'SIGTERM'));
  const elapsedMs = Date.now() - began;
  if (json) process.stdout.write(`${JSON.stringify({ ok: !failed && broken.length === 0, start, jobs, elapsedMs, summary })}\n`);
  else {
    for (const s of summary) process.stdout.write(`${s.scheme}: ${s.seeds} seeds, ${s.payments} payments, ${Math.round((s.payments / Math.max(1, s.wallMs)) * 1000)} payments a second a process, ${s.failed === null ? 'no violation' : `VIOLATION — replay: ${s.failed.replay}`}\n`);
    process.stdout.write(`${jobs} processes, ${(elapsedMs / 1000).toFixed(1)} s\n`);
  }
  if (failed) return 1;
  if (broken.length > 0) {
    process.stderr.write(`${broken.length} of ${jobs} processes ended without a summary (exit ${broken.map((r) => r.code).join(', ')})\n`);
    return broken.some((r) => r.code === 2) ? 2 : 1;
  }
  return 0;
}

/** The run's parameters for `seed`, or null after saying on stderr what is wrong with the flags. */
function seedParameters(values: SimFlags, seed: number): ReturnType<typeof simParameters> | null {
  try {
    return simParameters(values, seed);
  } catch (e) {
    process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
    return null;
  }
}

/** The campaign of a mixed population: each seed one mixed run of the schemes `name` lists (comma-separated). */
async function mixCampaign(name: string, values: SimFlags & { json?: boolean | undefined }, start: number, seeds: number): Promise<number> {
  const schemes = name.split(',').map((n) => SCHEMES.find((s) => s.name === n && s.sim !== undefined));
  const unknown = name.split(',').find((_n, k) => schemes[k] === undefined);
  if (unknown !== undefined) {
    process.stderr.write(`no simulated scheme ${JSON.stringify(unknown)}: ${SCHEMES.filter((s) => s.sim !== undefined).map((s) => s.name).join(', ')}\n`);
    return 2;
  }
  let payments = 0;
  let wallMs = 0;
  let ran = 0;
  let failed: MixReport['violation'] = null;
  for (let seed = start; seed < start + seeds; seed++) {
    const params = seedParameters(values, seed);
    if (params === null) return 2;
    const report = await runMix(schemes.filter((s) => s !== undefined), { ...params, seed });
    ran++;
    payments += report.total.counters['payments'] ?? 0;
    wallMs += report.timings.wallMs;
    process.stderr.write(`${name} seed ${seed}: ${report.ok ? 'ok' : 'VIOLATION'} (${report.schemes.map((r) => `${r.scheme} ${r.counters['payments'] ?? 0}`).join(', ')} payments, ${report.total.attacks.reduce((s, a) => s + a.attempted, 0)} attacks, ${report.timings.wallMs} ms)\n`);
    if (!report.ok) {
      failed = report.violation;
      process.stderr.write(`${report.violation?.message ?? ''}\nreplay: ${report.violation?.replay ?? ''}\n`);
      break;
    }
  }
  if (values.json === true) process.stdout.write(`${JSON.stringify({ ok: failed === null, start, summary: [{ scheme: name, seeds: ran, payments, wallMs, failed }] })}\n`);
  else process.stdout.write(`${name}: ${ran} seeds, ${payments} payments, ${Math.round((payments / Math.max(1, wallMs)) * 1000)} payments a second, ${failed === null ? 'no violation' : `VIOLATION — replay: ${failed.replay}`}\n`);
  return failed === null ? 0 : 1;
}

try {
  process.exitCode = await main(process.argv.slice(2));
} finally {
  await closeSimDatabases();
}
