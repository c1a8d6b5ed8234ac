/**
 * The passphrase the node's private keys are sealed with: TALLY_NODE_PASSPHRASE when it is set,
 * otherwise one generated on first start and kept in `<data>/passphrase` (0600). A generated
 * passphrase beside the keys protects nothing against whoever can read the folder; the node says so.
 */
import { join } from 'node:path';
import { toBase64url, utf8 } from '../../core/bytes.ts';
import { randomBytes } from '../../core/crypto/hash.ts';
import { TallyError } from '../../core/errors.ts';
import { corrupt, ensurePrivateDir, readFileBounded, requirePrivateMode, writeFileAtomic } from '../../host/files.ts';
import { PASSPHRASE_CHARS_MAX } from './keystore.ts';
import { hasEnrolment, hasIdentity, PASSPHRASE_FILE } from './layout.ts';

/** The environment variable that carries the passphrase. */
export const PASSPHRASE_ENV = 'TALLY_NODE_PASSPHRASE';
/** Random bytes in a generated passphrase (base64url in the file). */
export const GENERATED_PASSPHRASE_BYTES = 32;
/** Largest passphrase file read (a passphrase of PASSPHRASE_CHARS_MAX characters in UTF-8, and a newline). */
export const PASSPHRASE_FILE_BYTES_MAX = PASSPHRASE_CHARS_MAX * 3 + 2;

/** Where the passphrase came from, and what the node should tell its operator about it. */
export interface ResolvedPassphrase {
  readonly passphrase: string;
  /** True when it is a generated passphrase kept in the data folder. */
  readonly generated: boolean;
  /** The passphrase file, when one was read or created. */
  readonly file?: string | undefined;
  /** A line to print at start, when there is something the operator should know. */
  readonly warning?: string | undefined;
}

/** Options of resolvePassphrase. */
export interface ResolvePassphraseOptions {
  /** The node's data folder. */
  dataDir: string;
  /** The environment to read TALLY_NODE_PASSPHRASE from; `process.env` by default. */
  env?: Readonly<Record<string, string | undefined>> | undefined;
}

function generatedWarning(file: string): string {
  return `keys are encrypted with a generated passphrase kept beside them in ${file}; set ${PASSPHRASE_ENV} for real protection`;
}

function configError(expected: string, got: string, message: string): TallyError<'DECODE_FAILED'> {
  return new TallyError('DECODE_FAILED', message, { path: PASSPHRASE_ENV, expected, got });
}

/** Reads a passphrase file: private mode, UTF-8, one trailing newline allowed. */
async function readPassphraseFile(file: string): Promise<string | null> {
  const read = await readFileBounded(file, 'passphrase file', PASSPHRASE_FILE_BYTES_MAX);
  if (read === null) return null;
  requirePrivateMode(file, 'passphrase file', read.mode);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(read.data);
  } catch (e) {
    throw corrupt(`passphrase file ${file} is not UTF-8 text`, 'not UTF-8', e);
  }
  const passphrase = text.replace(/\r?\n$/, '');
  if (passphrase.length === 0 || passphrase.length > PASSPHRASE_CHARS_MAX) {
    throw corrupt(`passphrase file ${file} holds ${passphrase.length} characters; expected 1 to ${PASSPHRASE_CHARS_MAX}`, 'bad length');
  }
  return passphrase;
}

/**
 * Resolves the passphrase: the environment variable if set, else the passphrase file, else (on a
 * first start only) a new generated passphrase written to the file.
 * @throws TallyError DECODE_FAILED for an empty TALLY_NODE_PASSPHRASE, or when the data folder
 *   already holds keys but neither the variable nor the file is there; STATE_CORRUPT for a
 *   passphrase file readable by others (with the chmod that fixes it), not UTF-8, or empty
 */
export async function resolvePassphrase(options: ResolvePassphraseOptions): Promise<ResolvedPassphrase> {
  const env = options.env ?? process.env;
  const file = join(options.dataDir, PASSPHRASE_FILE);
  const fromEnv = env[PASSPHRASE_ENV];
  if (fromEnv !== undefined) {
    if (fromEnv.length === 0) {
      throw configError('a passphrase of 1 or more characters', 'an empty value', `${PASSPHRASE_ENV} is set but empty: give it the passphrase, or unset it to use a generated one kept in ${file}`);
    }
    if (fromEnv.length > PASSPHRASE_CHARS_MAX) {
      throw configError(`at most ${PASSPHRASE_CHARS_MAX} characters`, `${fromEnv.length} characters`, `${PASSPHRASE_ENV} is ${fromEnv.length} characters long, more than the ${PASSPHRASE_CHARS_MAX} allowed`);
    }
    const leftover = (await readFileBounded(file, 'passphrase file', PASSPHRASE_FILE_BYTES_MAX)) !== null;
    const warning = leftover ? `${PASSPHRASE_ENV} is set, so the generated passphrase in ${file} is not used; keys sealed with that one will not open` : undefined;
    return { passphrase: fromEnv, generated: false, warning };
  }

  const existing = await readPassphraseFile(file);
  if (existing !== null) return { passphrase: existing, generated: true, file, warning: generatedWarning(file) };

  if ((await hasIdentity(options.dataDir)) || (await hasEnrolment(options.dataDir))) {
    // A new passphrase could never open the keys already there (an enrolment under way holds one).
    throw configError(
      'the passphrase the keys were sealed with',
      'nothing',
      `the data folder ${options.dataDir} holds keys, but ${PASSPHRASE_ENV} is not set and there is no ${file}: set ${PASSPHRASE_ENV} to the passphrase used when the node was created`,
    );
  }
  await ensurePrivateDir(options.dataDir);
  const passphrase = toBase64url(randomBytes(GENERATED_PASSPHRASE_BYTES));
  await writeFileAtomic(file, utf8(`${passphrase}\n`));
  return { passphrase, generated: true, file, warning: generatedWarning(file) };
}
