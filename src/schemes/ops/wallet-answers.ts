/** Codecs for the node's answers to OPS's routes (see the wallet's node-answers.ts for the shared ones). */
import { array, boolean, decodeFailure, oneOf, optional, refine, text, uint, type Codec, type Infer } from '../../core/codec.ts';
import { textMap } from '../../core/fields.ts';
import { amount, ANSWER_ITEMS_MAX, blob, crl, looseRecord, message, word } from '../../wallet/plugin.ts';

/** POST /v1/ops/deposits. */
export const opsDepositAnswer = looseRecord({ confirmation: blob });

const claimId = text({ min: 64, max: 64, pattern: /^[0-9a-f]{64}$/, describe: 'a claim id (64 hex digits)' });

/** The states of an interbank claim at the payee's bank (GET /v1/interbank/claims/{id}). */
export const INTERBANK_CLAIM_STATES = ['pending', 'presented', 'accepted', 'settled', 'refused'] as const;

/**
 * An interbank claim as the payee's bank shows it: a payment from another bank's device, presented
 * to that bank through the central bank; credited once `settled`, never when `refused`.
 */
export const interbankClaimAnswer = looseRecord({
  claimId,
  payerBank: text({ min: 1, max: 64 }),
  amount,
  currency: text({ min: 1, max: 12 }),
  status: oneOf(INTERBANK_CLAIM_STATES),
  code: optional(word),
  reason: optional(message),
});
/** An interbank claim, decoded. */
export type InterbankClaimState = Infer<typeof interbankClaimAnswer>;

/** One claim's outcome in a batch: credited, refused, or presented to the payer's bank (another bank's device). */
export type ClaimResult =
  | { status: 'credited'; amount?: string | undefined }
  | { status: 'refused'; code: string; message: string }
  | { status: 'presented'; claim: InterbankClaimState };

const claimResult: Codec<ClaimResult> = refine(
  looseRecord({ status: oneOf(['credited', 'refused', 'presented'] as const), amount: optional(amount), code: optional(word), message: optional(message), claim: optional(interbankClaimAnswer) }),
  'a credited, refused or presented result',
  (r, path): ClaimResult => {
    if (r.status === 'credited') return r.amount === undefined ? { status: 'credited' } : { status: 'credited', amount: r.amount };
    if (r.status === 'presented') return r.claim === undefined ? decodeFailure(`${path}.claim`, 'the interbank claim', 'nothing') : { status: 'presented', claim: r.claim };
    if (r.code === undefined) return decodeFailure(`${path}.code`, word.expected, 'nothing');
    return { status: 'refused', code: r.code, message: r.message ?? '' };
  },
);

/** POST /v1/ops/claims/batch: one result per claim, in order. */
export const opsClaimsAnswer = looseRecord({
  results: array(claimResult, { max: ANSWER_ITEMS_MAX }),
});

/** POST /v1/ops/sync. */
export const opsSyncAnswer = looseRecord({
  ack: blob,
  crl,
  crlVersion: uint({ max: 2 ** 40 }),
  // Every field of a case is kept: `tally wallet sync --json` prints them as the node gave them.
  fraud: array(looseRecord({ device: text({ min: 1, max: 128 }), kind: word, new: optional(boolean) }), { max: ANSWER_ITEMS_MAX }),
  // Two tiers: the collects of payments from other banks' devices, each presented to its bank (or refused, with a code).
  foreign: optional(
    array(looseRecord({ sender: text({ min: 1, max: 128 }), index: text({ min: 1, max: 24 }), amount, claim: optional(interbankClaimAnswer), code: optional(word), message: optional(message) }), { max: ANSWER_ITEMS_MAX }),
  ),
});

/** POST /v1/ops/devices/:id/retire: the retirement (what the node holds, and until when). */
export const opsRetireAnswer = looseRecord({ status: word, escrow: amount, releaseAt: text({ min: 1, max: 64 }) });

/** POST /v1/ops/devices/:id/retire made again after the hold: the release, with the refund when one was paid. */
export const opsReleaseAnswer = looseRecord({ status: word, escrow: amount, refund: optional(looseRecord({ amount })) });


/**
 * GET /v1/interbank/peers (two tiers): the other banks the wallet's bank knows, each with its
 * certificate and its publications by scheme, and the root's list of revoked intermediaries. The
 * wallet trusts none of it as given (see Wallet.refreshPeers).
 */
export const interbankPeersAnswer = looseRecord({
  peers: array(looseRecord({ keyId: text({ min: 1, max: 64 }), name: text({ max: 200 }), certificate: blob, revoked: boolean, publications: textMap(blob, { max: 16, keyCharsMax: 32 }) }), { max: 64 }),
  rootList: optional(crl),
});
