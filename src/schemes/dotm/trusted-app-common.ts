/**
 * What the DOT-M trusted app's commands share: the key labels of usk and wsk (§3.1.2), the
 * certified state, the certificate checks of one command, the TA's clock, the busy checks and the
 * signed event log (§3.3.4). Pure.
 */
import { equalBytes } from '../../core/bytes.ts';
import { bytes, record, uint } from '../../core/codec.ts';
import { signRecord } from '../../core/crypto/record.ts';
import { type Signer } from '../../core/crypto/suite.ts';
import { isTallyError } from '../../core/errors.ts';
import { decodeCertificate, type Certificate } from '../../pki/certificate.ts';
import { verifyChain, type VerifiedChain } from '../../pki/chain.ts';
import { keyId } from '../../pki/key-id.ts';
import { acceptedListChecker, decodeRevocationList, type RevocationChecker } from '../../pki/revocation.ts';
import { reject, type CommandResult, type TrustedEnv } from '../../secure-element/trusted-app.ts';
import { blockTip, issuingIntermediary, type VerifyBlockOptions } from './block.ts';
import { amountCodec, DOTM_SCHEME, TSN_BYTES, type CurrencyBlock } from './messages.ts';
import { EVENT_TAG, eventBodyWire, EVENTS_MAX, type EventBody, type WalletEvent } from './online.ts';
import { type DotmState } from './trusted-app-state.ts';

/** Label of usk under the device master secret. */
export const USER_KEY_LABEL = 'dotm/user';
/** Label of wsk under the device master secret. */
export const WALLET_KEY_LABEL = 'dotm/wallet';
/** The `scheme` of the registration proof made with usk (wsk's proof uses DOTM_SCHEME). */
export const USER_PROOF_SCHEME = 'dotm-user';

/** usk, derived in the SE under USER_KEY_LABEL. */
export const usk = (env: TrustedEnv): Signer => env.signer(USER_KEY_LABEL);
/** wsk, derived in the SE under WALLET_KEY_LABEL. */
export const wsk = (env: TrustedEnv): Signer => env.signer(WALLET_KEY_LABEL);

/** What the TA knows once certified. */
export interface Certified {
  readonly root: Certificate;
  readonly intermediary: Certificate;
  /** Other banks' intermediary certificates (several operators), verified when taken. */
  readonly peers: readonly Certificate[];
  readonly issuerNode: Certificate;
  readonly ucert: Uint8Array;
  readonly wcert: Uint8Array;
}

/** The certificates once `certify` ran, decoded; null before. */
export function certified(state: DotmState): Certified | null {
  if (state.root === undefined || state.intermediary === undefined || state.issuerNode === undefined || state.ucert === undefined || state.wcert === undefined) return null;
  return {
    root: decodeCertificate(state.root),
    intermediary: decodeCertificate(state.intermediary),
    peers: (state.peers ?? []).map((p) => decodeCertificate(p)),
    issuerNode: decodeCertificate(state.issuerNode),
    ucert: state.ucert,
    wcert: state.wcert,
  };
}

/** The refusal of a command that needs ucert and wcert. */
export const NOT_CERTIFIED = () => reject('NOT_CERTIFIED', 'the wallet has no ucert and wcert yet: register it first');

/** The revocation list the TA holds, as a checker. */
export function checker(state: DotmState): RevocationChecker | undefined {
  return state.crl === undefined ? undefined : acceptedListChecker(decodeRevocationList(state.crl));
}

/**
 * The certificate checks of one command: the revocation list decoded once, and each distinct
 * certificate's signature verified once (verifyChain's memo). A fresh one per command, so a
 * revocation list taken between payments counts at the next one.
 */
export interface Checks {
  readonly revocations: RevocationChecker | undefined;
  readonly verifiedSignatures: Set<string>;
}

/** Fresh checks for one command. */
export function checksOf(state: DotmState): Checks {
  return { revocations: checker(state), verifiedSignatures: new Set() };
}

/** verifyBlock's options under the TA's root, intermediary, revocation list and currency. */
export function blockOptions(state: DotmState, checks: Checks, c: Certified, env: TrustedEnv, now: number): VerifyBlockOptions {
  return {
    provider: env.provider,
    centralBankKey: c.root.body.subject,
    trustAnchors: [c.root],
    intermediaries: [c.intermediary, ...c.peers],
    now,
    revocations: checks.revocations,
    currency: state.currency,
    verifiedSignatures: checks.verifiedSignatures,
  };
}

/** A certificate and the intermediary that issued it: this bank's, or another bank's the TA holds. */
function chainThrough(c: Certified, certificate: Certificate): Certificate[] {
  return [certificate, issuingIntermediary(c.peers, certificate.body.issuer) ?? c.intermediary];
}

/** A user or wallet certificate verified under the TA's root and intermediary (or another bank's it holds). */
export function chainOf(checks: Checks, c: Certified, env: TrustedEnv, encoded: Uint8Array, now: number, role: 'user' | 'device'): VerifiedChain {
  return verifyChain({
    provider: env.provider,
    chain: chainThrough(c, decodeCertificate(encoded)),
    trustAnchors: [c.root],
    now,
    revocations: checks.revocations,
    leafRoles: [role],
    verifiedSignatures: checks.verifiedSignatures,
  });
}

/** A wallet certificate bound to a user certificate: scheme dotm, its owner the user's key id. */
export function walletChainFor(checks: Checks, c: Certified, env: TrustedEnv, wcert: Uint8Array, user: VerifiedChain, now: number): VerifiedChain {
  const wallet = chainOf(checks, c, env, wcert, now, 'device');
  if (wallet.extensions.scheme !== DOTM_SCHEME) throw refusal('CERT_MISMATCH', `the wallet certificate is for scheme ${wallet.extensions.scheme ?? '(none)'}, not ${DOTM_SCHEME}`);
  const owner = wallet.extensions.owner;
  if (owner === undefined || !equalBytes(owner, user.subjectKeyId)) throw refusal('CERT_MISMATCH', 'the wallet certificate belongs to another user than the user certificate');
  return wallet;
}

/** A check's failure with the TA's refusal code; `guarded` turns it into a rejection. */
export class Refusal extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** A Refusal to throw. */
export function refusal(code: string, message: string): Refusal {
  return new Refusal(code, message);
}

/** Runs a check that throws and turns its failure into a rejection (nothing is written). */
export function guarded<O>(run: () => CommandResult<DotmState, O>): CommandResult<DotmState, O> {
  try {
    return run();
  } catch (e) {
    if (e instanceof Refusal) return reject(e.code, e.message);
    if (isTallyError(e)) return reject(e.code, e.message);
    throw e;
  }
}

/** The TA's time: the wallet's clock, never earlier than what it already vouched for. */
export function clock(state: DotmState, now: number): number {
  return Math.max(state.trustedTime, now);
}

/** True for the same copy of a block: same serial, same last record. */
export function sameCopy(a: CurrencyBlock, b: CurrencyBlock): boolean {
  return equalBytes(a.presentation.serial, b.presentation.serial) && equalBytes(blockTip(a), blockTip(b));
}


/** What the blocks hold in all. */
export function balanceOf(blocks: readonly CurrencyBlock[]): bigint {
  return blocks.reduce((s, b) => s + b.remaining, 0n);
}

/** Why the wallet cannot start another transaction, or null. */
export function busy(state: DotmState): string | null {
  if (state.offer !== undefined) return 'a payment offer is open (confirm or abandon it first)';
  if (state.receiving !== undefined) return 'a received transaction is open (complete or roll it back first)';
  return null;
}

/** Appends a signed event to the log. */
export function withEvent(state: DotmState, env: TrustedEnv, time: number, fields: Omit<EventBody, 'wallet' | 'seq' | 'time'>): DotmState {
  const signer = wsk(env);
  const body: EventBody = { wallet: keyId(signer.publicKey), seq: state.seq + 1, time, ...fields };
  const event: WalletEvent = { body, signature: signRecord(signer, EVENT_TAG, eventBodyWire(body)) };
  return { ...state, seq: body.seq, events: [...state.events, event] };
}

/** A time input, Unix milliseconds. */
export const timeInput = uint({ max: Number.MAX_SAFE_INTEGER });
/** A key id input. */
export const keyIdInput = bytes({ length: 32 });
/** What a command that closes a transaction answers. */
export const closedOutput = record({ tsn: bytes({ length: TSN_BYTES }), amount: amountCodec, seq: uint({ max: Number.MAX_SAFE_INTEGER }) });

/** Why the log has no room for another event, or null. */
export function eventRoom(state: DotmState): string | null {
  return state.events.length >= EVENTS_MAX ? `${state.events.length} offline events await the node, the most this wallet keeps; go online (sync) first` : null;
}

