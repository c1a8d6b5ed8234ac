/**
 * What the OTP trusted app's commands share: its device key, the bank's classes as it knows them,
 * the sum of coins, and turning a thrown TallyError into the command's rejection.
 */
import { equalBytes } from '../../core/bytes.ts';
import type { Signer } from '../../core/crypto/suite.ts';
import { reject, type CommandResult, type TrustedEnv } from '../../secure-element/trusted-app.ts';
import type { CoinClass } from './coin.ts';
import type { ClassEntry } from './messages.ts';
import type { OtpState } from './trusted-app-state.ts';

/** The label of the TA's device key under the SE's master secret: it signs registration, requests and escrow tags. */
export const TA_KEY_LABEL = 'otp/ta';

/** The TA's device key. */
export function deviceKey(env: TrustedEnv): Signer {
  return env.signer(TA_KEY_LABEL);
}

// The refusal helpers are the secure element's, shared by every trusted app.
export { guarded, refuse, Refused } from '../../secure-element/trusted-app.ts';

/** The class entry of `classId` in the TA's parameters. */
export function entryOf(state: OtpState, classId: Uint8Array): ClassEntry | undefined {
  return state.params?.classes.find((c) => equalBytes(c.coinClass.classId, classId));
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
