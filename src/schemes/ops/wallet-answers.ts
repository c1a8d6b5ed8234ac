/** Codecs for the node's answers to OPS's routes (see the wallet's node-answers.ts for the shared ones). */
import { array, boolean, decodeFailure, oneOf, optional, refine, text, uint, type Codec } from '../../core/codec.ts';
import { amount, ANSWER_ITEMS_MAX, blob, crl, looseRecord, message, word } from '../../wallet/plugin.ts';

/** POST /v1/ops/deposits. */
export const opsDepositAnswer = looseRecord({ confirmation: blob });

/** One claim's outcome in a batch. */
export type ClaimResult = { status: 'credited'; amount?: string | undefined } | { status: 'refused'; code: string; message: string };

const claimResult: Codec<ClaimResult> = refine(
  looseRecord({ status: oneOf(['credited', 'refused'] as const), amount: optional(amount), code: optional(word), message: optional(message) }),
  'a credited or refused result',
  (r, path): ClaimResult => {
    if (r.status === 'credited') return r.amount === undefined ? { status: 'credited' } : { status: 'credited', amount: r.amount };
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
});

/** POST /v1/ops/devices/:id/retire: the retirement (what the node holds, and until when). */
export const opsRetireAnswer = looseRecord({ status: word, escrow: amount, releaseAt: text({ min: 1, max: 64 }) });

/** POST /v1/ops/devices/:id/retire made again after the hold: the release, with the refund when one was paid. */
export const opsReleaseAnswer = looseRecord({ status: word, escrow: amount, refund: optional(looseRecord({ amount })) });

