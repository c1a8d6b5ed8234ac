/** Codecs for the node's answers to DOT-M's routes (see the wallet's node-answers.ts for the shared ones). */
import { array, boolean, oneOf, optional, text, uint, type Codec, type Infer } from '../../core/codec.ts';
import { amount, ANSWER_ITEMS_MAX, blob, crl, looseRecord, message, word } from '../../wallet/plugin.ts';

/** Most DOT-M blocks issued in one answer. */
const BLOCKS_MAX = 4096;

/** POST /v1/dotm/wallets. */
export const dotmWalletAnswer = looseRecord({ wallet: text({ min: 1, max: 256 }), user: text({ min: 1, max: 256 }), ucert: blob, wcert: blob });

/** POST /v1/dotm/issue. */
export const dotmIssueAnswer = looseRecord({ blocks: array(blob, { max: BLOCKS_MAX }) });

/** POST /v1/dotm/events. */
export const dotmEventsAnswer = looseRecord({
  ack: blob,
  crl,
  // Every field of a result is kept: `tally wallet sync --json` prints the results as the node gave them.
  results: array(looseRecord({ seq: uint({ max: 2 ** 40 }), status: word, code: optional(word), message: optional(message), credited: optional(amount), refund: optional(oneOf(['credited', 'withheld'] as const)), claims: optional(array(text({ min: 1, max: 128 }), { max: ANSWER_ITEMS_MAX })) }), { max: ANSWER_ITEMS_MAX }),
  findings: array({ expected: 'a finding', decode: (v: unknown) => v } satisfies Codec<unknown>, { max: ANSWER_ITEMS_MAX }),
});

/** What POST /v1/dotm/events answers. */
export type DotmEventsAnswer = Infer<typeof dotmEventsAnswer>;

/** POST /v1/dotm/wallets/:keyId/unlock: the ticket (base64url of its CBOR). */
export const dotmUnlockAnswer = looseRecord({ wallet: text({ min: 1, max: 256 }), unlock: uint({ max: Number.MAX_SAFE_INTEGER }), ticket: blob });

/** GET /v1/interbank/peers, the part DOT-M reads: each other bank's intermediary certificate and whether the root revoked it. */
export const interbankPeersAnswer = looseRecord({ peers: array(looseRecord({ certificate: blob, revoked: boolean }), { max: ANSWER_ITEMS_MAX }) });
