/**
 * For the command-line end-to-end tests: the `tally` binary, the child processes they start (all
 * killed when the test file ends, or the runner would wait for them) and an issuer node process
 * that answers once it listens.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { TEST_DATABASE_URL_VARIABLE } from '../issuer/db/test-databases.ts';
import { seedPgliteCluster } from '../issuer/db/test-pglite-cluster.ts';
import { createTestDatabases, type TestShardDatabases } from '../issuer/shards/test-shards.ts';

/** The `tally` entry point. */
export const BIN = fileURLToPath(new URL('../../bin/tally.mjs', import.meta.url));

// `tally` runs dist/: build it first when the sources are newer (a test file run on its own).
const build = spawnSync(process.execPath, [fileURLToPath(new URL('../../scripts/build.mjs', import.meta.url)), '--if-stale'], { stdio: 'inherit' });
if (build.status !== 0) throw new Error(`npm run build failed (exit ${build.status ?? build.signal})`);

/** A line of `--json` output. */
export type Json = Record<string, unknown>;

const children = new Set<ReturnType<typeof spawn>>();

/** Keeps a child to kill at the end. */
export function track(child: ReturnType<typeof spawn>): void {
  children.add(child);
  child.on('exit', () => children.delete(child));
}

/** Kills every child still running (call from the test file's `after`). */
export function killChildren(): void {
  for (const child of children) child.kill('SIGKILL');
}

const databases: TestShardDatabases[] = [];

/**
 * `--database-url` of a new PostgreSQL database of its own on the test server (TEST_DATABASE_URL)
 * for a node, or no argument (its embedded database) when no server is set. A node on the
 * server costs a third to a fifth of the CPU of one on its embedded database (whose files are
 * written through PGlite's file system layer); the tests of the embedded database's own
 * behaviour (its folder, a restart on it, a copied folder) keep it. Drop them with
 * dropNodeDatabases() in the file's `after`.
 */
export async function nodeDatabaseArgs(): Promise<string[]> {
  const url = process.env[TEST_DATABASE_URL_VARIABLE];
  if (url === undefined || url === '') return [];
  const made = await createTestDatabases(url, 1);
  databases.push(made);
  return ['--database-url', made.urls[0] as string];
}

/** Drops the databases nodeDatabaseArgs made (connections and all): call it after killChildren(). */
export async function dropNodeDatabases(): Promise<void> {
  for (const made of databases.splice(0)) await made.drop();
}

/** A running `tally node start`. */
export interface NodeProcess {
  url: string;
  port: number;
  /** SIGINT, then its exit code. */
  stop(): Promise<number | null>;
}

/**
 * Starts `tally node start` on `port` (0: any) with `dataDir` and waits until it listens. A new
 * data folder gets a copy of the tests' new PGlite cluster first (test-pglite-cluster.ts; the
 * first start as an operator runs it, initdb included, is node-start.test.ts's).
 */
export async function startNode(dataDir: string, port: number, options: { passphrase: string; args?: readonly string[] }): Promise<NodeProcess> {
  if (!(options.args ?? []).includes('--database-url')) await seedPgliteCluster(dataDir);
  const child = spawn(process.execPath, [BIN, 'node', 'start', '--port', String(port), '--data', dataDir, ...(options.args ?? []), '--json'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, TALLY_NODE_PASSPHRASE: options.passphrase },
  });
  track(child);
  // The last of what it said on stderr, for the error when it exits before listening.
  let said = '';
  child.stderr.on('data', (chunk: Buffer) => {
    said = (said + chunk.toString('utf8')).slice(-4000);
  });
  const exited = new Promise<number | null>((done) => child.on('exit', (code) => done(code)));
  const url = await new Promise<string>((ready, fail) => {
    const timer = setTimeout(() => fail(new Error('node did not start within 60 s')), 60_000);
    createInterface({ input: child.stdout }).on('line', (line) => {
      const event = JSON.parse(line) as Json;
      if (event['event'] === 'listening') {
        clearTimeout(timer);
        ready(String(event['url']));
      }
    });
    void exited.then((code) => fail(new Error(`node exited with ${code} before listening: ${said.trim()}`)));
  });
  return {
    url,
    port: Number(new URL(url).port),
    stop() {
      child.kill('SIGINT');
      return exited;
    },
  };
}

/** What a finished `tally` process printed. */
export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * `tally` commands run as processes with `env`: `run` (any exit), `ok` (exit 0, its last `--json`
 * line), `refused` (exit 1 with `code` and one error line on stderr: the error object), `listen` (a
 * `receive` waiting for a payer, its port and its later exit).
 */
export function cliOf(env: Record<string, string | undefined>) {
  const run = (args: readonly string[]): Promise<CliRun> =>
    new Promise((done) => {
      const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
      track(child);
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      child.on('exit', (code) => done({ code, stdout, stderr }));
    });
  const lastJson = (stdout: string): Json => JSON.parse(stdout.trim().split('\n').pop() as string) as Json;
  const ok = async (...args: string[]): Promise<Json> => {
    const r = await run([...args, '--json']);
    if (r.code !== 0) throw new Error(`tally ${args.join(' ')} failed (exit ${r.code}): ${r.stderr}${r.stdout}`);
    return lastJson(r.stdout);
  };
  const refused = async (code: string, args: readonly string[]): Promise<Json> => {
    const r = await run([...args, '--json']);
    if (r.code !== 1) throw new Error(`tally ${args.join(' ')} should fail with ${code}, exit ${r.code}: ${r.stdout}${r.stderr}`);
    const error = (lastJson(r.stdout) as { error: Json }).error;
    if (error['code'] !== code) throw new Error(`tally ${args.join(' ')} failed with ${JSON.stringify(error)}, not ${code}`);
    if (!new RegExp(`^tally: .+ \\[${code}\\]\\n$`).test(r.stderr)) throw new Error(`tally ${args.join(' ')}: expected one clear error line on stderr, got ${JSON.stringify(r.stderr)}`);
    return error;
  };
  const listen = async (name: string, amount: string, timeoutSeconds = 20) => {
    const child = spawn(process.execPath, [BIN, 'receive', name, amount, '--listen', '0', '--timeout', String(timeoutSeconds), '--json'], { stdio: ['ignore', 'pipe', 'pipe'], env });
    track(child);
    const exit = new Promise<number | null>((done) => child.on('exit', (code) => done(code)));
    const lines: Json[] = [];
    const port = await new Promise<number>((ready, fail) => {
      void exit.then((code) => fail(new Error(`receive exited with ${code} before listening`)));
      createInterface({ input: child.stdout }).on('line', (line) => {
        const event = JSON.parse(line) as Json;
        lines.push(event);
        if (event['event'] === 'listening') ready(Number(event['port']));
      });
    });
    return { port, lines, exit };
  };
  return { run, ok, refused, listen };
}
