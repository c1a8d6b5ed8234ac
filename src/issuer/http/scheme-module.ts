/**
 * What a scheme implements to plug into the issuer node: its tables, its offline float, its routes
 * under `/v1/{name}/` (with any body limit of their own), its part of the audit's exposure check,
 * its part of the operator's actions on devices (revoke, settle a revoked device's remainder),
 * whether it settles on the node's Ethereum chain, and what it shows in GET /v1/info.
 */
import type { OpenAPIHono } from '@hono/zod-openapi';
import type { Queryable, TransactionHandle } from '../db/database.ts';
import type { HoldingsReader } from '../ledger/exposure.ts';
import type { StoredResponse } from '../ledger/idempotency.ts';
import type { JsonValue } from '../ledger/json.ts';
import type { SettleHandler } from '../queue/settle-queue.ts';
import type { CrossingReceipt } from '../queue/credit-relay.ts';
import type { RevocableRole } from '../registry/revocations.ts';
import type { InterbankClaim, InterbankJudgement } from '../tier/interbank.ts';
import type { IssuerEnv, IssuerServices } from './context.ts';

/** The largest body limit a route may declare, in bytes: sixteen times the default. */
export const ROUTE_BODY_BYTES_MAX = 1024 * 1024;

/** A route of a scheme that takes a body larger (or smaller) than the node's default limit. */
export interface RouteBodyLimit {
  readonly method: 'POST' | 'PUT' | 'PATCH';
  /** The route's path under `/v1/{name}`, as registered (`/events`; `:param` segments match any value). */
  readonly path: string;
  /** At most ROUTE_BODY_BYTES_MAX. */
  readonly bytesMax: number;
}

/** What revoking one of a scheme's own keys did (see SchemeModule.revokeKey). */
export interface SchemeRevocation {
  readonly role: RevocableRole;
  /** The serial of the certificate of the named key. */
  readonly serial: Uint8Array;
  /** The list version that names it. */
  readonly version: number;
  /** True when every certificate was already revoked: nothing changed. */
  readonly already: boolean;
}

/** A JSON object, as a scheme shows itself in GET /v1/info. */
export type SchemeInfo = { readonly [key: string]: JsonValue };

/**
 * A scheme's own part of the audit, for money the ledger does not hold (chain-tee's token on an
 * Ethereum chain): whether it adds up, what to tell the operator, and the figures.
 */
export interface SchemeAudit {
  readonly balanced: boolean;
  /** One line each, amounts in major units with their currency. */
  readonly lines: readonly string[];
  readonly details: { readonly [key: string]: JsonValue };
}

/**
 * A scheme's online part: its tables (migrations numbered in its own range), its offline float
 * account (the node opens it), what it sets up at start, and its routes under `/v1/{name}/`.
 */
export interface SchemeModule {
  readonly name: string;
  /** A folder of `NNN_name.sql` migrations, numbered apart from the issuer's and other schemes'. */
  readonly migrationsDir?: URL | undefined;
  /** The ledger account holding what is out on the scheme's devices; the node opens it at every start. */
  readonly floatAccount?: string | undefined;
  /** Routes whose body limit is not the node's default (BODY_BYTES_MAX); enforced while the body streams in. */
  readonly bodyLimits?: readonly RouteBodyLimit[] | undefined;
  /**
   * True when the scheme settles on an Ethereum chain: the node then opens its chain (the embedded
   * anvil, or the endpoint the operator named) before `prepare`, as `services.chain`. A node whose
   * schemes all leave it unset starts no chain.
   */
  readonly usesChain?: boolean | undefined;
  /**
   * Settlement parts the scheme's routes submit to `services.settleQueue` (a node started with
   * `--nats`), by kind: the handler settles a part in one transaction under its idempotency record
   * and answers as a route would. Workers in the node's process call it for the parts of their shards.
   */
  settleHandlers?(services: IssuerServices): ReadonlyMap<string, SettleHandler>;
  /**
   * What the scheme does where a crossing of one of its kinds (sent with `receipt: true` in its
   * reference) is credited, in the receiver's transaction (a node with shard databases).
   */
  readonly crossingReceipts?: ReadonlyMap<string, CrossingReceipt> | undefined;
  /**
   * Asked before the node's ledger is first spread over shard databases: why the scheme's records
   * in the home database could not follow (tokens that would be left where no shard finds them),
   * or undefined when nothing stands in the way. A reason stops the start.
   */
  shardingRefusal?(home: Queryable): Promise<string | undefined>;
  /** Runs once at every start, after the migrations, the float account and the chain. */
  prepare?(services: IssuerServices): Promise<void>;
  /** What GET /v1/info shows under `schemes.{name}` (a contract's address, say); asked at every request. */
  info?(services: IssuerServices): SchemeInfo | Promise<SchemeInfo>;
  /** Its part of GET /v1/audit (outside the ledger's transaction: it reads what the scheme keeps elsewhere). */
  audit?(services: IssuerServices): Promise<SchemeAudit>;
  /** What the node knows the scheme's devices hold, for the audit's exposure check (inside its transaction). */
  holdings?: HoldingsReader | undefined;
  /**
   * The operator revokes `keyId`, a key the scheme registered outside the shared `devices` and
   * `users` tables (DOT-M's wallet and user keys). Answers null when the key is not the scheme's.
   */
  revokeKey?(tx: TransactionHandle, services: IssuerServices, keyId: string, reason: string): Promise<SchemeRevocation | null>;
  /**
   * The operator settles what a revoked device of the scheme provably still held and did not
   * spend: it goes back to the device's account holder, once. Answers the stored answer of the
   * operator's request, or null when `keyId` is not the scheme's.
   */
  settleRemainder?(tx: TransactionHandle, services: IssuerServices, keyId: string): Promise<StoredResponse | null>;
  /**
   * At the payer's bank: judges a claim another intermediary presented through the central bank
   * against one of this node's devices, with every check the scheme makes for its own customers
   * (double spend, rollback, revocation, replay), in the caller's transaction. On acceptance the
   * scheme pays the claim's amount from its offline float into `payTo` (the node's reserve at the
   * central bank, whence the central bank moves it to the payee's bank) and records the payment
   * as settled; a refusal keeps what it recorded as evidence (a fraud case) and answers a stable
   * code. A scheme without it has every claim against it refused.
   */
  judgeInterbankClaim?(tx: TransactionHandle, services: IssuerServices, claim: InterbankClaim, payTo: string): Promise<InterbankJudgement>;
  /**
   * At an intermediary: the scheme's public parameters that other banks' wallets need to take its
   * customers' money offline (the keys its coins, tokens or blocks are signed under), in the
   * scheme's own encoding (at most 16 KiB), or undefined for none yet. The node signs it with its
   * intermediary key and publishes it through the central bank's directory whenever it changes;
   * other banks read it with `peerPublications` and serve it at `GET /v1/interbank/peers`.
   */
  publication?(services: IssuerServices): Promise<Uint8Array | undefined>;
  register(app: OpenAPIHono<IssuerEnv>, services: IssuerServices): void;
}
