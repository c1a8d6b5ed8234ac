/**
 * The wallet SDK: one wallet is a folder (see home.ts) holding the user's key and certificates,
 * the received and sent payments, and, for a wallet with a secure element, an isolated SE process
 * running the OPS trusted app. Offline steps (request, pay, accept, collect) need no node; online
 * steps (create, deposit, withdraw, claim, sync, the online balance) do.
 *
 * Every step that touches the SE or the node is written down before it starts (`pending` in
 * wallet.json) with the ids that make a retry safe: the SE's request id (a re-run gives back the
 * stored output) and the node's idempotency key (a re-sent call moves money once). Opening a wallet
 * finishes what a crash or a lost connection left unfinished, as far as the node is reachable.
 */
import { equalBytes, fromBase64url, fromHex, toBase64url, toHex, utf8 } from '../../core/bytes.ts';
import { decodeCbor, encodeCbor } from '../../core/cbor.ts';
import { randomBytes, sha256 } from '../../core/crypto/hash.ts';
import { nobleEd25519 } from '../../core/crypto/noble.ts';
import { signerFromSecret, type PublicKey, type Signer } from '../../core/crypto/suite.ts';
import { isTallyError, TallyError } from '../../core/errors.ts';
import { attestDevice, encodeAttestation } from '../../pki/attestation.ts';
import { decodeCertificate } from '../../pki/certificate.ts';
import { record } from '../../core/codec.ts';
import { base64urlText, keyIdHex } from '../../core/fields.ts';
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
  SOFTWARE_SE_MODEL,
  startSecureElement,
  WalletShell,
  deviceAnswer,
  revocationsAnswer,
  type HistoryEvent,
  type InboxEntry,
  type LinkSide,
  type NodeClient,
  type NodeInfo,
  type Oem,
  type ResumeReport,
  type SentEntry,
  type TrustedAppSpec,
  type WalletData,
  type WalletFormat,
  type WalletPaths,
} from '../../wallet/plugin.ts';
import { opsClaimsAnswer, opsDepositAnswer, opsReleaseAnswer, opsRetireAnswer, opsSyncAnswer } from './wallet-answers.ts';
import {
  depositConfirmationCodec,
  decodePayment,
  encodePayment,
  paymentDigest,
  syncAckCodec,
  syncReportBodyWire,
  withdrawConfirmationCodec,
  withdrawConfirmationWire,
  type Payment,
  type PaymentRequest,
  type WithdrawConfirmation,
} from './messages.ts';
import { verifyPayment } from './pay-verify.ts';
import { OPS_LINK_PROLOGUE, OPS_LINK_SCHEME, runPayee, runPayer } from './session.ts';
import { opsTrustedApp } from './trusted-app.ts';
import { OPS_TA_BUILD } from './wallet-build.ts';
import type { OpsState } from './trusted-app-state.ts';
import { paymentToken, readPaymentToken, readRequestToken, requestToken } from './tokens.ts';
import { plainRequest, REQUEST_NONCE_BYTES, signRequest, verifyRequest, type SignedRequest } from './request.ts';

export type { InboxEntry, SentEntry } from '../../wallet/plugin.ts';

/** Whom a request token pays, as the payer is shown it. */
export interface PayeeInfo {
  /** Key id of the payee's user certificate (the key that signed the request). */
  keyId: string;
  /** The display name the certificate carries, if any. */
  name?: string;
  /** Key id of the receiver certificate the payment names: the payee's device, or the user itself. */
  receiver: string;
  receiverRole: 'device' | 'user';
}

/**
 * Refusals of a received payment that time, a sync or room cures: the payment stays accepted and is
 * tried again (at the next collect or claim, and after every sync), never marked refused.
 * CERT_NOT_YET_VALID: the sender was certified after this TA's trusted time (a sync advances it);
 * LOG_FULL: a sync prunes the payment log; HOLDING_LIMIT: spending or withdrawing makes room;
 * INSUFFICIENT_FUNDS: the node's float is short now.
 */
export const CURABLE_REFUSALS: ReadonlySet<string> = new Set(['CERT_NOT_YET_VALID', 'LOG_FULL', 'HOLDING_LIMIT', 'INSUFFICIENT_FUNDS']);

/** Payments sent to the node in one claim request (a payment to a client is about 1.1 KiB of the 64 KiB body). */
export const CLAIM_BATCH_MAX = 32;
/** Received payments kept in the wallet's own log (its freshness check for claims and collects). */
export const INBOX_ENTRIES_MAX = 10_000;

type OpsCommands = typeof opsTrustedApp.commands;
/** The OPS trusted app, where the isolated SE process finds it. */
const OPS_TA: TrustedAppSpec<OpsState, OpsCommands> = { app: opsTrustedApp, location: { module: new URL('./trusted-app.ts', import.meta.url).href, export: 'opsTrustedApp' } };
/** The wallet's secure element. */
export type OpsSecureElement = Awaited<ReturnType<typeof startSecureElement<OpsState, OpsCommands>>>;

/** The device a recovery staged (`recovering/device.json`), read back when a recovery cut short runs again. */
const STAGED_DEVICE = record({ keyId: keyIdHex, certificate: base64urlText({ max: 256 * 1024 }) });

/** A step of an OPS wallet's journal. */
export type PendingStep =
  | { kind: 'deposit'; id: string; amount: string; confirmation?: string }
  | { kind: 'withdraw'; id: string; amount: string; confirmation?: string; /** The device that signed it, when not the wallet's current one. */ device?: string }
  | { kind: 'pay'; id: string; amount: string; receiver: string; memo?: string; request?: string }
  | { kind: 'collect'; id: string; digest: string };

/** wallet.json of an OPS wallet (it keeps no slot of its own). */
export type OpsWalletData = WalletData<PendingStep, never>;

/** The string fields `names` of a step read from the file (each present, or absent when optional), or null. */
function fields<R extends string, O extends string>(raw: Record<string, unknown>, required: readonly R[], optional: readonly O[]): ({ [K in R]: string } & { [K in O]?: string }) | null {
  const out: Record<string, string> = {};
  for (const name of required) {
    const value = raw[name];
    if (typeof value !== 'string') return null;
    out[name] = value;
  }
  for (const name of optional) {
    const value = raw[name];
    if (value === undefined) continue;
    if (typeof value !== 'string') return null;
    out[name] = value;
  }
  return out as { [K in R]: string } & { [K in O]?: string };
}

/** How an OPS wallet reads its journal from wallet.json. */
const OPS_FORMAT: WalletFormat<PendingStep, never> = {
  step(raw) {
    const id = raw.id;
    switch (raw.kind) {
      case 'deposit': {
        const f = fields(raw, ['amount'], ['confirmation']);
        return f === null ? null : { kind: 'deposit', id, ...f };
      }
      case 'withdraw': {
        const f = fields(raw, ['amount'], ['confirmation', 'device']);
        return f === null ? null : { kind: 'withdraw', id, ...f };
      }
      case 'pay': {
        const f = fields(raw, ['amount', 'receiver'], ['memo', 'request']);
        return f === null ? null : { kind: 'pay', id, ...f };
      }
      case 'collect': {
        const f = fields(raw, ['digest'], []);
        return f === null ? null : { kind: 'collect', id, ...f };
      }
      default:
        return null;
    }
  },
  slot: () => null,
};

/** Options of Wallet.create. */
export interface CreateOptions {
  home: string;
  name: string;
  node: string;
  secureElement: boolean;
  /** Progress lines for long steps. */
  progress?: (line: string) => void;
}

/** What Wallet.balance reports (decimal strings). */
export interface BalanceReport {
  online: string | null;
  onlineError?: string;
  offline: string | null;
  /** Accepted payments not yet collected or claimed. */
  incoming: string;
  holdingLimit?: string;
  offlinePaymentsLeft?: number;
  pendingSteps: number;
}

/** An open OPS wallet: call `close()` when done (it stops the SE process and frees the lock). */
export class Wallet extends WalletShell<PendingStep, never, OpsState, OpsCommands> {
  readonly user: Signer;

  private constructor(paths: WalletPaths, data: OpsWalletData, unlock: () => Promise<void>) {
    super(paths, data, unlock);
    const secret = data.user.secret;
    if (secret === undefined) throw new TallyError('STATE_CORRUPT', `wallet ${data.name}: the user key is missing`, { reason: 'user' });
    this.user = signerFromSecret(nobleEd25519, fromHex(secret));
  }

  protected secureElementSpec() {
    return { spec: OPS_TA };
  }

  protected async probeSecureElement(): Promise<void> {
    await (await this.se()).call('status', {});
  }

  /** True when the wallet has a secure element (it collects; without one it claims). */
  get hasSecureElement(): boolean {
    return this.data.device !== null;
  }

  /** The certificate payers pay to: the TA's for a wallet with an SE, the user's otherwise. */
  get receiverCertificate(): Uint8Array {
    return fromBase64url(this.data.device?.certificate ?? this.data.user.certificate);
  }

  /**
   * Creates a wallet: registers a user at the node and, with a secure element, provisions the
   * isolated SE, has the home's OEM attest it, registers the device and runs CertInit.
   * @throws TallyError WALLET_EXISTS, WALLET_UNSUPPORTED (no OEM enrolled at this node),
   *   NODE_UNREACHABLE, NODE_REFUSED
   */
  static async create(options: CreateOptions): Promise<Wallet> {
    await createWalletFolder<PendingStep, never>({ ...options, needsOem: options.secureElement }, async ({ name, node, info, paths, oem, progress, registerUser }) => {
      const secret = randomBytes(32);
      const user = signerFromSecret(nobleEd25519, secret);
      progress('registering the user at the node');
      const registered = await registerUser(user);
      let device: OpsWalletData['device'] = null;
      if (oem !== null) {
        progress('provisioning the isolated secure element');
        const host = await startSecureElement(OPS_TA, paths, true);
        try {
          device = await provisionDevice(host, { node, info, oem, user, owner: registered.keyId, progress });
          await host.close();
        } catch (e) {
          await host.kill();
          throw e;
        }
      }
      const data: OpsWalletData = {
        format: 1,
        name,
        scheme: 'ops',
        node: node.url,
        currency: info.currency,
        createdAt: Date.now(),
        user: { secret: toHex(secret), keyId: registered.keyId, account: registered.account, certificate: registered.certificate },
        device,
        certificates: info.certificates,
        crl: null,
        inbox: [],
        sent: [],
        pending: [],
      };
      return { data, detail: device === null ? 'without a secure element' : `secure element ${device.keyId}` };
    });
    return Wallet.open(options.home, options.name);
  }

  /**
   * Opens a wallet and takes its lock.
   * @throws TallyError WALLET_NOT_FOUND, WALLET_BUSY, STATE_CORRUPT
   */
  static async open(home: string, name: string): Promise<Wallet> {
    const { paths, data, unlock } = await openFolderOf(home, name, 'ops', OPS_FORMAT);
    try {
      return new Wallet(paths, data, unlock);
    } catch (e) {
      await unlock();
      throw e;
    }
  }

  /** The running SE (started on first use). @throws TallyError WALLET_UNSUPPORTED without one */
  async se(): Promise<OpsSecureElement> {
    if (this.data.device === null) {
      throw new TallyError('WALLET_UNSUPPORTED', `wallet ${this.name} has no secure element`, { name: this.name, reason: 'no secure element' });
    }
    return this.startedSe();
  }

  /**
   * Refuses, before any step is recorded, an amount the secure element does not hold; the TA
   * refuses it too, but cannot word the amounts in the currency.
   * @throws TallyError SE_REJECTED (INSUFFICIENT_FUNDS)
   */
  private async checkBalance(amount: bigint, command: 'pay' | 'withdraw'): Promise<void> {
    const { balance } = await (await this.se()).call('status', {});
    if (balance < amount) {
      throw new TallyError('SE_REJECTED', `the offline balance ${this.shown(balance)} is below the ${this.shown(amount)} to ${command}`, { command, reason: 'INSUFFICIENT_FUNDS' });
    }
  }

  // ---------------------------------------------------------------- recovery

  /**
   * Finishes the steps a crash or a lost connection cut short. Steps that need the node stay
   * pending while it is unreachable (or answers 5xx); a step the node or the SE refused is ended,
   * written to the history as refused, and reported in `ended`.
   */
  resume(): Promise<ResumeReport> {
    return this.resumeSteps();
  }

  protected async runStep(step: PendingStep): Promise<unknown> {
    switch (step.kind) {
      case 'deposit':
        return this.runDeposit(step);
      case 'withdraw':
        return this.runWithdraw(step);
      case 'pay':
        return this.runPay(step);
      case 'collect':
        return this.runCollect(step);
    }
  }

  /**
   * Retires a secure element that refuses to run (ROLLBACK_DETECTED, or its sealed state damaged)
   * and starts a new one, registered at the node as a new device of the same user. Nothing of the
   * old one is deleted: its folder and counter move to `retired/`, and the value the node knows it
   * holds stays on its record at the node (this creates no money: the new device starts empty).
   * Steps and received payments bound to the old device are ended or set aside and written to the
   * history. A recovery cut short is finished by running it again.
   * @throws TallyError WALLET_UNSUPPORTED (no SE, or an SE that runs), NODE_*, SE_*
   */
  async recoverDevice(progress?: (line: string) => void): Promise<{ retired: string; device: string; folder: string; setAside: { steps: number; payments: number }; escrow: string; releaseAt: string }> {
    const old = this.requireDevice();
    const at: { node?: { status: string; escrow: string; releaseAt: string } } = {};
    const { fresh: device, folder } = await this.replaceSecureElement(old.keyId, STAGED_DEVICE, async ({ paths, oem, info }) => {
      progress?.('provisioning a new isolated secure element');
      const host = await startSecureElement(OPS_TA, paths, true);
      try {
        return await provisionDevice(host, { node: this.node, info, oem, user: this.user, owner: this.data.user.keyId, progress });
      } finally {
        await host.close();
      }
    }, {
      // The node retires the old device before its folder is set aside: revoked, and what it can vouch the
      // device held kept in escrow for the device's payments that surface; the rest comes to the online
      // account after the hold (see sync).
      beforeMove: async () => {
        progress?.(`retiring the old device ${old.keyId} at the node`);
        at.node = (await this.node.signed(this.user, 'POST', `/v1/ops/devices/${old.keyId}/retire`, {
          answer: opsRetireAnswer,
          body: { reason: 'its secure element refuses to run (tally wallet recover)' },
          idempotencyKey: `retire-${old.keyId}`,
        })).body;
      },
    });
    const retirement = at.node;
    if (retirement === undefined) throw new TallyError('ASSERTION_FAILED', 'the device was not retired at the node', {});
    let steps = 0;
    const kept: PendingStep[] = [];
    for (const step of this.data.pending) {
      if (step.kind === 'withdraw' && step.confirmation !== undefined) kept.push({ ...step, device: step.device ?? old.keyId }); // signed by the old TA: the node may still credit it
      else if (step.kind === 'deposit' && step.confirmation === undefined) kept.push(step); // nothing moved yet: it runs for the new device
      else if (step.kind === 'withdraw' || step.kind === 'deposit' || step.kind === 'pay' || step.kind === 'collect') {
        steps++;
        await this.note({ at: Date.now(), kind: `${step.kind}-retired`, ...('amount' in step ? { amount: this.format(BigInt(step.amount)) } : {}), detail: `cut short on the retired secure element ${old.keyId}${'confirmation' in step && step.confirmation !== undefined ? `; confirmation ${step.confirmation}` : ''}` });
      } else kept.push(step);
    }
    let payments = 0;
    for (const entry of this.data.inbox) {
      if (entry.state !== 'accepted') continue;
      entry.state = 'retired';
      entry.reason = `paid to the retired secure element ${old.keyId}; the payment is kept here`;
      payments++;
    }
    const fromDevice = old.keyId;
    this.data.pending = kept;
    this.data.device = device;
    this.data.retired = [...(this.data.retired ?? []), { device: fromDevice, at: Date.now(), folder, releaseAt: retirement.releaseAt, released: false }];
    await this.save();
    const { escrow, releaseAt } = retirement;
    await this.note({
      at: Date.now(),
      kind: 'device-retired',
      amount: escrow,
      detail: `secure element ${fromDevice} retired (kept in ${folder}); new secure element ${device.keyId}; the node holds ${escrow} ${this.currency.code}, what it knows the old one held, for its payments that surface, and gives the rest back from ${releaseAt} (at a sync)`,
    });
    await this.recoveryDone();
    return { retired: fromDevice, device: device.keyId, folder, setAside: { steps, payments }, escrow, releaseAt };
  }

  // ---------------------------------------------------------------- online <-> offline

  /**
   * Figure 5: the node moves `amount` from the online account to the offline float and signs
   * `[T.vk, x, i]`; the TA applies it.
   * @throws TallyError WALLET_UNSUPPORTED, HOLDING_LIMIT (as SE_REJECTED, checked before the node
   *   is asked), NODE_*, SE_*
   */
  async deposit(amountText: string): Promise<{ amount: string; offline: string }> {
    const amount = this.parseAmount(amountText);
    const se = await this.se();
    await this.finishCounterSteps('deposit');
    const status = await se.call('status', {});
    if (status.balance + amount > status.holdingLimit) {
      throw new TallyError('SE_REJECTED', `the offline balance would be ${this.shown(status.balance + amount)}, over the holding limit of ${this.shown(status.holdingLimit)}`, { command: 'deposit', reason: 'HOLDING_LIMIT' });
    }
    const step: PendingStep = { kind: 'deposit', id: newStepId(), amount: amount.toString() };
    await this.begin(step);
    const balance = await this.runDeposit(step);
    return { amount: this.format(amount), offline: this.format(balance) };
  }

  /**
   * Deposits and withdraws share the counter i (the TA and the node each take the next one), so a
   * new one starts only after the earlier ones are finished or ended.
   * @throws TallyError SE_REJECTED (reason DEPOSIT_PENDING) while one still waits, saying why
   */
  private async finishCounterSteps(command: 'deposit' | 'withdraw'): Promise<void> {
    const counted = () => this.data.pending.find((s) => s.kind === 'deposit' || s.kind === 'withdraw');
    if (counted() === undefined) return;
    const resumed = await this.resume();
    const left = counted();
    if (left !== undefined) {
      const why = resumed.waiting.find((w) => w.kind === left.kind)?.why ?? 'it could not be finished';
      throw new TallyError('SE_REJECTED', `an earlier ${left.kind} is not finished yet (${why}); try again once it can be`, { command, reason: 'DEPOSIT_PENDING' });
    }
  }

  private async runDeposit(step: Extract<PendingStep, { kind: 'deposit' }>): Promise<bigint> {
    const device = this.requireDevice();
    if (step.confirmation === undefined) {
      let answer;
      try {
        answer = await this.node.signed(this.user, 'POST', '/v1/ops/deposits', { answer: opsDepositAnswer,
          body: { device: device.keyId, amount: this.format(BigInt(step.amount)) },
          idempotencyKey: `deposit-${step.id}`,
        });
      } catch (e) {
        // The node said no: nothing moved, and the same request would be refused again.
        if (isNodeRefusal(e)) await this.finish(step, { at: Date.now(), kind: 'deposit-refused', amount: this.format(BigInt(step.amount)), detail: `refused by the node: ${e.message}` });
        throw e;
      }
      step.confirmation = answer.body.confirmation;
      await this.update(step);
    }
    const confirmation = depositConfirmationCodec.decode(decodeCbor(fromBase64url(step.confirmation)), 'confirmation');
    const se = await this.se();
    let out;
    try {
      out = await se.call('deposit', { confirmation }, { requestId: fromHex(step.id) });
    } catch (e) {
      if (isTallyError(e, 'SE_REJECTED')) {
        // The node moved the amount to the float for this device (deposit i); the TA will not take it.
        // The node keeps it on this device's record; the confirmation is kept here in the history.
        await this.finish(step, { at: Date.now(), kind: 'deposit-refused', amount: this.format(BigInt(step.amount)), detail: `the node confirmed deposit i=${confirmation.i} but the secure element refused it: ${e.message}; confirmation ${step.confirmation}` });
      }
      throw e;
    }
    await this.finish(step, { at: Date.now(), kind: 'deposit', amount: this.format(BigInt(step.amount)), detail: `confirmation i=${confirmation.i}` });
    return out.balance;
  }

  /**
   * Figure 6: the TA signs `[x, i]` and lowers its balance; the node checks it and credits the
   * online account from the float.
   */
  async withdraw(amountText: string): Promise<{ amount: string; online: string | null }> {
    const amount = this.parseAmount(amountText);
    this.requireDevice();
    await this.finishCounterSteps('withdraw');
    await this.checkBalance(amount, 'withdraw');
    const step: PendingStep = { kind: 'withdraw', id: newStepId(), amount: amount.toString() };
    await this.begin(step);
    await this.runWithdraw(step);
    return { amount: this.format(amount), online: (await this.onlineBalance()).balance };
  }

  private async runWithdraw(step: Extract<PendingStep, { kind: 'withdraw' }>): Promise<void> {
    const device = this.requireDevice();
    if (step.confirmation === undefined) {
      const se = await this.se();
      let out;
      try {
        out = await se.call('withdraw', { amount: BigInt(step.amount) }, { requestId: fromHex(step.id) });
      } catch (e) {
        if (isTallyError(e, 'SE_REJECTED')) await this.finish(step, { at: Date.now(), kind: 'withdraw-refused', amount: this.format(BigInt(step.amount)), detail: e.message });
        throw e;
      }
      step.confirmation = toBase64url(encodeCbor(withdrawConfirmationWire(out)));
      await this.update(step);
    }
    // The current TA signs it again with its counters; one signed by a retired SE goes as it was.
    let confirmation: WithdrawConfirmation;
    try {
      confirmation =
        step.device === undefined || step.device === device.keyId
          ? await this.currentWithdrawConfirmation(step.confirmation)
          : withdrawConfirmationCodec.decode(decodeCbor(fromBase64url(step.confirmation)), 'confirmation');
    } catch (e) {
      // A stored confirmation that no longer decodes can never be sent: the step ends here.
      if (isTallyError(e, 'DECODE_FAILED') || isTallyError(e, 'CBOR_MALFORMED')) {
        await this.finish(step, { at: Date.now(), kind: 'withdraw-refused', amount: this.format(BigInt(step.amount)), detail: `the stored withdraw confirmation does not decode (${e.message}); confirmation ${step.confirmation}` });
      }
      throw e;
    }
    try {
      await this.node.signed(this.user, 'POST', '/v1/ops/withdrawals', {
        body: { device: step.device ?? device.keyId, confirmation: toBase64url(encodeCbor(withdrawConfirmationWire(confirmation))) },
        idempotencyKey: `withdraw-${step.id}-${confirmation.j}-${confirmation.collectSeq}`,
      });
    } catch (e) {
      // An earlier try reached the node and its answer was lost: the withdrawal is credited already.
      const credited = isTallyError(e, 'NODE_REFUSED') && e.details.details?.['reason'] === 'already-credited';
      if (!credited && isNodeRefusal(e)) {
        // The TA gave the amount up and the node will not credit it: the step can never complete.
        await this.finish(step, { at: Date.now(), kind: 'withdraw-refused', amount: this.format(BigInt(step.amount)), detail: `the secure element gave it up but the node refused to credit it: ${e.message}; confirmation ${step.confirmation}` });
      } else if (isTallyError(e, 'NODE_UNREACHABLE')) {
        throw new TallyError('NODE_UNREACHABLE', `the secure element gave up ${this.format(BigInt(step.amount))} ${this.currency.code} for the withdraw, but ${e.message.replace(/^cannot/, 'the wallet cannot')}; the wallet credits it when the node answers (any command that reaches the node finishes it)`, e.details, { cause: e });
      }
      if (!credited) throw e;
    }
    await this.finish(step, { at: Date.now(), kind: 'withdraw', amount: this.format(BigInt(step.amount)) });
  }

  /**
   * The withdraw confirmation to send now: signed again by the TA with its current counters, so that
   * payments made while the withdrawal waited for the node are below them (the node refuses a
   * confirmation whose counters are below a payment it holds from the device, as a restored state's).
   * Falls back to the stored one when the TA no longer keeps that withdrawal.
   */
  private async currentWithdrawConfirmation(stored: string): Promise<WithdrawConfirmation> {
    const original = withdrawConfirmationCodec.decode(decodeCbor(fromBase64url(stored)), 'confirmation');
    try {
      const again = await (await this.se()).call('withdrawAgain', { i: original.i });
      // The TA signs again only the withdrawal it made under that number; a stored one that says otherwise goes as it is.
      return again.amount === original.amount ? again : original;
    } catch (e) {
      if (isTallyError(e, 'SE_REJECTED') && e.details.reason === 'WITHDRAW_UNKNOWN') return original;
      throw e;
    }
  }

  // ---------------------------------------------------------------- offline payments

  /**
   * The payee's `RequestPayment [x, receiver]`, signed with the user key over a fresh nonce and the
   * time (request.ts), as a token; `request` is the plain form a link carries.
   */
  request(amountText: string, memo?: string): { token: string; request: PaymentRequest; signed: SignedRequest } {
    const signed = signRequest(this.user, {
      amount: this.parseAmount(amountText),
      receiver: this.receiverCertificate,
      ...(memo === undefined ? {} : { memo }),
      ...(this.data.device === null ? {} : { payee: fromBase64url(this.data.user.certificate) }),
      nonce: randomBytes(REQUEST_NONCE_BYTES),
      created: Date.now(),
    });
    return { token: requestToken(signed), request: plainRequest(signed), signed };
  }

  /**
   * Pays a request token (Figure 7, the payer's part): the payee's signature and certificates are
   * checked (verifyRequest), a request already paid is refused unless `again`, then the TA's Pay.
   * The payment, with the request's nonce, is kept in `sent` before it is returned, with whom it paid.
   * `payee`: the key id (or its first 8 or more hex digits) of the user the payer means to pay.
   * @throws TallyError PAYMENT_INVALID (not signed by the payee it names, receiver not the payee's,
   *   another payee than `payee`, too old, an unsigned token), REQUEST_PAID, CERT_REVOKED, SE_REJECTED
   */
  async pay(token: string, options: { again?: boolean; payee?: string } = {}): Promise<{ token: string; payment: Payment; entry: SentEntry; payee: PayeeInfo }> {
    this.requireDevice();
    const meant = options.payee?.toLowerCase();
    if (meant !== undefined && !/^[0-9a-f]{8,64}$/.test(meant)) throw new TallyError('DECODE_FAILED', `payee: expected a key id of 8 to 64 hex digits, got ${JSON.stringify(options.payee).slice(0, 80)}`, { path: 'payee', expected: 'a key id', got: String(options.payee).slice(0, 80) });
    const signed = readRequestToken(token);
    const verified = verifyRequest({ provider: nodeProvider, request: signed, trustAnchors: [this.root], intermediaries: [this.intermediary], now: Date.now(), revocations: this.revocations });
    const signer = toHex(verified.payee.subjectKeyId);
    if (meant !== undefined && !signer.startsWith(meant)) {
      throw new TallyError('PAYMENT_INVALID', `payment request refused: it was signed by user ${signer}, not the ${meant} you meant to pay`, { reason: 'payee' });
    }
    const nonce = toHex(signed.nonce);
    const paid = this.data.sent.find((s) => s.request === nonce) ?? this.data.pending.find((s) => s.kind === 'pay' && s.request === nonce);
    if (paid !== undefined && options.again !== true) {
      const at = 'at' in paid ? paid.at : Date.now();
      throw new TallyError('REQUEST_PAID', `this payment request was already paid${'at' in paid ? ` on ${new Date(at).toISOString()}` : ' (the payment is not finished yet)'}; to pay it once more, give --again`, { nonce, at });
    }
    const payee: PayeeInfo = {
      keyId: signer,
      ...(verified.payee.extensions.name === undefined ? {} : { name: verified.payee.extensions.name }),
      receiver: toHex(verified.receiver.subjectKeyId),
      receiverRole: verified.receiver.role === 'device' ? 'device' : 'user',
    };
    return { ...(await this.payRequest(plainRequest(signed), { request: nonce })), payee };
  }

  /** Pays a decoded request (`request`: the nonce of the signed request it came from, kept with the payment). */
  async payRequest(request: PaymentRequest, options: { request?: string } = {}): Promise<{ token: string; payment: Payment; entry: SentEntry }> {
    this.requireDevice();
    this.verifyCertificate(request.receiver);
    await this.checkBalance(request.amount, 'pay');
    const step: PendingStep = {
      kind: 'pay',
      id: newStepId(),
      amount: request.amount.toString(),
      receiver: toBase64url(request.receiver),
      ...(request.memo === undefined ? {} : { memo: request.memo }),
      ...(options.request === undefined ? {} : { request: options.request }),
    };
    await this.begin(step);
    const entry = await this.runPay(step);
    const payment = decodePayment(fromBase64url(entry.payment));
    return { token: paymentToken(payment), payment, entry };
  }

  private async runPay(step: Extract<PendingStep, { kind: 'pay' }>): Promise<SentEntry> {
    const se = await this.se();
    let payment: Payment;
    try {
      payment = await se.call('pay', { amount: BigInt(step.amount), receiver: fromBase64url(step.receiver), ...(step.memo === undefined ? {} : { memo: step.memo }) }, { requestId: fromHex(step.id) });
    } catch (e) {
      if (isTallyError(e, 'SE_REJECTED') || isTallyError(e, 'DECODE_FAILED')) {
        await this.finish(step, { at: Date.now(), kind: 'pay-refused', amount: this.format(BigInt(step.amount)), detail: `refused by the secure element: ${e.message}` });
      }
      throw e;
    }
    const entry: SentEntry = {
      digest: toHex(paymentDigest(payment)),
      receiver: toHex(keyId(decodeCertificate(payment.receiver).body.subject)),
      index: payment.index.toString(),
      amount: payment.amount.toString(),
      payment: toBase64url(encodePayment(payment)),
      at: Date.now(),
      confirmed: false,
      ...(step.request === undefined ? {} : { request: step.request }),
    };
    if (!this.data.sent.some((s) => s.digest === entry.digest)) this.data.sent.push(entry);
    await this.finish(step, { at: entry.at, kind: 'pay', amount: this.format(payment.amount), detail: `to ${entry.receiver} (index ${entry.index})` });
    return entry;
  }

  /**
   * The payee's PayVerify (Figure 8) and its log: the payment must name this wallet's receiver
   * certificate, chain to the central bank, be unrevoked, and be new to this wallet.
   * @throws TallyError PAYMENT_INVALID, PAYMENT_REPLAYED, CERT_* , SIGNATURE_INVALID
   */
  async accept(token: string): Promise<InboxEntry> {
    return this.acceptPayment(readPaymentToken(token));
  }

  /** Accepts a decoded payment. */
  async acceptPayment(payment: Payment): Promise<InboxEntry> {
    const verified = verifyPayment({
      provider: nodeProvider,
      payment,
      trustAnchors: [this.root],
      intermediaries: [this.intermediary],
      now: Date.now(),
      revocations: this.revocations,
      currency: this.currency.code,
      receiver: this.receiverCertificate,
    });
    const sender = toHex(verified.sender.subjectKeyId);
    const index = payment.index.toString();
    const seen = this.data.inbox.find((e) => e.sender === sender && e.index === index);
    if (seen !== undefined) {
      throw new TallyError('PAYMENT_REPLAYED', `payment ${index} of device ${sender} was already received (${seen.state})`, { sender, index });
    }
    if (this.data.inbox.length >= INBOX_ENTRIES_MAX) {
      throw new TallyError('TOO_LARGE', `the wallet keeps at most ${INBOX_ENTRIES_MAX} received payments; collect or claim and sync first`, { what: 'inbox', size: this.data.inbox.length, max: INBOX_ENTRIES_MAX });
    }
    const entry: InboxEntry = { digest: toHex(paymentDigest(payment)), sender, index, amount: payment.amount.toString(), payment: toBase64url(encodePayment(payment)), at: Date.now(), state: 'accepted' };
    this.data.inbox.push(entry);
    await this.save();
    await this.note({ at: entry.at, kind: 'accept', amount: this.format(payment.amount), detail: `from ${sender} (index ${index})` });
    return entry;
  }

  /** Collect: moves every accepted payment into the TA (offline). */
  async collect(): Promise<{ collected: InboxEntry[]; refused: InboxEntry[]; waiting: InboxEntry[]; offline: string }> {
    this.requireDevice();
    const collected: InboxEntry[] = [];
    const refused: InboxEntry[] = [];
    const waiting: InboxEntry[] = [];
    for (const entry of this.data.inbox.filter((e) => e.state === 'accepted')) {
      const step: PendingStep = { kind: 'collect', id: newStepId(), digest: entry.digest };
      await this.begin(step);
      await this.runCollect(step);
      (entry.state === 'collected' ? collected : entry.state === 'refused' ? refused : waiting).push(entry);
    }
    const status = await (await this.se()).call('status', {});
    return { collected, refused, waiting, offline: this.format(status.balance) };
  }

  private async runCollect(step: Extract<PendingStep, { kind: 'collect' }>): Promise<void> {
    const entry = this.data.inbox.find((e) => e.digest === step.digest);
    if (entry === undefined || entry.state !== 'accepted') {
      this.data.pending = this.data.pending.filter((s) => s.id !== step.id);
      await this.save();
      return;
    }
    const se = await this.se();
    try {
      await se.call('collect', { payment: decodePayment(fromBase64url(entry.payment)) }, { requestId: fromHex(step.id) });
      entry.state = 'collected';
      delete entry.waiting;
      await this.finish(step, { at: Date.now(), kind: 'collect', amount: this.format(BigInt(entry.amount)), detail: `from ${entry.sender} (index ${entry.index})` });
    } catch (e) {
      // The TA's refusal, or a stored payment that no longer decodes.
      if (!isTallyError(e, 'SE_REJECTED') && !isTallyError(e, 'DECODE_FAILED') && !isTallyError(e, 'CBOR_MALFORMED')) throw e;
      if (isTallyError(e, 'SE_REJECTED') && CURABLE_REFUSALS.has(e.details.reason)) {
        // Not a bad payment: the TA cannot take it yet. It stays accepted and is tried again after a sync.
        entry.waiting = `${e.message} [${e.details.reason}]`;
        await this.finish(step, { at: Date.now(), kind: 'collect-waiting', amount: this.format(BigInt(entry.amount)), detail: `${entry.waiting}; tried again after the next sync` });
        return;
      }
      entry.state = 'refused';
      entry.reason = e.message;
      await this.finish(step, { at: Date.now(), kind: 'collect-refused', amount: this.format(BigInt(entry.amount)), detail: e.message });
    }
  }

  /** Claim (Figure 9): sends every accepted payment to the node (in batches), which credits the online account. */
  async claim(): Promise<{ claimed: InboxEntry[]; refused: InboxEntry[]; online: string | null }> {
    if (this.hasSecureElement) {
      throw new TallyError('WALLET_UNSUPPORTED', `wallet ${this.name} has a secure element: payments to it are collected (\`tally collect ${this.name}\`), not claimed`, { name: this.name, reason: 'collect instead' });
    }
    const claimed: InboxEntry[] = [];
    const refused: InboxEntry[] = [];
    const waiting = this.data.inbox.filter((e) => e.state === 'accepted');
    for (let at = 0; at < waiting.length; at += CLAIM_BATCH_MAX) {
      const batch = waiting.slice(at, at + CLAIM_BATCH_MAX);
      // The key names the batch's payments: a re-sent batch (after a lost answer) is the same request.
      const answer = await this.node.signed(this.user, 'POST', '/v1/ops/claims/batch', { answer: opsClaimsAnswer,
        body: { payments: batch.map((e) => e.payment) },
        idempotencyKey: `claims-${toBase64url(sha256(utf8(batch.map((e) => e.digest).join(','))))}`,
      });
      for (const [i, entry] of batch.entries()) {
        const result = answer.body.results[i];
        if (result?.status === 'credited') {
          entry.state = 'claimed';
          // What the node says it credited, not what this wallet's file says the payment was.
          entry.credited = typeof result.amount === 'string' ? result.amount : this.format(BigInt(entry.amount));
          claimed.push(entry);
          await this.note({ at: Date.now(), kind: 'claim', amount: entry.credited, detail: `credited by the node; from ${entry.sender} (index ${entry.index})` });
        } else if (result !== undefined && CURABLE_REFUSALS.has(result.code)) {
          // The node cannot pay it now (its float is short): it stays accepted for a later claim.
          entry.waiting = `${result.message} [${result.code}]`;
          await this.note({ at: Date.now(), kind: 'claim-waiting', amount: this.format(BigInt(entry.amount)), detail: entry.waiting });
        } else {
          entry.state = 'refused';
          entry.reason = result === undefined ? 'the node gave no result for it' : `${result.message} [${result.code}]`;
          refused.push(entry);
          await this.note({ at: Date.now(), kind: 'claim-refused', amount: this.format(BigInt(entry.amount)), detail: entry.reason });
        }
      }
      await this.save();
    }
    return { claimed, refused, online: (await this.onlineBalance()).balance };
  }

  /**
   * Sync: with an SE, its signed report of payments made and collected since the last sync goes to
   * the node, which reconciles it and answers a signed ack and the revocation list; without one,
   * only the revocation list is fetched.
   */
  async sync(): Promise<{
    crlVersion: number;
    fraud: { device: string; kind: string }[];
    paidCleared?: number;
    collectedCleared?: number;
    /** Accepted payments that waited for this sync, collected again. */
    retried?: { collected: number; refused: number; waiting: number };
    ended?: ResumeReport['ended'];
  }> {
    const device = this.data.device;
    if (device === null) {
      const answer = await this.node.call('GET', '/v1/revocations', { answer: revocationsAnswer });
      await this.keepCrl(answer.body.list);
      await this.note({ at: Date.now(), kind: 'sync', detail: `revocation list v${answer.body.version}` });
      return { crlVersion: answer.body.version, fraud: [] };
    }
    const { ended } = await this.resume();
    await this.releaseRetired();
    const se = await this.se();
    const report = await se.call('report', {});
    const answer = await this.node.signed(this.user, 'POST', '/v1/ops/sync', { answer: opsSyncAnswer,
      body: { device: device.keyId, report: toBase64url(encodeCbor({ body: syncReportBodyWire(report.body), signature: report.signature })) },
      idempotencyKey: `sync-${toHex(randomBytes(16))}`,
    });
    const ack = syncAckCodec.decode(decodeCbor(fromBase64url(answer.body.ack)), 'ack');
    const applied = await se.call('syncAck', { ack, crl: fromBase64url(answer.body.crl) });
    await this.keepCrl(answer.body.crl);
    await this.note({ at: Date.now(), kind: 'sync', detail: `report of ${report.body.paid.length} payments and ${report.body.collected.length} collects; revocation list v${answer.body.crlVersion}` });
    // The ack moved the TA's trusted time and pruned its log: payments that waited for that go in now.
    let retried: { collected: number; refused: number; waiting: number } | undefined;
    if (this.data.inbox.some((e) => e.state === 'accepted' && e.waiting !== undefined)) {
      const again = await this.collect();
      retried = { collected: again.collected.length, refused: again.refused.length, waiting: again.waiting.length };
    }
    return { crlVersion: answer.body.crlVersion, fraud: answer.body.fraud, paidCleared: applied.paidCleared, collectedCleared: applied.collectedCleared, ...(retried === undefined ? {} : { retried }), ...(ended.length === 0 ? {} : { ended }) };
  }

  /** Asks the node for what it still holds for retired devices whose hold is over; it credits the online account once. */
  private async releaseRetired(): Promise<void> {
    for (const r of this.data.retired ?? []) {
      if (r.released !== false || r.releaseAt === undefined || Date.now() < Date.parse(r.releaseAt)) continue;
      const answer = await this.node.signed(this.user, 'POST', `/v1/ops/devices/${r.device}/retire`, { answer: opsReleaseAnswer, body: {}, idempotencyKey: `release-${r.device}` });
      if (answer.body.status !== 'released') continue;
      r.released = true;
      await this.save();
      const amount = answer.body.refund?.amount ?? '0.00';
      await this.note({ at: Date.now(), kind: 'retired-released', amount, detail: `the node credited ${amount} ${this.currency.code} it held for the retired secure element ${r.device}` });
    }
  }

  /** Online balance from the node, or null with the reason when it is unreachable. */
  onlineBalance(): Promise<{ balance: string | null; error?: string }> {
    return this.onlineBalanceWith(this.user);
  }

  /** Online (from the node, when reachable) and offline (from the SE) balances. */
  async balance(): Promise<BalanceReport> {
    const online = await this.onlineBalance();
    const incoming = this.data.inbox.filter((e) => e.state === 'accepted').reduce((sum, e) => sum + BigInt(e.amount), 0n);
    const report: BalanceReport = { online: online.balance, ...(online.error === undefined ? {} : { onlineError: online.error }), offline: null, incoming: this.format(incoming), pendingSteps: this.data.pending.length };
    if (this.data.device !== null) {
      const status = await (await this.se()).call('status', {});
      report.offline = this.format(status.balance);
      report.holdingLimit = this.format(status.holdingLimit);
      report.offlinePaymentsLeft = Math.max(0, status.offlinePaymentsMax - status.unsyncedPayments);
    }
    return report;
  }

  // ---------------------------------------------------------------- over a link

  /**
   * The payee over TCP + Noise: listens on `port`, takes one payer, sends the request, accepts the
   * payment, answers the receipt. Both sides bind the session to their user certificates.
   * @param onListening called with the real port once listening (port 0 picks one)
   */
  async receive(amountText: string, options: { port: number; host: string; timeoutMs: number; memo?: string; onListening?: (port: number) => void }): Promise<InboxEntry> {
    const { request } = this.request(amountText, options.memo);
    const { link } = await listenLink(this.linkSide(), options);
    try {
      let entry: InboxEntry | null = null;
      await runPayee(link, {
        request,
        accept: async (payment) => {
          entry = await this.acceptPayment(payment);
        },
      });
      if (entry === null) throw new TallyError('ASSERTION_FAILED', 'runPayee returned without accepting', {});
      return entry;
    } finally {
      link.close();
    }
  }

  /**
   * The payer over TCP + Noise: connects, reads the payee's request, checks that its receiver is
   * the peer (the bound user certificate itself, or a device certificate that peer owns) and, when
   * `expect` is given, that the amount is exactly that; then pays and waits for the receipt.
   */
  async payTo(host: string, port: number, options: { expect?: string; timeoutMs: number }): Promise<{ token: string; payment: Payment; confirmed: boolean; error?: string }> {
    const expect = options.expect === undefined ? undefined : this.parseAmount(options.expect);
    const { link, peer } = await connectLink(this.linkSide(), host, port, options.timeoutMs);
    try {
      const result = await runPayer(link, {
        pay: async (request) => {
          if (expect !== undefined && request.amount !== expect) {
            throw new TallyError('PAYMENT_INVALID', `the payee asks for ${this.shown(request.amount)}, not the ${this.shown(expect)} expected`, { reason: 'amount' });
          }
          this.checkReceiverIsPeer(request.receiver, peer.publicKey);
          return (await this.payRequest(request)).payment;
        },
      }, { stepTimeoutMs: options.timeoutMs });
      const digest = toHex(paymentDigest(result.payment));
      if (result.receipt !== null) {
        const sent = this.data.sent.find((s) => s.digest === digest);
        if (sent !== undefined) sent.confirmed = true;
        await this.save();
      }
      return { token: paymentToken(result.payment), payment: result.payment, confirmed: result.receipt !== null, ...(result.error === undefined ? {} : { error: result.error.message }) };
    } finally {
      link.close();
    }
  }

  private checkReceiverIsPeer(receiver: Uint8Array, peerKey: PublicKey | undefined): void {
    if (peerKey === undefined) throw new TallyError('PEER_UNTRUSTED', 'the payee did not prove who it is', { reason: 'no binding' });
    const verified = this.verifyCertificate(receiver);
    const peerId = keyId(peerKey);
    const subjectIsPeer = verified.subject.suite === peerKey.suite && equalBytes(verified.subject.key, peerKey.key);
    const ownedByPeer = verified.role === 'device' && verified.extensions.owner !== undefined && equalBytes(verified.extensions.owner, peerId);
    if (!subjectIsPeer && !ownedByPeer) {
      throw new TallyError('PAYMENT_INVALID', 'the request names a receiver that is not the peer on this link: refusing to pay someone else', { reason: 'receiver is not the peer' });
    }
  }

  /** This wallet's side of an OPS link: bound to its user certificate. */
  private linkSide(): LinkSide {
    return { prologue: OPS_LINK_PROLOGUE, scheme: OPS_LINK_SCHEME, identity: { certificate: fromBase64url(this.data.user.certificate), signer: this.user }, trust: this.peerTrust() };
  }

  private requireDevice(): { keyId: string; certificate: string } {
    if (this.data.device === null) {
      throw new TallyError('WALLET_UNSUPPORTED', `wallet ${this.name} has no secure element: it can receive and claim, not deposit, withdraw or pay offline`, { name: this.name, reason: 'no secure element' });
    }
    return this.data.device;
  }
}

/** Runs init on a fresh SE, has the OEM attest it, registers it at the node as the owner's device, runs CertInit. */
async function provisionDevice(
  host: OpsSecureElement,
  options: { node: NodeClient; info: NodeInfo; oem: Oem; user: Signer; owner: string; progress?: ((line: string) => void) | undefined },
): Promise<{ keyId: string; certificate: string }> {
  const { node, info, oem, user } = options;
  const init = await host.call('init', { root: fromBase64url(info.certificates.root), owner: fromHex(options.owner) });
  const attestation = attestDevice(oem.signer, { sePublicKey: init.publicKey, model: SOFTWARE_SE_MODEL, taMeasurement: await measureTrustedApp(OPS_TA_BUILD) });
  options.progress?.('registering the device (OEM attestation and proof of possession)');
  const answer = await node.signed(user, 'POST', '/v1/devices', { answer: deviceAnswer,
    body: {
      publicKey: { suite: init.publicKey.suite, key: toBase64url(init.publicKey.key) },
      scheme: 'ops',
      oem: oem.keyId,
      attestation: toBase64url(encodeAttestation(attestation)),
      proof: toBase64url(init.proof),
    },
    idempotencyKey: `device-${toHex(keyId(init.publicKey))}`,
  });
  await host.call('certInit', {
    certificate: fromBase64url(answer.body.certificate),
    intermediary: fromBase64url(info.certificates.intermediary),
    issuerNode: fromBase64url(info.certificates.issuerNode),
  });
  return { keyId: answer.body.keyId, certificate: answer.body.certificate };
}

