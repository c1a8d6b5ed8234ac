/**
 * File handling for host-side secrets (the node's identity, a wallet's keys): private files (0600) in private folders (0700), replaced
 * atomically (temp file, fsync, rename, fsync the folder), and read with a size bound and, for
 * plaintext secrets, a refusal of modes that let anyone else read them.
 */
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { toHex } from '../core/bytes.ts';
import { randomBytes } from '../core/crypto/hash.ts';
import { TallyError } from '../core/errors.ts';
import { isFsError, syncDirectory, writeDurably } from '../secure-element/durable-file.ts';

/** Mode of every private file written here: read and write by the owner only. */
export const PRIVATE_FILE_MODE = 0o600;
/** Mode of every private folder created here. */
export const PRIVATE_DIR_MODE = 0o700;

// POSIX modes mean nothing on Windows, where node reports 0o666 for every writable file.
const MODES_APPLY = process.platform !== 'win32';

export { isFsError };

/** A file mode as four octal digits, for messages. */
export function octalMode(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, '0');
}

/** Builds the STATE_CORRUPT error naming a damaged or unusable file. */
export function corrupt(message: string, reason: string, cause?: unknown): TallyError<'STATE_CORRUPT'> {
  return new TallyError('STATE_CORRUPT', message, { reason }, { cause });
}

/**
 * Replaces `path` with `data` atomically: a reader sees the old file or the new one, never a part.
 * The file is created 0600.
 * @throws node:fs errors when the folder cannot be written
 */
export async function writeFileAtomic(path: string, data: Uint8Array): Promise<void> {
  const temp = join(dirname(path), `.${basename(path)}.tmp-${toHex(randomBytes(8))}`);
  try {
    await writeDurably(temp, data, 'wx');
    await rename(temp, path);
  } catch (e) {
    await rm(temp, { force: true });
    throw e;
  }
  await syncDirectory(dirname(path));
}

/** Creates a folder (and its parents) with mode 0700 if it is missing; true when it was created. @throws node:fs errors */
export async function ensurePrivateDir(path: string): Promise<boolean> {
  const made = await mkdir(path, { recursive: true, mode: PRIVATE_DIR_MODE });
  return made !== undefined;
}

/** What readFileBounded returns: the bytes and the file's mode. */
export interface BoundedFile {
  readonly data: Uint8Array;
  readonly mode: number;
}

/**
 * Reads a regular file of at most `maxBytes`, through one open handle (the mode and the bytes are
 * of the same file); `null` when the file does not exist.
 * @throws TallyError STATE_CORRUPT when the path is not a regular file or is larger than `maxBytes`
 */
export async function readFileBounded(path: string, what: string, maxBytes: number): Promise<BoundedFile | null> {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch (e) {
    if (isFsError(e, 'ENOENT')) return null;
    throw e;
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw corrupt(`${what} ${path} is not a regular file`, 'not a regular file');
    if (stat.size > maxBytes) throw corrupt(`${what} ${path} has ${stat.size} bytes, more than the ${maxBytes} it can have: it is damaged or not a Tally file`, 'too large');
    const buffer = new Uint8Array(maxBytes + 1);
    let length = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, length);
      if (bytesRead === 0) break;
      length += bytesRead;
      if (length > maxBytes) throw corrupt(`${what} ${path} grew past ${maxBytes} bytes while being read`, 'too large');
    }
    return { data: buffer.slice(0, length), mode: stat.mode };
  } finally {
    await handle.close();
  }
}

/**
 * Refuses a file holding a plaintext secret that others than its owner may read or write.
 * @throws TallyError STATE_CORRUPT naming the file, its mode and the chmod that fixes it
 */
export function requirePrivateMode(path: string, what: string, mode: number, wanted: number = PRIVATE_FILE_MODE): void {
  if (!MODES_APPLY || (mode & 0o077) === 0) return;
  throw corrupt(
    `${what} ${path} has mode ${octalMode(mode)}, so others than its owner can use it; run \`chmod ${octalMode(wanted).slice(1)} ${path}\` and start again`,
    'permissions too wide',
  );
}

/**
 * Checks that a folder is private (no access for group or others).
 * @throws TallyError STATE_CORRUPT with the chmod that fixes it
 */
export async function requirePrivateDir(path: string, what: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    const stat = await handle.stat();
    if (!stat.isDirectory()) throw corrupt(`${what} ${path} is not a folder`, 'not a folder');
    requirePrivateMode(path, what, stat.mode, PRIVATE_DIR_MODE);
  } finally {
    await handle.close();
  }
}

/** The mode of an existing folder, or null when it is missing. @throws node:fs errors other than ENOENT */
export async function folderMode(path: string): Promise<number | null> {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch (e) {
    if (isFsError(e, 'ENOENT')) return null;
    throw e;
  }
  try {
    return (await handle.stat()).mode;
  } finally {
    await handle.close();
  }
}
