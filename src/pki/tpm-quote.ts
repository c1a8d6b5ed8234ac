/**
 * Checking a TPM 2.0 quote (OPERA §3.3.1: the TPM's attestation key signs the current values of the
 * PCRs into which the trusted wallet's build was extended, over a nonce of the verifier's). Decodes
 * the TPMS_ATTEST the TPM signed (TPM 2.0 Part 2, 10.12) with a bound on every field, recomputes the
 * PCR values a known build leaves, and checks the signature, the nonce, the selection and the digest.
 * Pure: the quote itself comes from a TPM through secure-element/tpm-quote.ts.
 */
import { p256 } from '@noble/curves/nist.js';
import { concatBytes, equalBytes, fromHex, toHex } from '../core/bytes.ts';
import { sha256 } from '../core/crypto/hash.ts';
import { TallyError } from '../core/errors.ts';

/** TPM_GENERATED_VALUE: the first field of everything a TPM signs, so it cannot sign a forged attest. */
export const TPM_GENERATED_VALUE = 0xff544347;
/** TPM_ST_ATTEST_QUOTE: the structure tag of a quote. */
export const TPM_ST_ATTEST_QUOTE = 0x8018;
/** TPM_ALG_SHA256: the PCR bank and the digest a quote here uses. */
export const TPM_ALG_SHA256 = 0x000b;
/** TPM_ALG_ECDSA: the AK's signing scheme. */
export const TPM_ALG_ECDSA = 0x0018;
/** Largest attest accepted; a quote of one bank is about 130 bytes. */
export const TPM_ATTEST_BYTES_MAX = 1024;
/** The PCRs a PC-client TPM has: 0..23. */
export const TPM_PCR_COUNT = 24;
/** A SHA-256 PCR value. */
export const PCR_VALUE_BYTES = 32;

// TPM2B bounds (Part 2): a name or data holds at most a TPMT_HA (algorithm + SHA-512 digest),
// a digest at most a SHA-512 one. Selections: at most one per bank, 4 bytes of bitmap per bank.
const NAME_BYTES_MAX = 66;
const DATA_BYTES_MAX = 66;
const DIGEST_BYTES_MAX = 64;
const SELECTIONS_MAX = 16;
const SELECT_BYTES_MAX = 4;
const SCALAR_BYTES = 32;
// SubjectPublicKeyInfo of a P-256 key (id-ecPublicKey, prime256v1) up to the uncompressed point.
const SPKI_P256_PREFIX = fromHex('3059301306072a8648ce3d020106082a8648ce3d030107034200');

/** The PCRs a quote selects in one bank, in ascending order. */
export interface TpmPcrSelection {
  readonly hashAlg: number;
  readonly pcrs: readonly number[];
}

/** A decoded TPMS_ATTEST of type TPM_ST_ATTEST_QUOTE. */
export interface TpmQuoteInfo {
  /** The qualified name of the signing key (TPM2B_NAME). */
  readonly qualifiedSigner: Uint8Array;
  /** The verifier's qualifying data, the nonce (TPM2B_DATA). */
  readonly extraData: Uint8Array;
  /** TPMS_CLOCK_INFO: milliseconds the TPM has run, its resets and restarts, and whether the clock is safe. */
  readonly clockInfo: { readonly clock: bigint; readonly resetCount: number; readonly restartCount: number; readonly safe: boolean };
  readonly firmwareVersion: bigint;
  /** TPML_PCR_SELECTION: the quoted PCRs, bank by bank. */
  readonly pcrSelect: readonly TpmPcrSelection[];
  /** SHA-256 of the selected PCRs' values, concatenated in selection order. */
  readonly pcrDigest: Uint8Array;
}

function invalid(field: string, reason: string): TallyError<'TPM_QUOTE_INVALID'> {
  return new TallyError('TPM_QUOTE_INVALID', `TPM quote: ${field}: ${reason}`, { field, reason });
}

/** Reads TPM-marshalled (big-endian) fields with a bound on each; every failure names its field. */
class Reader {
  #at = 0;
  readonly #bytes: Uint8Array;
  readonly #view: DataView;

  constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  take(field: string, length: number): Uint8Array {
    const left = this.#bytes.length - this.#at;
    if (length > left) throw invalid(field, `needs ${length} bytes at offset ${this.#at}, ${left} left (truncated)`);
    const out = this.#bytes.slice(this.#at, this.#at + length);
    this.#at += length;
    return out;
  }

  u8(field: string): number {
    return this.take(field, 1)[0] as number;
  }

  u16(field: string): number {
    this.take(field, 2);
    return this.#view.getUint16(this.#at - 2);
  }

  u32(field: string): number {
    this.take(field, 4);
    return this.#view.getUint32(this.#at - 4);
  }

  u64(field: string): bigint {
    this.take(field, 8);
    return this.#view.getBigUint64(this.#at - 8);
  }

  /** A TPM2B: a 2-byte size, then that many bytes, at most max. */
  sized(field: string, max: number): Uint8Array {
    const size = this.u16(`${field}.size`);
    if (size > max) throw invalid(field, `${size} bytes, more than ${max}`);
    return this.take(field, size);
  }

  end(what: string): void {
    const left = this.#bytes.length - this.#at;
    if (left !== 0) throw invalid('trailing', `${left} bytes after the end of ${what}`);
  }
}

/**
 * Decodes a TPMS_ATTEST that must be a quote.
 * @throws TallyError TPM_QUOTE_INVALID naming the field: a short read, an oversized field, a wrong
 *   magic or type, a bad selection, or trailing bytes
 * @throws TypeError when bytes is not a Uint8Array
 */
export function parseAttest(bytes: Uint8Array): TpmQuoteInfo {
  if (!(bytes instanceof Uint8Array)) throw new TypeError('attest: expected a Uint8Array');
  if (bytes.length > TPM_ATTEST_BYTES_MAX) throw invalid('attest', `${bytes.length} bytes, more than ${TPM_ATTEST_BYTES_MAX}`);
  const r = new Reader(bytes);
  const magic = r.u32('magic');
  if (magic !== TPM_GENERATED_VALUE) throw invalid('magic', `expected 0xff544347 (TPM_GENERATED_VALUE), got 0x${magic.toString(16).padStart(8, '0')}`);
  const type = r.u16('type');
  if (type !== TPM_ST_ATTEST_QUOTE) throw invalid('type', `expected 0x8018 (TPM_ST_ATTEST_QUOTE), got 0x${type.toString(16).padStart(4, '0')}`);
  const qualifiedSigner = r.sized('qualifiedSigner', NAME_BYTES_MAX);
  const extraData = r.sized('extraData', DATA_BYTES_MAX);
  const clock = r.u64('clockInfo.clock');
  const resetCount = r.u32('clockInfo.resetCount');
  const restartCount = r.u32('clockInfo.restartCount');
  const safe = r.u8('clockInfo.safe');
  if (safe > 1) throw invalid('clockInfo.safe', `expected 0 or 1 (TPMI_YES_NO), got ${safe}`);
  const firmwareVersion = r.u64('firmwareVersion');
  const count = r.u32('pcrSelect.count');
  if (count > SELECTIONS_MAX) throw invalid('pcrSelect.count', `${count} selections, more than ${SELECTIONS_MAX}`);
  const pcrSelect: TpmPcrSelection[] = [];
  for (let i = 0; i < count; i++) {
    const hashAlg = r.u16(`pcrSelect[${i}].hash`);
    const sizeofSelect = r.u8(`pcrSelect[${i}].sizeofSelect`);
    if (sizeofSelect < 1 || sizeofSelect > SELECT_BYTES_MAX) throw invalid(`pcrSelect[${i}].sizeofSelect`, `expected 1..${SELECT_BYTES_MAX}, got ${sizeofSelect}`);
    const bitmap = r.take(`pcrSelect[${i}].pcrSelect`, sizeofSelect);
    const pcrs: number[] = [];
    for (let pcr = 0; pcr < 8 * sizeofSelect; pcr++) if ((((bitmap[pcr >> 3] as number) >> (pcr & 7)) & 1) === 1) pcrs.push(pcr);
    pcrSelect.push({ hashAlg, pcrs });
  }
  const pcrDigest = r.sized('pcrDigest', DIGEST_BYTES_MAX);
  r.end('the TPMS_ATTEST');
  return { qualifiedSigner, extraData, clockInfo: { clock, resetCount, restartCount, safe: safe === 1 }, firmwareVersion, pcrSelect, pcrDigest };
}

/**
 * The raw r ‖ s (64 bytes) of the TPMT_SIGNATURE a TPM answers for an ECDSA P-256 / SHA-256 key.
 * @throws TallyError TPM_QUOTE_INVALID (field `signature`) for another scheme or hash, or a malformed one
 */
export function parseSignature(bytes: Uint8Array): Uint8Array {
  const r = new Reader(bytes);
  const sigAlg = r.u16('signature.sigAlg');
  if (sigAlg !== TPM_ALG_ECDSA) throw invalid('signature.sigAlg', `expected 0x0018 (ECDSA), got 0x${sigAlg.toString(16)}`);
  const hash = r.u16('signature.hash');
  if (hash !== TPM_ALG_SHA256) throw invalid('signature.hash', `expected 0x000b (SHA-256), got 0x${hash.toString(16)}`);
  const scalars = ['signatureR', 'signatureS'].map((field) => {
    const value = r.sized(`signature.${field}`, SCALAR_BYTES);
    return concatBytes(new Uint8Array(SCALAR_BYTES - value.length), value); // a TPM may drop leading zeros
  });
  r.end('the TPMT_SIGNATURE');
  return concatBytes(...scalars);
}

function checkPcrValue(what: string, value: Uint8Array): void {
  if (!(value instanceof Uint8Array) || value.length !== PCR_VALUE_BYTES) throw new RangeError(`${what}: expected ${PCR_VALUE_BYTES} bytes`);
}

/** The SHA-256 PCR value after extending a zero PCR with each measurement in turn: v = SHA-256(v ‖ m). @throws RangeError unless each is 32 bytes */
export function expectedPcrValue(measurements: readonly Uint8Array[]): Uint8Array {
  let value: Uint8Array = new Uint8Array(PCR_VALUE_BYTES);
  measurements.forEach((m, i) => {
    checkPcrValue(`measurements[${i}]`, m);
    value = sha256(concatBytes(value, m));
  });
  return value;
}

/** The pcrDigest a TPM computes: SHA-256 of the selected PCRs' values, concatenated in selection order. @throws RangeError unless each is 32 bytes */
export function pcrDigest(values: readonly Uint8Array[]): Uint8Array {
  values.forEach((v, i) => checkPcrValue(`values[${i}]`, v));
  return sha256(concatBytes(...values));
}

/** The AK's point from its SPKI DER or a raw SEC1 point. @throws TallyError KEY_INVALID */
function akPoint(key: Uint8Array): Uint8Array {
  const point = key.length === SPKI_P256_PREFIX.length + 65 && equalBytes(key.subarray(0, SPKI_P256_PREFIX.length), SPKI_P256_PREFIX)
    ? key.subarray(SPKI_P256_PREFIX.length)
    : key;
  try {
    p256.Point.fromBytes(point).assertValidity();
    return point;
  } catch (e) {
    throw new TallyError('KEY_INVALID', `AK public key: expected a P-256 key as SPKI DER or a SEC1 point, got ${key.length} bytes that are neither`, { suite: 'p256', reason: String(e) }, { cause: e });
  }
}

/** What verifyQuote checks a quote against. */
export interface VerifyQuoteOptions {
  /** The TPMS_ATTEST as the TPM marshalled it. */
  attest: Uint8Array;
  /** The AK's ECDSA signature over SHA-256(attest), raw r ‖ s (64 bytes; see parseSignature). */
  signature: Uint8Array;
  /** The AK's public key, SPKI DER or a SEC1 point (65 or 33 bytes). */
  akPublicKey: Uint8Array;
  /** The verifier's nonce, which the quote must carry as its extraData. */
  nonce: Uint8Array;
  /** The PCRs of the SHA-256 bank the quote must select: exactly these. */
  pcrs: readonly number[];
  /** The value each of `pcrs` must hold, in the same order (see expectedPcrValue). */
  expectedPcrValues: readonly Uint8Array[];
}

/**
 * Checks a quote: the AK's ECDSA P-256 signature over SHA-256(attest) (high s accepted: a TPM does
 * not normalise s), the nonce, the selection (exactly `pcrs` in the SHA-256 bank) and the PCR digest.
 * @returns the decoded quote
 * @throws TallyError TPM_QUOTE_INVALID whose field is the decoding's, or `signature`, `nonce`,
 *   `pcrSelection` or `pcrValue`; KEY_INVALID for an AK key that is not P-256
 * @throws RangeError when pcrs and expectedPcrValues do not pair up, or a PCR is out of range or repeated
 */
export function verifyQuote(options: VerifyQuoteOptions): TpmQuoteInfo {
  const { pcrs, expectedPcrValues } = options;
  if (pcrs.length === 0 || pcrs.length !== expectedPcrValues.length) {
    throw new RangeError(`pcrs and expectedPcrValues: expected one value per PCR and at least one PCR, got ${pcrs.length} PCRs and ${expectedPcrValues.length} values`);
  }
  for (const pcr of pcrs) if (!Number.isInteger(pcr) || pcr < 0 || pcr >= TPM_PCR_COUNT) throw new RangeError(`pcrs: expected integers in 0..23, got ${pcr}`);
  if (new Set(pcrs).size !== pcrs.length) throw new RangeError(`pcrs: each PCR at most once, got ${pcrs.join(',')}`);
  const ordered = pcrs.map((pcr, i) => ({ pcr, value: expectedPcrValues[i] as Uint8Array })).sort((a, b) => a.pcr - b.pcr);
  const expectedDigest = pcrDigest(ordered.map((p) => p.value)); // the TPM hashes the values in PCR order
  const point = akPoint(options.akPublicKey);
  const quote = parseAttest(options.attest);
  if (options.signature.length !== 2 * SCALAR_BYTES) throw invalid('signature', `expected r ‖ s of 64 bytes, got ${options.signature.length}`);
  if (!p256.verify(options.signature, sha256(options.attest), point, { prehash: false, lowS: false })) {
    throw invalid('signature', 'the AK signature over SHA-256(attest) does not verify: the attest was altered or another key signed it');
  }
  if (!equalBytes(quote.extraData, options.nonce)) {
    throw invalid('nonce', `the quote carries ${toHex(quote.extraData)}, expected the nonce ${toHex(options.nonce)}: a replayed or foreign quote`);
  }
  const quoted = quote.pcrSelect.map((s) => `0x${s.hashAlg.toString(16).padStart(4, '0')}:{${s.pcrs.join(',')}}`).join(' ');
  const wanted = ordered.map((p) => p.pcr);
  const [only] = quote.pcrSelect;
  if (quote.pcrSelect.length !== 1 || only === undefined || only.hashAlg !== TPM_ALG_SHA256 || only.pcrs.join(',') !== wanted.join(',')) {
    throw invalid('pcrSelection', `the quote selects ${quoted || 'nothing'}, expected exactly sha256 (0x000b):{${wanted.join(',')}}`);
  }
  if (!equalBytes(quote.pcrDigest, expectedDigest)) {
    throw invalid('pcrValue', `the quoted PCR digest is ${toHex(quote.pcrDigest)}, expected ${toHex(expectedDigest)}: the PCRs hold another measurement`);
  }
  return quote;
}
