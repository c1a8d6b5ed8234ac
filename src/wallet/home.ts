/**
 * Where wallets live: a home folder (`--home DIR`, else `$TALLY_HOME`, else `~/.tally`) holding
 * `oem/` (the software OEM's key, see factory.ts) and `wallets/NAME/`, one folder per wallet:
 *
 * | path | what |
 * |---|---|
 * | `wallet.db` | the store (SQLite, 0600, see store/): account, certificates, revocation list, unfinished steps, received and sent payments, history |
 * | `wallet.db-wal` | its write-ahead log while the wallet is open (0600) |
 * | `wallet.json.bak`, `history.jsonl.bak` | an earlier version's files, kept after their migration into wallet.db |
 * | `se/` | the isolated secure element's master secret and sealed state (only the SE process reads it) |
 * | `counter` | the file-backed monotonic counter of that SE |
 * | `lock` | the process using the wallet: pid, start time and a nonce (JSON) |
 *
 * One process at a time uses a wallet: a second one gets WALLET_BUSY (two secure element hosts on one
 * sealed state would each see the other's commits as a rollback). The lock is taken atomically
 * (link of a complete temp file) and a stale one is replaced by exactly one process (see takeLock).
 */
import { link, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { toHex, utf8 } from '../core/bytes.ts';
import { randomBytes, sha256 } from '../core/crypto/hash.ts';
import { TallyError } from '../core/errors.ts';
import { isFsError } from '../host/files.ts';

/** Names a wallet may have: a letter or digit, then up to 31 letters, digits, `-` or `_`. */
export const WALLET_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$/;

/** The home folder from a flag, the environment, or the default. */
export function resolveHome(flag: string | undefined, env: Readonly<Record<string, string | undefined>> = process.env): string {
  return resolve(flag ?? env['TALLY_HOME'] ?? join(homedir(), '.tally'));
}

/** Checks a wallet name. @throws TallyError DECODE_FAILED for a name outside WALLET_NAME */
export function checkWalletName(name: string): string {
  if (!WALLET_NAME.test(name)) {
    throw new TallyError('DECODE_FAILED', `wallet name ${JSON.stringify(name)}: use 1 to 32 letters, digits, - or _, starting with a letter or digit`, {
      path: 'name',
      expected: 'a wallet name',
      got: JSON.stringify(name).slice(0, 40),
    });
  }
  return name;
}

/** The folders of one wallet. */
export interface WalletPaths {
  readonly dir: string;
  /** The store, wallet.db. */
  readonly store: string;
  /** The wallet.json of an earlier version (migrated into the store on the next open). */
  readonly legacy: string;
  readonly se: string;
  readonly counter: string;
  readonly lock: string;
}

/** The paths of wallet `name` under `dir`. */
export function walletPaths(dir: string): WalletPaths {
  return { dir, store: join(dir, 'wallet.db'), legacy: join(dir, 'wallet.json'), se: join(dir, 'se'), counter: join(dir, 'counter'), lock: join(dir, 'lock') };
}

/** The folder of wallet `name` in `home`. */
export function walletDir(home: string, name: string): string {
  return join(home, 'wallets', checkWalletName(name));
}

/** Who holds a lock: a pid, that process's start time (from /proc, null where unknown) and a nonce naming this hold. */
interface LockHolder {
  readonly pid: number;
  readonly start: string | null;
  readonly nonce: string;
}

/** Tries to take a lock path this many times before giving up as busy (each try is a change seen). */
const LOCK_TRIES_MAX = 32;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return isFsError(e, 'EPERM');
  }
}

/**
 * The start time of process `pid` in clock ticks since boot (field 22 of /proc/PID/stat), or null
 * where there is no /proc or it cannot be read. A pid reused by a later process has another one.
 */
export async function processStartTime(pid: number): Promise<string | null> {
  if (process.platform !== 'linux') return null;
  const text = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null);
  if (text === null) return null;
  // The command name (field 2) is in parentheses and may hold spaces: count from the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const start = fields[19];
  return start !== undefined && /^[0-9]+$/.test(start) ? start : null;
}

function parseHolder(text: string): LockHolder {
  try {
    const parsed = JSON.parse(text) as Partial<LockHolder> | number;
    if (typeof parsed === 'number') return { pid: parsed, start: null, nonce: '' };
    const pid = typeof parsed?.pid === 'number' ? parsed.pid : NaN;
    return { pid, start: typeof parsed?.start === 'string' ? parsed.start : null, nonce: typeof parsed?.nonce === 'string' ? parsed.nonce : '' };
  } catch {
    return { pid: NaN, start: null, nonce: '' };
  }
}

/** True while the holder's process runs: its pid is alive and, where known, started when the lock says. */
async function holderAlive(holder: LockHolder): Promise<boolean> {
  if (!Number.isInteger(holder.pid) || holder.pid <= 0 || !alive(holder.pid)) return false;
  if (holder.start === null) return true;
  const now = await processStartTime(holder.pid);
  // Unreadable: assume it is the holder rather than take a live lock.
  return now === null || now === holder.start;
}

async function readIfThere(path: string): Promise<string | null> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    if (isFsError(e, 'ENOENT')) return null;
    throw e;
  }
}

/** Writes `content` to a fresh temp file beside `path`, runs `use` on it, removes it. */
async function withTemp<T>(path: string, content: string, use: (temp: string) => Promise<T>): Promise<T> {
  const temp = `${path}.${toHex(randomBytes(8))}.tmp`;
  await writeFile(temp, content, { mode: 0o600, flag: 'wx' });
  try {
    return await use(temp);
  } finally {
    await rm(temp, { force: true });
  }
}

/**
 * Takes the lock file `path` for `mine` (a holder's JSON). The lock appears whole or not at all:
 * a temp file with the content is `link()`ed to the path, which fails if it exists. A lock whose
 * holder is gone (dead pid, or a pid now used by a process that started at another time) is
 * replaced by whoever first takes `PATH.takeover-<digest of that lock>`, itself a lock taken the
 * same way; while holding it, the taker checks the lock is still the one it judged stale and
 * renames its own over it. So two processes never both replace one stale lock.
 * @returns true, or the live holder in the way
 */
async function takeLock(path: string, mine: string, depth: number): Promise<true | LockHolder> {
  let holder: LockHolder = { pid: 0, start: null, nonce: '' };
  for (let attempt = 0; attempt < LOCK_TRIES_MAX; attempt++) {
    const linked = await withTemp(path, mine, async (temp) => {
      try {
        await link(temp, path);
        return true;
      } catch (e) {
        if (isFsError(e, 'EEXIST')) return false;
        throw e;
      }
    });
    if (linked) return true;
    const seen = await readIfThere(path);
    if (seen === null) continue; // released meanwhile
    holder = parseHolder(seen);
    if (await holderAlive(holder)) return holder;
    if (depth >= 3) return holder;
    const marker = `${path}.takeover-${toHex(sha256(utf8(seen))).slice(0, 24)}`;
    const took = await takeLock(marker, mine, depth + 1);
    if (took !== true) return took;
    try {
      // Holding the marker, only this process may replace the lock while it is still `seen`.
      if ((await readIfThere(path)) === seen) {
        await withTemp(path, mine, (temp) => rename(temp, path));
        return true;
      }
    } finally {
      await releaseLock(marker, mine);
    }
  }
  return holder;
}

async function releaseLock(path: string, mine: string): Promise<void> {
  if ((await readIfThere(path)) === mine) await rm(path, { force: true });
}

/**
 * Takes the wallet's lock (a file naming this process: pid, start time, a nonce), atomically, and
 * takes over one left by a process that is gone, including one whose pid now belongs to another
 * process. Call the returned function to free it.
 * @throws TallyError WALLET_BUSY while another live process holds it
 */
export async function lockWallet(paths: WalletPaths, name: string): Promise<() => Promise<void>> {
  const mine = JSON.stringify({ pid: process.pid, start: await processStartTime(process.pid), nonce: toHex(randomBytes(16)) } satisfies LockHolder);
  const took = await takeLock(paths.lock, mine, 0);
  if (took !== true) {
    const pid = Number.isInteger(took.pid) && took.pid > 0 ? took.pid : 0;
    throw new TallyError('WALLET_BUSY', `wallet ${name} is in use by ${pid > 0 ? `process ${pid}` : 'another process'}; wait for it to finish`, { name, pid });
  }
  return () => releaseLock(paths.lock, mine);
}
