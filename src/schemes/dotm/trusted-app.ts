/**
 * The DOT-M trusted app (the Wallet Trustlet and DOT-M Service of §3.1.1) as a pure state machine.
 * It holds what §3.2.2 and §3.2.3 put in the wallet and user structures: the currency block copies,
 * ucert and wcert, pk_C (the pinned root's key) and pwd; usk and wsk are derived inside the secure
 * element (§3.1.2) under USER_KEY_LABEL and WALLET_KEY_LABEL and never leave it.
 *
 * Commands, by the step of §3.3.3 they carry out:
 * - registration (§3.3.1): `init` (both key pairs and their proofs), `certify` (ucert, wcert),
 *   `setPassword` (pwd);
 * - account synchronization (§3.3.2): `load` the blocks the node issued;
 * - payee: `request` (step 1, λ), `accept` (steps 4–6: verify σ, link the current records, sign the
 *   notification), `complete` (step 9 with the success message) or `rollback` (step 9 timed out, or
 *   the wallet rebooted between steps 5 and 9);
 * - payer: `pay` (steps 2–3: check λ and pwd, choose the blocks, sign the records with usk and tsd
 *   with wsk), `confirm` (step 7: verify the notification, deduct, answer with step 8's message) or
 *   `abandon` (no notification came: the offer is withdrawn, nothing was paid);
 * - online data updating (§3.3.4): `events` (the signed log), `ack`; `redeem` gives copies up to the
 *   online account.
 * Every command that moves value out of the SE or commits it to a payment (`pay`, `redeem`) checks
 * pwd and is refused once the wallet is locked; `checkPassword` lets the wallet prove pwd before it
 * unseals what it keeps under the same password. A wrong password is the one refusal that changes
 * state (the count of tries), so these commands answer it as an output, not a rejection.
 *
 * The commands live in one file per procedure: trusted-app-registration.ts, -password.ts, -online.ts,
 * -payee.ts, -payer.ts; what they share in trusted-app-common.ts, the state in trusted-app-state.ts.
 */
import type { Codec } from '../../core/codec.ts';
import { defineTrustedApp } from '../../secure-element/trusted-app.ts';
import { dotmStateCodec, initialDotmState, type DotmState } from './trusted-app-state.ts';
import { onlineCommands } from './trusted-app-online.ts';
import { passwordCommands } from './trusted-app-password.ts';
import { payeeCommands } from './trusted-app-payee.ts';
import { payerCommands } from './trusted-app-payer.ts';
import { registrationCommands } from './trusted-app-registration.ts';

export { dotmStateCodec, PASSWORD_TRIES_MAX, WALLET_BLOCKS_MAX, type DotmState } from './trusted-app-state.ts';
export { USER_KEY_LABEL, USER_PROOF_SCHEME, WALLET_KEY_LABEL } from './trusted-app-common.ts';
export { checkPasswordPolicy, PASSWORD_CHARS_MIN } from './trusted-app-password.ts';

/** The DOT-M trusted app: one command table, its commands grouped by the step of §3.3 they carry out. */
export const dotmTrustedApp = defineTrustedApp({
  name: 'dotm',
  state: dotmStateCodec as Codec<DotmState>,
  init: initialDotmState,
  commands: {
    ...registrationCommands,
    ...passwordCommands,
    ...onlineCommands,
    ...payeeCommands,
    ...payerCommands,
  },
});
