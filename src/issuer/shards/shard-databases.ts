/**
 * A node's ledger in several PostgreSQL databases: its own (the home) and one per shard. Each is
 * migrated with the node's migrations and marked, on first open, with the node's key id and its
 * place ('home', 's0', 's1', ...); every later open checks the mark, so that a database given for
 * another shard, or another node's, is refused before anything is written to it. Every place has
 * a clearing account for every other (ledger/cross-shard.ts).
 */
import { randomBytes } from 'node:crypto';
import { TallyError } from '../../core/errors.ts';
import type { Database } from '../db/database.ts';
import { migrate, migrateIssuer, type Migration } from '../db/migrate.ts';
import { openPostgres } from '../db/postgres.ts';
import { openClearing, partiesOf, type Party } from '../ledger/cross-shard.ts';

/** Most shard databases a node has. */
export const SHARD_DATABASES_MAX = 64;

/** The databases of one node, by place. */
export interface ShardDatabases {
  readonly nodeKeyId: string;
  readonly currency: string;
  /** 'home' first, then 's0' … in order. */
  readonly parties: readonly Party[];
  db(party: Party): Database;
  /** Closes the shard databases it opened (the home database is the caller's). */
  close(): Promise<void>;
}

/** What to open. */
export interface ShardDatabasesOptions {
  /** The node's own database, already migrated. */
  readonly home: Database;
  /** One connection URL per shard, in shard order. */
  readonly urls: readonly string[];
  /** The issuer node's key id (hex): what the databases are marked with. */
  readonly nodeKeyId: string;
  readonly currency: string;
  readonly poolSize?: number | undefined;
  /** The migrations of every shard database: the node's own list (the issuer's and its schemes'); the issuer's alone by default. */
  readonly migrations?: readonly Migration[] | undefined;
  /** Opens a shard's database; openPostgres by default (tests give a schema of their own). */
  readonly open?: ((url: string, shard: number) => Promise<Database>) | undefined;
}

/**
 * Marks `db` as `party` of the node (with a new random database id) when it is not marked yet, or
 * checks its mark; answers its database id.
 * @throws TallyError SHARD_DATABASE_MISMATCH for a mark of another node, place or count
 */
export async function claimPlace(db: Database, nodeKeyId: string, party: Party, shards: number): Promise<string> {
  return db.transaction(async (tx) => {
    await tx.query('INSERT INTO shard_self (node_key_id, party, shards, database_id) VALUES ($1, $2, $3, $4) ON CONFLICT (one) DO NOTHING', [nodeKeyId, party, shards, randomBytes(16).toString('hex')]);
    const found = await tx.query<Mark>('SELECT node_key_id, party, shards, database_id FROM shard_self');
    const mark = found.rows[0];
    if (mark === undefined) throw new Error('shard_self: the mark just written is missing');
    checkMark(mark, nodeKeyId, party, shards);
    return mark.database_id;
  });
}

interface Mark {
  node_key_id: string;
  party: string;
  shards: number;
  database_id: string;
}

function checkMark(mark: Mark, nodeKeyId: string, party: Party, shards: number): void {
  if (mark.node_key_id !== nodeKeyId) {
    throw new TallyError('SHARD_DATABASE_MISMATCH', `this database belongs to node ${mark.node_key_id.slice(0, 16)}…, not to ${nodeKeyId.slice(0, 16)}…`, { expected: party, found: mark.party });
  }
  if (mark.party !== party) {
    throw new TallyError('SHARD_DATABASE_MISMATCH', `this database is the node's ${mark.party}, not its ${party}: give the shard URLs in the order they were first given`, { expected: party, found: mark.party });
  }
  if (mark.shards !== shards) {
    throw new TallyError('SHARD_DATABASE_MISMATCH', `the node's ledger was spread over ${mark.shards} shard databases, not ${shards}: moving accounts between shards is not built`, { expected: party, found: mark.party });
  }
}

/**
 * Checks a shard's database against the home's record of it, without writing to it: a shard the
 * node has used must come back as the same database (not an empty one, not another).
 */
async function checkKnown(db: Database, nodeKeyId: string, party: Party, shards: number, known: string): Promise<void> {
  const table = await db.query<{ present: boolean }>(`SELECT to_regclass('shard_self') IS NOT NULL AS present`);
  const mark = table.rows[0]?.present === true ? (await db.query<Mark>('SELECT node_key_id, party, shards, database_id FROM shard_self')).rows[0] : undefined;
  if (mark === undefined) {
    throw new TallyError('SHARD_DATABASE_MISMATCH', `this database is empty, but the node has kept ${party}'s part of its ledger in database ${known.slice(0, 8)}…: give that database's URL (or restore it)`, { expected: party, found: 'empty' });
  }
  checkMark(mark, nodeKeyId, party, shards);
  if (mark.database_id !== known) {
    throw new TallyError('SHARD_DATABASE_MISMATCH', `this database is a ${party} made as ${mark.database_id.slice(0, 8)}…, but the node's ${party} is ${known.slice(0, 8)}…: give that database's URL`, { expected: party, found: mark.party });
  }
}

/**
 * Opens, migrates and checks each shard's database, and opens every place's clearing accounts.
 * @throws TallyError SHARD_DATABASE_MISMATCH for a database marked for another place, count or node
 */
export async function openShardDatabases(options: ShardDatabasesOptions): Promise<ShardDatabases> {
  const shards = options.urls.length;
  if (shards < 1 || shards > SHARD_DATABASES_MAX) throw new RangeError(`urls: expected 1 to ${SHARD_DATABASES_MAX} shard databases, got ${shards}`);
  if (new Set(options.urls).size !== shards) throw new RangeError('urls: each shard needs a database of its own');
  const parties = partiesOf(shards);
  const open = options.open ?? ((url: string) => openPostgres(url, { poolSize: options.poolSize }));
  const opened: Database[] = [];
  try {
    for (const [k, url] of options.urls.entries()) opened.push(await open(url, k));
    await claimPlace(options.home, options.nodeKeyId, 'home', shards);
    const recorded = new Map((await options.home.query<{ party: string; database_id: string }>('SELECT party, database_id FROM shard_places')).rows.map((r) => [r.party, r.database_id]));
    for (const [k, db] of opened.entries()) {
      const party = parties[k + 1] as Party;
      const known = recorded.get(party);
      if (known !== undefined) await checkKnown(db, options.nodeKeyId, party, shards, known);
      if (options.migrations === undefined) await migrateIssuer(db);
      else await migrate(db, options.migrations);
      const id = await claimPlace(db, options.nodeKeyId, party, shards);
      if (known === undefined) {
        await options.home.query('INSERT INTO shard_places (party, database_id) VALUES ($1, $2) ON CONFLICT (party) DO NOTHING', [party, id]);
        const now = await options.home.query<{ database_id: string }>('SELECT database_id FROM shard_places WHERE party = $1', [party]);
        // Another process recorded another database for this place at the same moment.
        if (now.rows[0]?.database_id !== id) throw new TallyError('SHARD_DATABASE_MISMATCH', `the node recorded another database for ${party} meanwhile`, { expected: party, found: party });
      }
    }
    for (const [i, db] of [options.home, ...opened].entries()) {
      const party = parties[i] as Party;
      await db.transaction((tx) => openClearing(tx, parties.filter((p) => p !== party), options.currency));
    }
  } catch (e) {
    for (const db of opened) await db.close().catch(() => undefined);
    throw e;
  }
  const byParty = new Map<Party, Database>(parties.map((p, i) => [p, i === 0 ? options.home : (opened[i - 1] as Database)]));
  return {
    nodeKeyId: options.nodeKeyId,
    currency: options.currency,
    parties,
    db(party) {
      const db = byParty.get(party);
      if (db === undefined) throw new RangeError(`no database for ${party}: the node has ${shards} shards`);
      return db;
    },
    async close() {
      for (const db of opened) await db.close().catch(() => undefined);
    },
  };
}
