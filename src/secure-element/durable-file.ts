/**
 * Durable file writes for secure element hosts: data and directory entries reach the disk.
 *
 * The `Sync` forms make their system calls on the calling thread. A secure element commit is a
 * short chain of small writes and fsyncs that must run in order; made through node:fs/promises,
 * each one is a round trip through the thread pool, which costs more than the call itself.
 */
import { closeSync, fsyncSync, openSync, writeSync } from 'node:fs';
import { open } from 'node:fs/promises';

/** True for a node:fs error with the given code (ENOENT, EEXIST, ...). */
export function isFsError(e: unknown, code: string): boolean {
  return e instanceof Error && 'code' in e && e.code === code;
}

/** Writes a whole file and fsyncs it; `wx` refuses to overwrite an existing file. */
export async function writeDurably(path: string, data: Uint8Array, flag: 'w' | 'wx'): Promise<void> {
  const handle = await open(path, flag, 0o600);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Fsyncs a directory, so a rename or a new file in it survives a power cut. */
export async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Writes all of `data` at `position` of an open file (a short write is continued, not dropped). */
export function writeAllSync(fd: number, data: Uint8Array, position: number): void {
  let done = 0;
  while (done < data.length) done += writeSync(fd, data, done, data.length - done, position + done);
}

/** writeDurably on the calling thread. */
export function writeDurablySync(path: string, data: Uint8Array, flag: 'w' | 'wx'): void {
  const fd = openSync(path, flag, 0o600);
  try {
    writeAllSync(fd, data, 0);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** syncDirectory on the calling thread. */
export function syncDirectorySync(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
