/**
 * A scheme as every face sees it: its name, the paper it implements, what its wallets can do, and
 * its parts, one for each layer it plugs into (the issuer node, the wallet, the CLI). A scheme's
 * `index.ts` exports one `Scheme`; `index.ts` here lists them all.
 */
import type { CliPart } from '../cli/plugin.ts';
import type { Codec } from '../core/codec.ts';
import type { TrustedApp } from '../secure-element/trusted-app.ts';
import type { BenchPlugin, CommonWorkload, SettleWorkload } from '../sim/bench/plugin.ts';
import type { SchemeModule } from '../issuer/plugin.ts';
import type { SimPlugin } from '../sim/sim/plugin.ts';
import type { Capability, WalletPart } from '../wallet/plugin.ts';

/** The paper a scheme implements. */
export interface Paper {
  readonly title: string;
  readonly authors: string;
  /** The authors' institution. */
  readonly institution: string;
}

/**
 * One decoder of what a scheme receives from outside (a peer's message, a node's answer, a pasted
 * token), as the scheme offers it to the fuzzer: its codec gives the structure of valid inputs.
 */
export interface WireDecoder {
  /** What it decodes, e.g. `payment`. */
  readonly name: string;
  /** The codec of the decoded value (the decoder's own, or the one under it). */
  readonly codec: Codec<unknown>;
  /** The largest input it accepts: bytes of CBOR, or characters of a token. */
  readonly bytesMax: number;
  /** The decoder of CBOR bytes as the scheme calls it; by default `codec.decode(decodeCbor(bytes))`. */
  decode?(bytes: Uint8Array): unknown;
  /** The encoder of what `decode` answers, for the round trip; by default `encodeCbor`. */
  encode?(value: unknown): Uint8Array;
  /** For a `tally1` token: the reader of its text (then `codec` is the token's codec). */
  readToken?(token: string): unknown;
}

/** One scheme, as the registry lists it. */
export interface Scheme {
  /** The name wallets, routes (`/v1/{name}/`) and flags (`--scheme NAME`) use. */
  readonly name: string;
  /** A line saying what it is. */
  readonly title: string;
  readonly paper: Paper;
  /** What its wallets can do (some wallets less: an OPS wallet without a secure element only receives and claims). */
  readonly capabilities: readonly Capability[];
  /** Its node part, loaded when a node starts (a wallet verb never pays for it). */
  node(): Promise<SchemeModule>;
  readonly wallet: WalletPart;
  readonly cli: CliPart;
  /**
   * Its benchmark (the paper's evaluation), loaded when `npm run bench -- NAME` runs it: handed to
   * `use`, whatever its parameters and report types.
   */
  bench?<T>(use: <P, R>(plugin: BenchPlugin<P, R>) => T): Promise<T>;
  /** The decoders of what it receives from outside, loaded when `npm run fuzz` runs them. */
  wire?(): Promise<readonly WireDecoder[]>;
  /** Its trusted app, loaded when `npm run fuzz` feeds its commands through a secure element host. */
  trustedApp?(): Promise<TrustedApp<unknown>>;
  /** Its sides of `npm run bench -- settle` (payments settled per second by the node, one workload per settlement path), loaded when that runs. */
  settle?(): Promise<readonly SettleWorkload[]>;
  /** Its side of the common workload of `npm run bench -- all` and `-- common` (one payment of 12.50, the same on every scheme), and its profile for the evaluation page; loaded when that runs. */
  common?(): Promise<CommonWorkload>;
  /** Its population, faults and attacks in `tally sim` (a seeded, deterministic simulation), loaded when that runs. */
  sim?(): Promise<SimPlugin>;
}
