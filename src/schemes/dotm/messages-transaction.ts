/**
 * DOT-M step 3 (§3.3.3, Figure 8): the payer's transaction data tsd (the blocks with their current
 * records, n_b and n_d) and the transaction message σ = (tsd ‖ γ ‖ wcert_P), γ = Sign(wsk_P, tsd).
 * Pure.
 */
import { equalBytes } from '../../core/bytes.ts';
import { encodeCbor } from '../../core/cbor.ts';
import { array, decodeFailure, record, refine, uint, type Infer } from '../../core/codec.ts';
import { sha256 } from '../../core/crypto/hash.ts';
import { BLOCKS_PER_PAYMENT_MAX, RECORDS_PER_PAYMENT_MAX, TRANSACTION_BYTES_MAX, amountCodec, signatureCodec, certificateBytesCodec, tsnCodec, encodeBounded, decodeBounded } from './messages-fields.ts';
import { transactionRecordCodec, currencyBlockCodec, recordWire, blockWire } from './messages-block.ts';

/** Domain tag of γ = Sign(wsk_P, tsd) (§3.3.3 step 3.2). */
export const GAMMA_TAG = 'tally/dotm/transaction-data/v1';

/** Figure 8, one row: a block as the payer holds it, and the current record it appends for this payment. */
export const blockTransferCodec = record({ block: currencyBlockCodec, current: transactionRecordCodec });

/** One block of a payment with its current record. */
export type BlockTransfer = Infer<typeof blockTransferCodec>;

/**
 * Figure 8: the transaction data tsd. `nb` and `nd` are the paper's counts (§4.2): the number of
 * currency blocks, and the number of records they carry before this payment (current ones not
 * counted); both must match the blocks, and the current amounts must add up to v.
 */
export const transactionDataCodec = refine(
  record({
    tsn: tsnCodec,
    v: amountCodec,
    nb: uint({ min: 1, max: BLOCKS_PER_PAYMENT_MAX }),
    nd: uint({ max: RECORDS_PER_PAYMENT_MAX }),
    blocks: array(blockTransferCodec, { min: 1, max: BLOCKS_PER_PAYMENT_MAX }),
  }),
  'transaction data whose counts match its blocks',
  (tsd, path) => {
    if (tsd.nb !== tsd.blocks.length) return decodeFailure(`${path}.nb`, `the number of blocks (${tsd.blocks.length})`, `${tsd.nb}`);
    const nd = tsd.blocks.reduce((n, t) => n + t.block.records.length, 0);
    if (tsd.nd !== nd) return decodeFailure(`${path}.nd`, `the number of earlier records (${nd})`, `${tsd.nd}`);
    const sum = tsd.blocks.reduce((s, t) => s + t.current.amount, 0n);
    if (sum !== tsd.v) return decodeFailure(`${path}.v`, `the sum of the current records (${sum})`, `${tsd.v}`);
    // The same copy of a block twice would pay twice from one remaining value.
    const currents = tsd.blocks.map((t) => t.current.prev);
    for (let i = 1; i < currents.length; i++) {
      if (currents.slice(0, i).some((p) => equalBytes(p, currents[i] as Uint8Array))) {
        return decodeFailure(`${path}.blocks[${i}]`, 'a block not already in the payment', 'a block given twice');
      }
    }
    return tsd;
  },
);

/** tsd. */
export type TransactionData = Infer<typeof transactionDataCodec>;

/** Step 3: σ := (tsd ‖ γ ‖ wcert_P), built by the payer P. */
export const transactionMessageCodec = record({
  tsd: transactionDataCodec,
  /** γ ← Sign(wsk_P, tsd). */
  gamma: signatureCodec,
  wcertP: certificateBytesCodec,
});

/** σ. */
export type TransactionMessage = Infer<typeof transactionMessageCodec>;

/** The record γ covers: tsd, whole (step 3.2). */
export function gammaSigned(tsd: TransactionData): unknown {
  return transactionDataWire(tsd);
}

/** The wire form of tsd. */
export function transactionDataWire(tsd: TransactionData): Record<string, unknown> {
  return {
    tsn: tsd.tsn,
    v: tsd.v,
    nb: tsd.nb,
    nd: tsd.nd,
    blocks: tsd.blocks.map((t) => ({ block: blockWire(t.block), current: recordWire(t.current) })),
  };
}

/** The wire form of σ. */
export function transactionMessageWire(m: TransactionMessage): Record<string, unknown> {
  return { tsd: transactionDataWire(m.tsd), gamma: m.gamma, wcertP: m.wcertP };
}

/** SHA-256 of σ's encoding: what the step-6 notification acknowledges. */
export function transactionDigest(m: TransactionMessage): Uint8Array {
  return sha256(encodeCbor(transactionMessageWire(m)));
}

/**
 * Encodes σ.
 * @throws TallyError TOO_LARGE past TRANSACTION_BYTES_MAX
 */
export function encodeTransactionMessage(message: TransactionMessage): Uint8Array {
  return encodeBounded('transaction', transactionMessageWire(message), TRANSACTION_BYTES_MAX);
}

/**
 * Decodes σ.
 * @throws TallyError TOO_LARGE, CBOR_MALFORMED, CBOR_NONCANONICAL, DECODE_FAILED
 */
export function decodeTransactionMessage(encoded: Uint8Array): TransactionMessage {
  return decodeBounded('transaction', transactionMessageCodec, encoded, TRANSACTION_BYTES_MAX);
}
