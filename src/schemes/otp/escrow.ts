/**
 * Accountable anonymity, beyond the OTP paper (which cannot name a double spender): each offline
 * transfer of a coin appends a tag naming the paying TA, sealed to an escrow key of the central bank
 * (the tag chain is the PKI layer's, pki/escrow-tags.ts; this file is OTP's domain of it). Nobody
 * opens tags in normal operation. When one serial is deposited twice, the node opens the tags of the
 * two copies where their chains part: the TA that signed the first differing tag of both copies
 * paid the same coin twice, and is named (and revoked by the node).
 */
import { escrowTags, type EscrowTags } from '../../pki/escrow-tags.ts';

export { forkHop, sealedTagCodec, tagDigest, type SealedTag, type TagContent } from '../../pki/escrow-tags.ts';

/** The domain tag of a TA's signature over a transfer tag. */
export const ESCROW_TAG = 'tally/otp/escrow-tag/v1';
/** Most transfers a coin carries tags for (a coin past its hops must be deposited). */
export const TAGS_MAX = 64;

const otpEscrow: EscrowTags = escrowTags({ signTag: ESCROW_TAG, infoLabel: 'tally/otp/escrow/v1', serialBytes: 32, tagsMax: TAGS_MAX });

/** What an OTP tag says, sealed: who paid (the paying TA's device key), to which exchange key, at which hop, after which tag. */
export const tagContentCodec = otpEscrow.tagContentCodec;
/** The paying TA: appends the tag of a coin's transfer (pki/escrow-tags.ts). @throws RangeError past TAGS_MAX */
export const appendTag = otpEscrow.appendTag;
/** The node: opens and checks one tag of a coin. @throws TallyError AEAD_FAILED, DECODE_FAILED, SIGNATURE_INVALID */
export const openTag = otpEscrow.openTag;
/** The node, on a serial deposited twice: the TA that paid it twice, or null. @throws TallyError for a tag that does not check */
export const attribute = otpEscrow.attribute;
