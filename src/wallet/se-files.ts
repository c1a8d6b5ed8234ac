/**
 * A digest of a wallet's secure element as it lies on disk: every file of its folder (name and
 * bytes, in name order) and its counter file. The report the shell records at the end of a session
 * carries it, and the record is shown only while the files still give the same digest: an older
 * copy of the sealed state put back, a counter changed, a file removed or added all void it.
 */
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { WalletPaths } from './home.ts';

async function bytesOf(path: string): Promise<Buffer | null> {
  try {
    return await readFile(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

/** SHA-256 (hex) over the SE folder's files and the counter file; a missing file or folder counts as absent. */
export async function secureElementFilesDigest(paths: Pick<WalletPaths, 'se' | 'counter'>): Promise<string> {
  const hash = createHash('sha256');
  const part = (label: string, bytes: Buffer | null) => {
    const head = Buffer.alloc(8);
    head.writeBigInt64BE(bytes === null ? -1n : BigInt(bytes.length));
    hash.update(`${label}\u0000`).update(head);
    if (bytes !== null) hash.update(bytes);
  };
  let names: string[] = [];
  try {
    names = (await readdir(paths.se, { withFileTypes: true })).map((e) => `${e.isFile() ? 'f' : 'o'}:${e.name}`).sort();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  for (const name of names) part(name, name.startsWith('f:') ? await bytesOf(join(paths.se, name.slice(2))) : null);
  part('counter', await bytesOf(paths.counter));
  return hash.digest('hex');
}
