/**
 * `npm run fuzz -- [--seconds N] [--inputs N] [--only NAME] [--seed N] [--json] [--jsonl FILE] [--list] [--input HEX]`:
 * runs each decoder for its share of the time (or for N inputs each), prints per decoder the inputs
 * tried, inputs a second, what was accepted and rejected, and each finding with its input in hex and
 * a line that replays it. With `--jsonl FILE`, each decoder's result is also appended to FILE as one
 * JSON line as soon as that decoder is done, so a run stopped early keeps the decoders it finished.
 * Progress goes to stderr. Exits 1 on a finding, 2 on a usage error.
 */
import { appendFileSync } from 'node:fs';
import { fromHex } from '../../core/bytes.ts';
import { allTargets, closeTargets } from './registry.ts';
import { runTarget, SHOWN_BYTES_MAX, type Finding, type TargetReport } from './run.ts';
import { describeThrown, type FuzzTarget } from './target.ts';

const USAGE = `usage: npm run fuzz -- [--seconds N] [--inputs N] [--only NAME] [--seed N] [--json] [--jsonl FILE] [--list] [--input HEX]

  --seconds N   total time, shared equally by the selected decoders (default 60)
  --inputs N    inputs per decoder instead of a time (the CI pass uses this)
  --only NAME   only the decoders whose name starts with NAME (a group such as http, a scheme's
                messages such as message/ops, or one decoder's full name)
  --seed N      the seed of the inputs (default: from the clock, printed)
  --json        one JSON report on stdout
  --jsonl FILE  also append one JSON line per decoder to FILE as soon as that decoder is done
  --list        list the decoders and exit
  --input HEX   feed one input (hex) to the decoder --only names, and say what became of it`;

interface Options {
  seconds: number;
  inputs: number | undefined;
  only: string | undefined;
  seed: number;
  json: boolean;
  jsonl: string | undefined;
  list: boolean;
  input: string | undefined;
}

function parseArgs(argv: readonly string[]): Options | string {
  const options: Options = { seconds: 60, inputs: undefined, only: undefined, seed: Date.now() % 2 ** 31, json: false, jsonl: undefined, list: false, input: undefined };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${arg} takes a value`);
      return v;
    };
    const count = (what: string) => {
      const v = Number(value());
      if (!Number.isSafeInteger(v) || v < 0) throw new Error(`${what} must be a whole number`);
      return v;
    };
    try {
      if (arg === '--seconds') options.seconds = count('--seconds');
      else if (arg === '--inputs') options.inputs = count('--inputs');
      else if (arg === '--only') options.only = value();
      else if (arg === '--seed') options.seed = count('--seed');
      else if (arg === '--json') options.json = true;
      else if (arg === '--jsonl') options.jsonl = value();
      else if (arg === '--list') options.list = true;
      else if (arg === '--input') options.input = value();
      else if (arg === '--help' || arg === '-h') return USAGE;
      else return `unknown option ${arg}\n${USAGE}`;
    } catch (e) {
      return `${e instanceof Error ? e.message : String(e)}\n${USAGE}`;
    }
  }
  return options;
}

/** The line that replays a finding: its input, or (for one too long to show) the seed and count that draw it again. */
function replayLine(finding: Finding, seed: number): string {
  if (finding.inputBytes > SHOWN_BYTES_MAX) return `npm run fuzz -- --only '${finding.target}' --seed ${seed} --inputs ${finding.index}   (the input is over ${SHOWN_BYTES_MAX} bytes: shown cut above)`;
  return `npm run fuzz -- --only '${finding.target}' --input ${finding.inputHex === '' ? "''" : finding.inputHex}`;
}

/** One decoder's result as the JSON line `--jsonl` appends (no newline). */
function reportLine(r: TargetReport, seed: number): string {
  return JSON.stringify({
    decoder: r.target,
    group: r.group,
    seed,
    inputs: r.tried,
    accepted: r.accepted,
    refused: r.rejected,
    seconds: Math.round(r.seconds * 1000) / 1000,
    inputsPerSecond: r.seconds > 0 ? Math.round(r.tried / r.seconds) : 0,
    slowestMs: Math.round(r.slowestMs * 10) / 10,
    findings: r.findingCount,
    found: r.findings.map((f) => ({ kind: f.kind, message: f.message, inputBytes: f.inputBytes, index: f.index, inputHex: f.inputHex, replay: replayLine(f, seed) })),
  });
}

function printReport(reports: readonly TargetReport[], seed: number): void {
  const width = Math.max(...reports.map((r) => r.target.length), 7);
  console.log(`seed ${seed}`);
  console.log(`${'decoder'.padEnd(width)}  ${'inputs'.padStart(10)}  ${'inputs/s'.padStart(9)}  ${'accepted'.padStart(9)}  ${'rejected'.padStart(10)}  ${'slowest'.padStart(9)}  findings`);
  for (const r of reports) {
    const rate = r.seconds > 0 ? Math.round(r.tried / r.seconds) : 0;
    console.log(`${r.target.padEnd(width)}  ${String(r.tried).padStart(10)}  ${String(rate).padStart(9)}  ${String(r.accepted).padStart(9)}  ${String(r.rejected).padStart(10)}  ${`${r.slowestMs.toFixed(1)} ms`.padStart(9)}  ${r.findingCount}`);
  }
  for (const r of reports) {
    for (const f of r.findings) {
      console.log(`\nFINDING ${r.target} (${f.kind} input of ${f.inputBytes} bytes): ${f.message}`);
      console.log(`  input: ${f.inputHex === '' ? '(empty)' : f.inputHex}`);
      console.log(`  replay: ${replayLine(f, seed)}`);
    }
  }
}

async function replay(target: FuzzTarget, hex: string): Promise<number> {
  await target.open?.();
  try {
    const outcome = await target.feed(fromHex(hex));
    console.log(`${target.name}: ${outcome}`);
    return 0;
  } catch (e) {
    console.log(`${target.name}: FINDING ${describeThrown(e)}`);
    if (e instanceof Error && e.cause !== undefined) console.log(e.cause);
    return 1;
  } finally {
    await target.close?.();
  }
}

async function main(): Promise<number> {
  const parsed = parseArgs(process.argv.slice(2));
  if (typeof parsed === 'string') {
    const help = parsed === USAGE;
    (help ? console.log : console.error)(parsed);
    return help ? 0 : 2;
  }
  try {
    return await fuzz(parsed);
  } finally {
    await closeTargets();
  }
}

async function fuzz(parsed: Options): Promise<number> {
  const targets = await allTargets(parsed.only);
  if (targets.length === 0) {
    console.error(`no decoder is named ${parsed.only}: see --list`);
    return 2;
  }
  if (parsed.list) {
    for (const t of targets) console.log(t.name);
    return 0;
  }
  if (parsed.input !== undefined) {
    // A decoder's full name picks it even when it is also the prefix of others' (message/ops/payment, message/ops/payment-request).
    const named = targets.filter((t) => t.name === parsed.only);
    const one = named.length === 1 ? named : targets;
    if (one.length !== 1) {
      console.error(`--input needs --only to name one decoder; ${one.length} match`);
      return 2;
    }
    return replay(one[0] as FuzzTarget, parsed.input);
  }
  // A path that cannot be written fails now, not after the first decoder's run.
  if (parsed.jsonl !== undefined) {
    try {
      appendFileSync(parsed.jsonl, '');
    } catch (e) {
      console.error(`--jsonl ${parsed.jsonl}: ${e instanceof Error ? e.message : String(e)}`);
      return 2;
    }
  }
  const share = parsed.inputs === undefined ? parsed.seconds / targets.length : undefined;
  const reports: TargetReport[] = [];
  for (const [i, target] of targets.entries()) {
    const label = `[${i + 1}/${targets.length}] ${target.name}`;
    process.stderr.write(`${label} ...\n`);
    await target.open?.();
    try {
      const report = await runTarget(target, {
        seed: parsed.seed,
        inputs: parsed.inputs,
        seconds: share,
        progress: (tried) => process.stderr.isTTY && process.stderr.write(`\r${label} ${tried} inputs`),
      });
      reports.push(report);
      if (parsed.jsonl !== undefined) appendFileSync(parsed.jsonl, `${reportLine(report, parsed.seed)}\n`);
    } finally {
      await target.close?.();
    }
    if (process.stderr.isTTY) process.stderr.write('\n');
  }
  if (parsed.json) {
    const rows = reports.map((r) => ({ ...r, inputsPerSecond: r.seconds > 0 ? Math.round(r.tried / r.seconds) : 0 }));
    console.log(JSON.stringify({ seed: parsed.seed, decoders: rows, findings: reports.reduce((n, r) => n + r.findingCount, 0) }, null, 2));
  } else printReport(reports, parsed.seed);
  return reports.some((r) => r.findingCount > 0) ? 1 : 0;
}

process.exitCode = await main();
