/**
 * The benchmark seam: what a scheme's benchmark implements (a `BenchPlugin`: its name, the paper
 * and the table or figure it reproduces, its quick and full parameters, and `run`) and the services
 * it may use (the `BenchHarness`: a real issuer node, secure elements, the metering provider, the
 * statistics, progress). A scheme's bench files import this module and the pure layers only; the
 * harness behind it does the I/O.
 */
import type { CryptoProvider, SuiteName } from '../../core/crypto/suite.ts';
import type { SecureElement } from '../../secure-element/secure-element.ts';
import type { CommandTable, TrustedApp } from '../../secure-element/trusted-app.ts';
import type { Machine, FloorRatio } from './machine.ts';
import type { CryptoMeter, Metered } from './meter.ts';
import type { TcpServer } from '../../channel/tcp.ts';
import type { Latency } from './stats.ts';
import type { CommitFloor } from './commit-floor.ts';
import type { BenchNode, BenchNodeOptions } from './node.ts';
import type { BenchProcessNode, BenchProcessNodeOptions } from './node-process.ts';
import type { ProgressBar } from './progress.ts';
import type { FloorOperation } from './verify-floor.ts';
import type { ChainService, DeviceLimits } from '../../issuer/plugin.ts';

export type { Machine, FloorRatio } from './machine.ts';
export { CryptoMeter, Replay, type CryptoCounts, type Metered, type PhaseCounts } from './meter.ts';
export type { BenchNode, BenchNodeOptions, BenchOem, BenchUser, PreparedBody } from './node.ts';
export type { BenchProcessNode, BenchProcessNodeOptions } from './node-process.ts';
export type { ProgressBar } from './progress.ts';
export type { FloorOperation } from './verify-floor.ts';
export type { CommitFloor } from './commit-floor.ts';
export type { ChainService, DeviceLimits } from '../../issuer/plugin.ts';
export { CountingStream } from './counting-stream.ts';
/** The TCP transport, for benches that time a link over loopback. */
export { connectTcp, listenTcp, type TcpServer } from '../../channel/tcp.ts';
export { latency, median, quantile, spread, summarise, throughput, type Latency, type Spread } from './stats.ts';
/** Ramps (payments of n items for several n): their statistics, settings and figure; CPU time of the SE processes. */
export { fitLine, meanSd, rampSettings, type Line, type MeanSd, type RampRun, type RampSettings } from './ramp.ts';
export { escapeXml, plotSvg, ticks, type Panel, type PlotPoint, type PlotSeries } from './figure.ts';
export { cpuNow, pidOf, processCpuMs } from './cpu.ts';
/** Set-up work a few at a time. */
export { inBatches, upTo } from './batches.ts';

/** Where an isolated secure element's child process finds a trusted app: a module URL and its export. */
export interface AppLocation {
  readonly module: string;
  readonly export: string;
}

/** How to start a secure element for a bench party. */
export interface ElementOptions<S, C extends CommandTable<S>> {
  readonly app: TrustedApp<S, C>;
  /** A folder of its own: the sealed state, and the file counter beside it. */
  readonly dir: string;
  /** The suite of the device's keys; Ed25519 by default. */
  readonly suite?: SuiteName | undefined;
}

/** The services a benchmark may use. Everything it starts through them is stopped when the run ends. */
export interface BenchHarness {
  /** Where this run is measured. */
  readonly machine: Machine;
  /** True for `--quick`. */
  readonly quick: boolean;
  /** The repository's root folder, for a bench that reads the tree itself (lines of code). */
  readonly repoDir: string;
  /** The environment, for a bench's own settings beyond `--quick`. */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** The provider the isolated secure elements and the node use (node:crypto). */
  readonly provider: CryptoProvider;
  /** A PostgreSQL URL when one is set (DATABASE_URL or TEST_DATABASE_URL). */
  readonly postgresUrl: string | undefined;
  /** The 1-minute load average now: other work on the machine shows here. */
  loadAverage(): number;
  /** A progress line, on stderr. */
  progress(line: string): void;
  /** A fresh temporary folder, removed when the run ends. */
  tempDir(name: string): Promise<string>;
  /** Opens an issuer node serving `options.schemes` over HTTP on loopback (PGlite unless PostgreSQL is asked for). */
  openNode(options: BenchNodeOptions): Promise<BenchNode>;
  /**
   * Opens an issuer node in a process of its own serving the schemes named (by their registry
   * names), over HTTP on loopback: its CPU is its own, and the bench's load does not share its
   * event loop. The same client as openNode, with the process's id and CPU time.
   */
  openNodeProcess(options: BenchProcessNodeOptions): Promise<BenchProcessNode>;
  /** A progress bar of `total` items on stderr (a line every tenth when stderr is no terminal). */
  progressBar(label: string, total: number): ProgressBar;
  /**
   * Starts an Ethereum chain of the run's own: the node's chain service over an embedded anvil in a
   * temporary folder (instant mining, the central bank's account funded for gas), stopped when the
   * run ends. Each call starts another.
   */
  chain(): Promise<ChainService>;
  /** Starts a secure element in its own process (file counter), as wallets run it. */
  startElement<S, C extends CommandTable<S>>(options: ElementOptions<S, C> & { readonly location: AppLocation }): Promise<SecureElement<C>>;
  /**
   * Starts a secure element in this process kept in memory (storage and counter live as long as
   * the run): for a bench that needs many devices to make payments ahead of its timed part, where
   * a commit's fsyncs are not what it measures. Keys sign through the harness's provider.
   */
  startMemoryElement<S, C extends CommandTable<S>>(options: Omit<ElementOptions<S, C>, 'dir'>): Promise<SecureElement<C>>;
  /** Starts a secure element in this process whose keys sign and verify through `provider` (a meter's, to count). */
  startInProcessElement<S, C extends CommandTable<S>>(options: ElementOptions<S, C> & { readonly provider: CryptoProvider }): Promise<SecureElement<C>>;
  /** A metering provider over the harness's provider, counting by `phases` (the first is where counting starts). */
  meter<P extends string>(phases: readonly [P, ...P[]]): CryptoMeter<P>;
  /**
   * The persistence floor: one secure-element commit of each size in `sealedBytes` as a host makes
   * it (sealed write, fsync, rename, directory fsync, file-counter increment), timed `iterations` times.
   */
  measureCommits(sealedBytes: readonly number[], iterations: number): Promise<Latency>;
  /**
   * The same floor timed one round at a time (`CommitFloor.round`), for a bench that interleaves
   * its rounds with what it measures, so that both see the disk in the same state. Closed with the run.
   */
  openCommitFloor(): Promise<CommitFloor>;
  /** The size of a file, bytes (a sealed state, to size the persistence floor). */
  fileBytes(path: string): Promise<number>;
  /** Writes a text file (a figure): a relative path is taken in the repository's docs folder. Answers the path written. */
  writeFile(path: string, text: string): Promise<string>;
  /**
   * What a secure element started by `startElement` (or `startInProcessElement`) in `dir` has
   * committed so far: its counter's value (one increment a commit) and the bytes of its sealed state.
   */
  elementState(dir: string): Promise<ElementState>;
}

/** A secure element's commits so far and the size of its sealed state. */
export interface ElementState {
  readonly commits: number;
  readonly sealedBytes: number;
}

/** What a bench run answers: its report (the `--json` output), the text, and its ratios to floors. */
export interface BenchResult<R> {
  readonly report: R;
  /** Markdown tables, without the `Machine:` line (the harness writes it). */
  readonly text: string;
  /** Each measurement over its floor: a value below 1 makes the harness warn that the run was too noisy. */
  readonly ratios: readonly FloorRatio[];
}

/** A scheme's (or a layer's) benchmark. */
export interface BenchPlugin<P = unknown, R = unknown> {
  /** `npm run bench -- <name>`. */
  readonly name: string;
  /** The paper whose evaluation it reproduces, or what it measures when no paper has one. */
  readonly paper: string;
  /** The table or figure, e.g. "Figure 10 and Table 3 (§4.2)". */
  readonly reproduces: string;
  /** Parameters of `--quick` and of a full run. */
  readonly parameters: { readonly quick: P; readonly full: P };
  run(harness: BenchHarness, parameters: P): Promise<BenchResult<R>>;
}

/**
 * A scheme's side of `bench settle` (settle.ts): how many payments a second the issuer node
 * settles, received over the network, every signature checked, recorded, money moved. The scheme
 * sets up its world on a node the bench opens (devices, payments made beforehand, request bodies
 * encoded before the clock starts) and sends what its submitters were given; the bench opens the
 * node per database, times the rows, and checks the audit.
 */
export interface SettleWorkload {
  /** Its name within its scheme ("claims", "sync"): `TALLY_SETTLE_WORKLOADS=ops/sync` picks it. */
  readonly name: string;
  /**
   * The Ed25519 verifications the node cannot settle one payment without (1 for a payment that
   * carries its own signature; a fraction when one signed report carries many payments): the floor
   * of this workload is the machine's verifications a second over this. 0 for a payment that
   * carries no Ed25519 signature, whose `floorOperations` then name what it does need.
   */
  readonly verificationsPerPayment: number;
  /**
   * The most payments in one of its rows, when its payments are too slow to make or settle at the
   * bench's row size (the report gives each row's count).
   */
  readonly paymentsPerRowMax?: number | undefined;
  /**
   * Other public-key operations one payment cannot be settled without, when its cryptography is
   * not (only) Ed25519 (an RSA blind signature, an X25519 agreement to open a sealed coin), per
   * payment. Each is measured as the Ed25519 floor is, and the workload's floor is the payments a
   * second that all of its operations together allow. None when undefined.
   */
  readonly floorOperations?: Readonly<Partial<Record<FloorOperation, number>>> | undefined;
  /** The schemes the node must serve, by their registry names. */
  readonly schemes: readonly string[];
  /** True when a node with a settlement intake settles it through its shards (`bench settle --shards`). */
  readonly sharded?: boolean | undefined;
  /** True when it settles on the node's shard databases: `bench settle --shards N` adds rows on PostgreSQL with N shard databases. */
  readonly shardDatabases?: boolean | undefined;
  /** What the workload settles, for the report's text ("OPS payments claimed in bulk"). */
  readonly describes: string;
  /** The node's device limits, from its defaults: raised so that no limit refuses the workload. */
  deviceLimits(defaults: DeviceLimits): DeviceLimits;
  /** Sets up the world on a fresh node: devices that pay, funded for `paymentsTotal` payments, and `submittersMax` receivers. */
  open(context: SettleContext): Promise<SettleWorld>;
}

/** What a workload sets its world up with. */
export interface SettleContext {
  readonly harness: BenchHarness;
  readonly node: BenchNode;
  /** Devices that make the payments (many, so that no device's lock decides). */
  readonly devices: number;
  /** The most submitters of any row: one receiver each. */
  readonly submittersMax: number;
  /** Every payment the world will be asked for, over all rows. */
  readonly paymentsTotal: number;
  /** The most payments one row (or the warm-up) asks for. */
  readonly paymentsPerRow: number;
}

/** A workload's world on one node. */
export interface SettleWorld {
  /**
   * Makes `payments` payments ahead of a row, shared among `submitters` receivers, and encodes
   * their requests; `made(n)` after every n payments made. Nothing here is timed.
   */
  prepare(row: { readonly submitters: number; readonly payments: number; made(n: number): void }): Promise<readonly SettleSubmitter[]>;
  /**
   * Checks that every payment of every row was settled exactly once (each receiver holds what was
   * paid to it). @throws Error when one was not
   */
  verify(): Promise<void>;
  /** Stops what the world started (its secure elements). */
  close(): Promise<void>;
}

/** One submitter of a row: its requests, encoded beforehand, sent in order. */
export interface SettleSubmitter {
  readonly requests: number;
  /**
   * Sends request `i` (signing it is the only work left) and answers how many payments it
   * settled. @throws Error when the node refused the request or any payment in it
   */
  submit(i: number): Promise<number>;
}

/**
 * A scheme's side of the common workload of `bench all` (common.ts): one payment of the same
 * amount between two secure elements in their own processes, over TCP on loopback and a Noise
 * link, repeated; and what the scheme declares of itself for the newcomer's tables (profile).
 */
export interface CommonWorkload {
  readonly profile: SchemeProfile;
  /**
   * Opens the scheme's world on a node of the harness's: a payer and a payee with isolated secure
   * elements, funded for `payments` payments, and a pair in this process over the meter. Absent
   * while the scheme's side is not written: the page then says so.
   */
  open?(context: CommonContext): Promise<CommonWorld>;
}

/** What a common world is opened with. */
export interface CommonContext {
  readonly harness: BenchHarness;
  /** Each payment's amount, in minor units of the node's currency (1250 is 12.50). */
  readonly amountMinor: bigint;
  /** Payments the world will be asked for, warm-up included. */
  readonly payments: number;
  /** The metering provider the in-process pair's secure elements and wallets sign and verify through. */
  readonly meter: CryptoMeter<'payment'>;
}

/** A scheme's world for the common workload. */
export interface CommonWorld {
  /** The node's currency code. */
  readonly currency: string;
  /** How the scheme carries the amount ("one signed payment record", "3 coins: 10.00, 2.00, 0.50"). */
  readonly carries: string;
  /** The folders handed to `startElement` for the payer's and the payee's isolated secure elements. */
  readonly elementDirs: readonly [string, string];
  /** Untimed, before each payment: what the parties need online first (a withdrawal, exchange keys). */
  prepare(): Promise<void>;
  /** One payment between the isolated pair over a fresh TCP connection accepted on `server` and a fresh Noise link. */
  pay(server: TcpServer): Promise<CommonSample>;
  /** After each payment: the payee's settlement with the node, timed by the scheme around the settling calls; undefined when the scheme does not settle per payment. */
  settle(): Promise<SettleSample | undefined>;
  /** One payment between the in-process pair (prepared and settled as the others), with the meter armed around the payment only. */
  metered(server: TcpServer): Promise<Metered<'payment'>>;
  /** Checks conservation: the node's audit balanced and its float equal to what the elements hold. @throws Error when not */
  verify(): Promise<void>;
  close(): Promise<void>;
}

/** One timed payment of the common workload. */
export interface CommonSample {
  /** The TCP connection and the Noise handshake (with any certificate binding), ms. */
  readonly linkMs: number;
  /** The payment on the open link, ms. */
  readonly sessionMs: number;
  /** Bytes through the socket, both ways: during the handshake, and during the payment. */
  readonly handshakeBytes: number;
  readonly sessionBytes: number;
}

/** One payment's settlement, as the scheme timed it. */
export interface SettleSample {
  readonly ms: number;
  /** What was done ("deposit of 3 coins: POST /v1/otp/deposits"). */
  readonly what: string;
  /** Gas spent on chain, when settling is a transaction. */
  readonly gas?: bigint | undefined;
}

/** The class of what a field carries, for the privacy table. */
export type FieldClass =
  | 'payer identity'
  | 'payee identity'
  | 'device key'
  | 'amount'
  | 'serial'
  | 'time'
  | 'signature'
  | 'history'
  | 'proof'
  | 'protocol';

/** Every field class, in the order the privacy table lists them. */
export const FIELD_CLASSES: readonly FieldClass[] = ['payer identity', 'payee identity', 'device key', 'amount', 'serial', 'history', 'time', 'signature', 'proof', 'protocol'];

/**
 * What a scheme declares of itself, with the paper's section: how far value travels offline, who
 * receives which of its messages (by their names in `Scheme.wire()`) and what each field carries,
 * and what a broken secure element can do.
 */
export interface SchemeProfile {
  /** Offline transitivity: how many offline payments value may pass through before a device must go online (`unbounded` when the scheme sets no limit of hops). */
  readonly transitivity: { readonly hops: number | 'unbounded'; readonly until: string; readonly cite: string };
  /**
   * The messages of a payment and of its settlement, by wire name, and who receives each; `within`
   * keeps only the fields under a path (the tokens a deposit carries are those the payee received).
   */
  readonly messages: readonly { readonly wire: string; readonly to: 'payee' | 'payer' | 'bank'; readonly within?: string | undefined }[];
  /**
   * The class of each field of those messages: a field path (`body.amount`, `coins[].serial`) or
   * a prefix of paths (`sender`), the longest prefix deciding; a path none covers is unclassified.
   */
  readonly fields: Readonly<Record<string, FieldClass>>;
  /** What the link between the devices shows someone on the wire. */
  readonly link: string;
  /** What a broken (extracted, cloned or rolled back) secure element can do, what bounds it, and the paper's section. */
  readonly brokenSe: { readonly can: string; readonly bound: string; readonly cite: string };
}
