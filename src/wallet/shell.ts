/**
 * The wallet shell: what every wallet does the same way, whatever its scheme. A scheme's wallet
 * part extends `WalletShell` and adds its own steps; the shell keeps the folder (under its lock),
 * the journal of steps, the history, the certificates and revocation list, the node client, the
 * isolated secure element, recovery of a secure element that refuses to run, and the link runner.
 *
 * The journal: every step that touches the SE or the node is written down (`pending`) before it
 * starts, with one id that is both the SE's request id (a re-run gives back the stored output) and
 * the node's idempotency key (a re-sent call moves money once). `resume` finishes on the next open
 * what a crash or a lost connection cut short. A step's change and its history line are written
 * together (`commit`, one transaction of the store, wallet.db): a crash cannot keep one without the
 * other. The folder: create.ts; opening it: folder.ts; the link runner: link.ts; recovery: recovery.ts.
 */
import { equalBytes, fromBase64url, toBase64url, toHex } from '../core/bytes.ts';
import { Amount, currency as makeCurrency, type Currency } from '../core/amount.ts';
import { randomBytes } from '../core/crypto/hash.ts';
import type { PublicKey, Signer, SuiteName } from '../core/crypto/suite.ts';
import { isTallyError, TallyError } from '../core/errors.ts';
import { decodeCertificate, type Certificate } from '../pki/certificate.ts';
import { verifyChain } from '../pki/chain.ts';
import { keyId } from '../pki/key-id.ts';
import { decodeRevocationList, RevocationStore } from '../pki/revocation.ts';
import type { CommandTable, TrustedApp } from '../secure-element/trusted-app.ts';
import { nodeProvider } from '../providers/node-crypto.ts';
import { IsolatedHost } from '../secure-element/host-isolated.ts';
import type { Codec } from '../core/codec.ts';
import { holdNewAccount, keySlotAt, openWalletAccount, processPassphrase, type OpenAccount } from './account.ts';
import type { KeySlot, PassphraseSource } from './account-key.ts';
import type { Changes, WalletBook } from './book.ts';
import type { Oem } from './factory.ts';
import type { OpenedWallet } from './folder.ts';
import type { WalletPaths } from './home.ts';
import type { LinkSide } from './link.ts';
import { NodeClient, type NodeInfo } from './node-client.ts';
import { decodePeerSet, encodePeerSet, verifyPeerSet, type PeerSet } from './peers.ts';
import { recoveryDone, replaceSecureElement } from './recovery.ts';
import { readSeReport, writeSeReport } from './se-report.ts';
import { formatMinor, isNodeRefusal, onlineBalanceOf, parsePositive, type HistoryRead } from './wallet-common.ts';
import type { HistoryEvent, InboxEntry, JournalStep, SentEntry, WalletAccount, WalletData, WalletState } from './wallet-data.ts';

/** Where a scheme's trusted app is, so that the isolated SE process can load it. */
export interface TrustedAppSpec<S, C extends CommandTable<S>> {
  readonly app: TrustedApp<S, C>;
  /** The module (file URL) and export name the SE process imports. */
  readonly location: { readonly module: string; readonly export: string };
}

/** What `resume` did. */
export interface ResumeReport {
  finished: string[];
  waiting: { kind: string; why: string }[];
  /** Steps a refusal ended: they will not be tried again (see the history). */
  ended: { kind: string; why: string; code: string }[];
}

/** The code of a refusal: the node's own code, or the SE's reason, or the error's code. */
export function refusalCode(e: TallyError): string {
  if (isTallyError(e, 'NODE_REFUSED')) return e.details.code;
  if (isTallyError(e, 'SE_REJECTED')) return e.details.reason;
  return e.code;
}

/** A fresh step id (16 random bytes, hex): the SE request id and the node idempotency key of one step. */
export function newStepId(): string {
  return toHex(randomBytes(16));
}

/** Starts an isolated SE process running `spec` on the folder's sealed state. */
export function startSecureElement<S, C extends CommandTable<S>>(spec: TrustedAppSpec<S, C>, paths: WalletPaths, provision: boolean, suite?: SuiteName): Promise<IsolatedHost<S, C>> {
  return IsolatedHost.start({ app: spec.app, location: spec.location, dir: paths.se, counter: { kind: 'file', path: paths.counter }, provision, ...(suite === undefined ? {} : { suite }) });
}

/**
 * An open wallet of one scheme: `Step` is the scheme's journal step, `Slot` what it keeps in
 * wallet.json besides the shell's fields. Call `close()` when done (it stops the SE process and
 * frees the lock).
 */
export abstract class WalletShell<Step extends JournalStep, Slot, S, C extends CommandTable<S>> {
  readonly currency: Currency;
  readonly node: NodeClient;
  readonly paths: WalletPaths;
  protected seHost: IsolatedHost<S, C> | null = null;
  /** Where the wallet passphrase comes from (a wallet without a secure element needs it to sign). */
  protected passphrase: PassphraseSource = processPassphrase();
  private opened: OpenAccount | null = null;
  private seStarting: Promise<IsolatedHost<S, C>> | null = null;
  private readonly keySlotHosts: { close(): Promise<void> }[] = [];
  protected readonly revocations = new RevocationStore({ provider: nodeProvider });
  protected readonly root: Certificate;
  protected readonly intermediary: Certificate;
  /** Two tiers: the other intermediaries this wallet holds, each verified under its root (see keepPeers). */
  protected peers: readonly Certificate[] = [];
  private peerSet: PeerSet | null = null;
  private readonly book: WalletBook<Step, Slot>;
  private readonly unlockFolder: () => Promise<void>;

  protected constructor(opened: OpenedWallet<Step, Slot>) {
    this.paths = opened.paths;
    this.book = opened.book;
    this.unlockFolder = opened.unlock;
    const data = this.book.state;
    this.currency = makeCurrency(data.currency.code, data.currency.decimals);
    this.node = new NodeClient(data.node);
    this.root = decodeCertificate(fromBase64url(data.certificates.root));
    this.intermediary = decodeCertificate(fromBase64url(data.certificates.intermediary));
    if (data.crl !== null) this.revocations.accept(decodeRevocationList(fromBase64url(data.crl)), this.intermediary.body.subject);
    const peers = this.book.peers();
    if (peers !== null) {
      // Verified again at every open; a set that no longer verifies is left out (the wallet then trusts less, never more).
      try {
        const verified = this.verifyPeers(decodePeerSet(fromBase64url(peers)), null, this.revocations);
        this.peers = verified.certificates;
        this.peerSet = verified.set;
      } catch (e) {
        if (!isTallyError(e)) throw e;
      }
    }
  }

  private verifyPeers(offered: PeerSet, held: PeerSet | null, revocations: RevocationStore) {
    return verifyPeerSet({ provider: nodeProvider, root: this.root, own: this.intermediary, currency: this.currency.code, now: Date.now(), revocations, held, offered });
  }

  /**
   * Two tiers: takes other intermediaries' certificates and lists (from the wallet's bank), each
   * verified under the wallet's root; a list older than the one held is refused and nothing changes.
   * Answers the whole set now held.
   * @throws TallyError CERT_*, CRL_INVALID, CRL_ROLLBACK, TOO_LARGE
   */
  protected keepPeers(offered: PeerSet, changes: Changes<Step, Slot> = {}): PeerSet {
    // Checked whole on a scratch store first, so that a refusal leaves the wallet's lists as they were.
    this.verifyPeers(offered, this.peerSet, new RevocationStore({ provider: nodeProvider }));
    const verified = this.verifyPeers(offered, this.peerSet, this.revocations);
    this.commit({ ...changes, peers: toBase64url(encodePeerSet(verified.set)) });
    this.peers = verified.certificates;
    this.peerSet = verified.set;
    return verified.set;
  }

  /** The intermediaries a payer's or payee's certificate may chain through: this wallet's bank's, then the other banks' it holds. */
  protected intermediaries(): Certificate[] {
    return [this.intermediary, ...this.peers];
  }

  /** What the wallet holds in memory (header, account, device, slot, revocation list, unfinished steps, retired SEs); change it through `commit`. */
  protected get data(): Readonly<WalletState<Step, Slot>> {
    return this.book.state;
  }

  /** The scheme's trusted app, and the suite its keys are made in (the deployment's). */
  protected abstract secureElementSpec(): { spec: TrustedAppSpec<S, C>; suite?: SuiteName | undefined };

  /** Runs one journal step (from `resume`). */
  protected abstract runStep(step: Step): Promise<unknown>;

  /** Whether this wallet's SE process has been started and still runs. */
  get secureElementRunning(): boolean {
    return this.seHost !== null && this.seHost.alive;
  }

  /** The wallet's name. */
  get name(): string {
    return this.data.name;
  }

  /** A copy of the wallet's data in the layout of wallet.json, with the entries not yet archived (for reports and tests). */
  snapshot(): WalletData<Step, Slot> {
    return this.book.snapshot();
  }

  /** Records what the SE reports of itself (when it ran), stops the SE process, closes the store and frees the lock. */
  async close(): Promise<void> {
    try {
      for (const host of this.keySlotHosts.splice(0)) await host.close();
      const report = this.seHost !== null && this.seHost.alive ? await this.reportOfSecureElement(this.seHost).catch(() => undefined) : undefined;
      if (this.seHost !== null) await this.seHost.close();
      if (report !== undefined) await writeSeReport(this.book, this.paths, report);
    } finally {
      this.seHost = null;
      try {
        this.book.close();
      } finally {
        await this.unlockFolder();
      }
    }
  }

  /**
   * The running SE (started on first use; callers at the same time share one start, so that two
   * processes never open one SE). @throws TallyError ROLLBACK_DETECTED worded with the way out
   */
  protected async startedSe(): Promise<IsolatedHost<S, C>> {
    if (this.seHost !== null && this.seHost.alive) return this.seHost;
    this.seStarting ??= this.startSe().finally(() => {
      this.seStarting = null;
    });
    return this.seStarting;
  }

  private async startSe(): Promise<IsolatedHost<S, C>> {
    const { spec, suite } = this.secureElementSpec();
    // From here on the SE may change: what it last reported is no longer known to hold.
    if (this.book.seReport() !== null) this.book.recordSeReport(null);
    try {
      this.seHost = await startSecureElement(spec, this.paths, false, suite);
      return this.seHost;
    } catch (e) {
      if (!isTallyError(e, 'ROLLBACK_DETECTED')) throw e;
      throw new TallyError(
        'ROLLBACK_DETECTED',
        `${e.message}. If an old copy of this wallet's secure element was restored by accident, \`tally wallet recover ${this.name}\` retires it and starts a new one (see docs/wallet.md)`,
        e.details,
        { cause: e },
      );
    }
  }

  /**
   * What the scheme's SE says of itself for `tally wallet balance` (its balance and limits, JSON),
   * asked when a session that ran the SE ends; undefined (the default): nothing is recorded.
   */
  protected reportOfSecureElement(_host: IsolatedHost<S, C>): Promise<unknown> {
    return Promise.resolve(undefined);
  }

  /** What the SE reported of itself when the last session that ran it ended, if that still holds (see se-report.ts). */
  protected recordedReport<T>(codec: Codec<T>): Promise<{ at: number; report: T } | null> {
    return readSeReport(this.book, this.paths, codec);
  }

  /**
   * The account key, opened on first use: from the key slot of the wallet's secure element (a
   * process serving only the key slot when the app refuses to run), or under the wallet passphrase.
   * @throws TallyError STATE_CORRUPT, PASSWORD_MISSING, PASSWORD_WRONG, SE_*
   */
  protected async openAccount(): Promise<OpenAccount> {
    if (this.opened === null) {
      const { spec } = this.secureElementSpec();
      this.opened = await openWalletAccount(this.name, this.data.user, {
        app: spec.app,
        paths: this.paths,
        passphrase: this.passphrase,
        slot: async () => {
          try {
            return await this.startedSe();
          } catch (e) {
            if (!isTallyError(e, 'ROLLBACK_DETECTED') && !isTallyError(e, 'STATE_CORRUPT')) throw e;
            const host = await keySlotAt(spec.app, this.paths.se, this.paths.counter);
            this.keySlotHosts.push(host);
            return host;
          }
        },
      });
    }
    return this.opened;
  }

  /** The signer of the account key (see openAccount). */
  protected async accountSigner(): Promise<Signer> {
    return (await this.openAccount()).signer;
  }

  /**
   * The account record with the key sealed again in `slot` (a new secure element's key slot), for a
   * recovery; the record is written with the new device, in the same commit.
   */
  protected async accountHeldBy(slot: KeySlot): Promise<WalletAccount> {
    const { secret } = await this.openAccount();
    if (secret === null) return this.data.user;
    const { secret: _clear, ...user } = this.data.user;
    return { ...user, held: await holdNewAccount({ secret }, { slot }) };
  }

  /** Formats minor units. */
  format(minor: bigint): string {
    return formatMinor(this.currency, minor);
  }

  /** Formats minor units with the currency, as messages show them: "12.50 EUR". */
  protected shown(minor: bigint): string {
    return `${this.format(minor)} ${this.currency.code}`;
  }

  /** Parses a decimal amount of the wallet's currency into minor units (> 0). @throws TallyError AMOUNT_INVALID */
  parseAmount(text: string): bigint {
    return parsePositive(this.currency, text);
  }

  /** Minor units of an amount the node credited (a decimal string of its answer). @throws TallyError AMOUNT_INVALID */
  parseCredited(text: string): bigint {
    return Amount.parse(text, this.currency).minor;
  }

  /** The history (its last lines, up to the store's bound), oldest first, and the lines that could not be read. */
  async history(): Promise<HistoryRead> {
    return this.book.history();
  }

  /** Writes what a step changed, and its history lines, in one transaction (see Changes). */
  protected commit(changes: Changes<Step, Slot>): void {
    this.book.commit(changes);
  }

  /** Writes history lines (with what else changed, in the same transaction). */
  protected async note(event: HistoryEvent, changes: Changes<Step, Slot> = {}): Promise<void> {
    this.commit({ ...changes, history: [...(changes.history ?? []), event] });
  }

  /** Writes a step down before it starts. */
  protected async begin(step: Step): Promise<void> {
    this.commit({ put: [step] });
  }

  /** Writes what a step has reached (e.g. the node's answer). */
  protected async update(step: Step, changes: Changes<Step, Slot> = {}): Promise<void> {
    this.commit({ ...changes, put: [...(changes.put ?? []), step] });
  }

  /** Drops a finished or refused step, with what it changed and its history line, in one transaction. */
  protected async finish(step: Step, event: HistoryEvent | null, changes: Changes<Step, Slot> = {}): Promise<void> {
    this.commit({ ...changes, drop: [...(changes.drop ?? []), step.id], history: [...(changes.history ?? []), ...(event === null ? [] : [event])] });
  }

  /** The received payment from `sender` with counter `index`, archived or not (the replay check). */
  protected inboxBySender(sender: string, index: string): InboxEntry | undefined {
    return this.book.inboxBySender(sender, index);
  }

  /** The received payment with this digest, archived or not. */
  protected inboxByDigest(digest: string): InboxEntry | undefined {
    return this.book.inboxByDigest(digest);
  }

  /** Received payments not yet collected, claimed or refused, oldest first. */
  protected acceptedInbox(): InboxEntry[] {
    return this.book.acceptedInbox();
  }

  /** The sent payment with this digest, archived or not. */
  protected sentByDigest(digest: string): SentEntry | undefined {
    return this.book.sentByDigest(digest);
  }

  /** The sent payment that paid request `nonce` (hex), archived or not. */
  protected sentByRequest(nonce: string): SentEntry | undefined {
    return this.book.sentByRequest(nonce);
  }

  /**
   * Marks sent payments the node reported as settled, with the history line saying so, then moves
   * what is settled (those, and received payments collected, claimed, refused or retired) out of the
   * lists a step reads: archived, they still answer the replay and paid-request checks.
   */
  protected settle(digests: readonly string[], changes: Changes<Step, Slot> = {}): { inbox: number; sent: number } {
    this.commit({ ...changes, settled: digests });
    return this.book.prune();
  }

  /**
   * Finishes the steps a crash or a lost connection cut short. Steps that need the node stay
   * pending while it is unreachable (or answers 5xx); a step the node or the SE refused is ended,
   * written to the history as refused, and reported in `ended`.
   */
  protected async resumeSteps(): Promise<ResumeReport> {
    const finished: string[] = [];
    const waiting: { kind: string; why: string }[] = [];
    const ended: { kind: string; why: string; code: string }[] = [];
    for (const step of [...this.data.pending]) {
      try {
        await this.runStep(step);
        finished.push(step.kind);
      } catch (e) {
        if (!isTallyError(e)) throw e;
        // A refusal ended the step (it is no longer written down); anything else keeps it for the next command.
        if (this.data.pending.some((s) => s.id === step.id)) waiting.push({ kind: step.kind, why: e.message });
        else ended.push({ kind: step.kind, why: e.message, code: refusalCode(e) });
      }
    }
    return { finished, waiting, ended };
  }

  /** Takes a newer revocation list (base64url of its encoding) and keeps it, with what else changed. */
  protected async keepCrl(encoded: string, changes: Changes<Step, Slot> = {}): Promise<void> {
    const list = decodeRevocationList(fromBase64url(encoded));
    this.revocations.accept(list, this.intermediary.body.subject);
    this.commit({ ...changes, crl: encoded });
  }

  /** Checks a user or device certificate against the wallet's root, the intermediary that issued it (its own bank's or another it holds) and the revocation lists. */
  protected verifyCertificate(certificate: Uint8Array, roles: readonly ('user' | 'device')[] = ['user', 'device']) {
    const leaf = decodeCertificate(certificate);
    const issuer = this.peers.find((p) => equalBytes(keyId(p.body.subject), leaf.body.issuer)) ?? this.intermediary;
    return verifyChain({ provider: nodeProvider, chain: [leaf, issuer], trustAnchors: [this.root], now: Date.now(), revocations: this.revocations, leafRoles: roles });
  }

  /** The trust a link puts in its peer: a user certificate of this wallet's central bank, unrevoked. */
  protected peerTrust(): LinkSide['trust'] {
    return { provider: nodeProvider, verify: (certificate: Uint8Array): PublicKey => this.verifyCertificate(certificate, ['user']).subject };
  }

  /**
   * The account's online balance, or null with the reason when the node is unreachable; the signer
   * is asked for only once the node answers a connection (opening the account key may start the SE).
   */
  protected onlineBalanceWith(user: () => Promise<Signer>): Promise<{ balance: string | null; error?: string }> {
    return onlineBalanceOf(this.node, user, this.data.user.account);
  }

  /**
   * Retires a secure element that refuses to run and provisions a new one (see recovery.ts); the
   * scheme then writes the new device and the retired one through `commit`.
   * @throws TallyError WALLET_UNSUPPORTED when the SE runs (nothing to recover) or no OEM is enrolled
   */
  protected replaceSecureElement<Fresh>(
    old: string,
    staged: Codec<Fresh>,
    provision: (context: { paths: WalletPaths; oem: Oem; info: NodeInfo }) => Promise<Fresh>,
    hooks: { beforeProvision?: () => Promise<void>; beforeMove?: () => Promise<void> } = {},
  ): Promise<{ fresh: Fresh; folder: string }> {
    const context = {
      name: this.name,
      paths: this.paths,
      node: this.node,
      probe: () => this.probeSecureElement(),
      stop: async () => {
        if (this.seHost !== null) await this.seHost.kill();
        this.seHost = null;
      },
    };
    return replaceSecureElement(context, old, staged, provision, hooks);
  }

  /** Removes the staging folder of a finished recovery. */
  protected async recoveryDone(): Promise<void> {
    await recoveryDone(this.paths);
  }

  /** Runs a read-only SE command to see whether the SE runs (for recovery). */
  protected abstract probeSecureElement(): Promise<void>;
}

export { isNodeRefusal };
