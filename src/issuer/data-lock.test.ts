import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { isTallyError } from '../core/errors.ts';
import { LOCK_DIR, lockDataFolder, processStartTime, type DataLock } from './data-lock.ts';

const dirs: string[] = [];
after(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

async function folder(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tally-lock-'));
  dirs.push(dir);
  return dir;
}

/** Of `n` attempts at once, the ones that got the lock, and the refusals. */
async function race(dir: string, n: number): Promise<{ won: DataLock[]; refused: unknown[] }> {
  const outcomes = await Promise.allSettled(Array.from({ length: n }, () => lockDataFolder(dir)));
  const won = outcomes.filter((o): o is PromiseFulfilledResult<DataLock> => o.status === 'fulfilled').map((o) => o.value);
  const refused = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected').map((o) => o.reason as unknown);
  return { won, refused };
}

test('of 20 attempts at once on a free folder exactly one holds the lock; after release the next one gets it', async () => {
  const dir = await folder();
  const first = await race(dir, 20);
  assert.equal(first.won.length, 1);
  for (const e of first.refused) assert.ok(isTallyError(e, 'DATA_FOLDER_LOCKED'), String(e));
  await first.won[0]?.release();
  const second = await lockDataFolder(dir);
  await second.release();
  assert.deepEqual((await readdir(join(dir, LOCK_DIR))).filter((n) => !n.startsWith('.')).length, 1, 'one record is left: the free one');
});

test('of 20 attempts at once on a lock left by a dead process exactly one takes it over', async () => {
  const dir = await folder();
  const child = spawn(process.execPath, ['-e', '']);
  const pid = child.pid as number;
  await new Promise((exited) => child.on('exit', exited));
  await mkdir(join(dir, LOCK_DIR), { recursive: true });
  await writeFile(join(dir, LOCK_DIR, '3.json'), JSON.stringify({ pid, startTime: null, bootId: null, host: hostname(), since: new Date(0).toISOString() }));
  const { won, refused } = await race(dir, 20);
  assert.equal(won.length, 1);
  for (const e of refused) assert.ok(isTallyError(e, 'DATA_FOLDER_LOCKED'), String(e));
  assert.deepEqual((await readdir(join(dir, LOCK_DIR))).filter((n) => n.endsWith('.json')), ['4.json'], 'the dead record is gone, the new holder is the next number');
  await won[0]?.release();
});

test('a lock naming another host is respected', async () => {
  const dir = await folder();
  await mkdir(join(dir, LOCK_DIR), { recursive: true });
  await writeFile(join(dir, LOCK_DIR, '1.json'), JSON.stringify({ pid: 1, startTime: null, bootId: null, host: `${hostname()}-elsewhere`, since: new Date(0).toISOString() }));
  await assert.rejects(lockDataFolder(dir), (e) => isTallyError(e, 'DATA_FOLDER_LOCKED') && e.message.includes(`${hostname()}-elsewhere`) && e.message.includes(dir));
});

test('a lock whose holder is a zombie (killed, not yet reaped) is taken over', async () => {
  const dir = await folder();
  // `sleep 0.2` ends after its parent shell has exec'd into `sleep 5` (a child that ended before the
  // exec could be reaped by the shell), which never reaps it: a zombie until the parent ends.
  const parent = spawn('sh', ['-c', 'sleep 0.2 & echo $!; exec sleep 5'], { stdio: ['ignore', 'pipe', 'ignore'] });
  try {
    const pid = Number(await new Promise<string>((got) => parent.stdout.once('data', (d: Buffer) => got(d.toString().trim()))));
    let state = '';
    for (let i = 0; i < 150 && state !== 'Z'; i++) {
      await new Promise((r) => setTimeout(r, 20));
      const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
      state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0] ?? '';
    }
    assert.equal(state, 'Z', 'the child did not become a zombie');
    await mkdir(join(dir, LOCK_DIR), { recursive: true });
    await writeFile(join(dir, LOCK_DIR, '1.json'), JSON.stringify({ pid, startTime: await processStartTime(pid), bootId: null, host: hostname(), since: new Date(0).toISOString() }));
    const lock = await lockDataFolder(dir);
    await lock.release();
  } finally {
    parent.kill('SIGKILL');
  }
});
