/**
 * `npm run bench -- cli`: how long a `tally` command takes from the shell, verb by verb, against the
 * floor of any Node process (`node -e 0`). Each verb runs as its own process, as a user runs it:
 * the compiled build bundled in dist/bundle/ (what `tally` runs) and, for comparison, the sources through tsx
 * (TALLY_FROM_SOURCE=1, what every command paid before the build). The world is made once with the
 * CLI itself: a node in a temporary folder, an OEM, an OPS wallet with an isolated secure element
 * and 50.00 in it, and a payee; then the node is stopped, so the verbs measured run offline.
 * The runs are interleaved (one of each verb per round) so that a burst of load hits them alike.
 */
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { optional, text } from '../../core/codec.ts';
import { looseRecord } from '../../core/fields.ts';
import { quantile } from './stats.ts';
import type { BenchPlugin } from './plugin.ts';

/** A line of `tally node start --json`: the one the bench waits for names the URL. */
const nodeEvent = looseRecord({ event: text({ min: 1, max: 64 }), url: optional(text({ min: 1, max: 2048 })) });

const BIN = fileURLToPath(new URL('../../../bin/tally.mjs', import.meta.url));
const BUILD = fileURLToPath(new URL('../../../scripts/build.mjs', import.meta.url));
const PASSPHRASE = 'bench-cli-node-passphrase';

export interface CliBenchOptions {
  /** Timed runs of each verb in each form. */
  runs: number;
  /** Also time the sources through tsx. */
  fromSource: boolean;
  progress: (line: string) => void;
}

/** One verb in one form: wall times of whole processes, in ms. */
export interface CliRow {
  verb: string;
  form: 'floor' | 'compiled' | 'source';
  startsSe: boolean;
  minMs: number;
  p50Ms: number;
  maxMs: number;
  /** p50 of the CPU time (user + system) of the command and its secure element, when the system tells. */
  cpuP50Ms: number | null;
  /** p50 over the floor's p50. */
  ratio: number;
}

export interface CliReport {
  machine: { cpus: string; cores: number; memoryGiB: number; node: string; platform: string };
  date: string;
  runs: number;
  loadAverage: { start: number; end: number };
  rows: CliRow[];
  warnings: string[];
}

interface Verb {
  verb: string;
  argv: string[];
  startsSe: boolean;
}

/**
 * CPU time (user + system, ms) of this process's children that have ended, from /proc/self/stat
 * (Linux; null elsewhere). A command's CPU time is the difference around it: it counts the secure
 * element's process too (reaped by the command), and it moves less than the wall time when other
 * work shares the machine. Clock ticks of 10 ms.
 */
function childrenCpuMs(): number | null {
  try {
    const stat = readFileSync('/proc/self/stat', 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // After the command name: state is field 3, cutime field 16, cstime field 17 (proc(5)).
    return ((Number(fields[13]) + Number(fields[14])) * 1000) / CLOCK_TICKS_PER_S;
  } catch {
    return null;
  }
}

const CLOCK_TICKS_PER_S = 100;

function run(argv: readonly string[], env: NodeJS.ProcessEnv): { ms: number; cpuMs: number | null; status: number | null; stdout: string; stderr: string } {
  const cpuBefore = childrenCpuMs();
  const start = performance.now();
  const result = spawnSync(process.execPath, argv, { env, encoding: 'utf8' });
  const ms = performance.now() - start;
  const cpuAfter = childrenCpuMs();
  return { ms, cpuMs: cpuBefore === null || cpuAfter === null ? null : cpuAfter - cpuBefore, status: result.status, stdout: result.stdout, stderr: result.stderr };
}

function must(argv: readonly string[], env: NodeJS.ProcessEnv): string {
  const result = run(argv, env);
  if (result.status !== 0) throw new Error(`${argv.slice(1).join(' ')} exited with ${result.status}: ${result.stderr.trim()}`);
  return result.stdout;
}

/** Starts `tally node start` and resolves its URL and a stop function once it listens. */
async function startNode(dataDir: string, env: NodeJS.ProcessEnv): Promise<{ url: string; stop(): Promise<void> }> {
  const child = spawn(process.execPath, [BIN, 'node', 'start', '--port', '0', '--data', dataDir, '--json'], { env, stdio: ['ignore', 'pipe', 'ignore'] });
  const exited = new Promise<void>((done) => child.on('exit', () => done()));
  const url = await new Promise<string>((ready, fail) => {
    const timer = setTimeout(() => fail(new Error('node did not listen within 60 s')), 60_000);
    createInterface({ input: child.stdout }).on('line', (line) => {
      const event = nodeEvent.decode(JSON.parse(line), 'node event');
      if (event.event === 'listening' && event.url !== undefined) {
        clearTimeout(timer);
        ready(event.url);
      }
    });
    void exited.then(() => fail(new Error('node exited before listening')));
  });
  return {
    url,
    async stop() {
      child.kill('SIGINT');
      await exited;
    },
  };
}

export async function benchCli(options: CliBenchOptions): Promise<CliReport> {
  const loadStart = loadavg()[0] ?? 0;
  options.progress('building dist/ if the sources are newer');
  const build = spawnSync(process.execPath, [BUILD, '--if-stale'], { stdio: ['ignore', 'inherit', 'inherit'] });
  if (build.status !== 0) throw new Error('npm run build failed');
  const dir = await mkdtemp(join(tmpdir(), 'tally-bench-cli-'));
  const env: NodeJS.ProcessEnv = { ...process.env, TALLY_HOME: join(dir, 'home'), TALLY_NODE_PASSPHRASE: PASSPHRASE };
  delete env['TALLY_FROM_SOURCE'];
  const data = join(dir, 'data');
  try {
    options.progress('setting up: a node, an OEM, wallets alice (OPS, isolated SE, 50.00 offline) and bob');
    const node = await startNode(data, env);
    try {
      const at = ['--node', node.url];
      must([BIN, 'operator', 'oem', ...at, '--data', data], env);
      must([BIN, 'wallet', 'create', 'alice', '--scheme', 'ops', ...at], env);
      must([BIN, 'wallet', 'create', 'bob', '--scheme', 'ops', ...at], env);
      must([BIN, 'operator', 'mint', 'alice', '100.00', ...at, '--data', data], env);
      must([BIN, 'wallet', 'deposit', 'alice', '50.00'], env);
    } finally {
      await node.stop();
    }
    const verbs: Verb[] = [
      { verb: 'node -e 0', argv: ['-e', '0'], startsSe: false },
      { verb: 'tally --help', argv: [BIN, '--help'], startsSe: false },
      { verb: 'tally request bob 1.00', argv: [BIN, 'request', 'bob', '1.00'], startsSe: true },
      { verb: 'tally wallet balance alice', argv: [BIN, 'wallet', 'balance', 'alice'], startsSe: false },
    ];
    if (run([BIN, 'schemes', '--help'], env).status === 0) verbs.splice(2, 0, { verb: 'tally schemes', argv: [BIN, 'schemes'], startsSe: false });
    const forms: { form: CliRow['form']; env: NodeJS.ProcessEnv }[] = [{ form: 'compiled', env }];
    if (options.fromSource) forms.push({ form: 'source', env: { ...env, TALLY_FROM_SOURCE: '1' } });
    const samples = new Map<string, number[]>();
    const cpuSamples = new Map<string, number[]>();
    const key = (verb: Verb, form: CliRow['form']) => `${form}\u0000${verb.verb}`;
    // One untimed run of each first (file cache, the SE's first open).
    for (const f of forms) for (const v of verbs) run(v.argv, f.env);
    for (let round = 0; round < options.runs; round++) {
      options.progress(`round ${round + 1} of ${options.runs}`);
      for (const f of forms) {
        for (const v of verbs) {
          const form = v.argv[0] === '-e' ? 'floor' : f.form;
          if (form === 'floor' && f.form !== 'compiled') continue;
          const result = run(v.argv, f.env);
          if (result.status !== 0) throw new Error(`${v.verb} (${f.form}) exited with ${result.status}: ${result.stderr.trim()}`);
          if (f.form === 'compiled' && result.stderr.includes('running the sources through tsx')) throw new Error(`${v.verb} did not run the build: ${result.stderr.trim()}`);
          const list = samples.get(key(v, form)) ?? [];
          list.push(result.ms);
          samples.set(key(v, form), list);
          if (result.cpuMs !== null) cpuSamples.set(key(v, form), [...(cpuSamples.get(key(v, form)) ?? []), result.cpuMs]);
        }
      }
    }
    const floor = [...(samples.get(key(verbs[0] as Verb, 'floor')) ?? [])].sort((a, b) => a - b);
    const floorP50 = quantile(floor, 0.5);
    const rows: CliRow[] = [];
    for (const f of forms) {
      for (const v of verbs) {
        const form = v.argv[0] === '-e' ? 'floor' : f.form;
        if (form === 'floor' && f.form !== 'compiled') continue;
        const sorted = [...(samples.get(key(v, form)) ?? [])].sort((a, b) => a - b);
        const p50 = quantile(sorted, 0.5);
        const cpu = [...(cpuSamples.get(key(v, form)) ?? [])].sort((a, b) => a - b);
        const cpuP50Ms = cpu.length === sorted.length ? quantile(cpu, 0.5) : null;
        rows.push({ verb: v.verb, form, startsSe: v.startsSe, minMs: sorted[0] as number, p50Ms: p50, maxMs: sorted[sorted.length - 1] as number, cpuP50Ms, ratio: p50 / floorP50 });
      }
    }
    const warnings = rows.filter((r) => r.form !== 'floor' && r.ratio < 1).map((r) => `${r.verb} (${r.form}) ran faster than node -e 0: the machine was too noisy to trust this run`);
    const cpu = cpus()[0];
    return {
      machine: { cpus: cpu?.model ?? 'unknown', cores: cpus().length, memoryGiB: Math.round(totalmem() / 2 ** 30), node: process.version, platform: `${process.platform}-${process.arch}` },
      date: new Date().toISOString().slice(0, 10),
      runs: options.runs,
      loadAverage: { start: loadStart, end: loadavg()[0] ?? 0 },
      rows,
      warnings,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export function formatCliReport(report: CliReport): string {
  const lines = [
    `${report.date}; load average ${report.loadAverage.start.toFixed(1)} at the start, ${report.loadAverage.end.toFixed(1)} at the end`,
    '',
    `Each command as its own process, ${report.runs} timed runs; floor = node -e 0; ratio = p50 / floor p50`,
    '',
    '| command | runs | SE started | min ms | p50 ms | max ms | CPU p50 ms | ratio to floor |',
    '|---|---|---|---:|---:|---:|---:|---:|',
    ...report.rows.map(
      (r) =>
        `| ${r.verb} | ${r.form === 'source' ? 'sources (tsx)' : r.form === 'compiled' ? 'dist/bundle (compiled)' : 'floor'} | ${r.startsSe ? 'yes' : 'no'} | ${r.minMs.toFixed(0)} | ${r.p50Ms.toFixed(0)} | ${r.maxMs.toFixed(0)} | ${r.cpuP50Ms === null ? '-' : r.cpuP50Ms.toFixed(0)} | ${r.ratio.toFixed(2)}x |`,
    ),
  ];
  const compiled = new Map(report.rows.filter((r) => r.form === 'compiled').map((r) => [r.verb, r.p50Ms]));
  const source = report.rows.filter((r) => r.form === 'source');
  if (source.length > 0) {
    lines.push('', 'Saved by the build (p50, sources through tsx minus dist/)', '');
    for (const r of source) lines.push(`- ${r.verb}: ${(r.p50Ms - (compiled.get(r.verb) ?? 0)).toFixed(0)} ms (${(r.p50Ms / (compiled.get(r.verb) ?? 1)).toFixed(2)}x)`);
  }
  return lines.join('\n');
}

/** `npm run bench -- cli [--quick]`: 3 runs of each verb when quick, 10 otherwise; the harness prints the Machine line and the noise warning. */
export const cliBench: BenchPlugin<{ runs: number }, CliReport> = {
  name: 'cli',
  paper: 'Tally',
  reproduces: 'the latency of tally commands, compiled and from the sources, against node -e 0',
  parameters: { quick: { runs: 3 }, full: { runs: 10 } },
  async run(harness, parameters) {
    const report = await benchCli({ runs: parameters.runs, fromSource: true, progress: (line) => harness.progress(line) });
    const ratios = report.rows.filter((r) => r.form !== 'floor').map((r) => ({ what: `${r.verb} (${r.form}) / node -e 0`, value: r.ratio }));
    return { report, text: formatCliReport(report), ratios };
  },
};
