/**
 * One running node per data folder. Two nodes on one folder would each keep their own view of the
 * embedded database (and of a first start's identity), and one would lose acknowledged writes.
 *
 * The lock is a numbered series of records in `<data>/lock/`: `<n>.json` names a holder (pid, its
 * start time from /proc, host) or says the folder is free. The highest number is the lock's state.
 * Taking the lock is creating the next number with link(), which fails when the number exists, so
 * of several processes that find the same record free or its holder dead, exactly one wins. A
 * process whose view was stale (its number was removed and made again) finds a higher number
 * after its link and backs off. Numbers only grow: lower ones are removed only after a higher one
 * exists, so the highest is never lost.
 */
import { randomBytes } from 'node:crypto';
import { link, mkdir, readdir, readFile, unlink, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { TallyError } from '../core/errors.ts';

/** The folder of lock records inside a data folder. */
export const LOCK_DIR = 'lock';
/** Rounds of contention before giving up (each round another process changed the lock). */
const ACQUIRE_ROUNDS_MAX = 50;

/** A lock record: who holds the folder, or that nobody does. */
export interface LockRecord {
  readonly pid: number;
  /** The holder's start time in clock ticks since boot (/proc/<pid>/stat field 22); null where unknown. */
  readonly startTime: string | null;
  /** The boot the start time counts from (/proc/sys/kernel/random/boot_id); null where unknown. */
  readonly bootId: string | null;
  readonly host: string;
  readonly since: string;
  /** True for the record a holder leaves when it lets go. */
  readonly free?: boolean | undefined;
}

/** A held data-folder lock. */
export interface DataLock {
  /** Lets go of the folder; a second call does nothing. */
  release(): Promise<void>;
}

const RECORD_NAME = /^([1-9][0-9]{0,15})\.json$/;

function isFsError(e: unknown, code: string): boolean {
  return e instanceof Error && 'code' in e && e.code === code;
}

async function readText(path: string): Promise<string | null> {
  try {
    return (await readFile(path, 'utf8')).trim();
  } catch {
    return null;
  }
}

/** Fields 3 onwards of /proc/<pid>/stat (fields[0] is the state), or null where /proc cannot tell. */
async function procStat(pid: number): Promise<string[] | null> {
  const stat = await readText(`/proc/${pid}/stat`);
  if (stat === null) return null;
  // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so count from the last ')'.
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** The start time of process `pid` in clock ticks since boot, or null where /proc cannot tell. */
export async function processStartTime(pid: number): Promise<string | null> {
  // Field 22 (starttime).
  return (await procStat(pid))?.[19] ?? null;
}

async function ownRecord(): Promise<LockRecord> {
  return {
    pid: process.pid,
    startTime: await processStartTime(process.pid),
    bootId: await readText('/proc/sys/kernel/random/boot_id'),
    host: hostname(),
    since: new Date().toISOString(),
  };
}

/**
 * True when the record's holder still runs: same host, the pid exists and is no zombie, and (where
 * /proc tells) it is the same process, started at the recorded time in the same boot, not a later
 * one that reuses the pid. A holder on another host cannot be checked and counts as alive.
 */
export async function holderAlive(record: LockRecord): Promise<boolean> {
  if (record.free === true) return false;
  if (record.host !== hostname()) return true;
  try {
    process.kill(record.pid, 0);
  } catch (e) {
    if (isFsError(e, 'ESRCH')) return false;
    // EPERM: the pid exists under another user; go on to the start time.
  }
  if (record.bootId !== null) {
    const bootId = await readText('/proc/sys/kernel/random/boot_id');
    if (bootId !== null && bootId !== record.bootId) return false;
  }
  const stat = await procStat(record.pid);
  if (stat !== null) {
    // A zombie (killed, not yet reaped by its parent) holds nothing any more.
    if (stat[0] === 'Z' || stat[0] === 'X') return false;
    if (record.startTime !== null && stat[19] !== undefined && stat[19] !== record.startTime) return false;
  }
  return true;
}

function parseRecord(text: string): LockRecord | null {
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value !== 'object' || value === null) return null;
    const r = value as Record<string, unknown>;
    if (typeof r['pid'] !== 'number' || typeof r['host'] !== 'string' || typeof r['since'] !== 'string') return null;
    const startTime = typeof r['startTime'] === 'string' ? r['startTime'] : null;
    const bootId = typeof r['bootId'] === 'string' ? r['bootId'] : null;
    return { pid: r['pid'], startTime, bootId, host: r['host'], since: r['since'], free: r['free'] === true };
  } catch {
    return null;
  }
}

async function numbers(dir: string): Promise<number[]> {
  const found: number[] = [];
  for (const name of await readdir(dir)) {
    const match = RECORD_NAME.exec(name);
    if (match !== null) found.push(Number(match[1]));
  }
  return found.sort((a, b) => a - b);
}

const recordPath = (dir: string, n: number) => join(dir, `${n}.json`);

/** Creates record `n` from the complete file `source`; false when `n` exists. */
async function linkRecord(source: string, dir: string, n: number): Promise<boolean> {
  try {
    await link(source, recordPath(dir, n));
    return true;
  } catch (e) {
    if (isFsError(e, 'EEXIST')) return false;
    throw e;
  }
}

async function removeQuietly(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (e) {
    if (!isFsError(e, 'ENOENT')) throw e;
  }
}

async function withTempRecord<T>(dir: string, record: LockRecord, fn: (path: string) => Promise<T>): Promise<T> {
  const path = join(dir, `.tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
  await writeFile(path, `${JSON.stringify(record)}\n`, { mode: 0o600 });
  try {
    return await fn(path);
  } finally {
    await removeQuietly(path);
  }
}

/**
 * Takes the lock of `dataDir` for this process.
 * @throws TallyError DATA_FOLDER_LOCKED when a live process holds it (named in the message)
 */
export async function lockDataFolder(dataDir: string): Promise<DataLock> {
  const dir = join(dataDir, LOCK_DIR);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const me = await ownRecord();
  const held = await withTempRecord(dir, me, async (source) => {
    for (let round = 0; round < ACQUIRE_ROUNDS_MAX; round++) {
      const existing = await numbers(dir);
      const top = existing.at(-1) ?? 0;
      if (top > 0) {
        const text = await readText(recordPath(dir, top));
        if (text === null) continue; // removed under us: a newer record exists; look again
        const record = parseRecord(text);
        // A record made by link() is always whole; one that does not parse was not written by a node.
        if (record !== null && (await holderAlive(record))) {
          throw new TallyError(
            'DATA_FOLDER_LOCKED',
            `the data folder ${dataDir} is in use by another tally node (pid ${record.pid} on ${record.host}, since ${record.since}): stop that node first, or use another --data folder`,
            { path: dataDir, pid: record.pid, host: record.host },
          );
        }
      }
      const mine = top + 1;
      if (!(await linkRecord(source, dir, mine))) continue;
      const now = await numbers(dir);
      if (now.some((n) => n > mine)) {
        // Our view was stale: someone took a higher number first. Withdraw ours and look again.
        await removeQuietly(recordPath(dir, mine));
        continue;
      }
      for (const n of now) if (n < mine) await removeQuietly(recordPath(dir, n));
      return mine;
    }
    throw new TallyError('DATA_FOLDER_LOCKED', `the lock of the data folder ${dataDir} kept changing while this node tried to take it: another node is starting there`, {
      path: dataDir,
      pid: 0,
      host: hostname(),
    });
  });
  let released: Promise<void> | null = null;
  return {
    release() {
      released ??= withTempRecord(dir, { ...me, free: true }, async (source) => {
        // A free record above ours, then ours removed: the highest record always says who holds.
        if (await linkRecord(source, dir, held + 1)) await removeQuietly(recordPath(dir, held));
      });
      return released;
    },
  };
}
