/**
 * A settlement worker in a process of its own (`tally settle worker`): it settles the parts a node
 * started with `--nats` publishes, for the shards it is given, beside the node's own workers or
 * instead of them. It keeps no state: it reads the node's identity from its data folder (the
 * certificates judge the payments' chains; it takes no lock and writes nothing there), works on
 * the node's PostgreSQL database, and consumes the node's stream on NATS. Any number may run, on
 * any machine that reaches the database, the NATS server and a copy of the identity folder; the
 * workers of one shard share its consumer, so JetStream gives each part to one of them.
 */
import { crossingReceipts, defaultDeviceLimits } from './services.ts';
import { ISSUER_MIGRATIONS_DIR, loadMigrations } from './db/migrate.ts';
import { toHex } from '../core/bytes.ts';
import type { Currency } from '../core/amount.ts';
import type { CryptoProvider } from '../core/crypto/suite.ts';
import { TallyError } from '../core/errors.ts';
import { keyId } from '../pki/key-id.ts';
import { openPostgres } from './db/postgres.ts';
import type { Database } from './db/database.ts';
import type { IssuerServices } from './http/context.ts';
import type { SchemeModule } from './http/scheme-module.ts';
import { hasIdentity } from './identity/layout.ts';
import { loadIdentity } from './identity/load-identity.ts';
import { resolvePassphrase } from './identity/passphrase.ts';
import { Ledger } from './ledger/ledger.ts';
import { openSettleIntake, startSettleWorkers, type SettleHandler, type SettleIntake } from './queue/settle-queue.ts';
import { createSignaturePool } from './signature-pool.ts';
import { openCreditRelay, type CreditReceivers, type CreditRelay } from './queue/credit-relay.ts';
import { openShardDatabases, type ShardDatabases } from './shards/shard-databases.ts';

/** Options of startSettleWorker. */
export interface SettleWorkerOptions {
  /** The node's data folder: its identity is read from there. */
  readonly dataDir: string;
  /** The node's PostgreSQL database (an embedded PGlite is one process's: workers need PostgreSQL). */
  readonly databaseUrl: string;
  readonly natsUrl: string;
  /** The node's shard count (its `--shards`), checked against the stream's; 0 takes the stream's. */
  readonly shards: number;
  /** The shards this worker takes; every one by default. */
  readonly only?: readonly number[] | undefined;
  /** How long a part may stay unacknowledged with a worker (SETTLE_ACK_WAIT_MS by default). */
  readonly ackWaitMs?: number | undefined;
  /** The node's shard databases, as it was started with them (`--shard-database`): the worker receives the credits addressed to its shards'. */
  readonly shardDatabases?: readonly string[] | undefined;
  readonly provider: CryptoProvider;
  readonly currency: Currency;
  /** The schemes the node serves: their settlement handlers. */
  readonly schemes: readonly SchemeModule[];
  readonly env?: Readonly<Record<string, string | undefined>> | undefined;
  /** Unix milliseconds; injected so tests can move time, as openNode's. */
  readonly now?: (() => number) | undefined;
  readonly log?: ((line: string, fields?: Record<string, unknown>) => void) | undefined;
}

/** A running worker. */
export interface SettleWorker {
  readonly stream: string;
  readonly shards: readonly number[];
  /** Parts settled since the start. */
  readonly settled: number;
  /** Stops taking parts, finishes those in hand, and closes the connections. */
  stop(): Promise<void>;
}

/**
 * Starts a worker.
 * @throws TallyError NODE_NOT_FOUND when the folder holds no node, or the database has not been
 *   set up by one; NATS_UNREACHABLE; SETTLE_SHARDS_MISMATCH when the node has no stream yet, or
 *   settles in another number of shards; from the identity (wrong passphrase, other currency)
 */
export async function startSettleWorker(options: SettleWorkerOptions): Promise<SettleWorker> {
  if (!(await hasIdentity(options.dataDir))) {
    throw new TallyError('NODE_NOT_FOUND', `${options.dataDir} holds no node: give the data folder of the node the worker settles for (tally node start --data)`, { dataDir: options.dataDir });
  }
  const passphrase = await resolvePassphrase({ dataDir: options.dataDir, env: options.env });
  const identity = await loadIdentity({ dataDir: options.dataDir, passphrase: passphrase.passphrase, provider: options.provider, currency: options.currency, now: (options.now ?? Date.now)(), log: (line) => options.log?.(line) });
  const db = await openPostgres(options.databaseUrl);
  let intake: SettleIntake | undefined;
  let ledgers: ShardDatabases | undefined;
  let credits: CreditRelay | undefined;
  const signatures = createSignaturePool();
  const closeAll = async () => {
    await credits?.close();
    await ledgers?.close();
    await intake?.close();
    await signatures.close();
    await db.close();
  };
  try {
    await requireNodeSchema(db);
    intake = await openSettleIntake({ url: options.natsUrl, shards: options.shards, ackWaitMs: options.ackWaitMs, role: 'worker', name: toHex(keyId(identity.issuerNode.certificate.body.subject)).slice(0, 16), db });
    const services: IssuerServices = {
      db,
      ledger: new Ledger(db),
      identity: { ...identity, created: false, generatedPassphrase: passphrase.generated },
      provider: options.provider,
      currency: options.currency,
      deviceLimits: defaultDeviceLimits(options.currency),
      now: options.now ?? (() => Date.now()),
      signatures,
      settleQueue: intake,
    };
    const handlers = new Map<string, SettleHandler>();
    for (const scheme of options.schemes) for (const [kind, handler] of scheme.settleHandlers?.(services) ?? []) handlers.set(kind, handler);
    const count = intake.shards;
    for (const k of options.only ?? []) {
      if (!Number.isInteger(k) || k < 0 || k >= count) throw new TallyError('SETTLE_SHARDS_MISMATCH', `shard ${k}: the node settles in ${count} shards, 0 to ${count - 1}`, { stream: intake.stream, shards: k, recorded: count });
    }
    const shards = options.only ?? Array.from({ length: count }, (_unused, k) => k);
    const workers = await startSettleWorkers(intake, handlers, { shards, ...(options.log === undefined ? {} : { log: options.log }) });
    let receivers: CreditReceivers | undefined;
    const urls = options.shardDatabases ?? [];
    if (urls.length > 0) {
      if (urls.length !== count) throw new TallyError('SETTLE_SHARDS_MISMATCH', `${urls.length} shard databases for ${count} shards: give the node's --shard-database URLs, in its order`, { stream: intake.stream, shards: urls.length, recorded: count });
      const nodeKeyId = toHex(keyId(identity.issuerNode.certificate.body.subject));
      // The shard databases carry the node's whole schema, its schemes' tables too, as the node made it.
      const migrations = [...(await loadMigrations(ISSUER_MIGRATIONS_DIR))];
      for (const scheme of options.schemes) if (scheme.migrationsDir !== undefined) migrations.push(...(await loadMigrations(scheme.migrationsDir)));
      ledgers = await openShardDatabases({ home: db, urls, nodeKeyId, currency: options.currency.code, migrations: migrations.sort((a, b) => a.number - b.number) });
      credits = await openCreditRelay({ url: options.natsUrl, name: nodeKeyId.slice(0, 16), shards: ledgers, receipts: crossingReceipts(options.schemes), log: options.log });
      receivers = await credits.receive(shards.map((k) => `s${k}` as const));
    }
    return {
      stream: intake.stream,
      shards,
      get settled() {
        return workers.settled;
      },
      async stop() {
        await receivers?.stop();
        await workers.stop();
        await closeAll();
      },
    };
  } catch (e) {
    await closeAll();
    throw e;
  }
}

/** The node made its tables in this database: a worker never migrates. */
async function requireNodeSchema(db: Database): Promise<void> {
  const found = await db.query<{ present: boolean }>(`SELECT to_regclass('schema_migrations') IS NOT NULL AND to_regclass('idempotency') IS NOT NULL AS present`);
  if (found.rows[0]?.present !== true) {
    throw new TallyError('NODE_NOT_FOUND', 'the database has no Tally node tables: start the node on it first (tally node start --database-url URL --nats URL)', { dataDir: '' });
  }
}
