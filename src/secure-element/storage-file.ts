/**
 * File storage for a secure element host: a 0600 master secret file; per app, one sealed head file,
 * replaced atomically (write temp, fsync, rename, fsync the directory), and an append-only records
 * file per generation (`<app>.<generation>.records`). The records file last written stays open, so
 * that an ordinary commit's append is one write and one fdatasync (no open, truncate and close).
 */
import { closeSync, fdatasync, ftruncateSync, openSync, renameSync } from 'node:fs';
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { TallyError } from '../core/errors.ts';
import { isFsError, syncDirectory, syncDirectorySync, writeAllSync, writeDurably, writeDurablySync } from './durable-file.ts';
import type { SecureStorage } from './storage.ts';

const MASTER_FILE = 'master.key';
const fdatasyncAsync = promisify(fdatasync);
const APP_NAME_PATTERN = /^[a-z0-9][a-z0-9._-]{0,63}$/;

function stateFile(dir: string, app: string): string {
  if (!APP_NAME_PATTERN.test(app)) throw new RangeError(`app name: expected [a-z0-9._-], got ${JSON.stringify(app)}`);
  return join(dir, `${app}.sealed`);
}

function recordsFile(dir: string, app: string, generation: bigint): string {
  stateFile(dir, app);
  return join(dir, `${app}.${generation}.records`);
}

async function readOrNull(path: string): Promise<Uint8Array | null> {
  try {
    return new Uint8Array(await readFile(path));
  } catch (e) {
    if (isFsError(e, 'ENOENT')) return null;
    throw e;
  }
}

/** The records file last written: its descriptor, and its size once this storage wrote it (null before). */
interface OpenRecords {
  readonly path: string;
  readonly fd: number;
  size: number | null;
}

/**
 * Secure element storage in a directory of its own. One writer per directory: the records file
 * last written is kept open and its size remembered, which holds only while no one else writes it.
 */
export class FileStorage implements SecureStorage {
  readonly location: string;
  #records: OpenRecords | null = null;

  constructor(dir: string) {
    this.location = dir;
  }

  async readMaster(): Promise<Uint8Array | null> {
    return readOrNull(join(this.location, MASTER_FILE));
  }

  async createMaster(secret: Uint8Array): Promise<void> {
    await mkdir(this.location, { recursive: true, mode: 0o700 });
    try {
      await writeDurably(join(this.location, MASTER_FILE), secret, 'wx');
    } catch (e) {
      if (isFsError(e, 'EEXIST')) {
        throw new TallyError('SE_ALREADY_PROVISIONED', `a secure element is already provisioned in ${this.location}`, { path: this.location });
      }
      throw e;
    }
    await syncDirectory(this.location);
  }

  async readState(app: string): Promise<Uint8Array | null> {
    return readOrNull(stateFile(this.location, app));
  }

  // A commit's writes run on the calling thread (durable-file.ts): the host waits for each in turn.
  async writeTemp(app: string, sealed: Uint8Array): Promise<void> {
    writeDurablySync(`${stateFile(this.location, app)}.tmp`, sealed, 'w');
  }

  async replace(app: string): Promise<void> {
    const path = stateFile(this.location, app);
    renameSync(`${path}.tmp`, path);
    syncDirectorySync(this.location);
  }

  async discardTemp(app: string): Promise<void> {
    await rm(`${stateFile(this.location, app)}.tmp`, { force: true });
  }

  async readRecords(app: string, generation: bigint): Promise<Uint8Array | null> {
    const path = recordsFile(this.location, app, generation);
    // A host opening the app judges the file afresh; its writes start from a new handle.
    if (this.#records?.path === path) this.#closeRecords();
    return readOrNull(path);
  }

  async writeRecords(app: string, generation: bigint, offset: number, data: Uint8Array): Promise<void> {
    const path = recordsFile(this.location, app, generation);
    let records = this.#records;
    let created = false;
    if (records?.path !== path) {
      this.#closeRecords();
      let fd: number;
      try {
        fd = openSync(path, 'r+');
      } catch (e) {
        if (!isFsError(e, 'ENOENT')) throw e;
        fd = openSync(path, 'w', 0o600);
        created = true;
      }
      records = { path, fd, size: null };
      this.#records = records;
    }
    const end = offset + data.length;
    try {
      writeAllSync(records.fd, data, offset);
      // Bytes past the end (an append whose commit never finished) are dropped; a file this
      // storage wrote last ends where its last write did, and needs no truncation for an append.
      if (records.size === null || records.size > end) ftruncateSync(records.fd, end);
      // In the thread pool: the host writes and fsyncs the head on this thread meanwhile, and
      // renames it only once both are durable, so the two flushes overlap.
      await fdatasyncAsync(records.fd);
      records.size = end;
    } catch (e) {
      this.#closeRecords();
      throw e;
    }
    // A new file's name must be durable before a head that names it.
    if (created) syncDirectorySync(this.location);
  }

  async removeRecords(app: string, keep: bigint): Promise<void> {
    stateFile(this.location, app);
    const prefix = `${app}.`;
    for (const name of await readdir(this.location)) {
      if (!name.startsWith(prefix) || !name.endsWith('.records')) continue;
      const generation = name.slice(prefix.length, -'.records'.length);
      if (!/^[0-9]{1,20}$/.test(generation) || BigInt(generation) === keep) continue;
      const path = join(this.location, name);
      if (this.#records?.path === path) this.#closeRecords();
      await rm(path, { force: true });
    }
  }

  /** Closes the records file kept open (the next write opens it again). */
  async close(): Promise<void> {
    this.#closeRecords();
  }

  #closeRecords(): void {
    const records = this.#records;
    this.#records = null;
    if (records === null) return;
    try {
      closeSync(records.fd);
    } catch {
      // A descriptor that cannot be closed is gone already; the next write opens the file again.
    }
  }
}
