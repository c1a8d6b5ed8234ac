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
import { readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { equalBytes, fromBase64url, fromHex, toBase64url, toHex } from '../core/bytes.ts';
import { currency as makeCurrency, type Currency } from '../core/amount.ts';
import { decodeCbor, encodeCbor } from '../core/cbor.ts';
import { randomBytes } from '../core/crypto/hash.ts';
import { nobleEd25519 } from '../core/crypto/noble.ts';
import { signerFromSecret, type PublicKey, type Signer, type SuiteName } from '../core/crypto/suite.ts';
import { isTallyError, TallyError } from '../core/errors.ts';
import { openKey, sealKey } from '../issuer/identity/keystore.ts';
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
import { decodeBlock } from '../schemes/dotm/messages.ts';
import { eventAckCodec, walletEventWire, type WalletEvent } from '../schemes/dotm/online.ts';
import { DOTM_LINK_PROLOGUE, DOTM_LINK_SCHEME, failureCode, runPayee, runPayer } from '../schemes/dotm/session.ts';
import { dotmTrustedApp } from '../schemes/dotm/trusted-app.ts';
import { loadOem, measureDotmTrustedApp, SOFTWARE_SE_MODEL } from './factory.ts';
import { checkWalletName, walletDir, walletPaths, type WalletPaths } from './home.ts';
import { NodeClient, type NodeInfo } from './node-client.ts';
import { decodeJsonFile, stagedDotmCodec } from './files.ts';
import { dotmEventsAnswer, dotmIssueAnswer, dotmWalletAnswer, userAnswer, type DotmEventsAnswer } from './node-answers.ts';
import { formatMinor, isNodeRefusal, onlineBalanceOf, openWalletFolder, parsePositive, readHistory, readWalletData, type HistoryRead } from './wallet-common.ts';
import { appendHistory, writeData, type HistoryEvent, type PendingStep, type WalletData } from './wallet-data.ts';

/** Most events in one upload, and the most base64url characters of events in one request body. */
const UPLOAD_EVENTS_MAX = 16;
const UPLOAD_CHARS_MAX = 48 * 1024;
/** Most blocks one deposit asks for. */
export const ISSUE_BLOCKS_MAX = 20;

const DOTM_TA_LOCATION = { module: new URL('../schemes/dotm/trusted-app.ts', import.meta.url).href, export: 'dotmTrustedApp' };

type DotmCommands = typeof dotmTrustedApp.commands;
/** The wallet's DOT-M secure element. */
export type DotmSecureElement = IsolatedHost<unknown, DotmCommands>;

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

function newId(): string {
  return toHex(randomBytes(16));
}

/** Starts the SE; its keys (usk, wsk) are of the deployment's suite, the suite of the node's root key. */
function startSe(paths: WalletPaths, provision: boolean, suite: SuiteName): Promise<DotmSecureElement> {
  return IsolatedHost.start({ app: dotmTrustedApp, location: DOTM_TA_LOCATION, dir: paths.se, counter: { kind: 'file', path: paths.counter }, provision, suite }) as Promise<DotmSecureElement>;
}

/** Runs init on a fresh DOT-M SE, has the OEM attest wpk, has the node certify usk and wsk for the account, sets pwd. */
async function provisionDotm(
  host: DotmSecureElement,
  options: { node: NodeClient; info: NodeInfo; oem: NonNullable<Awaited<ReturnType<typeof loadOem>>>; account: Signer; owner: string; password: string; progress?: ((line: string) => void) | undefined },
): Promise<{ wallet: string; user: string; ucert: string; wcert: string }> {
  const { node, info, oem } = options;
  const init = await host.call('init', {
    root: fromBase64url(info.certificates.root),
    intermediary: fromBase64url(info.certificates.intermediary),
    issuerNode: fromBase64url(info.certificates.issuerNode),
    account: fromHex(options.owner),
  });
  const attestation = attestDevice(oem.signer, { sePublicKey: init.walletKey, model: SOFTWARE_SE_MODEL, taMeasurement: await measureDotmTrustedApp() });
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
export class DotmWallet {
  readonly currency: Currency;
  readonly node: NodeClient;
  /** The account key, once unlockAccount opened it. */
  private account: Signer | null = null;
  private seHost: DotmSecureElement | null = null;
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
    this.root = decodeCertificate(fromBase64url(data.certificates.root));
    this.intermediary = decodeCertificate(fromBase64url(data.certificates.intermediary));
    if (data.crl !== null) this.revocations.accept(decodeRevocationList(fromBase64url(data.crl)), this.intermediary.body.subject);
  }

  get name(): string {
    return this.data.name;
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
      await appendHistory(this.paths, { at: Date.now(), kind: 'account-sealed', detail: 'the account key, kept in the clear by an earlier version, is now sealed under the payment password' });
    }
    this.account = signer;
  }

  private get keys(): NonNullable<WalletData['dotm']> {
    const keys = this.data.dotm;
    if (keys === undefined) throw new TallyError('STATE_CORRUPT', `wallet ${this.name} has no DOT-M keys`, { reason: 'dotm' });
    return keys;
  }

  /** A copy of the wallet's data. */
  snapshot(): WalletData {
    return structuredClone(this.data);
  }

  /**
   * Registers a DOT-M wallet (§3.3.1): an account at the node, usk and wsk made in the isolated SE,
   * wpk attested by the home's OEM, ucert and wcert from the node, then pwd.
   * @throws TallyError WALLET_EXISTS, WALLET_UNSUPPORTED (no OEM enrolled), NODE_*, SE_*
   */
  static async create(options: CreateDotmOptions): Promise<DotmWallet> {
    const name = checkWalletName(options.name);
    const final = walletDir(options.home, name);
    if ((await readFile(join(final, 'wallet.json')).catch(() => null)) !== null) {
      throw new TallyError('WALLET_EXISTS', `a wallet named ${name} already exists in ${dirname(dirname(final))}`, { name });
    }
    const node = new NodeClient(options.node);
    const info = await node.info();
    const oem = await loadOem(options.home);
    if (oem === null || !oem.isEnrolledAt(node.url)) {
      throw new TallyError('WALLET_UNSUPPORTED', `no OEM for software secure elements is enrolled at ${node.url} from ${options.home}: run \`tally operator oem\` first`, { name, reason: 'no OEM enrolled' });
    }
    await ensurePrivateDir(join(options.home, 'wallets'));
    const staging = join(options.home, 'wallets', `.${name}.creating-${toHex(randomBytes(4))}`);
    await ensurePrivateDir(staging);
    const paths = walletPaths(staging);
    let host: DotmSecureElement | null = null;
    const secret = randomBytes(32);
    const account = signerFromSecret(nobleEd25519, secret);
    try {
      options.progress?.('registering the account at the node');
      const registered = await node.signed(account, 'POST', '/v1/users', { answer: userAnswer,
        body: { publicKey: { suite: account.publicKey.suite, key: toBase64url(account.publicKey.key) } },
        idempotencyKey: `register-${toHex(keyId(account.publicKey))}`,
      });
      const suite = decodeCertificate(fromBase64url(info.certificates.root)).body.subject.suite;
      options.progress?.(`making usk and wsk (${suite}) in the isolated secure element`);
      host = await startSe(paths, true, suite);
      const answer = await provisionDotm(host, { node, info, oem, account, owner: registered.body.keyId, password: options.password, progress: options.progress });
      await host.close();
      host = null;
      // The account key is kept only sealed under pwd: whoever holds the files cannot use it.
      const sealed = toBase64url(await sealKey({ suite: nobleEd25519, secretKey: secret }, options.password));
      const data: WalletData = {
        format: 1,
        name,
        scheme: 'dotm',
        node: node.url,
        currency: info.currency,
        createdAt: Date.now(),
        user: { sealed, keyId: registered.body.keyId, account: registered.body.account, certificate: registered.body.certificate },
        device: { keyId: answer.wallet, certificate: answer.wcert },
        dotm: { user: answer.user, ucert: answer.ucert, wallet: answer.wallet, wcert: answer.wcert, suite },
        certificates: info.certificates,
        crl: null,
        inbox: [],
        sent: [],
        pending: [],
      };
      await writeData(paths, data);
      await appendHistory(paths, { at: Date.now(), kind: 'created', detail: `DOT-M wallet ${answer.wallet}, user ${answer.user}` });
      await rename(staging, final);
    } catch (e) {
      if (host !== null) await host.kill();
      await rm(staging, { recursive: true, force: true });
      throw e;
    }
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
    const { paths, data, unlock } = await openWalletFolder(home, name, 'dotm');
    try {
      return new DotmWallet(paths, data, unlock);
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

  /** The running SE (started on first use). */
  async se(): Promise<DotmSecureElement> {
    if (this.seHost === null || !this.seHost.alive) {
      try {
        this.seHost = await startSe(this.paths, false, this.keys.suite ?? 'ed25519');
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
    return this.seHost;
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
    const staging = walletPaths(join(this.paths.dir, 'recovering'));
    const staged = join(staging.dir, 'device.json');
    let fresh: { wallet: string; user: string; ucert: string; wcert: string } | null = await readFile(staged, 'utf8').then((t) => decodeJsonFile(staged, 'staged device file', stagedDotmCodec, t), () => null);
    if (fresh === null) {
      try {
        await (await this.se()).call('status', {});
        throw new TallyError('WALLET_UNSUPPORTED', `the secure element of wallet ${this.name} runs; there is nothing to recover`, { name: this.name, reason: 'secure element runs' });
      } catch (e) {
        if (!isTallyError(e, 'ROLLBACK_DETECTED') && !isTallyError(e, 'STATE_CORRUPT')) throw e;
      }
      if (this.seHost !== null) await this.seHost.kill();
      this.seHost = null;
      // The broken SE cannot check pwd: the account key file opens under it or the recovery stops here.
      if (this.account === null) await this.openAccountKey(password);
      const info = await this.node.info();
      const oem = await loadOem(dirname(dirname(this.paths.dir)));
      if (oem === null || !oem.isEnrolledAt(this.node.url)) {
        throw new TallyError('WALLET_UNSUPPORTED', `no OEM for software secure elements is enrolled at ${this.node.url}: run \`tally operator oem\` first`, { name: this.name, reason: 'no OEM enrolled' });
      }
      await rm(staging.dir, { recursive: true, force: true });
      await ensurePrivateDir(staging.dir);
      progress?.('making new usk and wsk in a new isolated secure element');
      const host = await startSe(staging, true, old.suite ?? 'ed25519');
      try {
        fresh = await provisionDotm(host, { node: this.node, info, oem, account: this.user, owner: this.data.user.keyId, password, progress });
      } finally {
        await host.close();
      }
      await writeFile(staged, JSON.stringify(fresh), { mode: 0o600 });
    }
    const folder = join(this.paths.dir, 'retired', old.wallet);
    await ensurePrivateDir(folder);
    for (const [from, to] of [
      [this.paths.se, join(folder, 'se')],
      [this.paths.counter, join(folder, 'counter')],
      [staging.se, this.paths.se],
      [staging.counter, this.paths.counter],
    ] as const) {
      if ((await stat(from).catch(() => null)) !== null && (await stat(to).catch(() => null)) === null) await rename(from, to);
    }
    let steps = 0;
    const kept: PendingStep[] = [];
    for (const step of this.data.pending) {
      // An issue the node has not answered runs for the new wallet key; answered ones name the old one.
      if (step.kind === 'dotm-issue' && step.blocks === undefined) kept.push(step);
      else {
        steps++;
        await appendHistory(this.paths, { at: Date.now(), kind: `${step.kind}-retired`, ...('amount' in step ? { amount: this.format(BigInt(step.amount)) } : {}), detail: `cut short on the retired secure element ${old.wallet}${step.kind === 'dotm-issue' && step.blocks !== undefined ? `; blocks ${step.blocks.join(',')}` : ''}` });
      }
    }
    this.data.pending = kept;
    this.data.dotm = { ...fresh, ...(old.suite === undefined ? {} : { suite: old.suite }) };
    this.data.device = { keyId: fresh.wallet, certificate: fresh.wcert };
    this.data.retired = [...(this.data.retired ?? []), { device: old.wallet, at: Date.now(), folder }];
    await this.save();
    await appendHistory(this.paths, { at: Date.now(), kind: 'device-retired', detail: `secure element ${old.wallet} retired (kept in ${folder}); new secure element ${fresh.wallet}, user key ${fresh.user}; the blocks the node issued to the old one stay on its record at the node` });
    await rm(staging.dir, { recursive: true, force: true });
    return { retired: old.wallet, device: fresh.wallet, folder, setAside: { steps, payments: 0 } };
  }

  /** Formats minor units. */
  format(minor: bigint): string {
    return formatMinor(this.currency, minor);
  }

  /** Parses a decimal amount of the wallet's currency into minor units (> 0). @throws TallyError AMOUNT_INVALID */
  parseAmount(text: string): bigint {
    return parsePositive(this.currency, text);
  }

  /** The history, oldest first, and the lines of the file that could not be read. */
  history(): Promise<HistoryRead> {
    return readHistory(this.paths);
  }

  // ---------------------------------------------------------------- recovery

  /**
   * After a crash (§3.3.5): an open offer is abandoned, an open received transaction rolled back;
   * then the node steps left pending are finished where the node answers.
   */
  async recover(): Promise<{ finished: string[]; waiting: { kind: string; why: string }[]; ended: { kind: string; why: string; code: string }[] }> {
    const finished: string[] = [];
    const waiting: { kind: string; why: string }[] = [];
    const ended: { kind: string; why: string; code: string }[] = [];
    const se = await this.se();
    const status = await se.call('status', {});
    if (status.offer !== undefined) {
      const out = await se.call('abandon', {});
      finished.push('abandon');
      await appendHistory(this.paths, { at: Date.now(), kind: 'dotm-abandoned', amount: this.format(out.amount), detail: `transaction ${toHex(out.tsn)}: no notification came; nothing was paid` });
    }
    if (status.receiving !== undefined) {
      const out = await se.call('rollback', {});
      finished.push('rollback');
      await appendHistory(this.paths, { at: Date.now(), kind: 'dotm-rolled-back', amount: this.format(out.amount), detail: `transaction ${toHex(out.tsn)}: step 9 never came; the payer is refunded online if it paid` });
    }
    for (const step of [...this.data.pending]) {
      try {
        if (step.kind !== 'dotm-issue') throw new TallyError('STATE_CORRUPT', `a ${step.kind} step in a DOT-M wallet`, { reason: 'pending' });
        if (!this.unlocked) throw new TallyError('PASSWORD_MISSING', 'it needs the node, and the account key is sealed: run a command that asks for the payment password', {});
        await this.runIssue(step);
        finished.push(step.kind);
      } catch (e) {
        if (!isTallyError(e)) throw e;
        // A refusal ended the step (no longer written down); anything else keeps it for the next command.
        if (this.data.pending.some((s) => s.id === step.id)) waiting.push({ kind: step.kind, why: e.message });
        else ended.push({ kind: step.kind, why: e.message, code: isTallyError(e, 'NODE_REFUSED') ? e.details.code : isTallyError(e, 'SE_REJECTED') ? e.details.reason : e.code });
      }
    }
    return { finished, waiting, ended };
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
    const step: PendingStep = { kind: 'dotm-issue', id: newId(), amount: amount.toString(), count };
    this.data.pending.push(step);
    await this.save();
    const balance = await this.runIssue(step);
    return { amount: this.format(amount), offline: this.format(balance), blocks: count };
  }

  private async runIssue(step: Extract<PendingStep, { kind: 'dotm-issue' }>): Promise<bigint> {
    if (step.blocks === undefined) {
      let answer;
      try {
        answer = await this.node.signed(this.user, 'POST', '/v1/dotm/issue', { answer: dotmIssueAnswer,
          body: { wallet: this.keys.wallet, amount: this.format(BigInt(step.amount)), blocks: step.count },
          idempotencyKey: `dotm-issue-${step.id}`,
        });
      } catch (e) {
        // The node said no: no block was issued, and the same request would be refused again.
        if (isNodeRefusal(e)) await this.end(step, { at: Date.now(), kind: 'deposit-refused', amount: this.format(BigInt(step.amount)), detail: `refused by the node: ${e.message}` });
        throw e;
      }
      step.blocks = answer.body.blocks;
      await this.save();
    }
    const blocks = step.blocks.map((b) => decodeBlock(fromBase64url(b)));
    let out;
    try {
      out = await (await this.se()).call('load', { blocks, now: Date.now() }, { requestId: fromHex(step.id) });
    } catch (e) {
      // A full wallet can load them once it has room: the step stays. Any other refusal is final;
      // the issued blocks are kept in the history (the node holds their value in the float).
      if (isTallyError(e, 'SE_REJECTED') && e.details.reason !== 'WALLET_FULL') {
        await this.end(step, { at: Date.now(), kind: 'deposit-refused', amount: this.format(BigInt(step.amount)), detail: `the node issued ${blocks.length} block(s) but the secure element refused them: ${e.message}; blocks ${step.blocks.join(',')}` });
      }
      throw e;
    }
    await this.end(step, null);
    await appendHistory(this.paths, { at: Date.now(), kind: 'deposit', amount: this.format(BigInt(step.amount)), detail: `${blocks.length} currency block(s) issued by the central bank` });
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
    await appendHistory(this.paths, { at: Date.now(), kind: 'withdraw', amount: this.format(amount), detail: `blocks given up (event ${out.seq}); the node credits them when it takes the event` });
    let outcome: DotmWithdrawal['outcome'] = 'unreachable';
    let refusal: { code: string; message: string } | undefined;
    try {
      const r = await this.sync();
      const result = r.results.find((x) => x.seq === out.seq);
      if (result?.status === 'taken' || result?.status === 'duplicate') outcome = 'credited';
      else if (result?.status === 'refused') {
        outcome = 'refused';
        refusal = { code: result.code ?? 'REFUSED', message: result.message ?? 'the node refused the redemption' };
        await appendHistory(this.paths, { at: Date.now(), kind: 'withdraw-refused', amount: this.format(amount), detail: `event ${out.seq} refused by the node: ${refusal.message} [${refusal.code}]` });
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
          idempotencyKey: `dotm-events-${this.keys.wallet.slice(0, 16)}-${newId()}`,
        })
      ).body;
      results.push(...last.results);
      findings.push(...last.findings);
    }
    if (last === null) {
      last = (await this.node.signed(this.user, 'POST', '/v1/dotm/events', { answer: dotmEventsAnswer, body: { wallet: this.keys.wallet, events: [] }, idempotencyKey: `dotm-events-${newId()}` })).body;
    }
    const ack = eventAckCodec.decode(decodeCbor(fromBase64url(last.ack)), 'ack');
    const applied = await se.call('ack', { ack, crl: fromBase64url(last.crl) });
    this.revocations.accept(decodeRevocationList(fromBase64url(last.crl)), this.intermediary.body.subject);
    this.data.crl = last.crl;
    await this.save();
    const refused = results.filter((r) => r.status === 'refused');
    await appendHistory(this.paths, {
      at: Date.now(),
      kind: 'sync',
      detail: `${events.length} event(s) uploaded, ${applied.cleared} acknowledged${refused.length === 0 ? '' : `, ${refused.length} refused (${refused.map((r) => r.code).join(', ')})`}; revocation list v${applied.crlVersion ?? '?'}`,
    });
    return { uploaded: events.length, results, findings, crlVersion: applied.crlVersion ?? 0 };
  }

  /** Online balance from the node, or null with the reason when it is unreachable. */
  async onlineBalance(): Promise<{ balance: string | null; error?: string }> {
    if (!this.unlocked) return { balance: null, error: 'the account key is sealed; give the payment password to ask the node' };
    return onlineBalanceOf(this.node, this.user, this.data.user.account);
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
    const server = await listenTcp(options.port, options.host);
    let stream: ByteStream;
    try {
      options.onListening?.(server.port);
      stream = await server.accept({ timeoutMs: options.timeoutMs });
    } finally {
      await server.close();
    }
    // The payer's handshake is bounded like every other wait of the transaction.
    const { link } = await openSecureLink(stream, { role: 'responder', prologue: DOTM_LINK_PROLOGUE, scheme: DOTM_LINK_SCHEME, handshakeTimeoutMs: options.timeoutMs, identity: this.linkIdentity(), trust: this.peerTrust() });
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
      await appendHistory(this.paths, {
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
    // One deadline for the connection (retried while nobody listens yet) and the handshake.
    const started = Date.now();
    const stream = await connectTcp(host, port, { timeoutMs: options.timeoutMs, retryRefused: true });
    const handshakeTimeoutMs = Math.max(1, options.timeoutMs - (Date.now() - started));
    const { link, peer } = await openSecureLink(stream, { role: 'initiator', prologue: DOTM_LINK_PROLOGUE, scheme: DOTM_LINK_SCHEME, handshakeTimeoutMs, identity: this.linkIdentity(), trust: this.peerTrust() });
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
      await appendHistory(this.paths, { at: Date.now(), kind: 'paid', amount: result.amount, detail: `transaction ${result.tsn}, ${tsd.nb} block(s) with ${tsd.nd} earlier record(s)` });
      return result;
    } catch (e) {
      if (isTallyError(e)) await appendHistory(this.paths, { at: Date.now(), kind: 'pay-failed', detail: `${e.message} [${failureCode(e)}]` });
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

  private linkIdentity() {
    return { certificate: fromBase64url(this.data.user.certificate), signer: this.user };
  }

  private peerTrust() {
    return { provider: nodeProvider, verify: (certificate: Uint8Array): PublicKey => this.verifyCertificate(certificate, ['user']).subject };
  }

  private verifyCertificate(certificate: Uint8Array, roles: readonly ('user' | 'device')[]) {
    return verifyChain({ provider: nodeProvider, chain: [decodeCertificate(certificate), this.intermediary], trustAnchors: [this.root], now: Date.now(), revocations: this.revocations, leafRoles: roles });
  }

  /** Drops a finished or refused step and writes its event. */
  private async end(step: PendingStep, event: HistoryEvent | null): Promise<void> {
    this.data.pending = this.data.pending.filter((s) => s.id !== step.id);
    await this.save();
    if (event !== null) await appendHistory(this.paths, event);
  }

  private save(): Promise<void> {
    return writeData(this.paths, this.data);
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

/** The scheme of a wallet in a home, read from its wallet.json (null when there is none). */
export async function walletScheme(home: string, name: string): Promise<string | null> {
  return (await readWalletData(home, name))?.data.scheme ?? null;
}
