/**
 * A DOT-M wallet: the same folder as an OPS wallet (see home.ts) with an isolated secure element
 * running the DOT-M trusted app, which holds usk, wsk, pwd and the currency blocks (§3.1, §3.2).
 * wallet.json keeps the account key that signs the wallet's calls to the node and binds its links,
 * sealed under pwd (scrypt + XChaCha20-Poly1305, the node's key file format), the certificates,
 * and the node steps in flight. `unlockAccount` has the SE check pwd (a try counted, the lockout
 * kept) and only then opens the key; a wallet written with the key in the clear by an earlier
 * version is sealed on that first unlock.
 *
 * - create: registration (§3.3.1): the SE makes usk and wsk, the home's OEM attests wpk, the node
 *   certifies both, the user sets pwd;
 * - deposit: account synchronization (§3.3.2): the node issues blocks out of the online balance,
 *   the SE loads them;
 * - receive / payTo: the nine steps over TCP + Noise (session.ts);
 * - sync: online data updating (§3.3.4): the SE's signed events go up, the node's ack comes back;
 * - withdraw: the SE gives copies up and the node credits them to the account at the next sync.
 * Opening a wallet finishes what a crash cut short: an open offer is abandoned (the payer never
 * got a notification) and an open received transaction is rolled back (step 9 never came), as
 * §3.3.5 prescribes on reboot; a block issue cut off from the node is fetched again by its key.
 */
import { equalBytes, fromBase64url, fromHex, toBase64url, toHex } from '../../core/bytes.ts';
import { decodeCbor, encodeCbor } from '../../core/cbor.ts';
import { randomBytes } from '../../core/crypto/hash.ts';
import { nobleEd25519 } from '../../core/crypto/noble.ts';
import { signerFromSecret, SUITE_NAMES, type PublicKey, type Signer, type SuiteName } from '../../core/crypto/suite.ts';
import { isTallyError, TallyError } from '../../core/errors.ts';
import { attestDevice, encodeAttestation } from '../../pki/attestation.ts';
import { decodeCertificate } from '../../pki/certificate.ts';
import { record, text } from '../../core/codec.ts';
import { base64urlText } from '../../core/fields.ts';
import { keyId } from '../../pki/key-id.ts';
import {
  connectLink,
  createWalletFolder,
  isNodeRefusal,
  listenLink,
  measureTrustedApp,
  newStepId,
  nodeProvider,
  openFolderOf,
  openKey,
  sealKey,
  SOFTWARE_SE_MODEL,
  startSecureElement,
  WalletShell,
  type HistoryEvent,
  type LinkSide,
  type NodeClient,
  type NodeInfo,
  type Oem,
  type ResumeReport,
  type TrustedAppSpec,
  type WalletData,
  type WalletFormat,
  type WalletPaths,
} from '../../wallet/plugin.ts';
import { dotmEventsAnswer, dotmIssueAnswer, dotmUnlockAnswer, dotmWalletAnswer, type DotmEventsAnswer } from './wallet-answers.ts';
import { decodeBlock } from './messages.ts';
import { eventAckCodec, unlockTicketCodec, walletEventWire, type WalletEvent } from './online.ts';
import { DOTM_LINK_PROLOGUE, DOTM_LINK_SCHEME, failureCode, runPayee, runPayer } from './session.ts';
import { checkPasswordPolicy, dotmTrustedApp } from './trusted-app.ts';
import { DOTM_TA_BUILD } from './wallet-build.ts';
import type { DotmState } from './trusted-app-state.ts';

/** Most events in one upload, and the most base64url characters of events in one request body. */
const UPLOAD_EVENTS_MAX = 16;
const UPLOAD_CHARS_MAX = 48 * 1024;
/** Most blocks one deposit asks for. */
export const ISSUE_BLOCKS_MAX = 20;

type DotmCommands = typeof dotmTrustedApp.commands;
/** The DOT-M trusted app, where the isolated SE process finds it. */
const DOTM_TA: TrustedAppSpec<DotmState, DotmCommands> = { app: dotmTrustedApp, location: { module: new URL('./trusted-app.ts', import.meta.url).href, export: 'dotmTrustedApp' } };
/** The wallet's DOT-M secure element. */
export type DotmSecureElement = Awaited<ReturnType<typeof startSecureElement<DotmState, DotmCommands>>>;

/** The keys a recovery staged (`recovering/device.json`), read back when a recovery cut short runs again. */
const STAGED_KEYS = record({
  wallet: text({ min: 1, max: 256 }),
  user: text({ min: 1, max: 256 }),
  ucert: base64urlText({ max: 256 * 1024 }),
  wcert: base64urlText({ max: 256 * 1024 }),
});

/** A step of a DOT-M wallet's journal: a block issue (§3.3.2), until the SE has loaded the blocks. */
export interface IssueStep {
  kind: 'issue';
  id: string;
  amount: string;
  count: number;
  /** The blocks the node issued (base64url), once it answered. */
  blocks?: string[];
}

/** What a DOT-M wallet keeps besides the shell's fields: its SE's keys, the user key (ucert) and the wallet key (wcert). */
export interface DotmSlot {
  user: string;
  ucert: string;
  wallet: string;
  wcert: string;
  suite?: SuiteName;
}

/** wallet.json of a DOT-M wallet. */
export type DotmWalletData = WalletData<IssueStep, DotmSlot>;

/** How a DOT-M wallet reads its journal and keys from wallet.json. */
const DOTM_FORMAT: WalletFormat<IssueStep, DotmSlot> = {
  step(raw) {
    // An earlier version named the issue step after the scheme.
    if (raw.kind !== 'issue' && raw.kind !== 'dotm-issue') return null;
    const { amount, count, blocks } = raw;
    if (typeof amount !== 'string' || typeof count !== 'number' || !Number.isInteger(count)) return null;
    if (blocks !== undefined && !(Array.isArray(blocks) && blocks.every((b): b is string => typeof b === 'string'))) return null;
    return { kind: 'issue', id: raw.id, amount, count, ...(blocks === undefined ? {} : { blocks }) };
  },
  slot(raw) {
    if (raw === null || typeof raw !== 'object') return null;
    const { user, ucert, wallet, wcert, suite } = { user: undefined, ucert: undefined, wallet: undefined, wcert: undefined, suite: undefined, ...raw } as { [key: string]: unknown };
    if (typeof user !== 'string' || typeof ucert !== 'string' || typeof wallet !== 'string' || typeof wcert !== 'string') return null;
    const known = SUITE_NAMES.find((s) => s === suite);
    if (suite !== undefined && known === undefined) return null;
    return { user, ucert, wallet, wcert, ...(known === undefined ? {} : { suite: known }) };
  },
};

/** Options of DotmWallet.create. */
export interface CreateDotmOptions {
  home: string;
  name: string;
  node: string;
  /** The payment password pwd (§3.3.1 step 5). */
  password: string;
  progress?: (line: string) => void;
}

/** One block copy as `balance` lists it. */
export interface BlockLine {
  serial: string;
  value: string;
  remaining: string;
  /** Offline transactions in its record list. */
  count: number;
  /** Part of an open payment offer. */
  held: boolean;
}

/** What DotmWallet.balance reports. */
export interface DotmBalance {
  online: string | null;
  onlineError?: string;
  offline: string;
  blocks: BlockLine[];
  unsyncedEvents: number;
  passwordTriesLeft: number;
  pendingSteps: number;
}

/** What DotmWallet.withdraw reports. */
export interface DotmWithdrawal {
  amount: string;
  online: string | null;
  /** The node took the redemption and credited the account. */
  credited: boolean;
  /** credited; refused by the node (see `refusal`); unreachable (credited when the node takes the event at a later sync); pending (the node had no answer for it yet). */
  outcome: 'credited' | 'refused' | 'unreachable' | 'pending';
  refusal?: { code: string; message: string };
}

/** What a finished transaction over the link reports. */
export interface DotmTransfer {
  tsn: string;
  amount: string;
  /** `completed`, or `rolled-back` for a payee whose step 9 did not come. */
  status: 'completed' | 'rolled-back';
  blocks: number;
  records: number;
  error?: string;
}


/** Runs init on a fresh DOT-M SE, has the OEM attest wpk, has the node certify usk and wsk for the account, sets pwd. */
async function provisionDotm(
  host: DotmSecureElement,
  options: { node: NodeClient; info: NodeInfo; oem: Oem; account: Signer; owner: string; password: string; progress?: ((line: string) => void) | undefined },
): Promise<{ wallet: string; user: string; ucert: string; wcert: string }> {
  const { node, info, oem } = options;
  const init = await host.call('init', {
    root: fromBase64url(info.certificates.root),
    intermediary: fromBase64url(info.certificates.intermediary),
    issuerNode: fromBase64url(info.certificates.issuerNode),
    account: fromHex(options.owner),
  });
  const attestation = attestDevice(oem.signer, { sePublicKey: init.walletKey, model: SOFTWARE_SE_MODEL, taMeasurement: await measureTrustedApp(DOTM_TA_BUILD) });
  options.progress?.('certifying the user and wallet keys (OEM attestation, proofs of possession)');
  const key = (k: PublicKey) => ({ suite: k.suite, key: toBase64url(k.key) });
  const answer = await node.signed(options.account, 'POST', '/v1/dotm/wallets', { answer: dotmWalletAnswer,
    body: {
      userKey: key(init.userKey),
      userProof: toBase64url(init.userProof),
      walletKey: key(init.walletKey),
      walletProof: toBase64url(init.walletProof),
      oem: oem.keyId,
      attestation: toBase64url(encodeAttestation(attestation)),
    },
    idempotencyKey: `dotm-wallet-${toHex(keyId(init.walletKey))}`,
  });
  await host.call('certify', { ucert: fromBase64url(answer.body.ucert), wcert: fromBase64url(answer.body.wcert) });
  await host.call('setPassword', { password: options.password });
  return answer.body;
}

/** An open DOT-M wallet: call `close()` when done. */
export class DotmWallet extends WalletShell<IssueStep, DotmSlot, DotmState, DotmCommands> {
  /** The account key, once unlockAccount opened it. */
  private account: Signer | null = null;

  private constructor(paths: WalletPaths, data: DotmWalletData, unlock: () => Promise<void>) {
    super(paths, data, unlock);
  }

  protected secureElementSpec() {
    return { spec: DOTM_TA, suite: this.keys.suite ?? 'ed25519' };
  }

  protected async probeSecureElement(): Promise<void> {
    await (await this.se()).call('status', {});
  }

  protected async runStep(step: IssueStep): Promise<unknown> {
    if (!this.unlocked) throw new TallyError('PASSWORD_MISSING', 'it needs the node, and the account key is sealed: run a command that asks for the payment password', {});
    return this.runIssue(step);
  }

  /** The account key (signs calls to the node, binds links). @throws TallyError PASSWORD_MISSING before unlockAccount */
  get user(): Signer {
    if (this.account === null) throw this.sealedError();
    return this.account;
  }

  private sealedError(): TallyError<'PASSWORD_MISSING'> {
    return new TallyError('PASSWORD_MISSING', `the account key of wallet ${this.name} is sealed under the payment password: give the password (at the prompt, or TALLY_PASSWORD)`, {});
  }

  /** True once the account key is open. */
  get unlocked(): boolean {
    return this.account !== null;
  }

  /**
   * Opens the account key: the SE checks pwd first (a wrong one counts a try; a locked wallet stays
   * locked), then the key file opens under it. A key still in the clear (an earlier version's
   * wallet.json) is sealed under the password now and the clear copy dropped.
   * @throws TallyError SE_REJECTED (WRONG_PASSWORD, PASSWORD_LOCKED), PASSWORD_WRONG when pwd is right
   *   but the key file was sealed under another password, STATE_CORRUPT, KEY_INVALID
   */
  async unlockAccount(password: string): Promise<void> {
    if (this.account !== null) return;
    const checked = await (await this.se()).call('checkPassword', { password });
    if (!checked.right) throw wrongPassword(checked.triesLeft, 'unlock');
    await this.openAccountKey(password);
  }

  /**
   * Opens the account key file under `password` without asking the SE (for a recovery, when the SE
   * refuses to run and cannot check pwd: the key file's own scrypt is then the only guard).
   */
  private async openAccountKey(password: string): Promise<void> {
    const { sealed, secret } = this.data.user;
    let signer: Signer;
    if (sealed !== undefined) {
      try {
        signer = (await openKey(fromBase64url(sealed), password, nodeProvider, `the account key of wallet ${this.name}`)).signer;
      } catch (e) {
        if (!isTallyError(e, 'AEAD_FAILED')) throw e;
        throw new TallyError('PASSWORD_WRONG', `the payment password does not open the account key of wallet ${this.name} (it was sealed under another password); nothing was changed`, {});
      }
    } else if (secret !== undefined) {
      signer = signerFromSecret(nobleEd25519, fromHex(secret));
    } else {
      throw new TallyError('STATE_CORRUPT', `wallet ${this.name}: the account key is missing`, { reason: 'user' });
    }
    if (toHex(keyId(signer.publicKey)) !== this.data.user.keyId) {
      throw new TallyError('KEY_INVALID', `wallet ${this.name}: the account key does not match the account ${this.data.user.keyId}`, { suite: signer.publicKey.suite, reason: 'account key mismatch' });
    }
    if (sealed === undefined && secret !== undefined) {
      // Migration: the clear copy goes only once the sealed one is written in its place.
      const { secret: _clear, ...user } = this.data.user;
      this.data.user = { ...user, sealed: toBase64url(await sealKey({ suite: nobleEd25519, secretKey: fromHex(secret) }, password)) };
      await this.save();
      await this.note({ at: Date.now(), kind: 'account-sealed', detail: 'the account key, kept in the clear by an earlier version, is now sealed under the payment password' });
    }
    this.account = signer;
  }

  private get keys(): DotmSlot {
    const keys = this.data.slot;
    if (keys === undefined) throw new TallyError('STATE_CORRUPT', `wallet ${this.name} has no DOT-M keys`, { reason: 'dotm' });
    return keys;
  }

  /**
   * Registers a DOT-M wallet (§3.3.1): an account at the node, usk and wsk made in the isolated SE,
   * wpk attested by the home's OEM, ucert and wcert from the node, then pwd.
   * @throws TallyError DECODE_FAILED (a password outside the policy, before any request), WALLET_EXISTS, WALLET_UNSUPPORTED (no OEM enrolled), NODE_*, SE_*
   */
  static async create(options: CreateDotmOptions): Promise<DotmWallet> {
    // Before anything is registered at the node: a password the SE would refuse stops here.
    checkPasswordPolicy(options.password);
    const secret = randomBytes(32);
    const account = signerFromSecret(nobleEd25519, secret);
    const name = options.name;
    await createWalletFolder<IssueStep, DotmSlot>({ ...options, needsOem: true }, async ({ node, info, paths, oem, progress, registerUser }) => {
      if (oem === null) throw new TallyError('ASSERTION_FAILED', 'a DOT-M wallet is created with the home OEM', {});
      progress('registering the account at the node');
      const registered = await registerUser(account);
      const suite = decodeCertificate(fromBase64url(info.certificates.root)).body.subject.suite;
      progress(`making usk and wsk (${suite}) in the isolated secure element`);
      const host = await startSecureElement(DOTM_TA, paths, true, suite);
      let answer;
      try {
        answer = await provisionDotm(host, { node, info, oem, account, owner: registered.keyId, password: options.password, progress });
        await host.close();
      } catch (e) {
        await host.kill();
        throw e;
      }
      // The account key is kept only sealed under pwd: whoever holds the files cannot use it.
      const sealed = toBase64url(await sealKey({ suite: nobleEd25519, secretKey: secret }, options.password));
      const data: DotmWalletData = {
        format: 1,
        name,
        scheme: 'dotm',
        node: node.url,
        currency: info.currency,
        createdAt: Date.now(),
        user: { sealed, keyId: registered.keyId, account: registered.account, certificate: registered.certificate },
        device: { keyId: answer.wallet, certificate: answer.wcert },
        slot: { user: answer.user, ucert: answer.ucert, wallet: answer.wallet, wcert: answer.wcert, suite },
        certificates: info.certificates,
        crl: null,
        inbox: [],
        sent: [],
        pending: [],
      };
      return { data, detail: `DOT-M wallet ${answer.wallet}, user ${answer.user}` };
    });
    const wallet = await DotmWallet.open(options.home, name);
    // Made here under this password a moment ago: open without asking the SE again.
    wallet.account = account;
    return wallet;
  }

  /**
   * Opens a DOT-M wallet and takes its lock.
   * @throws TallyError WALLET_NOT_FOUND, WALLET_BUSY, WALLET_UNSUPPORTED (not a DOT-M wallet), STATE_CORRUPT
   */
  static async open(home: string, name: string): Promise<DotmWallet> {
    const { paths, data, unlock } = await openFolderOf(home, name, 'dotm', DOTM_FORMAT);
    try {
      return new DotmWallet(paths, data, unlock);
    } catch (e) {
      await unlock();
      throw e;
    }
  }

  /** The running SE (started on first use). */
  se(): Promise<DotmSecureElement> {
    return this.startedSe();
  }

  /**
   * Opens a wallet locked after too many wrong payment passwords: the account key opens under
   * `password` (the locked SE cannot check it; the key file's own scrypt guards it), the node
   * answers an unlock ticket for the SE's next unlock number, signed with the issuer node's key, and
   * the SE takes it once and resets its count of wrong passwords.
   * @throws TallyError PASSWORD_WRONG (the key file does not open), NODE_* (FORBIDDEN for a revoked wallet), SE_REJECTED (NOT_LOCKED, TICKET_INVALID)
   */
  async unlockWallet(password: string): Promise<{ unlocks: number; triesLeft: number }> {
    if (this.account === null) await this.openAccountKey(password);
    const se = await this.se();
    const { unlocks } = await se.call('status', {});
    const next = unlocks + 1;
    const wallet = this.keys.wallet;
    const answer = await this.node.signed(this.user, 'POST', `/v1/dotm/wallets/${wallet}/unlock`, { answer: dotmUnlockAnswer, body: { unlock: next }, idempotencyKey: `unlock-${wallet}-${next}` });
    const ticket = unlockTicketCodec.decode(decodeCbor(fromBase64url(answer.body.ticket)), 'ticket');
    const out = await se.call('unlock', { ticket });
    await this.note({ at: Date.now(), kind: 'unlocked', detail: `unlocked with ticket ${next} from the node; ${out.triesLeft} password tries` });
    return out;
  }

  /**
   * Retires a secure element that refuses to run (ROLLBACK_DETECTED, or its sealed state damaged)
   * and starts a new one with new usk and wsk, certified for the same account, with the payment
   * password `password`. The old one moves to `retired/` (nothing is deleted); the blocks the node
   * issued to it stay on its record at the node, and the new one starts empty: no money is created.
   * Block issues already answered by the node are ended and kept in the history with their blocks.
   * A recovery cut short is finished by running it again.
   * @throws TallyError WALLET_UNSUPPORTED (an SE that runs), NODE_*, SE_*
   */
  async recoverDevice(password: string, progress?: (line: string) => void): Promise<{ retired: string; device: string; folder: string; setAside: { steps: number; payments: number } }> {
    const old = this.keys;
    const { fresh, folder } = await this.replaceSecureElement(old.wallet, STAGED_KEYS, async ({ paths, oem, info }) => {
      progress?.('making new usk and wsk in a new isolated secure element');
      const host = await startSecureElement(DOTM_TA, paths, true, old.suite ?? 'ed25519');
      try {
        return await provisionDotm(host, { node: this.node, info, oem, account: this.user, owner: this.data.user.keyId, password, progress });
      } finally {
        await host.close();
      }
    }, {
      // The broken SE cannot check pwd: the account key file opens under it or the recovery stops here.
      beforeProvision: async () => {
        if (this.account === null) await this.openAccountKey(password);
      },
    });
    let steps = 0;
    const kept: IssueStep[] = [];
    for (const step of this.data.pending) {
      // An issue the node has not answered runs for the new wallet key; answered ones name the old one.
      if (step.blocks === undefined) kept.push(step);
      else {
        steps++;
        await this.note({ at: Date.now(), kind: `${step.kind}-retired`, ...('amount' in step ? { amount: this.format(BigInt(step.amount)) } : {}), detail: `cut short on the retired secure element ${old.wallet}${step.blocks !== undefined ? `; blocks ${step.blocks.join(',')}` : ''}` });
      }
    }
    this.data.pending = kept;
    this.data.slot = { ...fresh, ...(old.suite === undefined ? {} : { suite: old.suite }) };
    this.data.device = { keyId: fresh.wallet, certificate: fresh.wcert };
    this.data.retired = [...(this.data.retired ?? []), { device: old.wallet, at: Date.now(), folder }];
    await this.save();
    await this.note({ at: Date.now(), kind: 'device-retired', detail: `secure element ${old.wallet} retired (kept in ${folder}); new secure element ${fresh.wallet}, user key ${fresh.user}; the blocks the node issued to the old one stay on its record at the node` });
    await this.recoveryDone();
    return { retired: old.wallet, device: fresh.wallet, folder, setAside: { steps, payments: 0 } };
  }

  // ---------------------------------------------------------------- recovery

  /**
   * After a crash (§3.3.5): an open offer is abandoned, an open received transaction rolled back;
   * then the node steps left pending are finished where the node answers.
   */
  async recover(): Promise<ResumeReport> {
    const finished: string[] = [];
    const se = await this.se();
    const status = await se.call('status', {});
    if (status.offer !== undefined) {
      const out = await se.call('abandon', {});
      finished.push('abandon');
      await this.note({ at: Date.now(), kind: 'dotm-abandoned', amount: this.format(out.amount), detail: `transaction ${toHex(out.tsn)}: no notification came; nothing was paid` });
    }
    if (status.receiving !== undefined) {
      const out = await se.call('rollback', {});
      finished.push('rollback');
      await this.note({ at: Date.now(), kind: 'dotm-rolled-back', amount: this.format(out.amount), detail: `transaction ${toHex(out.tsn)}: step 9 never came; the payer is refunded online if it paid` });
    }
    const steps = await this.resumeSteps();
    return { finished: [...finished, ...steps.finished], waiting: steps.waiting, ended: steps.ended };
  }

  // ---------------------------------------------------------------- online

  /**
   * §3.3.2: the node moves `amount` from the online account into currency blocks signed by the
   * central bank (split into `count` blocks), and the SE loads them.
   * @throws TallyError AMOUNT_INVALID, NODE_*, SE_*
   */
  async deposit(amountText: string, count = 1): Promise<{ amount: string; offline: string; blocks: number }> {
    const amount = this.parseAmount(amountText);
    if (!Number.isInteger(count) || count < 1 || count > ISSUE_BLOCKS_MAX) throw new TallyError('AMOUNT_INVALID', `blocks: expected 1 to ${ISSUE_BLOCKS_MAX}, got ${count}`, { input: String(count) });
    if (BigInt(count) > amount) throw new TallyError('AMOUNT_INVALID', `cannot split ${this.format(amount)} ${this.currency.code} into ${count} blocks of at least ${this.format(1n)} ${this.currency.code}`, { input: amountText });
    const step: IssueStep = { kind: 'issue', id: newStepId(), amount: amount.toString(), count };
    await this.begin(step);
    const balance = await this.runIssue(step);
    return { amount: this.format(amount), offline: this.format(balance), blocks: count };
  }

  private async runIssue(step: IssueStep): Promise<bigint> {
    if (step.blocks === undefined) {
      let answer;
      try {
        answer = await this.node.signed(this.user, 'POST', '/v1/dotm/issue', { answer: dotmIssueAnswer,
          body: { wallet: this.keys.wallet, amount: this.format(BigInt(step.amount)), blocks: step.count },
          idempotencyKey: `dotm-issue-${step.id}`,
        });
      } catch (e) {
        // The node said no: no block was issued, and the same request would be refused again.
        if (isNodeRefusal(e)) await this.finish(step, { at: Date.now(), kind: 'deposit-refused', amount: this.format(BigInt(step.amount)), detail: `refused by the node: ${e.message}` });
        throw e;
      }
      step.blocks = answer.body.blocks;
      await this.update(step);
    }
    const blocks = step.blocks.map((b) => decodeBlock(fromBase64url(b)));
    let out;
    try {
      out = await (await this.se()).call('load', { blocks, now: Date.now() }, { requestId: fromHex(step.id) });
    } catch (e) {
      // A full wallet can load them once it has room: the step stays. Any other refusal is final;
      // the issued blocks are kept in the history (the node holds their value in the float).
      if (isTallyError(e, 'SE_REJECTED') && e.details.reason !== 'WALLET_FULL') {
        await this.finish(step, { at: Date.now(), kind: 'deposit-refused', amount: this.format(BigInt(step.amount)), detail: `the node issued ${blocks.length} block(s) but the secure element refused them: ${e.message}; blocks ${step.blocks.join(',')}` });
      }
      throw e;
    }
    await this.finish(step, null);
    await this.note({ at: Date.now(), kind: 'deposit', amount: this.format(BigInt(step.amount)), detail: `${blocks.length} currency block(s) issued by the central bank` });
    return out.balance;
  }

  /**
   * The SE checks pwd and gives copies up (largest first); the sync that follows has the node credit them online.
   * @throws TallyError (as SE_REJECTED) WRONG_PASSWORD, PASSWORD_LOCKED, INSUFFICIENT_FUNDS, WALLET_BUSY;
   *   PASSWORD_MISSING before unlockAccount; NODE_* from the sync
   */
  async withdraw(amountText: string, password: string): Promise<DotmWithdrawal> {
    const amount = this.parseAmount(amountText);
    // The sync below needs the account key: refuse before anything is given up.
    if (!this.unlocked) throw this.sealedError();
    const out = await (await this.se()).call('redeem', { amount, password, now: Date.now() }).catch(async (e: unknown) => {
      throw await this.worded(e, amount, undefined);
    });
    if (out.kind === 'wrong-password' || out.seq === undefined) throw wrongPassword(out.triesLeft, 'redeem');
    await this.note({ at: Date.now(), kind: 'withdraw', amount: this.format(amount), detail: `blocks given up (event ${out.seq}); the node credits them when it takes the event` });
    let outcome: DotmWithdrawal['outcome'] = 'unreachable';
    let refusal: { code: string; message: string } | undefined;
    try {
      const r = await this.sync();
      const result = r.results.find((x) => x.seq === out.seq);
      if (result?.status === 'taken' || result?.status === 'duplicate') outcome = 'credited';
      else if (result?.status === 'refused') {
        outcome = 'refused';
        refusal = { code: result.code ?? 'REFUSED', message: result.message ?? 'the node refused the redemption' };
        await this.note({ at: Date.now(), kind: 'withdraw-refused', amount: this.format(amount), detail: `event ${out.seq} refused by the node: ${refusal.message} [${refusal.code}]` });
      } else outcome = 'pending';
    } catch (e) {
      if (!isTallyError(e, 'NODE_UNREACHABLE')) throw e;
    }
    return {
      amount: this.format(amount),
      online: (await this.onlineBalance()).balance,
      credited: outcome === 'credited',
      outcome,
      ...(refusal === undefined ? {} : { refusal }),
    };
  }

  /**
   * §3.3.4 online data updating: the SE's signed events go to the node in order, the node's ack
   * (with the revocation list) goes back into the SE, which forgets what was taken.
   * @throws TallyError NODE_*, SE_*
   */
  async sync(): Promise<{ uploaded: number; results: DotmEventsAnswer['results']; findings: unknown[]; crlVersion: number }> {
    const se = await this.se();
    const { events } = await se.call('events', {});
    type Answer = DotmEventsAnswer;
    const results: Answer['results'] = [];
    const findings: unknown[] = [];
    let last: Answer | null = null;
    for (const chunk of chunks(events)) {
      last = (
        await this.node.signed(this.user, 'POST', '/v1/dotm/events', { answer: dotmEventsAnswer,
          body: { wallet: this.keys.wallet, events: chunk },
          idempotencyKey: `dotm-events-${this.keys.wallet.slice(0, 16)}-${newStepId()}`,
        })
      ).body;
      results.push(...last.results);
      findings.push(...last.findings);
    }
    if (last === null) {
      last = (await this.node.signed(this.user, 'POST', '/v1/dotm/events', { answer: dotmEventsAnswer, body: { wallet: this.keys.wallet, events: [] }, idempotencyKey: `dotm-events-${newStepId()}` })).body;
    }
    const ack = eventAckCodec.decode(decodeCbor(fromBase64url(last.ack)), 'ack');
    const applied = await se.call('ack', { ack, crl: fromBase64url(last.crl) });
    await this.keepCrl(last.crl);
    const refused = results.filter((r) => r.status === 'refused');
    await this.note({
      at: Date.now(),
      kind: 'sync',
      detail: `${events.length} event(s) uploaded, ${applied.cleared} acknowledged${refused.length === 0 ? '' : `, ${refused.length} refused (${refused.map((r) => r.code).join(', ')})`}; revocation list v${applied.crlVersion ?? '?'}`,
    });
    return { uploaded: events.length, results, findings, crlVersion: applied.crlVersion ?? 0 };
  }

  /** Online balance from the node, or null with the reason when it is unreachable. */
  async onlineBalance(): Promise<{ balance: string | null; error?: string }> {
    if (!this.unlocked) return { balance: null, error: 'the account key is sealed; give the payment password to ask the node' };
    return this.onlineBalanceWith(this.user);
  }

  /** Online and offline balances, and the blocks the SE holds. */
  async balance(): Promise<DotmBalance> {
    const online = await this.onlineBalance();
    const status = await (await this.se()).call('status', {});
    return {
      online: online.balance,
      ...(online.error === undefined ? {} : { onlineError: online.error }),
      offline: this.format(status.balance),
      blocks: status.blocks.map((b) => ({ serial: toHex(b.serial), value: this.format(b.value), remaining: this.format(b.remaining), count: b.count, held: b.held })),
      unsyncedEvents: status.unsyncedEvents,
      passwordTriesLeft: status.triesLeft,
      pendingSteps: this.data.pending.length,
    };
  }

  // ---------------------------------------------------------------- over a link

  /**
   * The payee R over TCP + Noise: listens, takes one payer, runs steps 1, 4–6 and 9.
   * @throws TallyError before step 5 (nothing received): the link's errors, PEER_REFUSED, the SE's refusal
   */
  async receive(amountText: string, options: { port: number; host: string; timeoutMs: number; onListening?: (port: number) => void }): Promise<DotmTransfer> {
    const v = this.parseAmount(amountText);
    const { link } = await listenLink(this.linkSide(), options);
    const se = await this.se();
    try {
      const outcome = await runPayee(
        link,
        {
          request: () => se.call('request', { v, now: Date.now() }),
          accept: (transaction) => se.call('accept', { transaction, now: Date.now() }),
          complete: async (success) => {
            await se.call('complete', { success });
          },
          rollback: async () => {
            await se.call('rollback', {});
          },
        },
        { stepTimeoutMs: options.timeoutMs },
      );
      const tsd = outcome.transaction.tsd;
      const result: DotmTransfer = {
        tsn: toHex(tsd.tsn),
        amount: this.format(tsd.v),
        status: outcome.status,
        blocks: tsd.nb,
        records: tsd.nd,
        ...(outcome.status === 'rolled-back' ? { error: outcome.error.message } : {}),
      };
      await this.note({
        at: Date.now(),
        kind: outcome.status === 'completed' ? 'received' : 'dotm-rolled-back',
        amount: result.amount,
        detail: `transaction ${result.tsn}, ${tsd.nb} block(s) with ${tsd.nd} earlier record(s)${outcome.status === 'completed' ? '' : `: ${outcome.error.message}`}`,
      });
      return result;
    } finally {
      link.close();
    }
  }

  /**
   * The payer P over TCP + Noise: connects, checks λ against its intention (the peer on the link
   * owns ucert_R; the amount is `expect` when given), asks the SE to pay with pwd, then step 7–8.
   * @throws TallyError from the link, PEER_REFUSED, the SE's refusal (as SE_REJECTED with its code:
   *   WRONG_PASSWORD is reported as such)
   */
  async payTo(host: string, port: number, options: { password: string; expect?: string; timeoutMs: number }): Promise<DotmTransfer> {
    const expect = options.expect === undefined ? undefined : this.parseAmount(options.expect);
    const { link, peer } = await connectLink(this.linkSide(), host, port, options.timeoutMs);
    const se = await this.se();
    try {
      const outcome = await runPayer(
        link,
        {
          pay: async (request) => {
            const payee = this.payeeOnLink(request.ucertR, peer.publicKey);
            const out = await se.call('pay', { request, password: options.password, expect: { v: expect ?? request.v, payee }, now: Date.now() }).catch(async (e: unknown) => {
              throw await this.worded(e, request.v, expect);
            });
            if (out.kind === 'wrong-password' || out.transaction === undefined) throw wrongPassword(out.triesLeft, 'pay');
            return out.transaction;
          },
          confirm: (notification) => se.call('confirm', { notification }),
          abandon: async () => {
            await se.call('abandon', {});
          },
        },
        { stepTimeoutMs: options.timeoutMs },
      );
      const tsd = outcome.transaction.tsd;
      const result: DotmTransfer = { tsn: toHex(tsd.tsn), amount: this.format(tsd.v), status: 'completed', blocks: tsd.nb, records: tsd.nd };
      await this.note({ at: Date.now(), kind: 'paid', amount: result.amount, detail: `transaction ${result.tsn}, ${tsd.nb} block(s) with ${tsd.nd} earlier record(s)` });
      return result;
    } catch (e) {
      if (isTallyError(e)) await this.note({ at: Date.now(), kind: 'pay-failed', detail: `${e.message} [${failureCode(e)}]` });
      throw e;
    } finally {
      link.close();
    }
  }

  /**
   * The SE's refusal of an amount, worded with the amounts in the currency (the TA knows only minor
   * units and its currency code); the code and details stay the SE's. Other errors pass unchanged.
   */
  private async worded(e: unknown, amount: bigint, expect: bigint | undefined): Promise<unknown> {
    if (!isTallyError(e, 'SE_REJECTED')) return e;
    const shown = (minor: bigint) => `${this.format(minor)} ${this.currency.code}`;
    const { reason } = e.details;
    if (reason === 'AMOUNT_MISMATCH' && expect !== undefined) return new TallyError('SE_REJECTED', `the payee asks for ${shown(amount)}, not the ${shown(expect)} expected`, e.details);
    if (reason !== 'INSUFFICIENT_FUNDS' && reason !== 'LIMIT_REACHED') return e;
    const { balance } = await (await this.se()).call('status', {});
    const message =
      reason === 'INSUFFICIENT_FUNDS'
        ? `the wallet holds ${shown(balance)}, less than the ${shown(amount)} asked for`
        : `the wallet holds ${shown(balance)}, but one offline payment cannot use all of it for ${shown(amount)} (too many blocks or records, or blocks that must go online first): pay less, or withdraw and deposit again`;
    return new TallyError('SE_REJECTED', message, e.details);
  }

  /** Step 2.3 on the untrusted side: ucert_R must belong to the account bound to the link. */
  private payeeOnLink(ucertR: Uint8Array, peerKey: PublicKey | undefined): Uint8Array {
    if (peerKey === undefined) throw new TallyError('PEER_UNTRUSTED', 'the payee did not prove who it is', { reason: 'no binding' });
    const verified = this.verifyCertificate(ucertR, ['user']);
    const owner = verified.extensions.owner;
    if (owner === undefined || !equalBytes(owner, keyId(peerKey))) {
      throw new TallyError('SE_REJECTED', 'λ names a payee whose user certificate does not belong to the peer on this link: refusing to pay someone else', { command: 'pay', reason: 'PAYEE_MISMATCH' });
    }
    return verified.subjectKeyId;
  }

  /** This wallet's side of a DOT-M link: bound to the account's user certificate. */
  private linkSide(): LinkSide {
    return { prologue: DOTM_LINK_PROLOGUE, scheme: DOTM_LINK_SCHEME, identity: { certificate: fromBase64url(this.data.user.certificate), signer: this.user }, trust: this.peerTrust() };
  }
}

/** The SE's answer to a wrong pwd: the tries left, or the lock it just closed. */
function wrongPassword(triesLeft: number, command: string): TallyError<'SE_REJECTED'> {
  const what = triesLeft === 0 ? 'the wallet is now locked' : `${triesLeft} ${triesLeft === 1 ? 'try' : 'tries'} left before the wallet locks`;
  return new TallyError('SE_REJECTED', `wrong payment password; ${what}; nothing was changed`, { command, reason: triesLeft === 0 ? 'PASSWORD_LOCKED' : 'WRONG_PASSWORD' });
}

/** Splits the events into uploads that fit a request body. */
function chunks(events: readonly WalletEvent[]): string[][] {
  const out: string[][] = [];
  let current: string[] = [];
  let chars = 0;
  for (const event of events) {
    const text = toBase64url(encodeCbor(walletEventWire(event)));
    if (current.length > 0 && (current.length === UPLOAD_EVENTS_MAX || chars + text.length > UPLOAD_CHARS_MAX)) {
      out.push(current);
      current = [];
      chars = 0;
    }
    current.push(text);
    chars += text.length;
  }
  if (current.length > 0) out.push(current);
  return out;
}
