/**
 * The wallet shell: what every wallet does the same way, whatever its scheme. A scheme's wallet
 * part extends `WalletShell` and adds its own steps; the shell keeps the folder (under its lock),
 * the journal of steps, the history, the certificates and revocation list, the node client, the
 * isolated secure element, recovery of a secure element that refuses to run, and the link runner.
 *
 * The journal: every step that touches the SE or the node is written down (`pending`) before it
 * starts, with one id that is both the SE's request id (a re-run gives back the stored output) and
 * the node's idempotency key (a re-sent call moves money once). `resume` finishes on the next open
 * what a crash or a lost connection cut short.
 */
import { readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fromBase64url, toBase64url, toHex } from '../core/bytes.ts';
import { keyId } from '../pki/key-id.ts';
import { Amount, currency as makeCurrency, type Currency } from '../core/amount.ts';
import { randomBytes } from '../core/crypto/hash.ts';
import type { PublicKey, Signer, SuiteName } from '../core/crypto/suite.ts';
import { isTallyError, TallyError } from '../core/errors.ts';
import { ensurePrivateDir } from '../host/files.ts';
import { connectTcp, listenTcp } from '../channel/tcp.ts';
import { openSecureLink, type SecureLink } from '../channel/secure-link.ts';
import type { ByteStream } from '../channel/stream.ts';
import { decodeCertificate, type Certificate } from '../pki/certificate.ts';
import { verifyChain } from '../pki/chain.ts';
import { decodeRevocationList, RevocationStore } from '../pki/revocation.ts';
import type { CommandTable, TrustedApp } from '../secure-element/trusted-app.ts';
import { nodeProvider } from '../providers/node-crypto.ts';
import { IsolatedHost } from '../secure-element/host-isolated.ts';
import type { Codec } from '../core/codec.ts';
import { loadOem, type Oem } from './factory.ts';
import { decodeJsonFile } from './files.ts';
import { checkWalletName, walletDir, walletPaths, type WalletPaths } from './home.ts';
import { NodeClient, type NodeInfo } from './node-client.ts';
import { userAnswer } from './node-answers.ts';
import { formatMinor, isNodeRefusal, onlineBalanceOf, openWalletFolder, parsePositive, readHistory, type HistoryRead } from './wallet-common.ts';
import { appendHistory, writeData, type HistoryEvent, type JournalStep, type WalletData } from './wallet-data.ts';

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

/** What a scheme's wallet writes in a new wallet folder (see createWalletFolder). */
export interface NewWallet<Step extends JournalStep, Slot> {
  data: WalletData<Step, Slot>;
  /** The history line of the creation. */
  detail: string;
}

/** What createWalletFolder hands the scheme's part while the wallet is built in its staging folder. */
export interface CreateContext {
  readonly name: string;
  readonly home: string;
  readonly node: NodeClient;
  readonly info: NodeInfo;
  /** The staging folder's paths: the SE is provisioned there. */
  readonly paths: WalletPaths;
  /** The home's OEM, when `needsOem` (checked to be enrolled at the node). */
  readonly oem: Oem | null;
  progress(line: string): void;
  /** Registers `user` at the node as a new account holder (idempotent by its key): its account, key id and user certificate. */
  registerUser(user: Signer): Promise<RegisteredUser>;
}

/** An account holder the node registered. */
export interface RegisteredUser {
  readonly account: string;
  readonly keyId: string;
  /** The user certificate (base64url). */
  readonly certificate: string;
}

/** Registers `user` at the node (`POST /v1/users`), idempotent by its key. */
async function registerUser(node: NodeClient, user: Signer): Promise<RegisteredUser> {
  const answer = await node.signed(user, 'POST', '/v1/users', {
    answer: userAnswer,
    body: { publicKey: { suite: user.publicKey.suite, key: toBase64url(user.publicKey.key) } },
    idempotencyKey: `register-${toHex(keyId(user.publicKey))}`,
  });
  return answer.body;
}

/**
 * Builds a wallet in a staging folder and moves it in place whole: a crash or a refusal part-way
 * leaves no wallet behind (the staging folder is removed). `build` registers what it needs at the
 * node and returns the wallet's data.
 * @throws TallyError WALLET_EXISTS, WALLET_UNSUPPORTED (no OEM enrolled at this node), NODE_*, what build throws
 */
export async function createWalletFolder<Step extends JournalStep, Slot>(
  options: { home: string; name: string; node: string; needsOem: boolean; progress?: ((line: string) => void) | undefined },
  build: (context: CreateContext) => Promise<NewWallet<Step, Slot>>,
): Promise<void> {
  const name = checkWalletName(options.name);
  const final = walletDir(options.home, name);
  if ((await readFile(join(final, 'wallet.json')).catch(() => null)) !== null) {
    throw new TallyError('WALLET_EXISTS', `a wallet named ${name} already exists in ${dirname(dirname(final))}`, { name });
  }
  const node = new NodeClient(options.node);
  const info = await node.info();
  const oem = options.needsOem ? await enrolledOem(options.home, node, name) : null;
  await ensurePrivateDir(join(options.home, 'wallets'));
  const staging = join(options.home, 'wallets', `.${name}.creating-${toHex(randomBytes(4))}`);
  await ensurePrivateDir(staging);
  const paths = walletPaths(staging);
  try {
    const made = await build({ name, home: options.home, node, info, paths, oem, progress: (line) => options.progress?.(line), registerUser: (user) => registerUser(node, user) });
    await writeData(paths, made.data);
    await appendHistory(paths, { at: Date.now(), kind: 'created', detail: made.detail });
    await rename(staging, final);
  } catch (e) {
    await rm(staging, { recursive: true, force: true });
    throw e;
  }
}

/** The home's OEM, which must be enrolled at the node. @throws TallyError WALLET_UNSUPPORTED */
export async function enrolledOem(home: string, node: NodeClient, name: string): Promise<Oem> {
  const oem = await loadOem(home);
  if (oem === null || !oem.isEnrolledAt(node.url)) {
    throw new TallyError(
      'WALLET_UNSUPPORTED',
      `no OEM for software secure elements is enrolled at ${node.url} from ${home}: run \`tally operator oem\` (operator token needed) first`,
      { name, reason: 'no OEM enrolled' },
    );
  }
  return oem;
}

/** Starts an isolated SE process running `spec` on the folder's sealed state. */
export function startSecureElement<S, C extends CommandTable<S>>(spec: TrustedAppSpec<S, C>, paths: WalletPaths, provision: boolean, suite?: SuiteName): Promise<IsolatedHost<S, C>> {
  return IsolatedHost.start({ app: spec.app, location: spec.location, dir: paths.se, counter: { kind: 'file', path: paths.counter }, provision, ...(suite === undefined ? {} : { suite }) });
}

/** A link's identity and trust: the wallet's user certificate and key, and the peers it accepts. */
export interface LinkSide {
  /** Noise prologue and scheme name of the link hello (a peer of another scheme is refused). */
  readonly prologue: Uint8Array;
  readonly scheme: string;
  readonly identity: { certificate: Uint8Array; signer: Signer };
  readonly trust: { provider: typeof nodeProvider; verify(certificate: Uint8Array): PublicKey };
}

/**
 * An open wallet of one scheme: `Step` is the scheme's journal step, `Slot` what it keeps in
 * wallet.json besides the shell's fields. Call `close()` when done (it stops the SE process and
 * frees the lock).
 */
export abstract class WalletShell<Step extends JournalStep, Slot, S, C extends CommandTable<S>> {
  readonly currency: Currency;
  readonly node: NodeClient;
  protected seHost: IsolatedHost<S, C> | null = null;
  protected readonly revocations = new RevocationStore({ provider: nodeProvider });
  protected readonly root: Certificate;
  protected readonly intermediary: Certificate;

  protected constructor(
    readonly paths: WalletPaths,
    protected data: WalletData<Step, Slot>,
    private readonly unlockFolder: () => Promise<void>,
  ) {
    this.currency = makeCurrency(data.currency.code, data.currency.decimals);
    this.node = new NodeClient(data.node);
    this.root = decodeCertificate(fromBase64url(data.certificates.root));
    this.intermediary = decodeCertificate(fromBase64url(data.certificates.intermediary));
    if (data.crl !== null) this.revocations.accept(decodeRevocationList(fromBase64url(data.crl)), this.intermediary.body.subject);
  }

  /** The scheme's trusted app, and the suite its keys are made in (the deployment's). */
  protected abstract secureElementSpec(): { spec: TrustedAppSpec<S, C>; suite?: SuiteName | undefined };

  /** Runs one journal step (from `resume`). */
  protected abstract runStep(step: Step): Promise<unknown>;

  /** The wallet's name. */
  get name(): string {
    return this.data.name;
  }

  /** A copy of the wallet's data (for reports and tests). */
  snapshot(): WalletData<Step, Slot> {
    return structuredClone(this.data);
  }

  /** Stops the SE process and frees the lock. */
  async close(): Promise<void> {
    try {
      if (this.seHost !== null) await this.seHost.close();
    } finally {
      this.seHost = null;
      await this.unlockFolder();
    }
  }

  /** The running SE (started on first use). @throws TallyError ROLLBACK_DETECTED worded with the way out */
  protected async startedSe(): Promise<IsolatedHost<S, C>> {
    if (this.seHost === null || !this.seHost.alive) {
      const { spec, suite } = this.secureElementSpec();
      try {
        this.seHost = await startSecureElement(spec, this.paths, false, suite);
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

  /** The history, oldest first, and the lines of the file that could not be read. */
  history(): Promise<HistoryRead> {
    return readHistory(this.paths);
  }

  /** Writes wallet.json. */
  protected save(): Promise<void> {
    return writeData(this.paths, this.data);
  }

  /** Appends a history line. */
  protected note(event: HistoryEvent): Promise<void> {
    return appendHistory(this.paths, event);
  }

  /** Writes a step down before it starts. */
  protected async begin(step: Step): Promise<void> {
    this.data.pending.push(step);
    await this.save();
  }

  /** Writes what a step has reached (e.g. the node's answer). */
  protected async update(step: Step): Promise<void> {
    this.data.pending = this.data.pending.map((s) => (s.id === step.id ? step : s));
    await this.save();
  }

  /** Drops a finished or refused step and writes its history line. */
  protected async finish(step: Step, event: HistoryEvent | null): Promise<void> {
    this.data.pending = this.data.pending.filter((s) => s.id !== step.id);
    await this.save();
    if (event !== null) await appendHistory(this.paths, event);
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

  /** Takes a newer revocation list (base64url of its encoding) and keeps it. */
  protected async keepCrl(encoded: string): Promise<void> {
    const list = decodeRevocationList(fromBase64url(encoded));
    this.revocations.accept(list, this.intermediary.body.subject);
    this.data.crl = encoded;
    await this.save();
  }

  /** Checks a user or device certificate against the wallet's root, intermediary and revocation list. */
  protected verifyCertificate(certificate: Uint8Array, roles: readonly ('user' | 'device')[] = ['user', 'device']) {
    return verifyChain({ provider: nodeProvider, chain: [decodeCertificate(certificate), this.intermediary], trustAnchors: [this.root], now: Date.now(), revocations: this.revocations, leafRoles: roles });
  }

  /** The trust a link puts in its peer: a user certificate of this wallet's central bank, unrevoked. */
  protected peerTrust(): LinkSide['trust'] {
    return { provider: nodeProvider, verify: (certificate: Uint8Array): PublicKey => this.verifyCertificate(certificate, ['user']).subject };
  }

  /** The account's online balance, or null with the reason when the node is unreachable. */
  protected onlineBalanceWith(user: Signer): Promise<{ balance: string | null; error?: string }> {
    return onlineBalanceOf(this.node, user, this.data.user.account);
  }

  /**
   * Retires a secure element that refuses to run (ROLLBACK_DETECTED, or its sealed state damaged):
   * `provision` makes a new one in a staging folder (kept there if a later part fails, so running
   * the recovery again finishes it); `beforeMove` runs (e.g. the node retires the old device); then the old SE's folder and counter move to `retired/<id>`
   * and the new ones take their place. Nothing is deleted.
   * @throws TallyError WALLET_UNSUPPORTED when the SE runs (nothing to recover) or no OEM is enrolled
   */
  protected async replaceSecureElement<Fresh>(
    old: string,
    staged: Codec<Fresh>,
    provision: (context: { paths: WalletPaths; oem: Oem; info: NodeInfo }) => Promise<Fresh>,
    hooks: { beforeProvision?: () => Promise<void>; beforeMove?: () => Promise<void> } = {},
  ): Promise<{ fresh: Fresh; folder: string }> {
    const staging = walletPaths(join(this.paths.dir, 'recovering'));
    const stagedFile = join(staging.dir, 'device.json');
    let fresh = await readFile(stagedFile, 'utf8').then((t) => decodeJsonFile(stagedFile, 'staged device file', staged, t), () => null);
    if (fresh === null) {
      // Only a secure element that refuses to run is retired.
      try {
        await this.probeSecureElement();
        throw new TallyError('WALLET_UNSUPPORTED', `the secure element of wallet ${this.name} runs; there is nothing to recover`, { name: this.name, reason: 'secure element runs' });
      } catch (e) {
        if (!isTallyError(e, 'ROLLBACK_DETECTED') && !isTallyError(e, 'STATE_CORRUPT')) throw e;
      }
      if (this.seHost !== null) await this.seHost.kill();
      this.seHost = null;
      await hooks.beforeProvision?.();
      const info = await this.node.info();
      const oem = await enrolledOem(dirname(dirname(this.paths.dir)), this.node, this.name);
      await rm(staging.dir, { recursive: true, force: true });
      await ensurePrivateDir(staging.dir);
      fresh = await provision({ paths: staging, oem, info });
      await writeFile(stagedFile, JSON.stringify(fresh), { mode: 0o600 });
    }
    await hooks.beforeMove?.();
    const folder = join(this.paths.dir, 'retired', old);
    await ensurePrivateDir(folder);
    for (const [from, to] of [
      [this.paths.se, join(folder, 'se')],
      [this.paths.counter, join(folder, 'counter')],
      [staging.se, this.paths.se],
      [staging.counter, this.paths.counter],
    ] as const) {
      if ((await stat(from).catch(() => null)) !== null && (await stat(to).catch(() => null)) === null) await rename(from, to);
    }
    return { fresh, folder };
  }

  /** Removes the staging folder of a finished recovery. */
  protected async recoveryDone(): Promise<void> {
    await rm(join(this.paths.dir, 'recovering'), { recursive: true, force: true });
  }

  /** Runs a read-only SE command to see whether the SE runs (for recovery). */
  protected abstract probeSecureElement(): Promise<void>;
}

/** How a scheme reads its part of wallet.json: its journal steps and its slot. */
export interface WalletFormat<Step extends JournalStep, Slot> {
  /** The step as the scheme knows it, or null for a step it does not know. */
  step(step: JournalStep & Record<string, unknown>): Step | null;
  /** The slot as the scheme knows it, or null when it is missing or not the scheme's. */
  slot(slot: unknown): Slot | null;
}

/**
 * Opens a wallet folder of `scheme` under its lock, for a scheme's `open`: its steps and slot read
 * by the scheme's `format`.
 * @throws TallyError WALLET_NOT_FOUND, WALLET_UNSUPPORTED (another scheme), WALLET_BUSY, STATE_CORRUPT (a step or slot the scheme does not know)
 */
export async function openFolderOf<Step extends JournalStep, Slot>(home: string, name: string, scheme: string, format: WalletFormat<Step, Slot>): Promise<{ paths: WalletPaths; data: WalletData<Step, Slot>; unlock: () => Promise<void> }> {
  const opened = await openWalletFolder(home, name, scheme);
  try {
    const pending: Step[] = [];
    for (const raw of opened.data.pending) {
      const step = format.step({ ...raw });
      if (step === null) throw new TallyError('STATE_CORRUPT', `wallet file ${opened.paths.file}: a pending ${JSON.stringify(raw.kind).slice(0, 40)} step that a ${scheme} wallet does not know`, { reason: 'pending' });
      pending.push(step);
    }
    const { slot: rawSlot, pending: _steps, ...rest } = opened.data;
    const slot = rawSlot === undefined ? null : format.slot(rawSlot);
    if (rawSlot !== undefined && slot === null) throw new TallyError('STATE_CORRUPT', `wallet file ${opened.paths.file}: the ${scheme} data is not in the expected format`, { reason: 'slot' });
    return { paths: opened.paths, data: { ...rest, pending, ...(slot === null ? {} : { slot }) }, unlock: opened.unlock };
  } catch (e) {
    await opened.unlock();
    throw e;
  }
}

/**
 * The payee side of a link: listens on `port`, takes one peer (waiting at most `timeoutMs`), and
 * runs the secure session's handshake as responder.
 */
export async function listenLink(side: LinkSide, options: { port: number; host: string; timeoutMs: number; onListening?: ((port: number) => void) | undefined }): Promise<SecureLink> {
  const server = await listenTcp(options.port, options.host);
  let stream: ByteStream;
  try {
    options.onListening?.(server.port);
    stream = await server.accept({ timeoutMs: options.timeoutMs });
  } finally {
    await server.close();
  }
  // The payer's handshake is bounded like every other wait of the session.
  return openSecureLink(stream, { role: 'responder', prologue: side.prologue, scheme: side.scheme, handshakeTimeoutMs: options.timeoutMs, identity: side.identity, trust: side.trust });
}

/** The payer side of a link: connects (retried while nobody listens yet) and runs the handshake, all within `timeoutMs`. */
export async function connectLink(side: LinkSide, host: string, port: number, timeoutMs: number): Promise<SecureLink> {
  const started = Date.now();
  const stream = await connectTcp(host, port, { timeoutMs, retryRefused: true });
  const handshakeTimeoutMs = Math.max(1, timeoutMs - (Date.now() - started));
  return openSecureLink(stream, { role: 'initiator', prologue: side.prologue, scheme: side.scheme, handshakeTimeoutMs, identity: side.identity, trust: side.trust });
}

export { isNodeRefusal };
