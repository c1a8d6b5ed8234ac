/**
 * What the OTP trusted app's commands share: its device key, the bank's classes as it knows them,
 * the sum of coins, and turning a thrown TallyError into the command's rejection.
 */
import { equalBytes } from '../../core/bytes.ts';
import type { PublicKey, Signer } from '../../core/crypto/suite.ts';
import { reject, type CommandResult, type TrustedEnv } from '../../secure-element/trusted-app.ts';
import type { CoinClass } from './coin.ts';
import type { ClassEntry } from './messages.ts';
import type { OtpState, PeerBank } from './trusted-app-state.ts';

/** The label of the TA's device key under the SE's master secret: it signs registration, requests and escrow tags. */
export const TA_KEY_LABEL = 'otp/ta';

/** The TA's device key. */
export function deviceKey(env: TrustedEnv): Signer {
  return env.signer(TA_KEY_LABEL);
}

// The refusal helpers are the secure element's, shared by every trusted app.
export { guarded, refuse, Refused } from '../../secure-element/trusted-app.ts';

/** The class entry of `classId`: in the TA's own bank's parameters, or in another bank's publication. */
export function entryOf(state: OtpState, classId: Uint8Array): ClassEntry | undefined {
  return state.params?.classes.find((c) => equalBytes(c.coinClass.classId, classId)) ?? peerOf(state, classId)?.classes.find((c) => equalBytes(c.coinClass.classId, classId));
}

/** The other bank whose class `classId` is (undefined for the TA's own bank's classes or an unknown one). */
export function peerOf(state: OtpState, classId: Uint8Array): PeerBank | undefined {
  if (state.params?.classes.some((c) => equalBytes(c.coinClass.classId, classId)) === true) return undefined;
  return state.peers?.find((p) => p.classes.some((c) => equalBytes(c.coinClass.classId, classId)));
}

/** The escrow key a coin of `classId`'s tags are sealed to: its own bank's, which alone sees both copies of a coin paid twice. */
export function escrowKeyOf(state: OtpState, params: NonNullable<OtpState['params']>, classId: Uint8Array): Uint8Array {
  return peerOf(state, classId)?.escrowKey ?? params.escrowKey;
}

/** The keys an exchange key may be signed with: the TA's own bank's, then the other banks'. */
export function exchangeKeySigners(state: OtpState, bank: PublicKey): PublicKey[] {
  return [bank, ...(state.peers ?? []).map((p) => p.issuerNode)];
}

/** The class lookup checkCoin takes. */
export function classesOf(state: OtpState): (classId: Uint8Array) => CoinClass | undefined {
  return (classId) => entryOf(state, classId)?.coinClass;
}

/** The value of a coin of `classId` in minor units (0 for a class the TA no longer knows). */
export function valueOf(state: OtpState, classId: Uint8Array): bigint {
  const entry = entryOf(state, classId);
  return entry === undefined ? 0n : BigInt(entry.coinClass.denomination);
}

/** The TA's parameters and bank key, or the rejection of a TA not yet provisioned. */
export function provisioned(state: OtpState): { ok: true; bank: NonNullable<OtpState['bank']>; params: NonNullable<OtpState['params']> } | { ok: false; result: CommandResult<never, never> } {
  if (state.bank === undefined) return { ok: false, result: reject('NOT_CERTIFIED', 'the TA has no bank key: run Init and CertInit first') };
  if (state.params === undefined) return { ok: false, result: reject('NOT_CERTIFIED', "the TA has no bank parameters yet: sync first") };
  return { ok: true, bank: state.bank, params: state.params };
}
