/**
 * A scheme as every face sees it: its name, the paper it implements, what its wallets can do, and
 * its parts, one for each layer it plugs into (the issuer node, the wallet, the CLI). A scheme's
 * `index.ts` exports one `Scheme`; `index.ts` here lists them all.
 */
import type { CliPart } from '../cli/plugin.ts';
import type { BenchPlugin, SettleWorkload } from '../sim/bench/plugin.ts';
import type { SchemeModule } from '../issuer/plugin.ts';
import type { Capability, WalletPart } from '../wallet/plugin.ts';

/** The paper a scheme implements. */
export interface Paper {
  readonly title: string;
  readonly authors: string;
  /** The authors' institution. */
  readonly institution: string;
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
  /** Its side of `npm run bench -- settle` (payments settled per second by the node), loaded when that runs. */
  settle?(): Promise<SettleWorkload>;
}
