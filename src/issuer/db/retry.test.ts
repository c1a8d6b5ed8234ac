/**
 * Which errors say a database did not answer (a request may be sent again) and which are the
 * request's or the code's: told apart on errors the real driver raises.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { test } from 'node:test';
import pg from 'pg';
import { TallyError } from '../../core/errors.ts';
import { createTestDatabases } from '../shards/test-shards.ts';
import { TEST_DATABASE_URL_VARIABLE } from './test-databases.ts';
import { isUnavailable } from './retry.ts';

const url = process.env[TEST_DATABASE_URL_VARIABLE] || undefined;

/** What connecting to `connectionString` and running `sql` throws. */
async function failure(connectionString: string, sql = 'SELECT 1'): Promise<unknown> {
  const client = new pg.Client({ connectionString, connectionTimeoutMillis: 2_000 });
  try {
    await client.connect();
    await client.query(sql);
  } catch (e) {
    return e;
  } finally {
    await client.end().catch(() => undefined);
  }
  throw new Error(`${sql} did not fail`);
}

test('a refused connection is unavailable; errors that are not about the connection are not', async () => {
  // A port that was just free: nothing listens there.
  const port = await new Promise<number>((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address !== null ? address.port : 0));
    });
  });
  assert.equal(isUnavailable(await failure(`postgres://postgres@127.0.0.1:${port}/test`)), true);
  for (const e of [new Error('boom'), new TallyError('ASSERTION_FAILED', 'a bug', {}), new RangeError('bad'), 'text', null, undefined, { code: 'EACCES' }]) {
    assert.equal(isUnavailable(e), false, String(e));
  }
});

test('a database not taking connections or shut down under a client is unavailable; a bad statement or a broken constraint is not', { skip: url === undefined ? `${TEST_DATABASE_URL_VARIABLE} is not set` : false }, async () => {
  const made = await createTestDatabases(url as string, 1);
  try {
    const target = made.urls[0] as string;
    assert.equal(isUnavailable(await failure(target, 'SELEC 1')), false, 'a syntax error');
    assert.equal(isUnavailable(await failure(target, 'SELECT 1/0')), false, 'a division by zero');
    assert.equal(isUnavailable(await failure(target, 'CREATE TEMP TABLE t (k int PRIMARY KEY); INSERT INTO t VALUES (1), (1)')), false, 'a unique violation');
    // A client connected when the database goes down: its session is ended (SQLSTATE 57P01).
    const open = new pg.Client({ connectionString: target });
    await open.connect();
    const ended = new Promise<unknown>((resolve) => open.on('error', resolve));
    await made.takeDown(0);
    const inSession = await open.query('SELECT 1').then(
      () => new Error('the query ran on a database taken down'),
      (e: unknown) => e,
    );
    assert.equal(isUnavailable(inSession), true, String(inSession));
    assert.equal(isUnavailable(await ended), true);
    await open.end().catch(() => undefined);
    // A new connection to it is refused (55000, "not currently accepting connections").
    const refused = await failure(target);
    assert.equal(isUnavailable(refused), true, String(refused));
  } finally {
    await made.drop();
  }
});
