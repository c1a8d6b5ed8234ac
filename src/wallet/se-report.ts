/**
 * What a wallet's secure element last reported of itself (its balance and limits), kept in
 * wallet.db for `tally wallet balance`: written when a session that ran the SE ends, removed before
 * the SE next starts (WalletShell), and carrying a digest of the SE's files as they lie on disk
 * (every file of its folder, name and bytes in name order, and its counter file). The record is
 * shown only while the files still give the same digest: an older copy of the sealed state put
 * back, a counter changed, a file removed or added all void it. wallet.db is the wallet's own
 * untrusted storage: the record is a display, never a check.
 */
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Codec } from '../core/codec.ts';
import type { WalletPaths } from './home.ts';
import type { SeReport } from './store/records.ts';

/** Where the record lives: the wallet's book (its device, and the store's `se-report`). */
interface ReportBook {
  readonly state: { readonly device: { readonly keyId: string } | null };
  seReport(): SeReport | null;
  recordSeReport(report: SeReport | null): void;
}

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

/**
 * The record, decoded by `codec`, or null: none was written since the SE last started, it is of
 * another device, the SE's files changed since, or it does not decode.
 */
export async function readSeReport<T>(book: ReportBook, paths: Pick<WalletPaths, 'se' | 'counter'>, codec: Codec<T>): Promise<{ at: number; report: T } | null> {
  const record = book.seReport();
  const device = book.state.device;
  if (record === null || device === null || record.device !== device.keyId) return null;
  if ((await secureElementFilesDigest(paths)) !== record.files) return null;
  try {
    return { at: record.at, report: codec.decode(JSON.parse(record.report), 'secure element report') };
  } catch {
    return null;
  }
}

/** Records `report` with the digest of the SE's files (its process stopped); a failure records nothing, so the next balance asks the SE. */
export async function writeSeReport(book: ReportBook, paths: Pick<WalletPaths, 'se' | 'counter'>, report: unknown): Promise<void> {
  const device = book.state.device;
  if (device === null) return;
  try {
    book.recordSeReport({ device: device.keyId, at: Date.now(), files: await secureElementFilesDigest(paths), report: JSON.stringify(report) });
  } catch {
    // Nothing recorded.
  }
}
