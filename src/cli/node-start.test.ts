import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { hostname } from 'node:os';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, test } from 'node:test';
import { LOCK_DIR, processStartTime } from '../issuer/data-lock.ts';
import { seedPgliteCluster } from '../issuer/db/test-pglite-cluster.ts';
import { SCHEMES } from '../schemes/index.ts';
import { BIN } from './e2e-process.ts';

/**
 * What these nodes serve: the registry's first scheme that needs no chain, so no anvil starts (the
 * lock, the port and the lifecycle are the same for every scheme; the chain's start is
 * node-start-chain.test.ts's).
 */
const plain = (await Promise.all(SCHEMES.map(async (scheme) => ((await scheme.node()).usesChain === true ? [] : [scheme.name])))).flat();
const SERVED = ['--schemes', plain[0] ?? assert.fail('the registry has no scheme without a chain')];

const dirs: string[] = [];
const children = new Set<ReturnType<typeof spawn>>();
after(async () => {
  // A test that failed half-way leaves its node running: end it, or this file would never end.
  for (const child of children) child.kill('SIGKILL');
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

/** Keeps a child to kill when the file ends. */
function track(child: ReturnType<typeof spawn>): void {
  children.add(child);
  child.on('exit', () => children.delete(child));
}

interface Started {
  events: Array<Record<string, unknown>>;
  url: string;
  pid: number;
  stop(): Promise<number | null>;
}

async function start(dataDir: string, port = 0): Promise<Started> {
  const child = spawn(process.execPath, [BIN, 'node', 'start', '--port', String(port), '--data', dataDir, ...SERVED, '--json'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, TALLY_NODE_PASSPHRASE: 'node start test' },
  });
  track(child);
  const exited = new Promise<number | null>((done) => child.on('exit', (code) => done(code)));
  const events: Array<Record<string, unknown>> = [];
  const url = await new Promise<string>((ready, fail) => {
    // As long as the other process tests allow: a loaded machine starts a node slowly.
    const timer = setTimeout(() => fail(new Error('node did not start within 60 s')), 60_000);
    createInterface({ input: child.stdout }).on('line', (line) => {
      const event = JSON.parse(line) as Record<string, unknown>;
      events.push(event);
      if (event['event'] === 'listening') {
        clearTimeout(timer);
        ready(String(event['url']));
      }
    });
    void exited.then((code) => fail(new Error(`node exited with ${code} before listening`)));
  });
  return {
    events,
    url,
    pid: child.pid as number,
    async stop() {
      child.kill('SIGINT');
      return exited;
    },
  };
}

test('`tally node start` creates a node once, serves over a real socket, stops cleanly on SIGINT, and reuses its data', async () => {
  const dataDir = join(await mkdtemp(join(tmpdir(), 'tally-cli-')), 'data');
  dirs.push(dataDir);
  const first = await start(dataDir);
  assert.ok(first.events.some((e) => e['event'] === 'created'), 'the first start reports the operator token');
  const health = await fetch(`${first.url}/v1/health`);
  assert.equal(health.status, 200);
  const info = (await (await fetch(`${first.url}/v1/info`)).json()) as { currency: { code: string }; certificates: { root: string } };
  assert.equal(info.currency.code, 'EUR');
  assert.equal(await first.stop(), 0);
  assert.equal((await stat(join(dataDir, 'identity', 'operator-token'))).mode & 0o777, 0o600);

  const second = await start(dataDir);
  assert.ok(!second.events.some((e) => e['event'] === 'created'), 'a later start creates nothing');
  const again = (await (await fetch(`${second.url}/v1/info`)).json()) as { certificates: { root: string } };
  assert.equal(again.certificates.root, info.certificates.root);
  assert.equal(await second.stop(), 0);
});

/** How a `tally node start` that should not run ended: its exit code (null: killed after 60 s) and output. */
interface Ended {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs `tally node start` expecting it to end by itself; kills it after 60 s (then code is null). */
function runToEnd(dataDir: string, port: number): Promise<Ended> {
  const started = Date.now();
  const child = spawn(process.execPath, [BIN, 'node', 'start', '--port', String(port), '--data', dataDir, ...SERVED], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, TALLY_NODE_PASSPHRASE: 'node start test' },
  });
  track(child);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  return new Promise((done) =>
    child.on('exit', (code) => {
      clearTimeout(timer);
      done({ code, stdout, stderr, ms: Date.now() - started });
    }),
  );
}

/** The lines of stderr that are not structured log lines. */
const messages = (stderr: string) => stderr.split('\n').filter((line) => line !== '' && !line.startsWith('{'));

/**
 * A new data folder. Unless a test is about a first start on an empty one (`empty`), it holds a
 * copy of the tests' new PGlite cluster (test-pglite-cluster.ts): the lock and the port these tests
 * check do not depend on who ran initdb, and the first test of this file and `empty` ones leave it
 * to the node, as an operator's first start does.
 */
async function newDataDir(options: { empty?: boolean } = {}): Promise<string> {
  const dataDir = join(await mkdtemp(join(tmpdir(), 'tally-cli-')), 'data');
  dirs.push(dataDir);
  if (options.empty !== true) await seedPgliteCluster(dataDir);
  return dataDir;
}

test('a second `tally node start` on a data folder in use exits 1 naming the folder and the running node; the folder is free again after the first stops', async () => {
  const dataDir = await newDataDir();
  const first = await start(dataDir);
  const second = await runToEnd(dataDir, 0);
  assert.equal(second.code, 1, `the second node ran: ${second.stdout}${second.stderr}`);
  const lines = messages(second.stderr);
  assert.equal(lines.length, 1, second.stderr);
  assert.match(lines[0] as string, /DATA_FOLDER_LOCKED/);
  assert.ok((lines[0] as string).includes(dataDir), lines[0]);
  assert.ok((lines[0] as string).includes(`pid ${first.pid}`), lines[0]);
  // The first node is untouched and still serves.
  assert.equal((await fetch(`${first.url}/v1/health`)).status, 200);
  assert.equal(await first.stop(), 0);
  const third = await start(dataDir);
  assert.equal((await fetch(`${third.url}/v1/health`)).status, 200);
  assert.equal(await third.stop(), 0);
});

test('two `tally node start` launched at once on a new data folder: exactly one runs', async () => {
  const dataDir = await newDataDir({ empty: true });
  const attempts = [start(dataDir), start(dataDir)];
  const outcomes = await Promise.allSettled(attempts);
  const running = outcomes.filter((o): o is PromiseFulfilledResult<Started> => o.status === 'fulfilled').map((o) => o.value);
  assert.equal(running.length, 1, `${running.length} nodes run on one folder`);
  const refused = outcomes.find((o) => o.status === 'rejected');
  assert.match(String(refused?.reason), /exited with 1 before listening/);
  for (const node of running) assert.equal(await node.stop(), 0);
});

test('a lock left by a dead node, or by a pid now reused by another process, is taken over; one of a live process is not', async () => {
  const dataDir = await newDataDir();
  const first = await start(dataDir);
  assert.equal(await first.stop(), 0);
  // A node killed outright leaves its lock behind: the next start takes it over.
  const killed = await start(dataDir);
  process.kill(killed.pid, 'SIGKILL');
  await killed.stop();
  const afterKill = await start(dataDir);
  assert.equal(await afterKill.stop(), 0);

  const lockDir = join(dataDir, LOCK_DIR);
  const bootId = await readFile('/proc/sys/kernel/random/boot_id', 'utf8').then((t) => t.trim(), () => null);
  const ownStart = await processStartTime(process.pid);
  const plant = async (startTime: string | null) => {
    await rm(lockDir, { recursive: true, force: true });
    await mkdir(lockDir, { recursive: true });
    await writeFile(join(lockDir, '7.json'), JSON.stringify({ pid: process.pid, startTime, bootId, host: hostname(), since: new Date().toISOString() }));
  };
  if (ownStart !== null) {
    // This test's own pid, but a start time it does not have: the pid was reused since the record was made.
    await plant(String(BigInt(ownStart) + 1n));
    const reused = await start(dataDir);
    assert.deepEqual((await readdir(lockDir)).filter((n) => n.endsWith('.json')), ['8.json'], 'the stale record was taken over and removed');
    assert.equal(await reused.stop(), 0);
  }
  // A live process (this test) with its true start time: the folder is in use.
  await plant(ownStart);
  const refused = await runToEnd(dataDir, 0);
  assert.equal(refused.code, 1, refused.stdout + refused.stderr);
  assert.match(refused.stderr, new RegExp(`in use by another tally node \\(pid ${process.pid} `));
});

test('`tally node start` on a port in use exits 1 at once with one line saying so, and leaves the data folder free', async () => {
  const dataDir = await newDataDir();
  const taken = createServer();
  await new Promise<void>((ready) => taken.listen(0, '127.0.0.1', ready));
  const port = (taken.address() as { port: number }).port;
  try {
    const ended = await runToEnd(dataDir, port);
    assert.equal(ended.code, 1, `exit ${ended.code} after ${ended.ms} ms: ${ended.stderr}`);
    const lines = messages(ended.stderr);
    assert.equal(lines.length, 1, ended.stderr);
    assert.match(lines[0] as string, new RegExp(`^tally: cannot listen on 127\\.0\\.0\\.1:${port}: the address is already in use .*\\[LISTEN_FAILED\\]$`));
  } finally {
    await new Promise((closed) => taken.close(closed));
  }
  // The failed start let go of the folder and closed its database: the next start runs.
  const next = await start(dataDir);
  assert.equal((await fetch(`${next.url}/v1/health`)).status, 200);
  assert.equal(await next.stop(), 0);
});
