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
 */
import { equalBytes, toHex } from '../../core/bytes.ts';
import { array, boolean, bytes, oneOf, optional, record, text, uint, type Codec, type Infer } from '../../core/codec.ts';
import { sha256 } from '../../core/crypto/hash.ts';
import { signRecord, verifyRecord } from '../../core/crypto/record.ts';
import { publicKeyCodec, type Signer } from '../../core/crypto/suite.ts';
import { encodeCbor } from '../../core/cbor.ts';
import { isTallyError } from '../../core/errors.ts';
import { decodeCertificate, type Certificate } from '../../pki/certificate.ts';
import { verifyChain, type VerifiedChain } from '../../pki/chain.ts';
import { keyId } from '../../pki/key-id.ts';
import { signRegistrationProof } from '../../pki/registration.ts';
import { acceptedListChecker, decodeRevocationList, verifyRevocationList, type RevocationChecker } from '../../pki/revocation.ts';
import { accept, command, defineTrustedApp, reject, type CommandResult, type TrustedEnv } from '../../secure-element/trusted-app.ts';
import { appendRecord, blockTip, deductRemaining, splitForPayment, verifyBlock, type VerifyBlockOptions } from './block.ts';
import {
  ALPHA_TAG,
  alphaSigned,
  amountCodec,
  remainingCodec,
  BETA_TAG,
  betaSigned,
  certificateBytesCodec,
  currencyBlockCodec,
  DOTM_SCHEME,
  GAMMA_TAG,
  gammaSigned,
  notificationCodec,
  NOTIFICATION_TAG,
  notificationDigest,
  notificationSigned,
  RECORD_TAG,
  recordSigned,
  RECORDS_PER_BLOCK_MAX,
  successNoticeCodec,
  SUCCESS_TAG,
  successSigned,
  transactionDigest,
  transactionMessageCodec,
  transactionRequestCodec,
  TSN_BYTES,
  type CurrencyBlock,
  type Notification,
  type TransactionData,
  type TransactionMessage,
  type TransactionRecord,
  type TransactionRequest,
} from './messages.ts';
import { EVENT_ACK_TAG, EVENT_TAG, eventAckBodyWire, eventAckCodec, eventBodyWire, EVENTS_MAX, partsDigest, REDEEM_BLOCKS_MAX, walletEventCodec, type EventBody, type EventPart, type WalletEvent } from './online.ts';
import { dotmStateCodec, initialDotmState, PASSWORD_CHARS_MAX, PASSWORD_TRIES_MAX, TA_CRL_BYTES_MAX, WALLET_BLOCKS_MAX, type DotmState, type Offer } from './trusted-app-state.ts';

export { dotmStateCodec, PASSWORD_TRIES_MAX, WALLET_BLOCKS_MAX, type DotmState } from './trusted-app-state.ts';

/** Label of usk under the device master secret. */
export const USER_KEY_LABEL = 'dotm/user';
/** Label of wsk under the device master secret. */
export const WALLET_KEY_LABEL = 'dotm/wallet';
/** The `scheme` of the registration proof made with usk (wsk's proof uses DOTM_SCHEME). */
export const USER_PROOF_SCHEME = 'dotm-user';
/** Domain tag of the password digest. */
const PASSWORD_TAG = 'tally/dotm/password/v1';

const usk = (env: TrustedEnv): Signer => env.signer(USER_KEY_LABEL);
const wsk = (env: TrustedEnv): Signer => env.signer(WALLET_KEY_LABEL);

/** What the TA knows once certified. */
interface Certified {
  readonly root: Certificate;
  readonly intermediary: Certificate;
  readonly issuerNode: Certificate;
  readonly ucert: Uint8Array;
  readonly wcert: Uint8Array;
}

function certified(state: DotmState): Certified | null {
  if (state.root === undefined || state.intermediary === undefined || state.issuerNode === undefined || state.ucert === undefined || state.wcert === undefined) return null;
  return {
    root: decodeCertificate(state.root),
    intermediary: decodeCertificate(state.intermediary),
    issuerNode: decodeCertificate(state.issuerNode),
    ucert: state.ucert,
    wcert: state.wcert,
  };
}

const NOT_CERTIFIED = () => reject('NOT_CERTIFIED', 'the wallet has no ucert and wcert yet: register it first');

function checker(state: DotmState): RevocationChecker | undefined {
  return state.crl === undefined ? undefined : acceptedListChecker(decodeRevocationList(state.crl));
}

function blockOptions(state: DotmState, c: Certified, env: TrustedEnv, now: number): VerifyBlockOptions {
  return {
    provider: env.provider,
    centralBankKey: c.root.body.subject,
    trustAnchors: [c.root],
    intermediaries: [c.intermediary],
    now,
    revocations: checker(state),
    currency: state.currency,
  };
}

function chainOf(state: DotmState, c: Certified, env: TrustedEnv, encoded: Uint8Array, now: number, role: 'user' | 'device'): VerifiedChain {
  return verifyChain({
    provider: env.provider,
    chain: [decodeCertificate(encoded), c.intermediary],
    trustAnchors: [c.root],
    now,
    revocations: checker(state),
    leafRoles: [role],
  });
}

/** A wallet certificate bound to a user certificate: scheme dotm, its owner the user's key id. */
function walletChainFor(state: DotmState, c: Certified, env: TrustedEnv, wcert: Uint8Array, user: VerifiedChain, now: number): VerifiedChain {
  const wallet = chainOf(state, c, env, wcert, now, 'device');
  if (wallet.extensions.scheme !== DOTM_SCHEME) throw refusal('CERT_MISMATCH', `the wallet certificate is for scheme ${wallet.extensions.scheme ?? '(none)'}, not ${DOTM_SCHEME}`);
  const owner = wallet.extensions.owner;
  if (owner === undefined || !equalBytes(owner, user.subjectKeyId)) throw refusal('CERT_MISMATCH', 'the wallet certificate belongs to another user than the user certificate');
  return wallet;
}

class Refusal extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

function refusal(code: string, message: string): Refusal {
  return new Refusal(code, message);
}

/** Runs a check that throws and turns its failure into a rejection (nothing is written). */
function guarded<O>(run: () => CommandResult<DotmState, O>): CommandResult<DotmState, O> {
  try {
    return run();
  } catch (e) {
    if (e instanceof Refusal) return reject(e.code, e.message);
    if (isTallyError(e)) return reject(e.code, e.message);
    throw e;
  }
}

/** The TA's time: the wallet's clock, never earlier than what it already vouched for. */
function clock(state: DotmState, now: number): number {
  return Math.max(state.trustedTime, now);
}

function sameCopy(a: CurrencyBlock, b: CurrencyBlock): boolean {
  return equalBytes(a.presentation.serial, b.presentation.serial) && equalBytes(blockTip(a), blockTip(b));
}

function passwordDigest(salt: Uint8Array, password: string): Uint8Array {
  return sha256(encodeCbor([PASSWORD_TAG, salt, password]));
}

/** The outcome of checking pwd: a refusal (unset, locked), a wrong one counted, or the state with the count reset. */
type PasswordCheck = { kind: 'refused'; result: CommandResult<never, never> } | { kind: 'wrong'; state: DotmState; triesLeft: number } | { kind: 'right'; state: DotmState };

/** §3.3.3 preparation 2: pwd before value leaves the wallet; PASSWORD_TRIES_MAX wrong ones in a row lock it. */
function checkPassword(state: DotmState, password: string): PasswordCheck {
  const pwd = state.password;
  if (pwd === undefined) return { kind: 'refused', result: reject('PASSWORD_NOT_SET', 'set the payment password first') };
  if (pwd.failures >= PASSWORD_TRIES_MAX) return { kind: 'refused', result: reject('PASSWORD_LOCKED', `the wallet is locked after ${PASSWORD_TRIES_MAX} wrong passwords`) };
  if (!equalBytes(passwordDigest(pwd.salt, password), pwd.digest)) {
    const failures = pwd.failures + 1;
    return { kind: 'wrong', state: { ...state, password: { ...pwd, failures } }, triesLeft: PASSWORD_TRIES_MAX - failures };
  }
  return { kind: 'right', state: pwd.failures === 0 ? state : { ...state, password: { ...pwd, failures: 0 } } };
}

function balanceOf(blocks: readonly CurrencyBlock[]): bigint {
  return blocks.reduce((s, b) => s + b.remaining, 0n);
}

function busy(state: DotmState): string | null {
  if (state.offer !== undefined) return 'a payment offer is open (confirm or abandon it first)';
  if (state.receiving !== undefined) return 'a received transaction is open (complete or roll it back first)';
  return null;
}

/** Appends a signed event to the log. */
function withEvent(state: DotmState, env: TrustedEnv, time: number, fields: Omit<EventBody, 'wallet' | 'seq' | 'time'>): DotmState {
  const signer = wsk(env);
  const body: EventBody = { wallet: keyId(signer.publicKey), seq: state.seq + 1, time, ...fields };
  const event: WalletEvent = { body, signature: signRecord(signer, EVENT_TAG, eventBodyWire(body)) };
  return { ...state, seq: body.seq, events: [...state.events, event] };
}

const passwordInput = text({ min: 4, max: PASSWORD_CHARS_MAX, describe: 'a payment password of 4 to 128 characters' });
const timeInput = uint({ max: Number.MAX_SAFE_INTEGER });
const keyIdInput = bytes({ length: 32 });

const initInput = record({ root: certificateBytesCodec, intermediary: certificateBytesCodec, issuerNode: certificateBytesCodec, account: keyIdInput });
const initOutput = record({ userKey: publicKeyCodec, walletKey: publicKeyCodec, userProof: bytes({ max: 128 }), walletProof: bytes({ max: 128 }) });
const certifyInput = record({ ucert: certificateBytesCodec, wcert: certificateBytesCodec });
const certifyOutput = record({ currency: text({ max: 12 }) });
const setPasswordInput = record({ password: passwordInput, old: optional(text({ max: PASSWORD_CHARS_MAX })) });
const setPasswordOutput = record({ set: boolean, triesLeft: uint({ max: PASSWORD_TRIES_MAX }) });
const loadInput = record({ blocks: array(currencyBlockCodec, { min: 1, max: REDEEM_BLOCKS_MAX }), now: timeInput });
const balanceOutput = record({ balance: remainingCodec });
const requestInput = record({ v: amountCodec, now: timeInput });
const payInput = record({
  request: transactionRequestCodec,
  password: text({ max: PASSWORD_CHARS_MAX }),
  /** Step 2.3: the payer's intention; the amount and, when given, the payee's user key id. */
  expect: record({ v: amountCodec, payee: optional(keyIdInput) }),
  now: timeInput,
});
const payOutput = record({
  kind: oneOf(['transaction', 'wrong-password'] as const),
  transaction: optional(transactionMessageCodec),
  triesLeft: uint({ max: PASSWORD_TRIES_MAX }),
});
const acceptInput = record({ transaction: transactionMessageCodec, now: timeInput });
const confirmInput = record({ notification: notificationCodec });
const closedOutput = record({ tsn: bytes({ length: TSN_BYTES }), amount: amountCodec, seq: uint({ max: Number.MAX_SAFE_INTEGER }) });
const completeInput = record({ success: successNoticeCodec });
const redeemInput = record({ amount: amountCodec, password: text({ max: PASSWORD_CHARS_MAX }), now: timeInput });
const redeemOutput = record({
  kind: oneOf(['redeemed', 'wrong-password'] as const),
  tsn: optional(bytes({ length: TSN_BYTES })),
  amount: optional(amountCodec),
  seq: optional(uint({ max: Number.MAX_SAFE_INTEGER })),
  triesLeft: uint({ max: PASSWORD_TRIES_MAX }),
});
const checkPasswordInput = record({ password: text({ max: PASSWORD_CHARS_MAX }) });
const checkPasswordOutput = record({ right: boolean, triesLeft: uint({ max: PASSWORD_TRIES_MAX }) });
const eventsOutput = record({ events: array(walletEventCodec, { max: EVENTS_MAX }) });
const ackInput = record({ ack: eventAckCodec, crl: optional(bytes({ max: TA_CRL_BYTES_MAX })) });
const ackOutput = record({ cleared: uint({ max: EVENTS_MAX }), crlVersion: optional(uint({ max: Number.MAX_SAFE_INTEGER })) });
const blockSummary = record({
  serial: bytes({ length: 16 }),
  tip: bytes({ length: 32 }),
  value: amountCodec,
  remaining: remainingCodec,
  count: uint({ max: RECORDS_PER_BLOCK_MAX }),
  held: boolean,
});
const statusOutput = record({
  userKey: publicKeyCodec,
  walletKey: publicKeyCodec,
  certified: boolean,
  currency: text({ max: 12 }),
  balance: remainingCodec,
  blocks: array(blockSummary, { max: WALLET_BLOCKS_MAX }),
  passwordSet: boolean,
  triesLeft: uint({ max: PASSWORD_TRIES_MAX }),
  offer: optional(bytes({ length: TSN_BYTES })),
  receiving: optional(bytes({ length: TSN_BYTES })),
  unsyncedEvents: uint({ max: EVENTS_MAX }),
  trustedTime: uint({ max: Number.MAX_SAFE_INTEGER }),
});

function eventRoom(state: DotmState): string | null {
  return state.events.length >= EVENTS_MAX ? `${state.events.length} offline events await the node, the most this wallet keeps; go online (sync) first` : null;
}

/** Step 2: the payer's checks of λ. Throws a Refusal naming the failed check. */
function checkRequest(state: DotmState, c: Certified, env: TrustedEnv, request: TransactionRequest, expect: { v: bigint; payee?: Uint8Array | undefined }, now: number): VerifiedChain {
  let user: VerifiedChain;
  let wallet: VerifiedChain;
  try {
    user = chainOf(state, c, env, request.ucertR, now, 'user');
    wallet = walletChainFor(state, c, env, request.wcertR, user, now);
  } catch (e) {
    if (e instanceof Refusal) throw e;
    if (isTallyError(e, 'CERT_REVOKED')) throw refusal('CERT_REVOKED', `the payee's certificate is revoked: ${e.message}`);
    throw refusal('REQUEST_INVALID', `the payee's certificates do not verify: ${e instanceof Error ? e.message : String(e)}`);
  }
  // 2.1 and 2.2.
  if (!verifyRecord(env.provider, user.subject, ALPHA_TAG, alphaSigned(request), request.alpha)) throw refusal('SIGNATURE_INVALID', 'α does not verify under upk_R');
  if (!verifyRecord(env.provider, wallet.subject, BETA_TAG, betaSigned(request), request.beta)) throw refusal('SIGNATURE_INVALID', 'β does not verify under wpk_R');
  // 2.3: what the payer meant to pay, and to whom.
  if (request.v !== expect.v) throw refusal('AMOUNT_MISMATCH', 'the payee asks for another amount than the payer agreed to');
  if (expect.payee !== undefined && !equalBytes(expect.payee, user.subjectKeyId)) {
    throw refusal('PAYEE_MISMATCH', `the payee is ${toHex(user.subjectKeyId)}, not the ${toHex(expect.payee)} the payer meant to pay`);
  }
  if (equalBytes(request.ucertR, c.ucert)) throw refusal('PAYEE_MISMATCH', 'a wallet cannot pay its own user');
  return user;
}

/** Step 3.1: the records, signed with usk_P, appended to the chosen blocks. */
function buildTransactionData(state: DotmState, c: Certified, env: TrustedEnv, request: TransactionRequest, now: number): TransactionData {
  // 2.4: the remaining value must cover v.
  const plan = splitForPayment(state.blocks, request.v);
  if (!plan.ok) {
    const held = balanceOf(state.blocks);
    if (held < request.v) throw refusal('INSUFFICIENT_FUNDS', 'the wallet holds less than the amount to pay');
    throw refusal('LIMIT_REACHED', "the wallet holds enough, but not in blocks one offline payment may use (too many blocks or records, or blocks that must go online first)");
  }
  const signer = usk(env);
  const blocks = plan.parts.map(({ block, amount }) => {
    const fields = { prev: blockTip(block), amount, timestamp: now, ucertP: c.ucert, ucertR: request.ucertR };
    const current: TransactionRecord = { ...fields, signature: signRecord(signer, RECORD_TAG, recordSigned(fields)) };
    return { block, current };
  });
  return { tsn: request.tsn, v: request.v, nb: blocks.length, nd: blocks.reduce((n, t) => n + t.block.records.length, 0), blocks };
}

/** The DOT-M trusted app. */
export const dotmTrustedApp = defineTrustedApp({
  name: 'dotm',
  state: dotmStateCodec as Codec<DotmState>,
  init: initialDotmState,
  commands: {
    /** §3.3.1 steps 3–4: usk/upk and wsk/wpk are made in the SE; each proves possession for the account. */
    init: command({
      input: initInput,
      output: initOutput,
      run(state: DotmState, input, env) {
        if (state.ucert !== undefined) return reject('ALREADY_CERTIFIED', 'this wallet is already registered');
        return guarded(() => {
          const root = decodeCertificate(input.root);
          if (root.body.role !== 'root') return reject('ROOT_INVALID', `the pinned certificate must be a root, got a ${root.body.role}`);
          const user = usk(env);
          const wallet = wsk(env);
          // wsk's proof names the user key as owner, so the node binds wcert to ucert (§3.1.3).
          const userProof = signRegistrationProof(user, { owner: input.account, scheme: USER_PROOF_SCHEME });
          const walletProof = signRegistrationProof(wallet, { owner: keyId(user.publicKey), scheme: DOTM_SCHEME });
          const next: DotmState = { ...state, root: input.root, intermediary: input.intermediary, issuerNode: input.issuerNode, account: input.account };
          return accept(next, { userKey: user.publicKey, walletKey: wallet.publicKey, userProof, walletProof });
        });
      },
    }),

    /** Installs ucert and wcert, after checking they certify this SE's keys and belong together. */
    certify: command({
      input: certifyInput,
      output: certifyOutput,
      run(state: DotmState, input, env) {
        if (state.root === undefined || state.intermediary === undefined || state.issuerNode === undefined) return reject('NOT_INITIALISED', 'run init first');
        if (state.ucert !== undefined) return reject('ALREADY_CERTIFIED', 'ucert and wcert are already set');
        return guarded(() => {
          const ucert = decodeCertificate(input.ucert);
          const now = Math.max(state.trustedTime, ucert.body.notBefore);
          const c: Certified = {
            root: decodeCertificate(state.root as Uint8Array),
            intermediary: decodeCertificate(state.intermediary as Uint8Array),
            issuerNode: decodeCertificate(state.issuerNode as Uint8Array),
            ucert: input.ucert,
            wcert: input.wcert,
          };
          const user = chainOf(state, c, env, input.ucert, now, 'user');
          const wallet = walletChainFor(state, c, env, input.wcert, user, now);
          const me = usk(env).publicKey;
          const w = wsk(env).publicKey;
          if (!equalBytes(user.subject.key, me.key) || user.subject.suite !== me.suite) return reject('CERT_MISMATCH', 'ucert certifies another key than usk');
          if (!equalBytes(wallet.subject.key, w.key) || wallet.subject.suite !== w.suite) return reject('CERT_MISMATCH', 'wcert certifies another key than wsk');
          const currency = wallet.extensions.currency ?? user.extensions.currency;
          if (currency === undefined) return reject('CERT_MISMATCH', 'the certificates name no currency');
          verifyChain({ provider: env.provider, chain: [c.issuerNode, c.intermediary], trustAnchors: [c.root], now, leafRoles: ['issuer-node'] });
          return accept({ ...state, ucert: input.ucert, wcert: input.wcert, currency, trustedTime: now }, { currency });
        });
      },
    }),

    /** §3.3.1 step 5: sets pwd; changing it needs the old one, and a wrong old one counts as a try. */
    setPassword: command({
      input: setPasswordInput,
      output: setPasswordOutput,
      run(state: DotmState, input, env) {
        const current = state.password;
        if (current !== undefined) {
          if (current.failures >= PASSWORD_TRIES_MAX) return reject('PASSWORD_LOCKED', 'the wallet is locked after too many wrong passwords');
          if (input.old === undefined || !equalBytes(passwordDigest(current.salt, input.old), current.digest)) {
            const failures = current.failures + 1;
            return accept({ ...state, password: { ...current, failures } }, { set: false, triesLeft: PASSWORD_TRIES_MAX - failures });
          }
        }
        const salt = env.random(16);
        return accept({ ...state, password: { salt, digest: passwordDigest(salt, input.password), failures: 0 } }, { set: true, triesLeft: PASSWORD_TRIES_MAX });
      },
    }),

    /** §3.3.2: blocks the node issued out of the online balance, to this user, with no records yet. */
    load: command({
      input: loadInput,
      output: balanceOutput,
      run(state: DotmState, input, env) {
        const c = certified(state);
        if (c === null) return NOT_CERTIFIED();
        return guarded(() => {
          const now = clock(state, input.now);
          const me = keyId(usk(env).publicKey);
          const blocks = [...state.blocks];
          const options = blockOptions(state, c, env, now);
          for (const block of input.blocks) {
            const verified = verifyBlock(block, options);
            if (block.records.length !== 0 || block.remaining !== block.presentation.value) return reject('BLOCK_INVALID', 'a newly issued block has no records and its whole value remaining');
            if (!equalBytes(verified.holder, me)) return reject('BLOCK_INVALID', `block ${toHex(block.presentation.serial)} was issued to another user`);
            if (blocks.some((b) => equalBytes(b.presentation.serial, block.presentation.serial))) return reject('BLOCK_DUPLICATE', `block ${toHex(block.presentation.serial)} is already in this wallet`);
            blocks.push(block);
          }
          if (blocks.length > WALLET_BLOCKS_MAX) return reject('WALLET_FULL', `the wallet would hold ${blocks.length} blocks, more than ${WALLET_BLOCKS_MAX}`);
          return accept({ ...state, blocks, trustedTime: now }, { balance: balanceOf(blocks) });
        });
      },
    }),

    /** Step 1: λ = (tsn, v, α, ucert_R, β, wcert_R); tsn comes from the SE's generator. */
    request: command({
      input: requestInput,
      output: transactionRequestCodec,
      run(state: DotmState, input, env) {
        const c = certified(state);
        if (c === null) return NOT_CERTIFIED();
        const open = busy(state) ?? eventRoom(state);
        if (open !== null) return reject('WALLET_BUSY', open);
        const tsn = env.random(TSN_BYTES);
        const fields = { tsn, v: input.v };
        const request: TransactionRequest = {
          tsn,
          v: input.v,
          alpha: signRecord(usk(env), ALPHA_TAG, alphaSigned(fields)),
          ucertR: c.ucert,
          beta: signRecord(wsk(env), BETA_TAG, betaSigned(fields)),
          wcertR: c.wcert,
        };
        return accept({ ...state, requested: { tsn, v: input.v }, trustedTime: clock(state, input.now) }, request);
      },
    }),

    /** Steps 2–3: pwd, the checks of λ, then σ = (tsd, γ, wcert_P); the blocks are held until step 7 or abandon. */
    pay: command<DotmState, Infer<typeof payInput>, Infer<typeof payOutput>>({
      input: payInput,
      output: payOutput,
      run(state: DotmState, input, env) {
        const c = certified(state);
        if (c === null) return NOT_CERTIFIED();
        const pwd = checkPassword(state, input.password);
        if (pwd.kind === 'refused') return pwd.result;
        if (pwd.kind === 'wrong') return accept(pwd.state, { kind: 'wrong-password', triesLeft: pwd.triesLeft });
        const open = busy(state) ?? eventRoom(state);
        if (open !== null) return reject('WALLET_BUSY', open);
        return guarded(() => {
          const now = clock(state, input.now);
          checkRequest(state, c, env, input.request, input.expect, now);
          const tsd = buildTransactionData(state, c, env, input.request, now);
          const transaction: TransactionMessage = { tsd, gamma: signRecord(wsk(env), GAMMA_TAG, gammaSigned(tsd)), wcertP: c.wcert };
          const offer: Offer = { tsn: tsd.tsn, transaction: transactionDigest(transaction), v: tsd.v, ucertR: input.request.ucertR, parts: tsd.blocks };
          const next: DotmState = { ...pwd.state, offer, trustedTime: now };
          return accept(next, { kind: 'transaction', transaction, triesLeft: PASSWORD_TRIES_MAX });
        });
      },
    }),

    /** Steps 4–6: verify σ (γ, every record of every block, C's signature), link the current records, sign the notification. */
    accept: command({
      input: acceptInput,
      output: notificationCodec,
      run(state: DotmState, input, env) {
        const c = certified(state);
        if (c === null) return NOT_CERTIFIED();
        const asked = state.requested;
        const { tsd } = input.transaction;
        if (asked === undefined || !equalBytes(asked.tsn, tsd.tsn)) return reject('TRANSACTION_UNKNOWN', 'σ answers no open request of this wallet (replayed or for another transaction)');
        if (tsd.v !== asked.v) return reject('AMOUNT_MISMATCH', `σ pays ${tsd.v}, the request asked ${asked.v}`);
        const open = busy(state) ?? eventRoom(state);
        if (open !== null) return reject('WALLET_BUSY', open);
        return guarded(() => {
          const now = clock(state, input.now);
          // 4.1: γ under wpk_P, and wcert_P bound to the payer's ucert.
          const first = tsd.blocks[0]?.current;
          if (first === undefined) return reject('TRANSACTION_INVALID', 'σ carries no block');
          let payer: VerifiedChain;
          let wallet: VerifiedChain;
          try {
            payer = chainOf(state, c, env, first.ucertP, now, 'user');
            wallet = walletChainFor(state, c, env, input.transaction.wcertP, payer, now);
          } catch (e) {
            if (e instanceof Refusal || isTallyError(e, 'CERT_REVOKED')) throw e;
            return reject('TRANSACTION_INVALID', `the payer's certificates do not verify: ${e instanceof Error ? e.message : String(e)}`);
          }
          if (!verifyRecord(env.provider, wallet.subject, GAMMA_TAG, gammaSigned(tsd), input.transaction.gamma)) return reject('SIGNATURE_INVALID', 'γ does not verify under wpk_P');
          // 4.2 and 4.3: each block with its current record, whole, from C's signature to the new record.
          const blocks = [...state.blocks];
          const options = blockOptions(state, c, env, now);
          for (const [k, { block, current }] of tsd.blocks.entries()) {
            if (!equalBytes(current.ucertP, first.ucertP)) return reject('TRANSACTION_INVALID', `block ${k}: its current record has another payer`);
            if (!equalBytes(current.ucertR, c.ucert)) return reject('PAYEE_MISMATCH', `block ${k}: its current record pays someone else`);
            const received = appendRecord(block, current);
            verifyBlock(received, options);
            if (blocks.some((b) => sameCopy(b, received))) return reject('BLOCK_DUPLICATE', `block ${k} is already in this wallet`);
            blocks.push(received);
          }
          if (blocks.length > WALLET_BLOCKS_MAX) return reject('WALLET_FULL', `the wallet would hold ${blocks.length} blocks, more than ${WALLET_BLOCKS_MAX}`);
          // Step 5 done; step 6: the notification, a receipt for exactly this σ.
          const transaction = transactionDigest(input.transaction);
          const fields = { tsn: tsd.tsn, transaction };
          const notification: Notification = { ...fields, signature: signRecord(usk(env), NOTIFICATION_TAG, notificationSigned(fields)) };
          const { requested: _done, ...rest } = state;
          const next: DotmState = { ...rest, blocks, receiving: { tsn: tsd.tsn, transaction, v: tsd.v, parts: tsd.blocks, notification, payerWallet: wallet.subject }, trustedTime: now };
          return accept(next, notification);
        });
      },
    }),

    /** Step 7: the notification verified under upk_R from λ; the held blocks are deducted; step 8's message, signed with wsk_P. */
    confirm: command({
      input: confirmInput,
      output: successNoticeCodec,
      run(state: DotmState, input, env) {
        const offer = state.offer;
        if (offer === undefined) return reject('TRANSACTION_UNKNOWN', 'no payment offer is open');
        const n = input.notification;
        if (!equalBytes(n.tsn, offer.tsn) || !equalBytes(n.transaction, offer.transaction)) return reject('NOTIFICATION_INVALID', 'the notification names another transaction');
        return guarded(() => {
          const payee = decodeCertificate(offer.ucertR).body.subject;
          if (!verifyRecord(env.provider, payee, NOTIFICATION_TAG, notificationSigned(n), n.signature)) return reject('SIGNATURE_INVALID', 'the notification does not verify under upk_R');
          let blocks = [...state.blocks];
          for (const { block, current } of offer.parts) {
            const at = blocks.findIndex((b) => sameCopy(b, block));
            const held = blocks[at];
            if (held === undefined || current === undefined) return reject('TRANSACTION_INVALID', 'a block of the offer is no longer in the wallet');
            const left = deductRemaining(held, current.amount);
            blocks = left.remaining === 0n ? blocks.filter((_, i) => i !== at) : blocks.map((b, i) => (i === at ? left : b));
          }
          const { offer: _closed, ...rest } = state;
          const next = withEvent({ ...rest, blocks }, env, state.trustedTime, { kind: 'sent', tsn: offer.tsn, transaction: offer.transaction, amount: offer.v, parts: offer.parts, notification: n });
          const fields = { tsn: offer.tsn, notification: notificationDigest(n) };
          return accept(next, { ...fields, signature: signRecord(wsk(env), SUCCESS_TAG, successSigned(fields)) });
        });
      },
    }),

    /** The payer gives up an offer no notification answered (exceptional situations 1 and 4): nothing was paid. */
    abandon: command({
      input: record({}),
      output: closedOutput,
      run(state: DotmState, _input, env) {
        const offer = state.offer;
        if (offer === undefined) return reject('TRANSACTION_UNKNOWN', 'no payment offer is open');
        const { offer: _closed, ...rest } = state;
        const next = withEvent(rest, env, state.trustedTime, { kind: 'abandoned', tsn: offer.tsn, transaction: offer.transaction, amount: offer.v, parts: offer.parts });
        return accept(next, { tsn: offer.tsn, amount: offer.v, seq: next.seq });
      },
    }),

    /** Step 9 with the success message, verified under wpk_P from σ: the transaction is closed and stays. */
    complete: command({
      input: completeInput,
      output: closedOutput,
      run(state: DotmState, input, env) {
        const open = state.receiving;
        if (open === undefined) return reject('TRANSACTION_UNKNOWN', 'no received transaction is open');
        const { success } = input;
        if (!equalBytes(success.tsn, open.tsn) || !equalBytes(success.notification, notificationDigest(open.notification))) {
          return reject('SUCCESS_INVALID', 'the success message answers another notification');
        }
        return guarded(() => {
          // Only the payer's trusted app holds wsk_P: the payee's own app cannot make this message.
          if (!verifyRecord(env.provider, open.payerWallet, SUCCESS_TAG, successSigned(success), success.signature)) return reject('SIGNATURE_INVALID', 'the success message does not verify under wpk_P');
          const { receiving: _closed, ...rest } = state;
          const next = withEvent(rest, env, state.trustedTime, { kind: 'received', tsn: open.tsn, transaction: open.transaction, amount: open.v, parts: open.parts, notification: open.notification });
          return accept(next, { tsn: open.tsn, amount: open.v, seq: next.seq });
        });
      },
    }),

    /** Step 9 without it (timeout, or a reboot between steps 5 and 9): the copies of step 5 are taken out again. */
    rollback: command({
      input: record({}),
      output: closedOutput,
      run(state: DotmState, _input, env) {
        const open = state.receiving;
        if (open === undefined) return reject('TRANSACTION_UNKNOWN', 'no received transaction is open');
        const added = open.parts.map((p) => (p.current === undefined ? p.block : appendRecord(p.block, p.current)));
        const blocks = state.blocks.filter((b) => !added.some((a) => sameCopy(a, b)));
        const { receiving: _closed, ...rest } = state;
        const next = withEvent({ ...rest, blocks }, env, state.trustedTime, { kind: 'rolled-back', tsn: open.tsn, transaction: open.transaction, amount: open.v, parts: open.parts });
        return accept(next, { tsn: open.tsn, amount: open.v, seq: next.seq });
      },
    }),

    /** Gives copies up to be credited online, after pwd: the largest first, the last in part. */
    redeem: command<DotmState, Infer<typeof redeemInput>, Infer<typeof redeemOutput>>({
      input: redeemInput,
      output: redeemOutput,
      run(state: DotmState, input, env) {
        if (certified(state) === null) return NOT_CERTIFIED();
        const pwd = checkPassword(state, input.password);
        if (pwd.kind === 'refused') return pwd.result;
        if (pwd.kind === 'wrong') return accept(pwd.state, { kind: 'wrong-password', triesLeft: pwd.triesLeft });
        const open = busy(state) ?? eventRoom(state);
        if (open !== null) return reject('WALLET_BUSY', open);
        const available = balanceOf(state.blocks);
        if (available < input.amount) return reject('INSUFFICIENT_FUNDS', 'the wallet holds less than the amount to withdraw');
        const sorted = [...state.blocks].sort((a, b) => (a.remaining === b.remaining ? 0 : a.remaining > b.remaining ? -1 : 1));
        const parts: EventPart[] = [];
        let blocks = [...state.blocks];
        let left = input.amount;
        for (const block of sorted) {
          if (left === 0n) break;
          if (parts.length === REDEEM_BLOCKS_MAX) return reject('LIMIT_REACHED', `more than ${REDEEM_BLOCKS_MAX} blocks would be needed; redeem less at once`);
          const take = block.remaining < left ? block.remaining : left;
          if (take === 0n) continue;
          parts.push({ block: { ...block, remaining: take } });
          blocks = take === block.remaining ? blocks.filter((b) => !sameCopy(b, block)) : blocks.map((b) => (sameCopy(b, block) ? deductRemaining(b, take) : b));
          left -= take;
        }
        const tsn = env.random(TSN_BYTES);
        const now = clock(state, input.now);
        const next = withEvent({ ...pwd.state, blocks, trustedTime: now }, env, now, { kind: 'redeemed', tsn, transaction: partsDigest(parts), amount: input.amount, parts });
        return accept(next, { kind: 'redeemed', tsn, amount: input.amount, seq: next.seq, triesLeft: PASSWORD_TRIES_MAX });
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

    /** §3.3.4: the signed events not yet acknowledged, for the node. */
    events: command({
      input: record({}),
      output: eventsOutput,
      readOnly: true,
      run(state: DotmState) {
        return accept(state, { events: state.events });
      },
    }),

    /** The node's ack: the events it took are forgotten; a newer revocation list and trusted time come with it. */
    ack: command({
      input: ackInput,
      output: ackOutput,
      run(state: DotmState, input, env) {
        const c = certified(state);
        if (c === null) return NOT_CERTIFIED();
        const { ack } = input;
        if (!equalBytes(ack.body.wallet, keyId(wsk(env).publicKey))) return reject('ACK_INVALID', 'the ack is for another wallet');
        if (!verifyRecord(env.provider, c.issuerNode.body.subject, EVENT_ACK_TAG, eventAckBodyWire(ack.body), ack.signature)) return reject('ACK_INVALID', 'the ack signature does not verify');
        if (ack.body.upTo > state.seq) return reject('ACK_INVALID', `the ack takes events up to ${ack.body.upTo}, but the last is ${state.seq}`);
        return guarded(() => {
          let crl = state.crl;
          let crlVersion: number | undefined;
          if (input.crl !== undefined) {
            const list = decodeRevocationList(input.crl);
            verifyRevocationList(env.provider, list, c.intermediary.body.subject);
            if (state.crl !== undefined && list.body.version < decodeRevocationList(state.crl).body.version) return reject('CRL_ROLLBACK', 'the revocation list is older than the one held');
            crl = input.crl;
            crlVersion = list.body.version;
          }
          const events = state.events.filter((e) => e.body.seq > ack.body.upTo);
          const next: DotmState = { ...state, events, trustedTime: Math.max(state.trustedTime, ack.body.time), ...(crl === undefined ? {} : { crl }) };
          return accept(next, { cleared: state.events.length - events.length, ...(crlVersion === undefined ? {} : { crlVersion }) });
        });
      },
    }),

    /** What the wallet shows: keys, balance, the blocks (held = part of an open offer), password tries, what awaits the node. */
    status: command({
      input: record({}),
      output: statusOutput,
      readOnly: true,
      run(state: DotmState, _input, env) {
        const offered = state.offer?.parts.map((p) => p.block) ?? [];
        const pwd = state.password;
        return accept(state, {
          userKey: usk(env).publicKey,
          walletKey: wsk(env).publicKey,
          certified: state.ucert !== undefined,
          currency: state.currency,
          balance: balanceOf(state.blocks),
          blocks: state.blocks.map((b) => ({
            serial: b.presentation.serial,
            tip: blockTip(b),
            value: b.presentation.value,
            remaining: b.remaining,
            count: b.count,
            held: offered.some((o) => sameCopy(o, b)),
          })),
          passwordSet: pwd !== undefined,
          triesLeft: pwd === undefined ? PASSWORD_TRIES_MAX : PASSWORD_TRIES_MAX - pwd.failures,
          ...(state.offer === undefined ? {} : { offer: state.offer.tsn }),
          ...(state.receiving === undefined ? {} : { receiving: state.receiving.tsn }),
          unsyncedEvents: state.events.length,
          trustedTime: state.trustedTime,
        });
      },
    }),
  },
});
