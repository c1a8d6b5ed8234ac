/** What the HTTP handlers of the issuer node work with. */
import type { Currency } from '../../core/amount.ts';
import { TallyError } from '../../core/errors.ts';
import type { CryptoProvider } from '../../core/crypto/suite.ts';
import type { ChainService } from '../chain/service.ts';
import type { Database } from '../db/database.ts';
import type { NodeIdentity } from '../identity/node-identity.ts';
import type { Ledger } from '../ledger/ledger.ts';
import type { CentralBankLink } from '../tier/link.ts';
import type { SignaturePool } from '../signature-pool.ts';
import type { SettleQueue } from '../queue/settle-queue.ts';
import type { ShardDatabases } from '../shards/shard-databases.ts';
import type { CreditRelay } from '../queue/credit-relay.ts';

/** The issuance account of the node's currency. */
export const ISSUANCE_ACCOUNT = 'cb:issuance';
/**
 * At an intermediary enrolled at a central bank: the central-bank money it holds in its reserve
 * there and has not yet put into customers' accounts (its `cb:issuance` mirrors the whole reserve).
 */
export const RESERVE_ACCOUNT = 'cb:reserve';
/** Largest request body accepted, in bytes. */
export const BODY_BYTES_MAX = 64 * 1024;

/** Risk limits written into every device certificate and enforced by the trusted app. */
export interface DeviceLimits {
  /** The most a device may hold offline, in minor units of the node's currency. */
  readonly holdingLimitMinor: bigint;
  /** The most payments a device may make offline between two syncs. */
  readonly offlinePaymentsMax: number;
}

/** The node's services, shared by every request. */
export interface IssuerServices {
  readonly db: Database;
  readonly ledger: Ledger;
  readonly identity: NodeIdentity;
  readonly provider: CryptoProvider;
  readonly currency: Currency;
  readonly deviceLimits: DeviceLimits;
  /** Unix milliseconds; injected so tests can move time. */
  now(): number;
  /**
   * The source of the random identifiers the node makes (a DOT-M block's serial); injected so that
   * the simulator's node draws them from its seed. Absent: the system's random generator.
   */
  readonly identifiers?: ((length: number) => Uint8Array) | undefined;
  /** Ed25519 signature checks in worker threads, one per core (started on first use). */
  readonly signatures: SignaturePool;
  /** The node's Ethereum chain: present when a scheme it serves declares `usesChain` (or an endpoint was named). */
  readonly chain?: ChainService | undefined;
  /** An intermediary's link to its central bank. */
  readonly tier?: CentralBankLink | undefined;
  /** The settlement intake on NATS JetStream, sharded (a node started with `--nats`); routes settle inline without it. */
  readonly settleQueue?: SettleQueue | undefined;
  /** The node's shard databases, when it has them (`--shard-database`): the audit covers them all. */
  readonly shardLedgers?: ShardDatabases | undefined;
  /** With shard databases: credits between them delivered at once after their commit (the relay's stream is the backup). */
  readonly crossings?: Pick<CreditRelay, 'deliver' | 'held'> | undefined;
}

/**
 * The node's chain, for a scheme that declared `usesChain`.
 * @throws TallyError ASSERTION_FAILED when the node has no chain: the scheme did not declare `usesChain`
 */
export function requireChain(services: IssuerServices, scheme: string): ChainService {
  if (services.chain === undefined) throw new TallyError('ASSERTION_FAILED', `scheme ${scheme} uses the chain but its node part does not declare usesChain: true`, {});
  return services.chain;
}

/** The identity of the caller of a request, set by the auth middleware. */
export type Caller =
  | { readonly kind: 'operator' }
  | { readonly kind: 'user'; readonly keyId: string; readonly accountId: string }
  /** At a central bank: an intermediary it certified (revoked ones too: they may still read and report). */
  | { readonly kind: 'intermediary'; readonly keyId: string; readonly revoked: boolean }
  | { readonly kind: 'anonymous' };

/** Hono variables of a request. */
export interface IssuerEnv {
  Variables: {
    caller: Caller;
    rawBody: Uint8Array;
    /** SHA-256 of rawBody. */
    bodyHash: Uint8Array;
    /** The body parsed as JSON once, by the middleware; undefined for an empty body. */
    jsonBody: unknown;
  };
}
