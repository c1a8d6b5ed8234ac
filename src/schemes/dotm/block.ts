/**
 * Currency blocks (DOT-M §3.2.1): verifying one (the central bank's signature on its presentation,
 * then every record of its linked list in order, as step 4 of §3.3.3 asks), appending the current
 * record of a payment (step 5), and choosing the blocks of a payment (step 3.1). Pure.
 *
 * How value moves (§3.2.1, §3.3.3 steps 3, 5 and 7). A form of presentation is signed by C once
 * and never changes, so offline a block cannot be split into new blocks with new serials. The
 * paper instead sends the whole block with a current record for the amount paid (Figure 8), the
 * payee links that record into its copy (step 5), and the payer deducts the amount from the
 * remaining value of its own copy (step 7). A payment may use several blocks, all but the last in
 * full (the record's amount is the copy's whole remaining value) and the last in part (§3.3.3 step
 * 3.1: "one or a cluster of applicable currency blocks as needed").
 *
 * So one serial may live in several copies, one per holder of part of its value. Each copy's
 * records are the path by which its value came to its holder: the first payer is the original
 * owner, each later payer is the previous payee, each amount is at most what that payer received
 * (a_k ≤ a_{k-1}, a_0 = value), and the copy's remaining value is at most what its holder received.
 * The paper's "remaining = value − Σ amounts" holds for the original owner's copy only; applied to
 * a chain of holders it would hand the payer's change to the payee. Overspending one copy (a
 * cloned SE paying the same remaining twice) makes two paths that branch at the same payer with
 * amounts adding up to more than it received: the node sees that when both reach it (§3.3.4,
 * §3.4.4) and names that payer.
 */
import { equalBytes, toHex } from '../../core/bytes.ts';
import { verifyRecordWithMemo, type MemoOfChecks } from '../../core/crypto/signature-memo.ts';
import type { CryptoProvider, PublicKey } from '../../core/crypto/suite.ts';
import { AMOUNT_MINOR_MAX } from '../../core/amount.ts';
import { checkSize, isTallyError, TallyError } from '../../core/errors.ts';
import type { Certificate } from '../../pki/certificate.ts';
import { decodeThrough, type CertificateCache } from '../../pki/certificate-cache.ts';
import { verifyChain, type VerifiedChain } from '../../pki/chain.ts';
import { keyId } from '../../pki/key-id.ts';
import type { RevocationChecker, RevocationList } from '../../pki/revocation.ts';
import {
  BLOCKS_PER_PAYMENT_MAX,
  PRESENTATION_TAG,
  presentationDigest,
  presentationSigned,
  RECORD_TAG,
  recordDigest,
  recordSigned,
  RECORDS_PER_BLOCK_MAX,
  RECORDS_PER_PAYMENT_MAX,
  type CurrencyBlock,
  type TransactionRecord,
} from './messages.ts';

/** How far a record's timestamp may be ahead of the verifier's clock (two offline devices' clocks differ). */
export const CLOCK_SKEW_MS_MAX = 5 * 60_000;

/** Options of verifyBlock. */
export interface VerifyBlockOptions {
  provider: CryptoProvider;
  /** pk_C: the central bank's currency key, preset in the wallet (§3.1.3). */
  centralBankKey: PublicKey;
  /** The central bank's root certificates, for the user certificates in the records. */
  trustAnchors: readonly Certificate[];
  /**
   * Intermediary certificates a user certificate may chain through to the root: the verifier's
   * own bank's first, then other banks' (several operators). A user certificate takes the one
   * whose key issued it. With several operators these are also the keys that may sign a
   * presentation naming an `issuer`: one certified by the root as an intermediary in the
   * block's currency.
   */
  intermediaries: readonly Certificate[];
  /** The verifier's time, Unix milliseconds. */
  now: number;
  /** Revocation lists or a checker; a revoked payer or payee anywhere in the chain refuses the block. */
  revocations?: readonly RevocationList[] | RevocationChecker | undefined;
  /** When given, the presentation must be in this currency. */
  currency?: string | undefined;
  /**
   * Signatures already verified (core/crypto/signature-memo.ts): the certificates', the
   * presentation's and the records'. A Set for one payment's checks, or a bounded SignatureMemo a
   * node keeps across uploads (the payer's and the payee's events carry the same block).
   */
  verifiedSignatures?: MemoOfChecks | undefined;
  /** Decoded user certificates kept by their bytes (pki/certificate-cache.ts), for a node that sees the same users in upload after upload. */
  certificates?: CertificateCache | undefined;
}

/** A verified block and what it says. */
export interface VerifiedBlock {
  readonly block: CurrencyBlock;
  /** Key id of the user who holds this copy: the last payee, or the original owner. */
  readonly holder: Uint8Array;
  /** The holder's user certificate as the last record names it; undefined while the owner holds it. */
  readonly holderCertificate: Uint8Array | undefined;
  /** What the holder received: the last record's amount, or the block's value. */
  readonly received: bigint;
  /** The link the next record must carry: the last record's digest, or the presentation's. */
  readonly tip: Uint8Array;
}

function invalid(reason: string, cause?: unknown): TallyError<'PAYMENT_INVALID'> {
  return new TallyError('PAYMENT_INVALID', `currency block refused: ${reason}`, { reason }, { cause });
}

/** The intermediary certificate among `pool` whose key is `issuer`, if any. */
export function issuingIntermediary(pool: readonly Certificate[], issuer: Uint8Array): Certificate | undefined {
  return pool.find((c) => equalBytes(keyId(c.body.subject), issuer));
}

/**
 * The key that signed a presentation (several operators, docs/dotm.md): pk_C when it names no
 * issuer; otherwise the key of the intermediary certificate it names, which must verify under the
 * root as an intermediary in the block's currency at the verifier's time.
 */
export function presentationKey(presentation: CurrencyBlock['presentation'], options: VerifyBlockOptions): PublicKey {
  if (presentation.issuer === undefined) return options.centralBankKey;
  const certificate = issuingIntermediary(options.intermediaries, presentation.issuer);
  if (certificate === undefined) throw invalid(`the block was issued by ${toHex(presentation.issuer)}, an intermediary this wallet does not know`);
  let chain: VerifiedChain;
  try {
    chain = verifyChain({ provider: options.provider, chain: [certificate], trustAnchors: options.trustAnchors, now: options.now, leafRoles: ['intermediary'], verifiedSignatures: options.verifiedSignatures });
  } catch (e) {
    throw invalid(`issuer ${toHex(presentation.issuer)}: ${e instanceof Error ? e.message : String(e)}`, e);
  }
  if (chain.extensions.currency !== presentation.currency) throw invalid(`issuer ${toHex(presentation.issuer)} is certified for ${chain.extensions.currency ?? 'no currency'}, not ${presentation.currency}`);
  return chain.subject;
}

function userChain(options: VerifyBlockOptions, what: string, encoded: Uint8Array, at: number): VerifiedChain {
  let certificate: Certificate;
  try {
    certificate = decodeThrough(options.certificates, encoded);
  } catch (e) {
    throw invalid(`${what}: ${e instanceof Error ? e.message : String(e)}`, e);
  }
  try {
    // At the record's time: a record stays valid after its payer's certificate ends.
    return verifyChain({
      provider: options.provider,
      chain: [certificate, issuingIntermediary(options.intermediaries, certificate.body.issuer) ?? (options.intermediaries[0] as Certificate)],
      trustAnchors: options.trustAnchors,
      now: at,
      revocations: options.revocations,
      leafRoles: ['user'],
      verifiedSignatures: options.verifiedSignatures,
    });
  } catch (e) {
    // A revoked user keeps its own code, as in OPS PayVerify.
    if (isTallyError(e, 'CERT_REVOKED')) throw e;
    throw invalid(`${what}: ${e instanceof Error ? e.message : String(e)}`, e);
  }
}

/** The link the next record of a block must carry. */
export function blockTip(block: CurrencyBlock): Uint8Array {
  const last = block.records[block.records.length - 1];
  return last === undefined ? presentationDigest(block.presentation) : recordDigest(last);
}

/**
 * Verifies a currency block (§3.3.3 step 4.2 and 4.3): C's signature on the presentation, then
 * each record in order: its link, its payer (the original owner first, then the previous payee),
 * both user certificates at the record's time, the payer's signature, its amount against what the
 * payer received and its time; then the count and the remaining value.
 * @throws TallyError SIGNATURE_INVALID for C's or a payer's signature; PAYMENT_INVALID with a
 *   reason for a broken link, a wrong payer, a bad certificate, an amount, count or value that does
 *   not add up; CERT_REVOKED for a revoked user; TOO_LARGE past RECORDS_PER_BLOCK_MAX records
 */
export function verifyBlock(block: CurrencyBlock, options: VerifyBlockOptions): VerifiedBlock {
  const { presentation, records } = block;
  checkSize('block records', records.length, RECORDS_PER_BLOCK_MAX, { unit: 'records', label: 'a block' });
  if (options.currency !== undefined && presentation.currency !== options.currency) {
    throw invalid(`the block is in ${presentation.currency}, not ${options.currency}`);
  }
  if (!verifyRecordWithMemo(options.provider, options.verifiedSignatures, presentationKey(presentation, options), PRESENTATION_TAG, presentationSigned(presentation), presentation.signature)) {
    const who = presentation.issuer === undefined ? "the central bank's signature does not verify under pk_C" : `the signature of issuer ${toHex(presentation.issuer)} does not verify`;
    throw new TallyError('SIGNATURE_INVALID', `currency ${toHex(presentation.serial)}: ${who}`, { tag: PRESENTATION_TAG });
  }

  let tip = presentationDigest(presentation);
  let holder = presentation.owner;
  let holderCertificate: Uint8Array | undefined;
  let received = presentation.value;
  let previousTime = 0;
  records.forEach((record, k) => {
    const at = `record ${k}`;
    if (!equalBytes(record.prev, tip)) throw invalid(`${at} is not linked to ${k === 0 ? 'the presentation' : `record ${k - 1}`} of this block`);
    if (record.timestamp < previousTime) throw invalid(`${at} is dated before record ${k - 1}`);
    if (record.timestamp > options.now + CLOCK_SKEW_MS_MAX) throw invalid(`${at} is dated after the verifier's time`);
    const payer = userChain(options, `${at} payer certificate`, record.ucertP, record.timestamp);
    if (!equalBytes(payer.subjectKeyId, holder)) {
      const who = k === 0 ? 'the original owner' : `the payee of record ${k - 1}`;
      throw invalid(`${at} is paid by ${toHex(payer.subjectKeyId)}, not by ${who} ${toHex(holder)}`);
    }
    if (!verifyRecordWithMemo(options.provider, options.verifiedSignatures, payer.subject, RECORD_TAG, recordSigned(record), record.signature)) {
      throw new TallyError('SIGNATURE_INVALID', `currency ${toHex(presentation.serial)}, ${at}: the payer's signature does not verify`, { tag: RECORD_TAG });
    }
    const payee = userChain(options, `${at} payee certificate`, record.ucertR, record.timestamp);
    if (equalBytes(payee.subjectKeyId, payer.subjectKeyId)) throw invalid(`${at} pays its payer`);
    if (record.amount > received) throw invalid(`${at} pays ${record.amount}, more than the ${received} its payer received`);
    tip = recordDigest(record);
    holder = payee.subjectKeyId;
    holderCertificate = record.ucertR;
    received = record.amount;
    previousTime = record.timestamp;
  });

  if (block.count !== records.length) throw invalid(`the count of offline transactions is ${block.count}, but the block has ${records.length} records`);
  if (block.remaining > received) throw invalid(`the remaining value ${block.remaining} is more than the ${received} its holder received`);
  return { block, holder, holderCertificate, received, tip };
}

/**
 * The payee's copy after a payment (§3.3.3 step 5): the current record linked into the block, the
 * count incremented, and the remaining value what the record pays. Checks the form only; the
 * caller verifies the result with verifyBlock.
 * @throws TallyError PAYMENT_INVALID when the record is not linked to this block or pays more than
 *   its remaining value; TOO_LARGE when the block already has RECORDS_PER_BLOCK_MAX records
 */
export function appendRecord(block: CurrencyBlock, record: TransactionRecord): CurrencyBlock {
  checkSize('block records', block.records.length + 1, RECORDS_PER_BLOCK_MAX, {
    unit: 'records',
    label: 'a block (it must go online before another offline transaction)',
  });
  if (!equalBytes(record.prev, blockTip(block))) throw invalid('the current record is not linked to the last record of this block');
  if (record.amount > block.remaining) throw invalid(`the current record pays ${record.amount}, more than the remaining ${block.remaining}`);
  return { presentation: block.presentation, records: [...block.records, record], remaining: record.amount, count: block.count + 1 };
}

/**
 * The payer's copy after a payment (§3.3.3 step 7): the same records, the remaining value less
 * what was paid. A copy left at zero may be dropped once the payment is settled.
 * @throws TallyError PAYMENT_INVALID when `amount` is more than the remaining value
 */
export function deductRemaining(block: CurrencyBlock, amount: bigint): CurrencyBlock {
  if (amount <= 0n || amount > block.remaining) throw invalid(`cannot deduct ${amount} from a remaining value of ${block.remaining}`);
  return { ...block, remaining: block.remaining - amount };
}

/** One block of a planned payment and the amount its current record will pay. */
export interface PaymentPart {
  readonly block: CurrencyBlock;
  readonly amount: bigint;
}

/** The blocks chosen for a payment, or why none fit. */
export type PaymentPlan =
  | { readonly ok: true; readonly parts: readonly PaymentPart[] }
  | {
      readonly ok: false;
      /** `insufficient`: the spendable blocks hold less than asked; `limits`: they hold enough, but not within the per-payment limits. */
      readonly reason: 'insufficient' | 'limits';
      /** What the spendable blocks hold in all. */
      readonly available: bigint;
    };

function byPreference(a: CurrencyBlock, b: CurrencyBlock): number {
  if (a.remaining !== b.remaining) return a.remaining > b.remaining ? -1 : 1;
  if (a.records.length !== b.records.length) return a.records.length - b.records.length;
  const x = toHex(a.presentation.serial);
  const y = toHex(b.presentation.serial);
  return x < y ? -1 : x > y ? 1 : 0;
}

/**
 * Chooses the blocks of a payment (§3.3.3 step 3.1): largest remaining value first, so n_b stays
 * small (it weighs most on the time of a payment, §4.2), fewer records first among equals; every
 * block in full but the last, which pays the rest in part. A block already at
 * RECORDS_PER_BLOCK_MAX records must go online first and is left out (§3.2.1), as is a block whose
 * records would take the payment past RECORDS_PER_PAYMENT_MAX; at most BLOCKS_PER_PAYMENT_MAX blocks.
 * @throws RangeError for an amount that is not a positive integer up to AMOUNT_MINOR_MAX
 */
export function splitForPayment(blocks: readonly CurrencyBlock[], amount: bigint): PaymentPlan {
  if (typeof amount !== 'bigint' || amount <= 0n || amount > AMOUNT_MINOR_MAX) {
    throw new RangeError(`amount: expected a positive integer up to ${AMOUNT_MINOR_MAX} minor units, got ${String(amount)}`);
  }
  const spendable = blocks.filter((b) => b.remaining > 0n && b.records.length < RECORDS_PER_BLOCK_MAX).sort(byPreference);
  const available = spendable.reduce((s, b) => s + b.remaining, 0n);
  if (available < amount) return { ok: false, reason: 'insufficient', available };

  const parts: PaymentPart[] = [];
  let left = amount;
  let records = 0;
  for (const block of spendable) {
    if (left === 0n || parts.length === BLOCKS_PER_PAYMENT_MAX) break;
    if (records + block.records.length > RECORDS_PER_PAYMENT_MAX) continue;
    const pay = block.remaining < left ? block.remaining : left;
    parts.push({ block, amount: pay });
    records += block.records.length;
    left -= pay;
  }
  if (left > 0n) return { ok: false, reason: 'limits', available };
  return { ok: true, parts };
}
