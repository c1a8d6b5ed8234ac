/**
 * A DOT-M wallet (this file: creating and opening one, the reboot recovery, the nine steps over a
 * link; the online steps are in wallet-online.ts, what they share in wallet-base.ts): the shell's
 * wallet folder with an isolated secure element
 * running the DOT-M trusted app, which holds usk, wsk, pwd and the currency blocks (§3.1, §3.2).
 * The wallet's store keeps the account key that signs the wallet's calls to the node and binds its links,
 * sealed under pwd (scrypt + XChaCha20-Poly1305, the node's key file format), the certificates,
 * and the node steps in flight. `unlockAccount` has the SE check pwd (a try counted, the lockout
 * kept) and only then opens the key; a wallet.json written with the key in the clear by an earlier
 * version is sealed under the password as it moves into the store (`open` with the password).
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
import { equalBytes, fromBase64url, toBase64url, toHex } from '../../core/bytes.ts';
import { randomBytes } from '../../core/crypto/hash.ts';
import { signerFromSecret, type PublicKey } from '../../core/crypto/suite.ts';
import { isTallyError, TallyError } from '../../core/errors.ts';
import { decodeCertificate, type Certificate } from '../../pki/certificate.ts';
import { verifyChain } from '../../pki/chain.ts';
import { keyId } from '../../pki/key-id.ts';
import {
  connectLink,
  createWalletFolder,
  listenLink,
  openFolderOf,
  sealKey,
  nodeProvider,
  startSecureElement,
  type LinkSide,
  type ResumeReport,
} from '../../wallet/plugin.ts';
import { DOTM_LINK_PROLOGUE, DOTM_LINK_SCHEME, failureCode, runPayee, runPayer } from './session.ts';
import { checkPasswordPolicy } from './trusted-app.ts';
import { DOTM_FORMAT, DOTM_TA, provisionDotm, sealLegacyAccount, wrongPassword, type CreateDotmOptions, type DotmOpened, type DotmSlot, type DotmTransfer, type IssueStep } from './wallet-base.ts';
import { DotmWalletOnline } from './wallet-online.ts';

export { ISSUE_BLOCKS_MAX, type BlockLine, type CreateDotmOptions, type DotmBalance, type DotmSecureElement, type DotmSlot, type DotmTransfer, type DotmWithdrawal, type IssueStep } from './wallet-base.ts';

/** An open DOT-M wallet: call `close()` when done. */
export class DotmWallet extends DotmWalletOnline {
  private constructor(opened: DotmOpened) {
    super(opened);
  }

  protected async runStep(step: IssueStep): Promise<unknown> {
    if (!this.unlocked) throw new TallyError('PASSWORD_MISSING', 'it needs the node, and the account key is sealed: run a command that asks for the payment password', {});
    return this.runIssue(step);
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
    const account = signerFromSecret(nodeProvider.suites.ed25519, secret);
    const name = options.name;
    await createWalletFolder<DotmSlot>({ ...options, scheme: 'dotm', needsOem: true }, async ({ node, info, paths, oem, progress, registerUser }) => {
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
      const sealed = toBase64url(await sealKey({ suite: nodeProvider.suites.ed25519, secretKey: secret }, options.password));
      const data = {
        name,
        scheme: 'dotm',
        node: node.url,
        currency: info.currency,
        createdAt: Date.now(),
        user: { sealed, keyId: registered.keyId, account: registered.account, certificate: registered.certificate },
        device: { keyId: answer.wallet, certificate: answer.wcert },
        slot: { user: answer.user, ucert: answer.ucert, wallet: answer.wallet, wcert: answer.wcert, suite },
        certificates: info.certificates,
      };
      return { data, detail: `DOT-M wallet ${answer.wallet}, user ${answer.user}` };
    });
    const wallet = await DotmWallet.open(options.home, name);
    // Made here under this password a moment ago: open without asking the SE again.
    wallet.account = account;
    return wallet;
  }

  /**
   * Opens a DOT-M wallet and takes its lock. `password` seals the account key of a wallet.json an
   * earlier version wrote with the key in the clear, as it moves into the store (it is not needed otherwise).
   * @throws TallyError WALLET_NOT_FOUND, WALLET_BUSY, WALLET_UNSUPPORTED (not a DOT-M wallet), STATE_CORRUPT;
   *   for such an old wallet PASSWORD_MISSING, SE_REJECTED (WRONG_PASSWORD, PASSWORD_LOCKED)
   */
  static async open(home: string, name: string, options: { password?: string | undefined } = {}): Promise<DotmWallet> {
    const opened = await openFolderOf(home, name, 'dotm', DOTM_FORMAT, { account: sealLegacyAccount(options.password) });
    try {
      return new DotmWallet(opened);
    } catch (e) {
      opened.book.close();
      await opened.unlock();
      throw e;
    }
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

  // ---------------------------------------------------------------- over a link

  /**
   * The payee R over TCP + Noise: listens, takes one payer, runs steps 1, 4–6 and 9.
   * @throws TallyError before step 5 (nothing received): the link's errors, PEER_REFUSED, the SE's refusal
   */
  async receive(amountText: string, options: { port: number; host: string; timeoutMs: number; onListening?: (port: number) => void }): Promise<DotmTransfer> {
    const v = this.parseAmount(amountText);
    await this.loadPeers();
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
    await this.loadPeers();
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

  /** Other banks' intermediary certificates, as the SE holds them (several operators, docs/dotm.md). */
  private sePeers: Certificate[] = [];

  private async loadPeers(): Promise<void> {
    this.sePeers = (await (await this.se()).call('status', {})).peers.map((c) => decodeCertificate(c));
  }

  /**
   * A user or device certificate of this wallet's bank, or of another bank whose intermediary
   * certificate the SE holds (verified under the root when the SE took it, and again here).
   */
  protected override verifyCertificate(certificate: Uint8Array, roles: readonly ('user' | 'device')[] = ['user', 'device']) {
    const leaf = decodeCertificate(certificate);
    const other = this.sePeers.find((p) => equalBytes(keyId(p.body.subject), leaf.body.issuer));
    if (other === undefined) return super.verifyCertificate(certificate, roles);
    return verifyChain({ provider: nodeProvider, chain: [leaf, other], trustAnchors: [this.root], now: Date.now(), leafRoles: roles });
  }

  /** This wallet's side of a DOT-M link: bound to the account's user certificate. */
  private linkSide(): LinkSide {
    return { prologue: DOTM_LINK_PROLOGUE, scheme: DOTM_LINK_SCHEME, identity: { certificate: fromBase64url(this.data.user.certificate), signer: this.user }, trust: this.peerTrust() };
  }
}
