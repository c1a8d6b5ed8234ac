/**
 * Escrow attribution for OPERA, beyond the paper (whose anonymity model leaves no transfer trail, so
 * a token copied by a cloned ODW cannot be traced to it): each time an ODW pays a token, or deposits
 * it, its trusted app appends a tag to the token's chain naming itself (its device key signs), bound
 * to the serial, the hop and the payee (the partner's SN, or the bank's), and sealed to the bank's
 * escrow key (pki/escrow-tags.ts; OTP uses the same chain in its own domain). The tags travel with the
 * token inside the sealed Msg 2-3, so neither wallet app sees them, and no ODW can open them. The
 * bank opens them only when a serial is deposited twice: the device that signed both branches where
 * the two copies' chains part paid the token twice.
 *
 * Pure.
 */
import { escrowTags, type EscrowTags } from '../../pki/escrow-tags.ts';
import type { RandomSource } from '../../core/crypto/hpke.ts';
import type { PublicKey, Signer } from '../../core/crypto/suite.ts';
import { odwSerial } from './serial.ts';
import { tagsOf, TOKEN_SERIAL_BYTES, TOKEN_TAGS_MAX, type Token } from './token.ts';

export { forkHop, type SealedTag } from '../../pki/escrow-tags.ts';

/** The domain tag of an ODW's signature over an escrow tag. */
export const OPERA_ESCROW_TAG = 'tally/opera/escrow-tag/v1';
/** Most tags a token may carry when it is paid: one more must fit for its deposit. */
export const PAYABLE_TAGS_MAX = TOKEN_TAGS_MAX - 1;

/** OPERA's escrow domain: its own labels, so an OTP tag neither opens nor checks here. */
export const operaEscrow: EscrowTags = escrowTags({ signTag: OPERA_ESCROW_TAG, infoLabel: 'tally/opera/escrow/v1', serialBytes: TOKEN_SERIAL_BYTES, tagsMax: TOKEN_TAGS_MAX });

/** The payee a deposit's tag names: the bank's SN (the first bytes of SHA-256 of its key, as an ODW's). */
export function bankPayee(bank: PublicKey): Uint8Array {
  return odwSerial(bank);
}

/**
 * The paying (or depositing) ODW: each token with its tag for `payee` appended, signed by the
 * device key and sealed to the bank's escrow key.
 * @throws RangeError for a token whose chain is full (never picked: see payable)
 */
export function tagged(tokens: readonly Token[], options: { payee: Uint8Array; device: Signer; escrowKey: Uint8Array; random: RandomSource }): Token[] {
  return tokens.map((token) => ({
    ...token,
    tags: operaEscrow.appendTag({ serial: token.body.serial, tags: tagsOf(token), payee: options.payee, device: options.device, escrowPublicKey: options.escrowKey, random: options.random }),
  }));
}

/** Whether a token can still be paid offline (its chain has room for this payment's tag and the deposit's). */
export function payable(token: Token): boolean {
  return tagsOf(token).length < PAYABLE_TAGS_MAX;
}
