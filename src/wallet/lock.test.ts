/**
 * The wallet lock across real processes: many processes racing for one stale lock, exactly one
 * wins; a lock whose pid now belongs to another process (its start time differs) is taken over,
 * while a lock of a live holder is not.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, test } from 'node:test';
import { isTallyError } from '../core/errors.ts';
import { lockWallet, walletPaths } from './home.ts';

const TSX_LOADER = import.meta.resolve('tsx');
const CONTENDER = new URL('./lock-contender.ts', import.meta.url).pathname;
const dirs: string[] = [];
const children: ReturnType<typeof spawn>[] = [];
after(async () => {
  for (const child of children) child.kill('SIGKILL');
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

async function folder(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tally-lock-'));
  dirs.push(dir);
  return dir;
}

/** This process's start time, field 22 of /proc/self/stat. */
async function ownStartTime(): Promise<string> {
  const stat = await readFile('/proc/self/stat', 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] as string;
}

/** The pid of a process that has exited. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '0'], { stdio: 'ignore' });
  await new Promise((done) => child.on('exit', done));
  assert.ok(child.pid !== undefined);
  return child.pid;
}

test('many processes racing for one stale lock: exactly one wins, the others are WALLET_BUSY', { timeout: 120_000 }, async () => {
  for (const [round, stale] of [
    ['dead pid', async () => JSON.stringify({ pid: await deadPid(), start: '1', nonce: 'old' })],
    ['reused pid', async () => JSON.stringify({ pid: process.pid, start: '1', nonce: 'old' })],
  ] as const) {
    const dir = await folder();
    await writeFile(walletPaths(dir).lock, await stale());
    const contenders = Array.from({ length: 8 }, () => {
      const child = spawn(process.execPath, ['--import', TSX_LOADER, CONTENDER, dir], { stdio: ['pipe', 'pipe', 'inherit'] });
      children.push(child);
      const lines = createInterface({ input: child.stdout });
      const ready = new Promise<void>((done) => lines.once('line', () => done()));
      const answer = ready.then(() => new Promise<string>((done) => lines.once('line', done)));
      return { child, ready, answer };
    });
    await Promise.all(contenders.map((c) => c.ready));
    for (const c of contenders) c.child.stdin.write('go\n');
    const answers = await Promise.all(contenders.map((c) => c.answer));
    assert.deepEqual(answers.filter((a) => a !== 'won' && a !== 'busy'), [], `${round}: every contender answered`);
    assert.equal(answers.filter((a) => a === 'won').length, 1, `${round}: exactly one winner among ${answers.join(', ')}`);
    for (const c of contenders) c.child.stdin.end();
    await Promise.all(contenders.map((c) => new Promise((done) => (c.child.exitCode !== null ? done(null) : c.child.on('exit', done)))));
    assert.deepEqual(await readdir(dir), [], `${round}: the winner freed the lock; no takeover marker or temp file is left`);
  }
});

test('a lock whose pid is alive but belongs to another process is taken over; a live holder\'s is not', async () => {
  const dir = await folder();
  const paths = walletPaths(dir);
  const start = await ownStartTime();
  assert.match(start, /^[0-9]+$/);
  // This pid is alive, but the process that wrote the lock started at another time: the pid was reused.
  await writeFile(paths.lock, JSON.stringify({ pid: process.pid, start: String(BigInt(start) + 7n), nonce: 'reused' }));
  const unlock = await lockWallet(paths, 'w');
  const held = JSON.parse(await readFile(paths.lock, 'utf8')) as { pid: number; start: string };
  assert.deepEqual([held.pid, held.start], [process.pid, start]);
  // A live holder (this very process, same start time) keeps it.
  await assert.rejects(lockWallet(paths, 'w'), (e: unknown) => isTallyError(e, 'WALLET_BUSY') && e.details.pid === process.pid);
  await unlock();
  await assert.rejects(readFile(paths.lock), /ENOENT/);
  // Freed: taken again at once, and no takeover markers or temp files are left behind.
  const again = await lockWallet(paths, 'w');
  await again();
  assert.deepEqual(await readdir(dir), []);
});
