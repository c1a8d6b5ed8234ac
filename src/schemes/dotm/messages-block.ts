/**
 * DOT-M's currency block (§3.2.1, Figures 3–5): the form of presentation signed by the central
 * bank, the linked list of offline transaction records, the remaining value and the count; the
 * records their signatures cover, their wire forms and digests. Pure.
 */
import { encodeCbor } from '../../core/cbor.ts';
import { array, bytes, optional, record, uint, type Infer } from '../../core/codec.ts';
import { sha256 } from '../../core/crypto/hash.ts';
import { KEY_ID_BYTES } from '../../pki/key-id.ts';
import { RECORDS_PER_BLOCK_MAX, BLOCK_SERIAL_BYTES, BLOCK_BYTES_MAX, amountCodec, remainingCodec, signatureCodec, certificateBytesCodec, digestCodec, timestampCodec, currencyCodec, encodeBounded, decodeBounded } from './messages-fields.ts';

/** Domain tag of the central bank's signature on a form of presentation (§3.2.1, Figure 4). */
export const PRESENTATION_TAG = 'tally/dotm/presentation/v1';

/** Domain tag of the payer's signature on an offline transaction record (§3.2.1, Figure 5). */
export const RECORD_TAG = 'tally/dotm/record/v1';

/**
 * Figure 4: the form of presentation, issued (signed) by the central bank C and never changed
 * offline. The original owner is the key id of the user key upk the block was issued to (not a
 * certificate: the block must outlive certificate renewals, and it travels in every payment).
 */
export const presentationCodec = record({
  /** The unique serial number of the currency. */
  serial: bytes({ length: BLOCK_SERIAL_BYTES }),
  /** The amount of value, in minor units of `currency`. */
  value: amountCodec,
  /** Tally's extended field (Figure 4 allows them): the currency `value` counts in. */
  currency: currencyCodec,
  /** The original owner: key id of its upk. */
  owner: bytes({ length: KEY_ID_BYTES }),
  /**
   * Tally's extended field for several operators (docs/dotm.md, "Several operators"): the key id
   * of the intermediary key that signed, under the central bank's certificate. Absent when the
   * central bank's own key (pk_C) signed, as at a standalone node.
   */
  issuer: optional(bytes({ length: KEY_ID_BYTES })),
  /** The signature of C (pk_C verifies it), or of the certified issuer, over presentationSigned. */
  signature: signatureCodec,
});

/** A form of presentation. */
export type Presentation = Infer<typeof presentationCodec>;

/**
 * Figure 5: one node of the offline transaction record list. `prev` is what Tally adds to make the
 * list a hash chain: the digest of the previous record, or of the presentation for the first one,
 * so a record signed for one chain verifies in no other (docs/dotm.md, "Data structures").
 */
export const transactionRecordCodec = record({
  /** Digest of the previous record (recordDigest) or, for the first, of the presentation. */
  prev: digestCodec,
  /** The transaction amount. */
  amount: amountCodec,
  /** The transaction timestamp, Unix milliseconds, from the payer's trusted clock. */
  timestamp: timestampCodec,
  /** ucert_P: the payer's user certificate. */
  ucertP: certificateBytesCodec,
  /** ucert_R: the payee's user certificate. */
  ucertR: certificateBytesCodec,
  /** The signature of P with usk_P over recordSigned (§3.3.3 step 4.2). */
  signature: signatureCodec,
});

/** An offline transaction record. */
export type TransactionRecord = Infer<typeof transactionRecordCodec>;

/**
 * Figure 3: a currency block as one wallet holds it. `remaining` is what this copy's holder may
 * still spend from it; `count` is the number of offline transactions, one per record.
 */
export const currencyBlockCodec = record({
  presentation: presentationCodec,
  records: array(transactionRecordCodec, { max: RECORDS_PER_BLOCK_MAX }),
  /** The remaining amount of value. */
  remaining: remainingCodec,
  /** The number of times of offline transaction. */
  count: uint({ max: RECORDS_PER_BLOCK_MAX }),
});

/** A currency block. */
export type CurrencyBlock = Infer<typeof currencyBlockCodec>;

/** The record C's signature covers: `[serial, value, currency, owner]`, and `issuer` after them when the block names one. */
export function presentationSigned(p: Pick<Presentation, 'serial' | 'value' | 'currency' | 'owner' | 'issuer'>): unknown[] {
  return p.issuer === undefined ? [p.serial, p.value, p.currency, p.owner] : [p.serial, p.value, p.currency, p.owner, p.issuer];
}

/** The record a payer's record signature covers: `[prev, amount, timestamp, ucert_P, ucert_R]`. */
export function recordSigned(r: Pick<TransactionRecord, 'prev' | 'amount' | 'timestamp' | 'ucertP' | 'ucertR'>): unknown[] {
  return [r.prev, r.amount, r.timestamp, r.ucertP, r.ucertR];
}

/** The wire form of a presentation (exactly its fields). */
export function presentationWire(p: Presentation): Record<string, unknown> {
  return { serial: p.serial, value: p.value, currency: p.currency, owner: p.owner, ...(p.issuer === undefined ? {} : { issuer: p.issuer }), signature: p.signature };
}

/** The wire form of a record (exactly its fields). */
export function recordWire(r: TransactionRecord): Record<string, unknown> {
  return { prev: r.prev, amount: r.amount, timestamp: r.timestamp, ucertP: r.ucertP, ucertR: r.ucertR, signature: r.signature };
}

/** The wire form of a block (exactly its fields). */
export function blockWire(b: CurrencyBlock): Record<string, unknown> {
  return { presentation: presentationWire(b.presentation), records: b.records.map(recordWire), remaining: b.remaining, count: b.count };
}

/** SHA-256 of a presentation's encoding: the link the first record of its block carries. */
export function presentationDigest(p: Presentation): Uint8Array {
  return sha256(encodeCbor(presentationWire(p)));
}

/** SHA-256 of a record's encoding, signature included: the link the next record carries. */
export function recordDigest(r: TransactionRecord): Uint8Array {
  return sha256(encodeCbor(recordWire(r)));
}

/**
 * Encodes a currency block as deterministic CBOR.
 * @throws TallyError TOO_LARGE past BLOCK_BYTES_MAX
 */
export function encodeBlock(block: CurrencyBlock): Uint8Array {
  return encodeBounded('block', blockWire(block), BLOCK_BYTES_MAX);
}

/**
 * Decodes currency block bytes (form only: verifyBlock checks signatures and links).
 * @throws TallyError TOO_LARGE, CBOR_MALFORMED, CBOR_NONCANONICAL, DECODE_FAILED
 */
export function decodeBlock(encoded: Uint8Array): CurrencyBlock {
  return decodeBounded('block', currencyBlockCodec, encoded, BLOCK_BYTES_MAX);
}
