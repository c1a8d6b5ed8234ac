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
import { readFile, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { equalBytes, fromBase64url, fromHex, toBase64url, toHex, utf8 } from '../core/bytes.ts';
import { decodeCbor, encodeCbor } from '../core/cbor.ts';
import { currency as makeCurrency, type Currency } from '../core/amount.ts';
import { randomBytes, sha256 } from '../core/crypto/hash.ts';
import { nobleEd25519 } from '../core/crypto/noble.ts';
import { signerFromSecret, type PublicKey, type Signer } from '../core/crypto/suite.ts';
import { isTallyError, TallyError } from '../core/errors.ts';
import { ensurePrivateDir } from '../host/files.ts';
import { connectTcp, listenTcp } from '../channel/tcp.ts';
import { openSecureLink } from '../channel/secure-link.ts';
import type { ByteStream } from '../channel/stream.ts';
import { attestDevice, encodeAttestation } from '../pki/attestation.ts';
import { decodeCertificate, type Certificate } from '../pki/certificate.ts';
import { verifyChain } from '../pki/chain.ts';
import { keyId } from '../pki/key-id.ts';
import { decodeRevocationList, RevocationStore } from '../pki/revocation.ts';
import { nodeProvider } from '../providers/node-crypto.ts';
import { IsolatedHost } from '../secure-element/host-isolated.ts';
import {
  depositConfirmationCodec,
  decodePayment,
  encodePayment,
  paymentDigest,
  syncAckCodec,
  syncReportBodyWire,
  type Payment,
  type PaymentRequest,
} from '../schemes/ops/messages.ts';
import { verifyPayment } from '../schemes/ops/pay-verify.ts';
import { OPS_LINK_PROLOGUE, OPS_LINK_SCHEME, runPayee, runPayer } from '../schemes/ops/session.ts';
import { opsTrustedApp } from '../schemes/ops/trusted-app.ts';
import { loadOem, measureOpsTrustedApp, SOFTWARE_SE_MODEL } from './factory.ts';
import { checkWalletName, walletDir, walletPaths, type WalletPaths } from './home.ts';
import { NodeClient } from './node-client.ts';
import { formatMinor, onlineBalanceOf, openWalletFolder, parsePositive, readHistory } from './wallet-common.ts';
export { WALLET_FILE_BYTES_MAX } from './wallet-common.ts';
import { appendHistory, writeData, type HistoryEvent, type InboxEntry, type PendingStep, type SentEntry, type WalletData } from './wallet-data.ts';
export type { HistoryEvent, InboxEntry, PendingStep, SentEntry, WalletData } from './wallet-data.ts';
import { paymentToken, readPaymentToken, readRequestToken, requestToken } from './tokens.ts';

/** Payments sent to the node in one claim request (a payment to a client is about 1.1 KiB of the 64 KiB body). */
export const CLAIM_BATCH_MAX = 32;
/** Received payments kept in the wallet's own log (its freshness check for claims and collects). */
export const INBOX_ENTRIES_MAX = 10_000;

const OPS_TA_LOCATION = { module: new URL('../schemes/ops/trusted-app.ts', import.meta.url).href, export: 'opsTrustedApp' };

type OpsCommands = typeof opsTrustedApp.commands;
/** The wallet's secure element. */
export type OpsSecureElement = IsolatedHost<unknown, OpsCommands>;

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

function newId(): string {
  return toHex(randomBytes(16));
}

/** An open wallet: call `close()` when done (it stops the SE process and frees the lock). */
export class Wallet {
  readonly currency: Currency;
  readonly node: NodeClient;
  readonly user: Signer;
  private seHost: OpsSecureElement | null = null;
  private readonly revocations = new RevocationStore({ provider: nodeProvider });
  private readonly root: Certificate;
  private readonly intermediary: Certificate;

  private constructor(
    readonly paths: WalletPaths,
    private data: WalletData,
    private readonly unlock: () => Promise<void>,
  ) {
    this.currency = makeCurrency(data.currency.code, data.currency.decimals);
    this.node = new NodeClient(data.node);
    this.user = signerFromSecret(nobleEd25519, fromHex(data.user.secret));
    this.root = decodeCertificate(fromBase64url(data.certificates.root));
    this.intermediary = decodeCertificate(fromBase64url(data.certificates.intermediary));
    if (data.crl !== null) this.revocations.accept(decodeRevocationList(fromBase64url(data.crl)), this.intermediary.body.subject);
  }

  get name(): string {
    return this.data.name;
  }

  /** True when the wallet has a secure element (it collects; without one it claims). */
  get hasSecureElement(): boolean {
    return this.data.device !== null;
  }

  /** The certificate payers pay to: the TA's for a wallet with an SE, the user's otherwise. */
  get receiverCertificate(): Uint8Array {
    return fromBase64url(this.data.device?.certificate ?? this.data.user.certificate);
  }

  /** A copy of the wallet's data (for reports and tests). */
  snapshot(): WalletData {
    return structuredClone(this.data);
  }

  /**
   * Creates a wallet: registers a user at the node and, with a secure element, provisions the
   * isolated SE, has the home's OEM attest it, registers the device and runs CertInit.
   * @throws TallyError WALLET_EXISTS, WALLET_UNSUPPORTED (no OEM enrolled at this node),
   *   NODE_UNREACHABLE, NODE_REFUSED
   */
  static async create(options: CreateOptions): Promise<Wallet> {
    const name = checkWalletName(options.name);
    const final = walletDir(options.home, name);
    if ((await readFile(join(final, 'wallet.json')).catch(() => null)) !== null) {
      throw new TallyError('WALLET_EXISTS', `a wallet named ${name} already exists in ${dirname(dirname(final))}`, { name });
    }
    const node = new NodeClient(options.node);
    const info = await node.info();
    let oem = null;
    if (options.secureElement) {
      oem = await loadOem(options.home);
      if (oem === null || !oem.isEnrolledAt(node.url)) {
        throw new TallyError(
          'WALLET_UNSUPPORTED',
          `no OEM for software secure elements is enrolled at ${node.url} from ${options.home}: run \`tally operator oem\` (operator token needed) first, or create the wallet with --no-secure-element`,
          { name, reason: 'no OEM enrolled' },
        );
      }
    }
    await ensurePrivateDir(join(options.home, 'wallets'));
    const staging = join(options.home, 'wallets', `.${name}.creating-${toHex(randomBytes(4))}`);
    await ensurePrivateDir(staging);
    const paths = walletPaths(staging);
    let host: OpsSecureElement | null = null;
    try {
      const secret = randomBytes(32);
      const user = signerFromSecret(nobleEd25519, secret);
      options.progress?.('registering the user at the node');
      const registered = await node.signed<{ account: string; keyId: string; certificate: string }>(user, 'POST', '/v1/users', {
        body: { publicKey: { suite: user.publicKey.suite, key: toBase64url(user.publicKey.key) } },
        idempotencyKey: `register-${toHex(keyId(user.publicKey))}`,
      });
      let device: WalletData['device'] = null;
      if (oem !== null) {
        options.progress?.('provisioning the isolated secure element');
        host = await startSe(paths, true);
        const init = await host.call('init', { root: fromBase64url(info.certificates.root), owner: fromHex(registered.body.keyId) });
        const attestation = attestDevice(oem.signer, { sePublicKey: init.publicKey, model: SOFTWARE_SE_MODEL, taMeasurement: await measureOpsTrustedApp() });
        options.progress?.('registering the device (OEM attestation and proof of possession)');
        const answer = await node.signed<{ keyId: string; certificate: string }>(user, 'POST', '/v1/devices', {
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
        device = { keyId: answer.body.keyId, certificate: answer.body.certificate };
        await host.close();
        host = null;
      }
      const data: WalletData = {
        format: 1,
        name,
        scheme: 'ops',
        node: node.url,
        currency: info.currency,
        createdAt: Date.now(),
        user: { secret: toHex(secret), keyId: registered.body.keyId, account: registered.body.account, certificate: registered.body.certificate },
        device,
        certificates: info.certificates,
        crl: null,
        inbox: [],
        sent: [],
        pending: [],
      };
      await writeData(paths, data);
      await appendHistory(paths, { at: Date.now(), kind: 'created', detail: device === null ? 'without a secure element' : `secure element ${device.keyId}` });
      await rename(staging, final);
    } catch (e) {
      if (host !== null) await host.kill();
      await rm(staging, { recursive: true, force: true });
      throw e;
    }
    return Wallet.open(options.home, name);
  }

  /**
   * Opens a wallet and takes its lock.
   * @throws TallyError WALLET_NOT_FOUND, WALLET_BUSY, STATE_CORRUPT
   */
  static async open(home: string, name: string): Promise<Wallet> {
    const { paths, data, unlock } = await openWalletFolder(home, name, 'ops');
    try {
      return new Wallet(paths, data, unlock);
    } catch (e) {
      await unlock();
      throw e;
    }
  }

  /** Stops the SE process and frees the lock. */
  async close(): Promise<void> {
    try {
      if (this.seHost !== null) await this.seHost.close();
    } finally {
      this.seHost = null;
      await this.unlock();
    }
  }

  /** The running SE (started on first use). @throws TallyError WALLET_UNSUPPORTED without one */
  async se(): Promise<OpsSecureElement> {
    if (this.data.device === null) {
      throw new TallyError('WALLET_UNSUPPORTED', `wallet ${this.name} has no secure element`, { name: this.name, reason: 'no secure element' });
    }
    if (this.seHost === null || !this.seHost.alive) this.seHost = await startSe(this.paths, false);
    return this.seHost;
  }

  /** Formats minor units. */
  format(minor: bigint): string {
    return formatMinor(this.currency, minor);
  }

  /** Parses a decimal amount of the wallet's currency into minor units (> 0). @throws TallyError AMOUNT_INVALID */
  parseAmount(text: string): bigint {
    return parsePositive(this.currency, text);
  }

  /** The history, oldest first. */
  history(): Promise<HistoryEvent[]> {
    return readHistory(this.paths);
  }

  // ---------------------------------------------------------------- recovery

  /**
   * Finishes the steps a crash or a lost connection cut short. Steps that need the node stay
   * pending while it is unreachable; the others complete.
   * @returns what was finished, and what is still pending with why
   */
  async resume(): Promise<{ finished: string[]; waiting: { kind: string; why: string }[] }> {
    const finished: string[] = [];
    const waiting: { kind: string; why: string }[] = [];
    for (const step of [...this.data.pending]) {
      try {
        await this.runStep(step);
        finished.push(step.kind);
      } catch (e) {
        // The step stays written down; the next command tries again.
        if (!isTallyError(e)) throw e;
        waiting.push({ kind: step.kind, why: e.message });
      }
    }
    return { finished, waiting };
  }

  private async begin(step: PendingStep): Promise<void> {
    this.data.pending.push(step);
    await this.save();
  }

  private async update(step: PendingStep): Promise<void> {
    this.data.pending = this.data.pending.map((s) => (s.id === step.id ? step : s));
    await this.save();
  }

  private async finish(step: PendingStep, event: HistoryEvent): Promise<void> {
    this.data.pending = this.data.pending.filter((s) => s.id !== step.id);
    await this.save();
    await appendHistory(this.paths, event);
  }

  private async runStep(step: PendingStep): Promise<unknown> {
    switch (step.kind) {
      case 'deposit':
        return this.runDeposit(step);
      case 'withdraw':
        return this.runWithdraw(step);
      case 'pay':
        return this.runPay(step);
      case 'collect':
        return this.runCollect(step);
      case 'dotm-issue':
        throw new TallyError('WALLET_UNSUPPORTED', `wallet ${this.name} is an OPS wallet; a DOT-M step cannot run here`, { name: this.name, reason: 'scheme' });
    }
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
    if (this.data.pending.some((s) => s.kind === 'deposit')) {
      await this.resume();
      if (this.data.pending.some((s) => s.kind === 'deposit')) {
        throw new TallyError('SE_REJECTED', 'an earlier deposit is not finished yet (the node is unreachable); try again when it is', { command: 'deposit', reason: 'DEPOSIT_PENDING' });
      }
    }
    const status = await se.call('status', {});
    if (status.balance + amount > status.holdingLimit) {
      throw new TallyError('SE_REJECTED', `the offline balance would be ${this.format(status.balance + amount)}, over the holding limit of ${this.format(status.holdingLimit)}`, { command: 'deposit', reason: 'HOLDING_LIMIT' });
    }
    const step: PendingStep = { kind: 'deposit', id: newId(), amount: amount.toString() };
    await this.begin(step);
    const balance = await this.runDeposit(step);
    return { amount: this.format(amount), offline: this.format(balance) };
  }

  private async runDeposit(step: Extract<PendingStep, { kind: 'deposit' }>): Promise<bigint> {
    const device = this.requireDevice();
    if (step.confirmation === undefined) {
      const answer = await this.node.signed<{ confirmation: string }>(this.user, 'POST', '/v1/ops/deposits', {
        body: { device: device.keyId, amount: this.format(BigInt(step.amount)) },
        idempotencyKey: `deposit-${step.id}`,
      });
      step.confirmation = answer.body.confirmation;
      await this.update(step);
    }
    const confirmation = depositConfirmationCodec.decode(decodeCbor(fromBase64url(step.confirmation)), 'confirmation');
    const se = await this.se();
    const out = await se.call('deposit', { confirmation }, { requestId: fromHex(step.id) });
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
    const step: PendingStep = { kind: 'withdraw', id: newId(), amount: amount.toString() };
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
      step.confirmation = toBase64url(encodeCbor({ amount: out.amount, i: out.i, signature: out.signature }));
      await this.update(step);
    }
    await this.node.signed(this.user, 'POST', '/v1/ops/withdrawals', { body: { device: device.keyId, confirmation: step.confirmation }, idempotencyKey: `withdraw-${step.id}` });
    await this.finish(step, { at: Date.now(), kind: 'withdraw', amount: this.format(BigInt(step.amount)) });
  }

  // ---------------------------------------------------------------- offline payments

  /** The payee's `RequestPayment [x, receiver]` as a token. */
  request(amountText: string, memo?: string): { token: string; request: PaymentRequest } {
    const request: PaymentRequest = { amount: this.parseAmount(amountText), receiver: this.receiverCertificate, ...(memo === undefined ? {} : { memo }) };
    return { token: requestToken(request), request };
  }

  /**
   * Pays a request token (Figure 7, the payer's part): checks the receiver's certificate, then the
   * TA's Pay. The payment is kept in `sent` before it is returned.
   */
  async pay(token: string): Promise<{ token: string; payment: Payment; entry: SentEntry }> {
    const request = readRequestToken(token);
    return this.payRequest(request);
  }

  /** Pays a decoded request. */
  async payRequest(request: PaymentRequest): Promise<{ token: string; payment: Payment; entry: SentEntry }> {
    this.requireDevice();
    this.verifyCertificate(request.receiver);
    const step: PendingStep = { kind: 'pay', id: newId(), amount: request.amount.toString(), receiver: toBase64url(request.receiver), ...(request.memo === undefined ? {} : { memo: request.memo }) };
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
        this.data.pending = this.data.pending.filter((s) => s.id !== step.id);
        await this.save();
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
    await appendHistory(this.paths, { at: entry.at, kind: 'accept', amount: this.format(payment.amount), detail: `from ${sender} (index ${index})` });
    return entry;
  }

  /** Collect: moves every accepted payment into the TA (offline). */
  async collect(): Promise<{ collected: InboxEntry[]; refused: InboxEntry[]; offline: string }> {
    this.requireDevice();
    const collected: InboxEntry[] = [];
    const refused: InboxEntry[] = [];
    for (const entry of this.data.inbox.filter((e) => e.state === 'accepted')) {
      const step: PendingStep = { kind: 'collect', id: newId(), digest: entry.digest };
      await this.begin(step);
      await this.runCollect(step);
      (entry.state === 'collected' ? collected : refused).push(entry);
    }
    const status = await (await this.se()).call('status', {});
    return { collected, refused, offline: this.format(status.balance) };
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
      await this.finish(step, { at: Date.now(), kind: 'collect', amount: this.format(BigInt(entry.amount)), detail: `from ${entry.sender} (index ${entry.index})` });
    } catch (e) {
      if (!isTallyError(e, 'SE_REJECTED')) throw e;
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
      const answer = await this.node.signed<{ results: ({ status: 'credited' } | { status: 'refused'; code: string; message: string })[] }>(this.user, 'POST', '/v1/ops/claims/batch', {
        body: { payments: batch.map((e) => e.payment) },
        idempotencyKey: `claims-${toBase64url(sha256(utf8(batch.map((e) => e.digest).join(','))))}`,
      });
      for (const [i, entry] of batch.entries()) {
        const result = answer.body.results[i];
        if (result?.status === 'credited') {
          entry.state = 'claimed';
          claimed.push(entry);
          await appendHistory(this.paths, { at: Date.now(), kind: 'claim', amount: this.format(BigInt(entry.amount)), detail: `from ${entry.sender} (index ${entry.index})` });
        } else {
          entry.state = 'refused';
          entry.reason = result === undefined ? 'the node gave no result for it' : `${result.message} [${result.code}]`;
          refused.push(entry);
          await appendHistory(this.paths, { at: Date.now(), kind: 'claim-refused', amount: this.format(BigInt(entry.amount)), detail: entry.reason });
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
  async sync(): Promise<{ crlVersion: number; fraud: { device: string; kind: string }[]; paidCleared?: number; collectedCleared?: number }> {
    const device = this.data.device;
    if (device === null) {
      const answer = await this.node.call<{ version: number; list: string }>('GET', '/v1/revocations');
      await this.keepCrl(answer.body.list);
      await appendHistory(this.paths, { at: Date.now(), kind: 'sync', detail: `revocation list v${answer.body.version}` });
      return { crlVersion: answer.body.version, fraud: [] };
    }
    await this.resume();
    const se = await this.se();
    const report = await se.call('report', {});
    const answer = await this.node.signed<{ ack: string; crl: string; crlVersion: number; fraud: { device: string; kind: string }[] }>(this.user, 'POST', '/v1/ops/sync', {
      body: { device: device.keyId, report: toBase64url(encodeCbor({ body: syncReportBodyWire(report.body), signature: report.signature })) },
      idempotencyKey: `sync-${toHex(randomBytes(16))}`,
    });
    const ack = syncAckCodec.decode(decodeCbor(fromBase64url(answer.body.ack)), 'ack');
    const applied = await se.call('syncAck', { ack, crl: fromBase64url(answer.body.crl) });
    await this.keepCrl(answer.body.crl);
    await appendHistory(this.paths, { at: Date.now(), kind: 'sync', detail: `report of ${report.body.paid.length} payments and ${report.body.collected.length} collects; revocation list v${answer.body.crlVersion}` });
    return { crlVersion: answer.body.crlVersion, fraud: answer.body.fraud, paidCleared: applied.paidCleared, collectedCleared: applied.collectedCleared };
  }

  private async keepCrl(encoded: string): Promise<void> {
    const list = decodeRevocationList(fromBase64url(encoded));
    this.revocations.accept(list, this.intermediary.body.subject);
    this.data.crl = encoded;
    await this.save();
  }

  /** Online balance from the node, or null with the reason when it is unreachable. */
  onlineBalance(): Promise<{ balance: string | null; error?: string }> {
    return onlineBalanceOf(this.node, this.user, this.data.user.account);
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
    const server = await listenTcp(options.port, options.host);
    let stream: ByteStream;
    try {
      options.onListening?.(server.port);
      stream = await server.accept({ timeoutMs: options.timeoutMs });
    } finally {
      await server.close();
    }
    // The payer's handshake is bounded like every other wait of the session.
    const { link } = await openSecureLink(stream, { role: 'responder', prologue: OPS_LINK_PROLOGUE, scheme: OPS_LINK_SCHEME, handshakeTimeoutMs: options.timeoutMs, identity: { certificate: fromBase64url(this.data.user.certificate), signer: this.user }, trust: this.peerTrust() });
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
    // One deadline for the connection (retried while nobody listens yet) and the handshake.
    const started = Date.now();
    const stream = await connectTcp(host, port, { timeoutMs: options.timeoutMs, retryRefused: true });
    const handshakeTimeoutMs = Math.max(1, options.timeoutMs - (Date.now() - started));
    const { link, peer } = await openSecureLink(stream, { role: 'initiator', prologue: OPS_LINK_PROLOGUE, scheme: OPS_LINK_SCHEME, handshakeTimeoutMs, identity: { certificate: fromBase64url(this.data.user.certificate), signer: this.user }, trust: this.peerTrust() });
    try {
      const result = await runPayer(link, {
        pay: async (request) => {
          if (expect !== undefined && request.amount !== expect) {
            throw new TallyError('PAYMENT_INVALID', `the payee asks for ${this.format(request.amount)}, not the ${this.format(expect)} expected`, { reason: 'amount' });
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

  private peerTrust() {
    return {
      provider: nodeProvider,
      verify: (certificate: Uint8Array): PublicKey => this.verifyCertificate(certificate, ['user']).subject,
    };
  }

  /** Checks a user or device certificate against the wallet's root, intermediary and revocation list. */
  private verifyCertificate(certificate: Uint8Array, roles: readonly ('user' | 'device')[] = ['user', 'device']) {
    return verifyChain({ provider: nodeProvider, chain: [decodeCertificate(certificate), this.intermediary], trustAnchors: [this.root], now: Date.now(), revocations: this.revocations, leafRoles: roles });
  }

  private requireDevice(): { keyId: string; certificate: string } {
    if (this.data.device === null) {
      throw new TallyError('WALLET_UNSUPPORTED', `wallet ${this.name} has no secure element: it can receive and claim, not deposit, withdraw or pay offline`, { name: this.name, reason: 'no secure element' });
    }
    return this.data.device;
  }

  private save(): Promise<void> {
    return writeData(this.paths, this.data);
  }
}

function startSe(paths: WalletPaths, provision: boolean): Promise<OpsSecureElement> {
  return IsolatedHost.start({ app: opsTrustedApp, location: OPS_TA_LOCATION, dir: paths.se, counter: { kind: 'file', path: paths.counter }, provision }) as Promise<OpsSecureElement>;
}
