/**
 * Real PostgreSQL databases for shard tests (not exported from any index): each is a database of
 * its own on the test server, made by CREATE DATABASE and dropped (connections and all) after.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';

/** Databases made for one test. */
export interface TestShardDatabases {
  /** Connection URLs, one a database. */
  readonly urls: readonly string[];
  readonly names: readonly string[];
  /** Refuses new connections to database `i` and ends the open ones: the database is down. */
  takeDown(i: number): Promise<void>;
  /** Lets database `i` take connections again. */
  bringUp(i: number): Promise<void>;
  drop(): Promise<void>;
}

async function admin<T>(url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** Makes `count` empty databases on the server of `url` (its database is only where the admin connects). */
export async function createTestDatabases(url: string, count: number): Promise<TestShardDatabases> {
  const tag = randomBytes(4).toString('hex');
  const names = Array.from({ length: count }, (_, i) => `tally_shard_${tag}_${i}`);
  await admin(url, async (client) => {
    for (const name of names) await client.query(`CREATE DATABASE ${name}`);
  });
  const urls = names.map((name) => {
    const u = new URL(url);
    u.pathname = `/${name}`;
    return u.toString();
  });
  const name = (i: number): string => {
    const n = names[i];
    if (n === undefined) throw new RangeError(`database ${i}: there are ${count}`);
    return n;
  };
  return {
    urls,
    names,
    takeDown: (i) =>
      admin(url, async (client) => {
        await client.query(`ALTER DATABASE ${name(i)} ALLOW_CONNECTIONS false`);
        await client.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [name(i)]);
      }),
    bringUp: (i) => admin(url, async (client) => void (await client.query(`ALTER DATABASE ${name(i)} ALLOW_CONNECTIONS true`))),
    drop: () =>
      admin(url, async (client) => {
        for (const n of names) await client.query(`DROP DATABASE IF EXISTS ${n} WITH (FORCE)`);
      }),
  };
}
