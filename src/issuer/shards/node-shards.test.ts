/**
 * `tally node start --shard-database`: a node process whose ledger spans its own PostgreSQL
 * database and two shard databases (each a database of its own on the test server). Its credit
 * relay publishes what a crossing left unpublished, its receivers credit it, `tally audit` covers
 * every database; a database given for another shard stops the start; bad usage is refused.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { cliOf, killChildren, startNode } from '../../cli/e2e-process.ts';
import { openPostgres } from '../db/postgres.ts';
import { ensureAccount } from '../ledger/account.ts';
import { sendAcross } from '../ledger/cross-shard.ts';
import { mint } from '../ledger/mint.ts';
import { deleteTestStream, testNatsUrl } from '../queue/test-nats.ts';
import { createTestDatabases } from './test-shards.ts';

after(() => killChildren());

const postgresUrl = process.env['TEST_DATABASE_URL'];
const skip = postgresUrl === undefined || postgresUrl === '' ? 'TEST_DATABASE_URL is not set: shard databases are PostgreSQL databases' : false;
const natsUrl = testNatsUrl();
const passphrase = 'shard databases test passphrase';
const env = { ...process.env, TALLY_NODE_PASSPHRASE: passphrase, TALLY_NATS: '', DATABASE_URL: '', TALLY_OPERATOR_TOKEN: '' };
const { ok, run } = cliOf(env);

describe('a node with shard databases', { skip }, () => {
  test('started on three databases: credits between them published by its relay and received by it, the audit over all three balanced, a swapped database and a start without them refused', { timeout: 180_000 }, async () => {
    const made = await createTestDatabases(postgresUrl as string, 3);
    const dataDir = await mkdtemp(join(tmpdir(), 'tally-shard-dbs-'));
    const [home, s0, s1] = made.urls as [string, string, string];
    const args = ['--database-url', home, '--nats', natsUrl, '--shards', '2', '--schemes', 'ops'];
    let node = await startNode(dataDir, 0, { passphrase, args: [...args, '--shard-database', s0, '--shard-database', s1] });
    const streams: string[] = [];
    try {
      const info = (await (await fetch(`${node.url}/v1/info`)).json()) as { settle: { stream: string; shards: number; databases: number } };
      assert.deepEqual({ shards: info.settle.shards, databases: info.settle.databases }, { shards: 2, databases: 2 });
      streams.push(info.settle.stream, info.settle.stream.replace('TALLY_SETTLE_', 'TALLY_CREDIT_'));
      // A credit from the node's database to an account of shard 1, sent as a scheme's settlement
      // would send it, in a transaction of its own, and never published: the node's relay finds it.
      const homeDb = await openPostgres(home, { poolSize: 1 });
      const shardDb = await openPostgres(s1, { poolSize: 1 });
      try {
        await homeDb.transaction(async (tx) => {
          await ensureAccount(tx, { id: 'user:sender', kind: 'user', currency: 'EUR' });
          await mint(tx, { idempotencyKey: 'shard-test-mint', account: 'user:sender', amount: 10_00n });
        });
        await shardDb.transaction((tx) => ensureAccount(tx, { id: 'user:receiver', kind: 'user', currency: 'EUR' }));
        const sent = await homeDb.transaction((tx) => sendAcross(tx, 'home', { id: 'node-test-1', to: 's1', debit: 'user:sender', credit: 'user:receiver', amount: 4_25n, kind: 'test-credit' }));
        assert.ok(sent.ok);
        const start = Date.now();
        let balance = 0n;
        while (balance !== 4_25n && Date.now() - start < 30_000) {
          balance = (await shardDb.query<{ balance: bigint }>(`SELECT balance FROM accounts WHERE id = 'user:receiver'`)).rows[0]?.balance ?? 0n;
          if (balance !== 4_25n) await new Promise((done) => setTimeout(done, 100));
        }
        assert.equal(balance, 4_25n, 'the node published the crossing and credited it on shard 1');
      } finally {
        await homeDb.close();
        await shardDb.close();
      }
      const audit = await ok('audit', '--node', node.url, '--data', dataDir);
      const shards = audit['shards'] as { balanced: boolean; places: Array<{ place: string; online: string; clearing: string }>; inFlight: unknown[]; totals: { issued: string; online: string; clearing: string } };
      assert.equal(audit['balanced'], true, JSON.stringify(audit));
      assert.equal(shards.balanced, true);
      assert.deepEqual(shards.places.map((p) => [p.place, p.online, p.clearing]), [['home', '5.75', '4.25'], ['s0', '0.00', '0.00'], ['s1', '4.25', '-4.25']]);
      assert.deepEqual(shards.inFlight, []);
      assert.deepEqual([shards.totals.issued, shards.totals.online, shards.totals.clearing], ['10.00', '10.00', '0.00']);
      const text = await run(['audit', '--node', node.url, '--data', dataDir]);
      assert.match(text.stdout, /Shard databases: balanced over 3 databases\.\n {2}home: online 5\.75 \+ offline float 0\.00 \+ clearing 4\.25 EUR\n/, text.stdout);
      assert.match(text.stdout, /nothing in flight between them/);
      assert.equal(await node.stop(), 0);
      // Started again with its shard databases swapped: refused before it listens, nothing written.
      const swapped = await run(['node', 'start', '--port', '0', '--data', dataDir, ...args, '--shard-database', s1, '--shard-database', s0]);
      assert.equal(swapped.code, 1, swapped.stderr);
      assert.match(swapped.stderr, /this database is the node's s1, not its s0.*\[SHARD_DATABASE_MISMATCH\]/, swapped.stderr);
      // Started on its home database alone, with or without the intake: refused, naming what it needs.
      for (const without of [['--database-url', home], ['--database-url', home, '--nats', natsUrl, '--shards', '2']]) {
        const alone = await run(['node', 'start', '--port', '0', '--data', dataDir, ...without, '--schemes', 'ops']);
        assert.equal(alone.code, 1, alone.stderr);
        assert.match(alone.stderr, /spread over 2 shard databases \(s0, s1\): start it with them.*\[SHARD_DATABASE_MISMATCH\]/, alone.stderr);
      }
      // And in their order again, as it was.
      node = await startNode(dataDir, 0, { passphrase, args: [...args, '--shard-database', s0, '--shard-database', s1] });
      const again = await ok('audit', '--node', node.url, '--data', dataDir);
      assert.equal(again['balanced'], true);
    } finally {
      await node.stop();
      for (const stream of streams) await deleteTestStream(natsUrl, stream);
      await rm(dataDir, { recursive: true, force: true });
      await made.drop();
    }
  });

  test('bad usage is refused before anything starts', async () => {
    for (const [args, message] of [
      [['--shard-database', 'postgres://127.0.0.1/x'], /--shard-database: credits between shard databases travel through NATS/],
      [['--nats', natsUrl, '--shard-database', 'postgres://127.0.0.1/x'], /--shard-database: the node's own database must be PostgreSQL too/],
      [['--nats', natsUrl, '--database-url', 'postgres://127.0.0.1/h', '--shards', '2', '--shard-database', 'postgres://127.0.0.1/x'], /--shard-database: 1 given for 2 shards/],
      [['--nats', natsUrl, '--database-url', 'postgres://127.0.0.1/h', '--shard-database', 'mysql://127.0.0.1/x'], /--shard-database: expected a postgres:\/\/ URL/],
    ] as const) {
      const r = await run(['node', 'start', '--data', '/nonexistent/tally-shards', ...args]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, message);
    }
  });
});
