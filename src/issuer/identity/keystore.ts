/**
 * Private keys at rest: one deterministic-CBOR file per key, the secret key sealed with
 * XChaCha20-Poly1305 under a key derived from a passphrase with scrypt (RFC 7914). The header
 * (suite, public key, scrypt parameters and a passphrase check) is the AEAD's associated data, so
 * no field can be changed without the file being refused.
 */
import { scrypt } from 'node:crypto';
import { equalBytes, utf8 } from '../../core/bytes.ts';
import { decodeCbor, encodeCbor } from '../../core/cbor.ts';
import { bytes, literal, oneOf, record, refine, uint, decodeFailure, type Codec } from '../../core/codec.ts';
import { aeadOpen, aeadSeal, randomBytes, AEAD_KEY_BYTES } from '../../core/crypto/hash.ts';
import {
  signerFromSecret,
  suiteFor,
  SUITE_NAMES,
  SUITE_SIZES,
  type CryptoProvider,
  type PublicKey,
  type SignatureSuite,
  type Signer,
  type SuiteName,
} from '../../core/crypto/suite.ts';
import { isTallyError, TallyError } from '../../core/errors.ts';
import { corrupt, readFileBounded, writeFileAtomic } from '../../host/files.ts';

/** The key file format version. */
export const KEY_FILE_FORMAT = 1;
/** The domain tag bound into the associated data of every key file. */
export const KEY_FILE_DOMAIN_TAG = 'tally/issuer/key-file/v1';
/** Largest key file accepted. */
export const KEY_FILE_BYTES_MAX = 1024;
/** Length of the random scrypt salt. */
export const SCRYPT_SALT_BYTES = 16;
/** Length of the passphrase check stored in the header (scrypt output beyond the AEAD key). */
export const PASSPHRASE_CHECK_BYTES = 16;
/** Longest passphrase accepted, in UTF-16 units. */
export const PASSPHRASE_CHARS_MAX = 1024;
/** Smallest scrypt N accepted on write or read (below it a passphrase is cheap to guess). */
export const SCRYPT_N_MIN = 2 ** 14;
/** Largest scrypt N accepted, so that a crafted file cannot make a start hang. */
export const SCRYPT_N_MAX = 2 ** 20;
/** Largest scrypt r accepted. */
export const SCRYPT_R_MAX = 16;
/** Largest scrypt p accepted. */
export const SCRYPT_P_MAX = 4;
/** Most memory one derivation may take (128 · N · r bytes). */
export const SCRYPT_MEMORY_BYTES_MAX = 256 * 1024 * 1024;

/** The cost parameters of scrypt. */
export interface ScryptParams {
  readonly N: number;
  readonly r: number;
  readonly p: number;
}

/** Parameters of new key files: about 100 ms per derivation through node:crypto on this project's machine. */
export const SCRYPT_DEFAULTS: ScryptParams = Object.freeze({ N: 2 ** 15, r: 8, p: 1 });

/** The decoded content of a key file. */
export interface KeyFile {
  readonly format: 1;
  readonly suite: SuiteName;
  readonly publicKey: Uint8Array;
  readonly kdf: ScryptParams & { readonly name: 'scrypt'; readonly salt: Uint8Array };
  readonly passphraseCheck: Uint8Array;
  readonly box: Uint8Array;
}

/** A key read back from its file: a signer keeping the secret in a closure, and its public key. */
export interface LoadedKey {
  readonly signer: Signer;
  readonly publicKey: PublicKey;
}

/** A secret key to seal, with the suite it belongs to. */
export interface SecretKeyInput {
  readonly suite: SignatureSuite;
  readonly secretKey: Uint8Array;
}

const NONCE_AND_TAG_BYTES = 24 + 16;
const SECRET_BYTES_MAX = Math.max(...SUITE_NAMES.map((s) => SUITE_SIZES[s].secretKey));

function scryptProblem(params: ScryptParams): string | null {
  const { N, r, p } = params;
  if (!Number.isSafeInteger(N) || N < SCRYPT_N_MIN || N > SCRYPT_N_MAX || (N & (N - 1)) !== 0) {
    return `N must be a power of two in [2^14, 2^20], got ${N}`;
  }
  if (!Number.isSafeInteger(r) || r < 1 || r > SCRYPT_R_MAX) return `r must be in [1, ${SCRYPT_R_MAX}], got ${r}`;
  if (!Number.isSafeInteger(p) || p < 1 || p > SCRYPT_P_MAX) return `p must be in [1, ${SCRYPT_P_MAX}], got ${p}`;
  if (128 * N * r > SCRYPT_MEMORY_BYTES_MAX) return `128·N·r = ${128 * N * r} bytes is over the ${SCRYPT_MEMORY_BYTES_MAX} allowed`;
  return null;
}

const scryptCodec = refine(
  record({
    name: literal('scrypt'),
    N: uint({ max: SCRYPT_N_MAX }),
    r: uint({ max: SCRYPT_R_MAX }),
    p: uint({ max: SCRYPT_P_MAX }),
    salt: bytes({ length: SCRYPT_SALT_BYTES }),
  }),
  'scrypt parameters within bounds',
  (kdf, path) => {
    const problem = scryptProblem(kdf);
    return problem === null ? kdf : decodeFailure(path, 'scrypt parameters within bounds', problem);
  },
);

/** Decodes a key file's CBOR data model; lengths are checked against the suite it names. */
export const keyFileCodec: Codec<KeyFile> = refine(
  record({
    format: literal(KEY_FILE_FORMAT),
    suite: oneOf(SUITE_NAMES),
    publicKey: bytes({ min: 32, max: 33 }),
    kdf: scryptCodec,
    passphraseCheck: bytes({ length: PASSPHRASE_CHECK_BYTES }),
    box: bytes({ max: SECRET_BYTES_MAX + NONCE_AND_TAG_BYTES }),
  }),
  'a key file',
  (file, path) => {
    const sizes = SUITE_SIZES[file.suite];
    bytes({ length: sizes.publicKey }).decode(file.publicKey, `${path}.publicKey`);
    bytes({ length: sizes.secretKey + NONCE_AND_TAG_BYTES }).decode(file.box, `${path}.box`);
    return file;
  },
);

/** The associated data of the box: every field but the box itself, under the domain tag. */
function header(file: Omit<KeyFile, 'box'>): Uint8Array {
  const { format, suite, publicKey, kdf, passphraseCheck } = file;
  return encodeCbor([KEY_FILE_DOMAIN_TAG, { format, suite, publicKey, kdf: { name: kdf.name, N: kdf.N, r: kdf.r, p: kdf.p, salt: kdf.salt }, passphraseCheck }]);
}

function checkPassphrase(passphrase: string): Uint8Array {
  if (typeof passphrase !== 'string') throw new TypeError('passphrase: expected a string');
  if (passphrase.length === 0 || passphrase.length > PASSPHRASE_CHARS_MAX) {
    throw new RangeError(`passphrase: expected 1 to ${PASSPHRASE_CHARS_MAX} characters, got ${passphrase.length}`);
  }
  // NFC, so that the same passphrase typed through another input method gives the same key.
  return utf8(passphrase.normalize('NFC'));
}

/** scrypt through node:crypto (OpenSSL, off the main thread): the AEAD key and the passphrase check. */
async function derive(passphrase: Uint8Array, salt: Uint8Array, params: ScryptParams): Promise<{ key: Uint8Array; check: Uint8Array }> {
  const { N, r, p } = params;
  // OpenSSL counts 128·r·(N + p + 2) bytes; the bound above keeps this under SCRYPT_MEMORY_BYTES_MAX plus slack.
  const maxmem = 128 * r * (N + p + 2) + 1024 * 1024;
  const out = await new Promise<Uint8Array>((resolve, reject) => {
    scrypt(passphrase, salt, AEAD_KEY_BYTES + PASSPHRASE_CHECK_BYTES, { N, r, p, maxmem }, (error, derived) => {
      if (error === null) resolve(new Uint8Array(derived));
      else reject(error);
    });
  });
  return { key: out.slice(0, AEAD_KEY_BYTES), check: out.slice(AEAD_KEY_BYTES) };
}

/**
 * Seals a secret key under a passphrase into key file bytes.
 * @throws RangeError for an empty or overlong passphrase, a secret key of the wrong length or
 *   scrypt parameters out of bounds
 */
export async function sealKey(key: SecretKeyInput, passphrase: string, options?: { kdf?: ScryptParams | undefined }): Promise<Uint8Array> {
  const password = checkPassphrase(passphrase);
  const params = options?.kdf ?? SCRYPT_DEFAULTS;
  const problem = scryptProblem(params);
  if (problem !== null) throw new RangeError(`scrypt parameters: ${problem}`);
  const secretBytes = SUITE_SIZES[key.suite.name].secretKey;
  if (key.secretKey.length !== secretBytes) throw new RangeError(`secretKey: expected ${secretBytes} bytes, got ${key.secretKey.length}`);
  const salt = randomBytes(SCRYPT_SALT_BYTES);
  const derived = await derive(password, salt, params);
  const fields = {
    format: KEY_FILE_FORMAT,
    suite: key.suite.name,
    publicKey: key.suite.publicKey(key.secretKey),
    kdf: { name: 'scrypt', N: params.N, r: params.r, p: params.p, salt },
    passphraseCheck: derived.check,
  } as const;
  const box = aeadSeal(derived.key, key.secretKey, header(fields));
  derived.key.fill(0);
  return encodeCbor({ ...fields, box });
}

/**
 * Decodes key file bytes without opening the box.
 * @throws TallyError STATE_CORRUPT (with the decoding error as cause) for anything malformed
 */
export function decodeKeyFile(encoded: Uint8Array, name = 'key file'): KeyFile {
  try {
    return keyFileCodec.decode(decodeCbor(encoded, { maxBytes: KEY_FILE_BYTES_MAX }), 'keyFile');
  } catch (e) {
    if (e instanceof TallyError && e.code !== 'ASSERTION_FAILED') {
      throw corrupt(`${name} is damaged (${e.message}); restore it from a backup`, e.message, e);
    }
    throw e;
  }
}

function wrongPassphrase(name: string): TallyError<'AEAD_FAILED'> {
  return new TallyError('AEAD_FAILED', `wrong passphrase for ${name}: set TALLY_NODE_PASSPHRASE to the passphrase used when the node was created`, {});
}

/** A secret key opened from its file, for a library that must hold the key itself (see openSecretKey). */
export interface OpenedSecretKey {
  readonly suite: SignatureSuite;
  readonly secretKey: Uint8Array;
  readonly publicKey: PublicKey;
}

/**
 * Opens key file bytes with a passphrase and returns the secret key itself. Only for a key another
 * library must hold (the central bank's chain account, which viem signs transactions with);
 * everything else takes a signer from openKey.
 * @throws TallyError AEAD_FAILED for a wrong passphrase; STATE_CORRUPT for a malformed, truncated or
 *   altered file; KEY_INVALID when the secret does not give the public key the file names;
 *   SUITE_UNKNOWN when the provider lacks the suite
 */
export async function openSecretKey(encoded: Uint8Array, passphrase: string, provider: CryptoProvider, name = 'key file'): Promise<OpenedSecretKey> {
  const password = checkPassphrase(passphrase);
  const file = decodeKeyFile(encoded, name);
  const suite = suiteFor(provider, file.suite);
  if (!suite.isValidPublicKey(file.publicKey)) throw corrupt(`${name} is damaged: its public key is not a valid ${file.suite} key`, 'invalid public key');
  const derived = await derive(password, file.kdf.salt, file.kdf);
  // The check tells a wrong passphrase from a damaged box; both would fail the AEAD alike.
  if (!equalBytes(derived.check, file.passphraseCheck)) throw wrongPassphrase(name);
  let secretKey: Uint8Array;
  try {
    secretKey = aeadOpen(derived.key, file.box, header(file));
  } catch (e) {
    if (isTallyError(e, 'AEAD_FAILED')) throw corrupt(`${name} was altered: the passphrase is right but the sealed key does not authenticate; restore it from a backup`, 'box does not authenticate', e);
    throw e;
  } finally {
    derived.key.fill(0);
  }
  if (!equalBytes(suite.publicKey(secretKey), file.publicKey)) {
    throw new TallyError('KEY_INVALID', `${name}: the sealed secret key does not belong to the public key the file names`, { suite: file.suite, reason: 'public key mismatch' });
  }
  return { suite, secretKey, publicKey: { suite: file.suite, key: file.publicKey } };
}

/**
 * Opens key file bytes with a passphrase and returns a signer over the secret key.
 * @throws TallyError AEAD_FAILED for a wrong passphrase; STATE_CORRUPT for a malformed, truncated or
 *   altered file; KEY_INVALID when the secret does not give the public key the file names;
 *   SUITE_UNKNOWN when the provider lacks the suite
 */
export async function openKey(encoded: Uint8Array, passphrase: string, provider: CryptoProvider, name = 'key file'): Promise<LoadedKey> {
  const opened = await openSecretKey(encoded, passphrase, provider, name);
  const signer = signerFromSecret(opened.suite, opened.secretKey);
  return { signer, publicKey: signer.publicKey };
}

/**
 * Writes a secret key sealed under `passphrase` to `path`, mode 0600, replacing any file there atomically.
 * @throws RangeError as sealKey does; node:fs errors when the folder cannot be written
 */
export async function writeKeyFile(path: string, key: SecretKeyInput, passphrase: string, options?: { kdf?: ScryptParams | undefined }): Promise<PublicKey> {
  const encoded = await sealKey(key, passphrase, options);
  await writeFileAtomic(path, encoded);
  return { suite: key.suite.name, key: key.suite.publicKey(key.secretKey) };
}

/**
 * Reads the key file at `path` and opens the secret key itself (see openSecretKey).
 * @throws TallyError as readKeyFile does
 */
export async function readSecretKeyFile(path: string, passphrase: string, provider: CryptoProvider): Promise<OpenedSecretKey> {
  const file = await readFileBounded(path, 'key file', KEY_FILE_BYTES_MAX);
  if (file === null) throw corrupt(`key file ${path} is missing; restore it from a backup`, 'missing');
  return openSecretKey(file.data, passphrase, provider, path);
}

/**
 * Reads and opens the key file at `path`.
 * @throws TallyError AEAD_FAILED for a wrong passphrase, STATE_CORRUPT for a missing, oversized,
 *   malformed or altered file, KEY_INVALID, SUITE_UNKNOWN (see openKey)
 */
export async function readKeyFile(path: string, passphrase: string, provider: CryptoProvider): Promise<LoadedKey> {
  const file = await readFileBounded(path, 'key file', KEY_FILE_BYTES_MAX);
  if (file === null) throw corrupt(`key file ${path} is missing; restore it from a backup`, 'missing');
  return openKey(file.data, passphrase, provider, path);
}
