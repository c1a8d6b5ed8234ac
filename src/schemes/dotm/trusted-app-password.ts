/**
 * The payment password pwd in the trusted app (DOT-M §3.1.3, §3.3.1 step 5, §3.3.3 preparation 2):
 * its policy, its salted digest, the count of wrong tries that locks the wallet, and the commands
 * that set it and prove it. Pure.
 */
import { equalBytes } from '../../core/bytes.ts';
import { boolean, decodeFailure, optional, record, text, uint } from '../../core/codec.ts';
import { sha256 } from '../../core/crypto/hash.ts';
import { encodeCbor } from '../../core/cbor.ts';
import { verifyRecord } from '../../core/crypto/record.ts';
import { keyId } from '../../pki/key-id.ts';
import { accept, command, reject, type CommandResult } from '../../secure-element/trusted-app.ts';
import { UNLOCK_TICKET_TAG, unlockTicketBodyWire, unlockTicketCodec } from './online.ts';
import { certified, guarded, NOT_CERTIFIED, wsk } from './trusted-app-common.ts';
import { PASSWORD_CHARS_MAX, PASSWORD_TRIES_MAX, type DotmState } from './trusted-app-state.ts';

/** Domain tag of the password digest. */
export const PASSWORD_TAG = 'tally/dotm/password/v1';
/** Shortest payment password, in characters (the paper sets no length; Tally asks at least 4). */
export const PASSWORD_CHARS_MIN = 4;

const POLICY = `a payment password of ${PASSWORD_CHARS_MIN} to ${PASSWORD_CHARS_MAX} characters`;

/**
 * The policy pwd must meet, the same the trusted app's setPassword decodes with: a wallet checks it
 * before it registers anything (the password itself is never in the message, only its length).
 * @throws TallyError DECODE_FAILED at path `password`
 */
export function checkPasswordPolicy(password: string): void {
  if (typeof password !== 'string') throw new TypeError('password: expected a string');
  if (password.length < PASSWORD_CHARS_MIN || password.length > PASSWORD_CHARS_MAX) decodeFailure('password', POLICY, `${password.length} characters`);
}

/** pwd's salted digest, as the state keeps it. */
export function passwordDigest(salt: Uint8Array, password: string): Uint8Array {
  return sha256(encodeCbor([PASSWORD_TAG, salt, password]));
}

/** The refusal of a locked wallet: it says locked, and how the account holder opens it again. */
const LOCKED = () => reject('PASSWORD_LOCKED', `the wallet is locked after ${PASSWORD_TRIES_MAX} wrong passwords; the account holder unlocks it with an unlock ticket from the node`);

/** The outcome of checking pwd: a refusal (unset, locked), a wrong one counted, or the state with the count reset. */
export type PasswordCheck = { kind: 'refused'; result: CommandResult<never, never> } | { kind: 'wrong'; state: DotmState; triesLeft: number } | { kind: 'right'; state: DotmState };

/** §3.3.3 preparation 2: pwd before value leaves the wallet; PASSWORD_TRIES_MAX wrong ones in a row lock it. */
export function checkPassword(state: DotmState, password: string): PasswordCheck {
  const pwd = state.password;
  if (pwd === undefined) return { kind: 'refused', result: reject('PASSWORD_NOT_SET', 'set the payment password first') };
  if (pwd.failures >= PASSWORD_TRIES_MAX) return { kind: 'refused', result: LOCKED() };
  if (!equalBytes(passwordDigest(pwd.salt, password), pwd.digest)) {
    const failures = pwd.failures + 1;
    return { kind: 'wrong', state: { ...state, password: { ...pwd, failures } }, triesLeft: PASSWORD_TRIES_MAX - failures };
  }
  return { kind: 'right', state: pwd.failures === 0 ? state : { ...state, password: { ...pwd, failures: 0 } } };
}

/** A new pwd as the TA takes it (checkPasswordPolicy's rule). */
export const passwordInput = text({ min: PASSWORD_CHARS_MIN, max: PASSWORD_CHARS_MAX, describe: POLICY });
const setPasswordInput = record({ password: passwordInput, old: optional(text({ max: PASSWORD_CHARS_MAX })) });
const setPasswordOutput = record({ set: boolean, triesLeft: uint({ max: PASSWORD_TRIES_MAX }) });
const checkPasswordInput = record({ password: text({ max: PASSWORD_CHARS_MAX }) });
const checkPasswordOutput = record({ right: boolean, triesLeft: uint({ max: PASSWORD_TRIES_MAX }) });
const unlockInput = record({ ticket: unlockTicketCodec });
const unlockOutput = record({ unlocks: uint({ min: 1, max: Number.MAX_SAFE_INTEGER }), triesLeft: uint({ max: PASSWORD_TRIES_MAX }) });

/** The password commands of the DOT-M trusted app. */
export const passwordCommands = {
  /** §3.3.1 step 5: sets pwd; changing it needs the old one, and a wrong old one counts as a try. */
  setPassword: command({
    input: setPasswordInput,
    output: setPasswordOutput,
    run(state: DotmState, input, env) {
      const current = state.password;
      if (current !== undefined) {
        if (current.failures >= PASSWORD_TRIES_MAX) return LOCKED();
        if (input.old === undefined || !equalBytes(passwordDigest(current.salt, input.old), current.digest)) {
          const failures = current.failures + 1;
          return accept({ ...state, password: { ...current, failures } }, { set: false, triesLeft: PASSWORD_TRIES_MAX - failures });
        }
      }
      const salt = env.random(16);
      return accept({ ...state, password: { salt, digest: passwordDigest(salt, input.password), failures: 0 } }, { set: true, triesLeft: PASSWORD_TRIES_MAX });
    },
  }),

  /**
   * Proves pwd without moving value (the wallet asks it before it opens what it keeps sealed under
   * pwd). A wrong one counts like any try; a right one leaves the count as it is: only a payment or
   * a redemption made with pwd resets it.
   */
  checkPassword: command({
    input: checkPasswordInput,
    output: checkPasswordOutput,
    run(state: DotmState, input) {
      const pwd = checkPassword(state, input.password);
      if (pwd.kind === 'refused') return pwd.result;
      if (pwd.kind === 'wrong') return accept(pwd.state, { right: false, triesLeft: pwd.triesLeft });
      return accept(state, { right: true, triesLeft: PASSWORD_TRIES_MAX - (state.password?.failures ?? 0) });
    },
  }),

  /**
   * Opens a locked wallet with the node's unlock ticket: signed by the issuer node's key (the one
   * acks verify under), for this wallet, carrying its next unlock number (so a ticket is used once
   * and an old one never again). The count of wrong passwords goes back to zero; pwd is unchanged.
   */
  unlock: command({
    input: unlockInput,
    output: unlockOutput,
    run(state: DotmState, input, env) {
      const c = certified(state);
      if (c === null) return NOT_CERTIFIED();
      const pwd = state.password;
      if (pwd === undefined) return reject('PASSWORD_NOT_SET', 'set the payment password first');
      const { body, signature } = input.ticket;
      if (!equalBytes(body.wallet, keyId(wsk(env).publicKey))) return reject('TICKET_INVALID', 'the unlock ticket is for another wallet');
      return guarded(() => {
        if (!verifyRecord(env.provider, c.issuerNode.body.subject, UNLOCK_TICKET_TAG, unlockTicketBodyWire(body), signature)) return reject('TICKET_INVALID', 'the unlock ticket is not signed by the issuer node');
        const next = (state.unlocks ?? 0) + 1;
        if (body.unlock !== next) return reject('TICKET_INVALID', `the unlock ticket is number ${body.unlock}, this wallet's next is ${next} (used already, or asked for another)`);
        if (pwd.failures < PASSWORD_TRIES_MAX) return reject('NOT_LOCKED', `the wallet is not locked (${PASSWORD_TRIES_MAX - pwd.failures} tries left); the ticket is kept for a lock`);
        const unlocked: DotmState = { ...state, password: { ...pwd, failures: 0 }, unlocks: next, trustedTime: Math.max(state.trustedTime, body.time) };
        return accept(unlocked, { unlocks: next, triesLeft: PASSWORD_TRIES_MAX });
      });
    },
  }),
};
