/**
 * The OPS wallet: a wallet folder (the shell's) holding the user's key and certificates, the
 * received and sent payments, and, for a wallet with a secure element, an isolated SE process
 * running the OPS trusted app. This file: creating and opening one, and its offline steps (request,
 * pay, accept, collect, and both sides over a link); the online steps are in wallet-online.ts, what
 * they share in wallet-base.ts.
 *
 * Every step that touches the SE or the node is written down before it starts (a journal line in
 * the wallet's store) with the ids that make a retry safe: the SE's request id (a re-run gives back the
 * stored output) and the node's idempotency key (a re-sent call moves money once). Opening a wallet
 * finishes what a crash or a lost connection left unfinished, as far as the node is reachable.
 */
import { equalBytes, fromBase64url, fromHex, toBase64url, toHex } from '../../core/bytes.ts';
import { randomBytes } from '../../core/crypto/hash.ts';
import type { PublicKey } from '../../core/crypto/suite.ts';
import { isTallyError, TallyError } from '../../core/errors.ts';
import { decodeCertificate } from '../../pki/certificate.ts';
import { keyId } from '../../pki/key-id.ts';
import {
  connectLink,
  createWalletFolder,
  holdLegacyAccount,
  holdNewAccount,
  listenLink,
  newAccountKey,
  newStepId,
  nodeProvider,
  openFolderOf,
  processPassphrase,
  startSecureElement,
  type InboxEntry,
  type LinkSide,
  type PassphraseSource,
  type SentEntry,
  type WalletDevice,
} from '../../wallet/plugin.ts';
import { decodePayment, encodePayment, OPS_SCHEME, paymentDigest, type Payment, type PaymentRequest } from './messages.ts';
import { verifyPublication } from '../../pki/publication.ts';
import { interbankPeersAnswer } from './wallet-answers.ts';
import { verifyPayment } from './pay-verify.ts';
import { OPS_LINK_PROLOGUE, OPS_LINK_SCHEME, runPayee, runPayer } from './session.ts';
import { paymentToken, readPaymentToken, readRequestToken, requestToken } from './tokens.ts';
import { checkMeantPayee, plainRequest, REQUEST_NONCE_BYTES, signRequest, verifyRequest, type SignedRequest } from './request.ts';
import { OPS_FORMAT, OPS_TA, CURABLE_REFUSALS, provisionDevice, type CreateOptions, type OpsOpened, type PayeeInfo, type PendingStep } from './wallet-base.ts';
import { OpsWalletOnline } from './wallet-online.ts';
import type { PeerSet } from '../../wallet/plugin.ts';

export { CLAIM_BATCH_MAX, CURABLE_REFUSALS, type BalanceReport, type CreateOptions, type OpsSecureElement, type PayeeInfo, type PendingStep } from './wallet-base.ts';
export type { InboxEntry, SentEntry } from '../../wallet/plugin.ts';

/** An open OPS wallet: call `close()` when done (it stops the SE process and frees the lock). */
export class Wallet extends OpsWalletOnline {
  private constructor(opened: OpsOpened) {
    super(opened);
  }

  /**
   * Creates a wallet: registers a user at the node and, with a secure element, provisions the
   * isolated SE, has the home's OEM attest it, registers the device and runs CertInit.
   * @throws TallyError WALLET_EXISTS, WALLET_UNSUPPORTED (no OEM enrolled at this node),
   *   NODE_UNREACHABLE, NODE_REFUSED
   */
  static async create(options: CreateOptions): Promise<Wallet> {
    await createWalletFolder<never>({ ...options, scheme: 'ops', needsOem: options.secureElement }, async ({ name, node, info, paths, oem, progress, registerUser }) => {
      const account = newAccountKey(randomBytes(32));
      const user = account.signer;
      // Without a secure element the key is sealed under a passphrase, asked before anything is registered.
      let held = oem === null ? await holdNewAccount(account, { passphrase: options.passphrase ?? processPassphrase(), wallet: name }) : null;
      progress('registering the user at the node');
      const registered = await registerUser(user);
      let device: WalletDevice | null = null;
      if (oem !== null) {
        progress('provisioning the isolated secure element');
        const host = await startSecureElement(OPS_TA, paths, true);
        try {
          device = await provisionDevice(host, { node, info, oem, user, owner: registered.keyId, progress });
          // The account key is kept sealed by the secure element host only.
          held = await holdNewAccount(account, { slot: host });
          await host.close();
        } catch (e) {
          await host.kill();
          throw e;
        }
      }
      if (held === null) throw new TallyError('ASSERTION_FAILED', 'the account key was sealed', {});
      const data = {
        name,
        scheme: 'ops',
        node: node.url,
        currency: info.currency,
        createdAt: Date.now(),
        user: { held, keyId: registered.keyId, account: registered.account, certificate: registered.certificate },
        device,
        certificates: info.certificates,
      };
      return { data, detail: device === null ? 'without a secure element' : `secure element ${device.keyId}` };
    });
    return Wallet.open(options.home, options.name, { passphrase: options.passphrase });
  }

  /**
   * Opens a wallet and takes its lock.
   * @throws TallyError WALLET_NOT_FOUND, WALLET_BUSY, STATE_CORRUPT
   */
  static async open(home: string, name: string, options: { passphrase?: PassphraseSource | undefined } = {}): Promise<Wallet> {
    const opened = await openFolderOf(home, name, 'ops', OPS_FORMAT, { account: holdLegacyAccount(OPS_TA.app, options.passphrase) });
    try {
      const wallet = new Wallet(opened);
      if (options.passphrase !== undefined) wallet.passphrase = options.passphrase;
      return wallet;
    } catch (e) {
      opened.book.close();
      await opened.unlock();
      throw e;
    }
  }

  // ---------------------------------------------------------------- recovery

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

  // ---------------------------------------------------------------- offline payments

  /**
   * The payee's `RequestPayment [x, receiver]`, signed with the user key over a fresh nonce and the
   * time (request.ts), as a token; `request` is the plain form a link carries.
   */
  async request(amountText: string, memo?: string): Promise<{ token: string; request: PaymentRequest; signed: SignedRequest }> {
    const signed = signRequest(await this.accountSigner(), {
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
    const verified = verifyRequest({ provider: nodeProvider, request: signed, trustAnchors: [this.root], intermediaries: this.intermediaries(), now: Date.now(), revocations: this.revocations });
    const signer = toHex(verified.payee.subjectKeyId);
    if (meant !== undefined) checkMeantPayee(verified, meant);
    const nonce = toHex(signed.nonce);
    const paid = this.sentByRequest(nonce) ?? this.data.pending.find((s) => s.kind === 'pay' && s.request === nonce);
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
    // A step run again after a crash finds its payment kept already: the first entry stays.
    const kept = this.sentByDigest(entry.digest);
    await this.finish(step, { at: entry.at, kind: 'pay', amount: this.format(payment.amount), detail: `to ${entry.receiver} (index ${entry.index})` }, { sent: kept === undefined ? [entry] : [] });
    return kept ?? entry;
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
      // Its own bank's intermediary and, in two tiers, the other banks' it holds (takePeers).
      intermediaries: this.intermediaries(),
      now: Date.now(),
      revocations: this.revocations,
      currency: this.currency.code,
      receiver: this.receiverCertificate,
    });
    const sender = toHex(verified.sender.subjectKeyId);
    const index = payment.index.toString();
    // The replay check reads the index by (sender, index), archived payments included: its cost does not grow with the log.
    const seen = this.inboxBySender(sender, index);
    if (seen !== undefined) {
      throw new TallyError('PAYMENT_REPLAYED', `payment ${index} of device ${sender} was already received (${seen.state})`, { sender, index });
    }
    const entry: InboxEntry = { digest: toHex(paymentDigest(payment)), sender, index, amount: payment.amount.toString(), payment: toBase64url(encodePayment(payment)), at: Date.now(), state: 'accepted' };
    await this.note({ at: entry.at, kind: 'accept', amount: this.format(payment.amount), detail: `from ${sender} (index ${index})` }, { inbox: [entry] });
    return entry;
  }

  /** Collect: moves every accepted payment into the TA (offline). */
  async collect(): Promise<{ collected: InboxEntry[]; refused: InboxEntry[]; waiting: InboxEntry[]; offline: string }> {
    this.requireDevice();
    const collected: InboxEntry[] = [];
    const refused: InboxEntry[] = [];
    const waiting: InboxEntry[] = [];
    for (const accepted of this.acceptedInbox()) {
      const step: PendingStep = { kind: 'collect', id: newStepId(), digest: accepted.digest };
      await this.begin(step);
      const entry = (await this.runCollect(step)) ?? accepted;
      (entry.state === 'collected' ? collected : entry.state === 'refused' ? refused : waiting).push(entry);
    }
    const status = await (await this.se()).call('status', {});
    return { collected, refused, waiting, offline: this.format(status.balance) };
  }

  /** Runs a collect step; returns the payment as it is after it (undefined when it was gone). */
  private async runCollect(step: Extract<PendingStep, { kind: 'collect' }>): Promise<InboxEntry | undefined> {
    const entry = this.inboxByDigest(step.digest);
    if (entry === undefined || entry.state !== 'accepted') {
      await this.finish(step, null);
      return entry;
    }
    const se = await this.se();
    try {
      await se.call('collect', { payment: decodePayment(fromBase64url(entry.payment)) }, { requestId: fromHex(step.id) });
      const { waiting: _waiting, ...rest } = entry;
      const collected: InboxEntry = { ...rest, state: 'collected' };
      await this.finish(step, { at: Date.now(), kind: 'collect', amount: this.format(BigInt(entry.amount)), detail: `from ${entry.sender} (index ${entry.index})` }, { inbox: [collected] });
      return collected;
    } catch (e) {
      // The TA's refusal, or a stored payment that no longer decodes.
      if (!isTallyError(e, 'SE_REJECTED') && !isTallyError(e, 'DECODE_FAILED') && !isTallyError(e, 'CBOR_MALFORMED')) throw e;
      if (isTallyError(e, 'SE_REJECTED') && CURABLE_REFUSALS.has(e.details.reason)) {
        // Not a bad payment: the TA cannot take it yet. It stays accepted and is tried again after a sync.
        const waiting: InboxEntry = { ...entry, waiting: `${e.message} [${e.details.reason}]` };
        await this.finish(step, { at: Date.now(), kind: 'collect-waiting', amount: this.format(BigInt(entry.amount)), detail: `${waiting.waiting ?? ''}; tried again after the next sync` }, { inbox: [waiting] });
        return waiting;
      }
      const refused: InboxEntry = { ...entry, state: 'refused', reason: e.message };
      await this.finish(step, { at: Date.now(), kind: 'collect-refused', amount: this.format(BigInt(entry.amount)), detail: e.message }, { inbox: [refused] });
      return refused;
    }
  }

  // ---------------------------------------------------------------- other banks

  /**
   * Two tiers: takes the other banks' intermediary certificates, the root's list of revoked
   * intermediaries and each bank's own list of revoked devices (as the wallet's bank serves them),
   * so that this wallet takes in payments from those banks' devices offline. The wallet verifies
   * each under its root and keeps them; with a secure element, its trusted app verifies them again
   * and keeps its own copy (it alone decides what Collect accepts). A forged or foreign certificate,
   * or a list older than the one held, is refused and nothing changes.
   * @throws TallyError CERT_*, CRL_INVALID, CRL_ROLLBACK, SE_REJECTED (the TA's refusal, same reasons)
   */
  async takePeers(offered: PeerSet): Promise<{ peers: number; crls: number; rootCrlVersion?: number }> {
    const set = this.keepPeers(offered);
    if (this.data.device === null) return { peers: set.intermediaries.length, crls: set.crls.length };
    const taken = await (await this.se()).call('peers', { intermediaries: [...set.intermediaries], ...(set.rootCrl === undefined ? {} : { rootCrl: set.rootCrl }), crls: [...set.crls] });
    return { peers: taken.peers, crls: taken.crls, ...(taken.rootCrlVersion === undefined ? {} : { rootCrlVersion: taken.rootCrlVersion }) };
  }

  /**
   * Two tiers: asks the wallet's bank for the other banks (`GET /v1/interbank/peers`): their
   * certificates, OPS's publication of each (its signed list of revoked devices, checked under that
   * bank's certificate; one that does not verify is left out) and the root's list of revoked
   * intermediaries, then takes them as takePeers does. Null at a bank that is no intermediary.
   * @throws TallyError as takePeers; NODE_* when the bank cannot answer
   */
  async refreshPeers(): Promise<{ peers: number; crls: number; rootCrlVersion?: number } | null> {
    let answer;
    try {
      answer = (await this.node.call('GET', '/v1/interbank/peers', { answer: interbankPeersAnswer })).body;
    } catch (e) {
      if (isTallyError(e, 'NODE_REFUSED') && (e.details.code === 'ROLE_MISMATCH' || e.details.status === 404)) return null;
      throw e;
    }
    const intermediaries: Uint8Array[] = [];
    const crls: Uint8Array[] = [];
    for (const peer of answer.peers) {
      const certificate = fromBase64url(peer.certificate);
      intermediaries.push(certificate);
      const record = peer.publications[OPS_SCHEME];
      if (record === undefined) continue;
      try {
        const published = verifyPublication(nodeProvider, fromBase64url(record), decodeCertificate(certificate));
        if (published.scheme === OPS_SCHEME) crls.push(published.body);
      } catch (e) {
        if (!isTallyError(e)) throw e;
      }
    }
    return this.takePeers({ intermediaries, ...(answer.rootList === undefined ? {} : { rootCrl: fromBase64url(answer.rootList) }), crls });
  }

  // ---------------------------------------------------------------- over a link

  /**
   * The payee over TCP + Noise: listens on `port`, takes one payer, sends the request, accepts the
   * payment, answers the receipt. Both sides bind the session to their user certificates.
   * @param onListening called with the real port once listening (port 0 picks one)
   */
  async receive(amountText: string, options: { port: number; host: string; timeoutMs: number; memo?: string; onListening?: (port: number) => void }): Promise<InboxEntry> {
    const { request } = await this.request(amountText, options.memo);
    const { link } = await listenLink(await this.linkSide(), options);
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
    const { link, peer } = await connectLink(await this.linkSide(), host, port, options.timeoutMs);
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
        const sent = this.sentByDigest(digest);
        if (sent !== undefined) this.commit({ sent: [{ ...sent, confirmed: true }] });
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
  private async linkSide(): Promise<LinkSide> {
    return { prologue: OPS_LINK_PROLOGUE, scheme: OPS_LINK_SCHEME, identity: { certificate: fromBase64url(this.data.user.certificate), signer: await this.accountSigner() }, trust: this.peerTrust() };
  }

}
