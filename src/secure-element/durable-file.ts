/** Durable file writes for secure element hosts: data and directory entries reach the disk. */
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
