/**
 * Opens what an issuer node runs on: its identity (keys and certificates in the data folder), its
 * database (embedded PGlite in the data folder, or PostgreSQL), the schema and the ledger, and,
 * when a scheme settles on one, its Ethereum chain (an embedded anvil in the data folder, or
 * another JSON-RPC endpoint).
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Currency } from '../core/amount.ts';
import type { CryptoProvider, SuiteName } from '../core/crypto/suite.ts';
import type { Database } from './db/database.ts';
import { ISSUER_MIGRATIONS_DIR, loadMigrations, migrate } from './db/migrate.ts';
import type { SchemeModule } from './http/scheme-module.ts';
import { openPglite } from './db/pglite.ts';
import { openPostgres } from './db/postgres.ts';
import { loadOrCreateIdentity } from './identity/node-identity.ts';
import { resolvePassphrase } from './identity/passphrase.ts';
import { lockDataFolder } from './data-lock.ts';
import { ensureAccount } from './ledger/account.ts';
import { Ledger } from './ledger/ledger.ts';
import { createSignaturePool } from './signature-pool.ts';
import { ISSUANCE_ACCOUNT, RESERVE_ACCOUNT, type DeviceLimits, type IssuerServices } from './http/context.ts';
import { CentralBankLink } from './tier/link.ts';
import { finishEnrolment } from './tier/enrol.ts';
import { TallyError } from '../core/errors.ts';
import { openChainService, type ChainService } from './chain/service.ts';
import { seedRevocationList } from './registry/revocations.ts';
import { openSettleIntake, type SettleIntake } from './queue/settle-queue.ts';
import { openCreditRelay, type CrossingReceipt, type CreditRelay } from './queue/credit-relay.ts';
import { openShardDatabases, type ShardDatabases } from './shards/shard-databases.ts';
import { toHex } from '../core/bytes.ts';
import { keyId } from '../pki/key-id.ts';

/**
 * Device limits when the operator sets none: 300 major units held offline and 50 offline payments
 * between syncs, small-value limits of the kind offline-CBDC proposals discuss.
 */
export function defaultDeviceLimits(currency: Currency): DeviceLimits {
  return { holdingLimitMinor: 300n * 10n ** BigInt(currency.decimals), offlinePaymentsMax: 50 };
}

/** How to open a node. */
export interface OpenNodeOptions {
  dataDir: string;
  /** PostgreSQL URL; embedded PGlite in `<dataDir>/pglite` when absent. */
  databaseUrl?: string | undefined;
  /** An already open database (tests); wins over `databaseUrl`. */
  db?: Database | undefined;
  provider: CryptoProvider;
  currency: Currency;
  /** The suite of a new identity's keys (the deployment's choice, e.g. SM2); Ed25519 by default. */
  suite?: SuiteName | undefined;
  /** The role of a new identity: `standalone` (default) or `central-bank`; an intermediary's comes from its enrolment. */
  role?: 'standalone' | 'central-bank' | undefined;
  /** Limits for device certificates; DEFAULT_DEVICE_LIMITS of the currency when absent. */
  deviceLimits?: DeviceLimits | undefined;
  /** The schemes whose tables and accounts the node keeps. */
  schemes?: readonly SchemeModule[] | undefined;
  /** The node's Ethereum chain (see chainWanted). */
  chain?: NodeChainOptions | undefined;
  /** The settlement intake on NATS JetStream: its server and how many shards (services.settleQueue). */
  settle?: {
    readonly natsUrl: string;
    readonly shards: number;
    readonly ackWaitMs?: number | undefined;
    /** One PostgreSQL database per shard (services.shardLedgers), with credits between them carried on the same NATS server. */
    readonly shardDatabases?: readonly string[] | undefined;
  } | undefined;
  env?: Readonly<Record<string, string | undefined>> | undefined;
  now?: (() => number) | undefined;
  /** Where the node's random identifiers come from (services.identifiers); the system's generator by default. */
  identifiers?: ((length: number) => Uint8Array) | undefined;
  log?: ((line: string) => void) | undefined;
}

/** Where a node's Ethereum chain is. */
export interface NodeChainOptions {
  /** Another EVM JSON-RPC endpoint; the embedded anvil in `<dataDir>/chain` when absent. */
  rpcUrl?: string | undefined;
  /** A contract deployment another node made on that chain, for the schemes to join instead of deploying their own. */
  contract?: `0x${string}` | undefined;
}

/**
 * True when the node opens its chain: some scheme it serves uses one, or the operator named an
 * endpoint (checked at start, so that a wrong URL fails at once). No anvil is ever started for
 * schemes that do not use a chain.
 */
export function chainWanted(schemes: readonly SchemeModule[], chain: NodeChainOptions | undefined): boolean {
  return schemes.some((scheme) => scheme.usesChain === true) || chain?.rpcUrl !== undefined;
}

/** The schemes' receipts of crossings, by kind. */
export function crossingReceipts(schemes: readonly SchemeModule[]): Map<string, CrossingReceipt> {
  return new Map(schemes.flatMap((scheme) => [...(scheme.crossingReceipts ?? [])]));
}

/**
 * A ledger once spread over shard databases lives there too (tokens, floats, clearing accounts,
 * crossings in flight): the home alone would judge and audit a part of it.
 * @throws TallyError SHARD_DATABASE_MISMATCH when the home names shard databases
 */
async function refuseWithoutShards(db: Database): Promise<void> {
  const { rows } = await db.query<{ party: string }>('SELECT party FROM shard_places ORDER BY party');
  if (rows.length === 0) return;
  throw new TallyError(
    'SHARD_DATABASE_MISMATCH',
    `this node's ledger is spread over ${rows.length} shard databases (${rows.map((r) => r.party).join(', ')}): start it with them (--nats URL --shards ${rows.length} and one --shard-database URL each, in their first order)`,
    { expected: `${rows.length} shard databases`, found: 'none' },
  );
}

/**
 * Before a ledger is first spread over shard databases (the home names none yet): what a scheme
 * keeps at home that would be stranded there.
 * @throws TallyError SHARD_DATABASE_MISMATCH with the scheme's reason
 */
async function refuseFirstSharding(db: Database, schemes: readonly SchemeModule[]): Promise<void> {
  const { rows } = await db.query<{ party: string }>('SELECT party FROM shard_places LIMIT 1');
  if (rows.length > 0) return;
  for (const scheme of schemes) {
    const reason = await scheme.shardingRefusal?.(db);
    if (reason !== undefined) {
      throw new TallyError('SHARD_DATABASE_MISMATCH', `this node's ledger cannot move to shard databases: ${reason}`, { expected: 'a home database without records that stay at home', found: scheme.name });
    }
  }
}

/** The services of a node, plus what its first start printed once. */
export interface OpenNode {
  readonly services: IssuerServices;
  readonly created: boolean;
  readonly warnings: readonly string[];
  /** The settlement intake, when `settle` was given: what the node's workers consume. */
  readonly intake?: SettleIntake | undefined;
  /** The relay of credits between the node's databases, when it has shard databases. */
  readonly credits?: CreditRelay | undefined;
  close(): Promise<void>;
}

/**
 * Opens (creating on first start) the identity, the database and the schema of a node, holding
 * the data folder's lock until close(), which also stops the chain.
 * @throws TallyError DATA_FOLDER_LOCKED when another node runs on the folder; from the identity (wrong passphrase, other currency),
 *   the chain (CHAIN_UNREACHABLE, CHAIN_START_FAILED, STATE_CORRUPT) or the migrations
 */
export async function openNode(options: OpenNodeOptions): Promise<OpenNode> {
  const now = options.now ?? (() => Date.now());
  await mkdir(options.dataDir, { recursive: true, mode: 0o700 });
  // First of all: one node per data folder, or two first starts would make two identities and
  // two nodes would each keep their own view of the embedded database.
  const lock = await lockDataFolder(options.dataDir);
  let db: Database;
  const warnings: string[] = [];
  let identity: Awaited<ReturnType<typeof loadOrCreateIdentity>>;
  let chain: ChainService | undefined;
  try {
    const passphrase = await resolvePassphrase({ dataDir: options.dataDir, env: options.env });
    // An intermediary enrolling at a central bank becomes a node once its central bank approved.
    await finishEnrolment({ dataDir: options.dataDir, passphrase: passphrase.passphrase, provider: options.provider, now });
    identity = await loadOrCreateIdentity({ dataDir: options.dataDir, passphrase, provider: options.provider, currency: options.currency, suite: options.suite, role: options.role, now: now(), log: options.log });
    if (options.role !== undefined && identity.role !== options.role) {
      throw new TallyError('ROLE_MISMATCH', `the data folder ${options.dataDir} holds ${identity.role === 'intermediary' ? 'an intermediary' : `a ${identity.role} node`}, not a ${options.role} one`, { role: identity.role });
    }
    if (passphrase.warning !== undefined) warnings.push(passphrase.warning);
    // The chain before the database: a wrong endpoint fails the start at once.
    if (chainWanted(options.schemes ?? [], options.chain)) {
      const opened = await openChainService({ dataDir: options.dataDir, passphrase: passphrase.passphrase, provider: options.provider, rpcUrl: options.chain?.rpcUrl, contract: options.chain?.contract, log: options.log });
      chain = opened.service;
      warnings.push(...opened.warnings);
    }
    db = options.db ?? (options.databaseUrl !== undefined ? await openPostgres(options.databaseUrl) : await openPglite(join(options.dataDir, 'pglite')));
  } catch (e) {
    try {
      await chain?.close();
    } finally {
      await lock.release();
    }
    throw e;
  }
  const signatures = createSignaturePool();
  let intake: SettleIntake | undefined;
  let shardLedgers: ShardDatabases | undefined;
  let credits: CreditRelay | undefined;
  const closeAll = async () => {
    try {
      await credits?.close();
      await shardLedgers?.close();
      await intake?.close();
      await signatures.close();
      await chain?.close();
    } finally {
      try {
        await db.close();
      } finally {
        await lock.release();
      }
    }
  };
  try {
    const migrations = [...(await loadMigrations(ISSUER_MIGRATIONS_DIR))];
    for (const scheme of options.schemes ?? []) if (scheme.migrationsDir !== undefined) migrations.push(...(await loadMigrations(scheme.migrationsDir)));
    await migrate(db, migrations.sort((a, b) => a.number - b.number));
    const issuance = await db.transaction((tx) => ensureAccount(tx, { id: ISSUANCE_ACCOUNT, kind: 'issuance', currency: options.currency.code }));
    if (!issuance.ok) throw new Error(`cannot open the issuance account: ${issuance.message}`);
    await seedRevocationList(db, identity.revocationList);
    if (identity.role === 'intermediary') {
      // What the intermediary holds at its central bank and has not put into customers' accounts.
      const reserve = await db.transaction((tx) => ensureAccount(tx, { id: RESERVE_ACCOUNT, kind: 'reserve', currency: options.currency.code }));
      if (!reserve.ok) throw new Error(`cannot open the reserve account: ${reserve.message}`);
    }
    // Named after the node's key, so that nodes sharing a NATS server keep their own streams.
    if (options.settle !== undefined) {
      const nodeKeyId = toHex(keyId(identity.issuerNode.certificate.body.subject));
      intake = await openSettleIntake({ url: options.settle.natsUrl, shards: options.settle.shards, ackWaitMs: options.settle.ackWaitMs, name: nodeKeyId.slice(0, 16), db, log: options.log });
      const urls = options.settle.shardDatabases;
      if (urls !== undefined && urls.length > 0) {
        if (db.kind !== 'postgres') throw new RangeError('shard databases are PostgreSQL databases: start the node on PostgreSQL (--database-url) too');
        if (urls.length !== options.settle.shards) throw new RangeError(`${urls.length} shard databases for ${options.settle.shards} shards: give one database per shard`);
        await refuseFirstSharding(db, options.schemes ?? []);
        shardLedgers = await openShardDatabases({ home: db, urls, nodeKeyId, currency: options.currency.code, migrations });
        // Each scheme's float is in every place: a shard holds the offline value of what lives on it.
        for (const scheme of options.schemes ?? []) {
          const float = scheme.floatAccount;
          if (float === undefined) continue;
          for (const place of shardLedgers.parties.slice(1)) {
            const opened = await shardLedgers.db(place).transaction((tx) => ensureAccount(tx, { id: float, kind: 'offline-float', currency: options.currency.code }));
            if (!opened.ok) throw new Error(`cannot open ${float} in ${place} for scheme ${scheme.name}: ${opened.message}`);
          }
        }
        credits = await openCreditRelay({ url: options.settle.natsUrl, name: nodeKeyId.slice(0, 16), shards: shardLedgers, receipts: crossingReceipts(options.schemes ?? []), log: options.log === undefined ? undefined : (line, fields) => options.log?.(`${line} ${JSON.stringify(fields ?? {})}`) });
      }
    }
    if (shardLedgers === undefined) await refuseWithoutShards(db);
  } catch (e) {
    await closeAll();
    throw e;
  }
  const services: IssuerServices = {
    db,
    ledger: new Ledger(db),
    identity,
    provider: options.provider,
    currency: options.currency,
    deviceLimits: options.deviceLimits ?? defaultDeviceLimits(options.currency),
    now,
    signatures,
    ...(options.identifiers === undefined ? {} : { identifiers: options.identifiers }),
    ...(chain === undefined ? {} : { chain }),
    ...(intake === undefined ? {} : { settleQueue: intake }),
    ...(shardLedgers === undefined ? {} : { shardLedgers }),
    ...(credits === undefined ? {} : { crossings: credits }),
    ...(identity.role === 'intermediary' ? { tier: new CentralBankLink({ db, identity, provider: options.provider, currency: options.currency, now, schemes: options.schemes }) } : {}),
  };
  services.tier?.attach(services);
  try {
    for (const scheme of options.schemes ?? []) {
      const float = scheme.floatAccount;
      if (float !== undefined) {
        // The scheme declares where its offline value sits; the node opens that account for it.
        const opened = await db.transaction((tx) => ensureAccount(tx, { id: float, kind: 'offline-float', currency: options.currency.code }));
        if (!opened.ok) throw new Error(`cannot open ${float} for scheme ${scheme.name}: ${opened.message}`);
      }
      await scheme.prepare?.(services);
    }
  } catch (e) {
    await closeAll();
    throw e;
  }
  return { services, created: identity.created, warnings, intake, credits, close: closeAll };
}
