/**
 * DOT-M's shared message fields: the scheme's name, the limits the paper's evaluation sets (n_b,
 * n_d, records per block, §3.2.1 and §4.2), the sizes of every message, the codecs of the fields
 * several messages share, and the bounded encoding they all use. Pure.
 */
import { AMOUNT_MINOR_MAX } from '../../core/amount.ts';
import { decodeCbor, encodeCbor } from '../../core/cbor.ts';
import { bigint, bytes, text, uint, type Codec } from '../../core/codec.ts';
import { SUITE_NAMES, SUITE_SIZES } from '../../core/crypto/suite.ts';
import { checkSize } from '../../core/errors.ts';
import { CERTIFICATE_BYTES_MAX, TIME_MS_MAX } from '../../pki/certificate.ts';

/** The scheme's name: path segment of its routes and the `scheme` extension of its wallet certificates. */
export const DOTM_SCHEME = 'dotm';

/**
 * Most offline transaction records one currency block carries before it must go online. §3.2.1
 * says the number of offline transactions "is used for the maximum limit" but gives no figure.
 * Figure 10 (§4.2) measured a single block carrying 60 earlier records (the cell n_b = 1,
 * n_d = 60), 61 with the payment's own record, so the prototype allowed at least that many. Tally
 * takes 61: a block with 60 records can still be paid (n_d ≤ RECORDS_PER_PAYMENT_MAX) and the
 * payee's copy then has 61 and must go online; every cell of Figure 10 is a payment Tally can make.
 */
export const RECORDS_PER_BLOCK_MAX = 61;

/** Most currency blocks in one payment: n_b, whose largest measured value in §4.2 (Figure 10) is 20. */
export const BLOCKS_PER_PAYMENT_MAX = 20;

/** Most earlier records in all the blocks of one payment: n_d, whose largest measured value in §4.2 is 60. */
export const RECORDS_PER_PAYMENT_MAX = 60;

/** Length of a currency serial number (Figure 4), drawn at random by the central bank. */
export const BLOCK_SERIAL_BYTES = 16;

/** Length of a transaction serial number tsn (§3.3.3 step 1.1), drawn at random by the payee. */
export const TSN_BYTES = 16;

/** Length of a digest (SHA-256): record links and message digests. */
export const DIGEST_BYTES = 32;

const SIGNATURE_MIN = Math.min(...SUITE_NAMES.map((s) => SUITE_SIZES[s].signature));

const SIGNATURE_MAX = Math.max(...SUITE_NAMES.map((s) => SUITE_SIZES[s].signature));

/** Largest encoded form of presentation: serial, value, currency, owner key id and a signature, with room. */
export const PRESENTATION_BYTES_MAX = 256;

/** Largest encoded record: two user certificates, a link, an amount, a time and a signature. */
export const RECORD_BYTES_MAX = 2 * CERTIFICATE_BYTES_MAX + 256;

/** Largest encoded currency block: its presentation and RECORDS_PER_BLOCK_MAX records. */
export const BLOCK_BYTES_MAX = PRESENTATION_BYTES_MAX + RECORDS_PER_BLOCK_MAX * RECORD_BYTES_MAX + 64;

/** Largest encoded λ: two certificates, tsn, v and two signatures. */
export const REQUEST_BYTES_MAX = 2 * CERTIFICATE_BYTES_MAX + 512;

/**
 * Largest encoded σ: every block's presentation, n_d earlier records plus one current record per
 * block, the payer's wallet certificate and the envelope (about 350 KiB at the limits).
 */
export const TRANSACTION_BYTES_MAX =
  BLOCKS_PER_PAYMENT_MAX * (PRESENTATION_BYTES_MAX + 64) + (RECORDS_PER_PAYMENT_MAX + BLOCKS_PER_PAYMENT_MAX) * RECORD_BYTES_MAX + CERTIFICATE_BYTES_MAX + 512;

/** Largest encoded notification, success or failure message. */
export const NOTICE_BYTES_MAX = 512;

/** A positive amount in minor units. */
export const amountCodec: Codec<bigint> = bigint({ min: 1n, max: AMOUNT_MINOR_MAX });

/** A remaining value in minor units (zero once a copy is spent). */
export const remainingCodec: Codec<bigint> = bigint({ min: 0n, max: AMOUNT_MINOR_MAX });

/** A signature of any suite. */
export const signatureCodec: Codec<Uint8Array> = bytes({ min: SIGNATURE_MIN, max: SIGNATURE_MAX });

/** An encoded certificate (ucert or wcert). */
export const certificateBytesCodec: Codec<Uint8Array> = bytes({ min: 1, max: CERTIFICATE_BYTES_MAX });

/** A SHA-256 digest. */
export const digestCodec: Codec<Uint8Array> = bytes({ length: DIGEST_BYTES });

/** A time in Unix milliseconds. */
export const timestampCodec: Codec<number> = uint({ max: TIME_MS_MAX });

/** A transaction serial number tsn. */
export const tsnCodec: Codec<Uint8Array> = bytes({ length: TSN_BYTES });

/** A currency code, as in certificate extensions. */
export const currencyCodec: Codec<string> = text({ max: 12, pattern: /^[A-Z][A-Z0-9]{2,11}$/, describe: 'a currency code of 3 to 12 capitals or digits' });

/** Encodes `wire` as deterministic CBOR of at most `max` bytes. @throws TallyError TOO_LARGE */
export function encodeBounded(what: string, wire: unknown, max: number): Uint8Array {
  const encoded = encodeCbor(wire);
  checkSize(what, encoded.length, max);
  return encoded;
}

/** Decodes at most `max` bytes of CBOR with `codec`. @throws TallyError TOO_LARGE, CBOR_MALFORMED, CBOR_NONCANONICAL, DECODE_FAILED */
export function decodeBounded<T>(what: string, codec: Codec<T>, encoded: Uint8Array, max: number): T {
  checkSize(what, encoded.length, max);
  return codec.decode(decodeCbor(encoded, { maxBytes: max }), what);
}
