/**
 * `bench crossings`: credits between a node's databases (ledger/cross-shard.ts) on this machine's
 * PostgreSQL and NATS JetStream. A home database and two shard databases (databases of their own
 * on the server), the credit relay and its receivers in this process. Rows, in one run:
 * - the floor: transfers within one database, as many concurrent senders;
 * - crossings from the home to the shards, alternating: each is a transaction at the sender
 *   (debit, outbox row), a publish (the stream's receipt awaited, then the row marked) and a
 *   transaction at the receiver (inbox row, credit), timed from the first send until the last
 *   credit is in.
 * The audit over the three databases is balanced at the end, with nothing in flight.
 */
import { performance } from 'node:perf_hooks';
import { randomBytes } from 'node:crypto';
import type { Database } from '../../issuer/db/database.ts';
import { migrateIssuer } from '../../issuer/db/migrate.ts';
import { openPostgres } from '../../issuer/db/postgres.ts';
import { ensureAccount } from '../../issuer/ledger/account.ts';
import { sendAcross, type Party } from '../../issuer/ledger/cross-shard.ts';
import { mint } from '../../issuer/ledger/mint.ts';
import { transfer } from '../../issuer/ledger/transfer.ts';
import { openCreditRelay } from '../../issuer/queue/credit-relay.ts';
import { deleteTestStream, testNatsUrl } from '../../issuer/queue/test-nats.ts';
import { auditShards } from '../../issuer/shards/audit.ts';
import { openShardDatabases } from '../../issuer/shards/shard-databases.ts';
import { createTestDatabases } from '../../issuer/shards/test-shards.ts';
import type { BenchPlugin } from './plugin.ts';
import { summarise, type Latency } from './stats.ts';

/** Options of the crossings benchmark. */
export interface CrossingsBenchOptions {
  /** Transfers, and crossings, timed per row. */
  count: number;
  /** Concurrent senders. */
  senders: number;
  postgresUrl: string | undefined;
  natsUrl: string;
  progress: (line: string) => void;
}

/** One row. */
export interface CrossingsRow {
  what: 'transfers within one database' | 'crossings between databases';
  count: number;
  perSecond: number;
  /** The sender's part: its transaction, and for a crossing the publish. */
  latency: Latency;
}

/** What `bench crossings` measured. */
export interface CrossingsReport {
  rows: CrossingsRow[];
  senders: number;
  /** Floor throughput over crossing throughput. */
  floorRatio: number | null;
  skipped: string[];
}

async function timed(count: number, senders: number, one: (i: number, sender: number) => Promise<void>): Promise<{ elapsedMs: number; samples: number[] }> {
  const samples: number[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: senders }, async (_unused, sender) => {
      while (next < count) {
        const i = next++;
        const t = performance.now();
        await one(i, sender);
        samples.push(performance.now() - t);
      }
    }),
  );
  return { elapsedMs: performance.now() - started, samples };
}

/** Runs `bench crossings`. */
export async function benchCrossings(options: CrossingsBenchOptions): Promise<CrossingsReport> {
  if (options.postgresUrl === undefined) return { rows: [], senders: options.senders, floorRatio: null, skipped: ['set DATABASE_URL or TEST_DATABASE_URL to a PostgreSQL URL: shard databases are PostgreSQL databases'] };
  const made = await createTestDatabases(options.postgresUrl, 3);
  let home: Database | undefined;
  try {
    home = await openPostgres(made.urls[0] as string, { poolSize: options.senders + 4 });
    await migrateIssuer(home);
    const nodeKeyId = randomBytes(32).toString('hex');
    const shards = await openShardDatabases({ home, urls: made.urls.slice(1), nodeKeyId, currency: 'EUR', poolSize: options.senders + 4 });
    const relay = await openCreditRelay({ url: options.natsUrl, name: nodeKeyId.slice(0, 16), shards });
    const receivers = await relay.receive(['s0', 's1']);
    try {
      const db = home;
      await db.transaction(async (tx) => {
        await ensureAccount(tx, { id: 'cb:issuance', kind: 'issuance', currency: 'EUR' });
        for (let s = 0; s < options.senders; s++) {
          await ensureAccount(tx, { id: `user:sender-${s}`, kind: 'user', currency: 'EUR' });
          await ensureAccount(tx, { id: `user:local-${s}`, kind: 'user', currency: 'EUR' });
          await mint(tx, { idempotencyKey: `bench-mint-${s}`, account: `user:sender-${s}`, amount: 1_000_000_00n });
        }
      });
      for (const party of ['s0', 's1'] as const) {
        await shards.db(party).transaction(async (tx) => {
          for (let s = 0; s < options.senders; s++) await ensureAccount(tx, { id: `user:receiver-${s}`, kind: 'user', currency: 'EUR' });
        });
      }
      options.progress(`${options.count} transfers within the home database, ${options.senders} senders`);
      const local = await timed(options.count, options.senders, async (i, s) => {
        const moved = await db.transaction((tx) => transfer(tx, { idempotencyKey: `bench-local-${i}`, debit: `user:sender-${s}`, credit: `user:local-${s}`, amount: 1n, kind: 'bench' }));
        if (!moved.ok) throw new Error(moved.message);
      });
      options.progress(`${options.count} crossings from the home to two shard databases, ${options.senders} senders`);
      const before = receivers.received;
      const started = performance.now();
      const sent = await timed(options.count, options.senders, async (i, s) => {
        const to: Party = i % 2 === 0 ? 's0' : 's1';
        const result = await db.transaction((tx) => sendAcross(tx, 'home', { id: `bench-${i}`, to, debit: `user:sender-${s}`, credit: `user:receiver-${s}`, amount: 1n, kind: 'bench' }));
        if (!result.ok) throw new Error(result.message);
        await relay.publish('home', [result.entry]);
      });
      while (receivers.received - before < options.count) {
        if (performance.now() - started > 600_000) throw new Error(`only ${receivers.received - before} of ${options.count} crossings received in 10 minutes`);
        await new Promise((done) => setTimeout(done, 5));
      }
      const crossingMs = performance.now() - started;
      const audit = await auditShards(shards);
      if (!audit.balanced || audit.inFlight.length > 0) throw new Error(`the audit over shards is not balanced after the benchmark: ${audit.problems.join('; ')}`);
      const rows: CrossingsRow[] = [
        { what: 'transfers within one database', count: local.samples.length, perSecond: (local.samples.length * 1000) / local.elapsedMs, latency: summarise(local.samples) },
        { what: 'crossings between databases', count: sent.samples.length, perSecond: (sent.samples.length * 1000) / crossingMs, latency: summarise(sent.samples) },
      ];
      return { rows, senders: options.senders, floorRatio: (rows[0] as CrossingsRow).perSecond / (rows[1] as CrossingsRow).perSecond, skipped: [] };
    } finally {
      await receivers.stop();
      await relay.close();
      await deleteTestStream(options.natsUrl, relay.stream);
      await shards.close();
    }
  } finally {
    await home?.close();
    await made.drop();
  }
}

/** The report as a Markdown table. */
export function formatCrossingsReport(report: CrossingsReport): string {
  const lines = [
    `Credits between a node's databases on PostgreSQL and NATS JetStream, ${report.senders} concurrent senders (the sender's latency: its transaction, and for a crossing the publish)`,
    '',
    '| what | count | per second | sender p50 ms | sender p99 ms |',
    '|---|---:|---:|---:|---:|',
  ];
  for (const row of report.rows) lines.push(`| ${row.what} | ${row.count} | ${row.perSecond.toFixed(0)} | ${row.latency.p50Ms.toFixed(2)} | ${row.latency.p99Ms.toFixed(2)} |`);
  if (report.floorRatio !== null) lines.push('', `Transfers within one database / crossings: ${report.floorRatio.toFixed(2)}x (a crossing is a transaction in each database and a message between them)`);
  for (const reason of report.skipped) lines.push('', `Skipped: ${reason}`);
  return lines.join('\n');
}

/** `npm run bench -- crossings`. */
export const crossingsBench: BenchPlugin<Pick<CrossingsBenchOptions, 'count' | 'senders'>, CrossingsReport> = {
  name: 'crossings',
  paper: 'Tally',
  reproduces: "credits between a node's shard databases",
  parameters: { quick: { count: 500, senders: 8 }, full: { count: 5000, senders: 16 } },
  async run(harness, parameters) {
    const report = await benchCrossings({ ...parameters, postgresUrl: harness.postgresUrl, natsUrl: testNatsUrl(), progress: harness.progress });
    return { report, text: formatCrossingsReport(report), ratios: report.floorRatio === null ? [] : [{ what: 'transfers within one database / crossings', value: report.floorRatio }] };
  },
};
