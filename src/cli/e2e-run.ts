/**
 * For the command-line end-to-end tests: one `tally` command as a user runs it (a separate
 * process), what it printed, and the checks every such test makes of it: it succeeded and said
 * what as its last `--json` line, or it was refused with a code, on stdout as JSON and on stderr
 * as one line; and a `tally receive --listen 0` that answers its port once it listens.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { BIN, track, type Json } from './e2e-process.ts';

/** How one `tally` process ended. */
export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The environment a test's `tally` processes run with (read at each run, so a test may add to it later). */
export type TallyEnv = Record<string, string | undefined>;

/** The last line of a `--json` output. */
export function lastJson(stdout: string): Json {
  return JSON.parse(stdout.trim().split('\n').pop() as string) as Json;
}

/** Runs `tally ARGS` with `env` and answers its exit code and output. */
export function runTally(args: readonly string[], env: TallyEnv): Promise<Run> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
    track(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('exit', (code) => done({ code, stdout, stderr }));
  });
}

/** A running `tally receive NAME AMOUNT --listen 0 --json`: its port, its output lines so far and its exit code. */
export interface Listening {
  port: number;
  lines: Json[];
  exit: Promise<number | null>;
}

/** The commands of one test, all with `env`. */
export function tallyCommands(env: TallyEnv) {
  const run = (args: readonly string[]): Promise<Run> => runTally(args, env);
  return {
    run,
    /** Runs with --json, expects exit 0, answers the last JSON line. */
    async ok(...args: string[]): Promise<Json> {
      const r = await run([...args, '--json']);
      assert.equal(r.code, 0, `tally ${args.join(' ')} failed: ${r.stderr}${r.stdout}`);
      return lastJson(r.stdout);
    },
    /**
     * Runs with --json, expects exit 1 with the error `code` on stdout and one line ending in
     * `[code]` on stderr; answers the error and the run.
     */
    async refusedRun(code: string, ...args: string[]): Promise<{ error: Json; run: Run }> {
      const r = await run([...args, '--json']);
      assert.equal(r.code, 1, `tally ${args.join(' ')} should fail with ${code}: ${r.stdout}${r.stderr}`);
      const error = (lastJson(r.stdout) as { error: Json }).error;
      assert.equal(error['code'], code, JSON.stringify(error));
      assert.match(r.stderr, new RegExp(`^tally: .+ \\[${code}\\]\\n$`), `one clear error line on stderr: ${r.stderr}`);
      return { error, run: r };
    },
    /** Starts `tally receive NAME AMOUNT --listen 0 --json` (with `more` options) and answers once it listens. */
    async listen(name: string, amount: string, ...more: string[]): Promise<Listening> {
      const child = spawn(process.execPath, [BIN, 'receive', name, amount, '--listen', '0', ...more, '--json'], { stdio: ['ignore', 'pipe', 'pipe'], env });
      track(child);
      const exit = new Promise<number | null>((done) => child.on('exit', (code) => done(code)));
      const lines: Json[] = [];
      const port = await new Promise<number>((ready, fail) => {
        createInterface({ input: child.stdout }).on('line', (line) => {
          const event = JSON.parse(line) as Json;
          lines.push(event);
          if (event['event'] === 'listening') ready(Number(event['port']));
        });
        void exit.then((code) => fail(new Error(`tally receive ${name} exited with ${code} before listening`)));
      });
      return { port, lines, exit };
    },
  };
}
