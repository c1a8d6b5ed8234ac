/**
 * OPERA on shard databases with a `tally settle worker` receiving for the shards (the node with
 * external workers receives for its own database only): a charge part that its route could not
 * deliver (its shard refused connections) is received by the worker, with its tokens on the shard,
 * once the shard is back. The worker opens the shard databases with the node's whole schema and
 * runs OPERA's receipt; without it, the part would never be credited. Real databases (the home one
 * too, so that the worker reaches it by URL) and real NATS; the audit over every database at the end.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { toBase64url } from '../../core/bytes.ts';
import { encodeCbor } from '../../core/cbor.ts';
import { openPostgres } from '../../issuer/db/postgres.ts';
import type { TestBackend } from '../../issuer/db/test-databases.ts';
import { EUR, expectError } from '../../issuer/http/test-harness.ts';
import { testNatsUrl } from '../../issuer/queue/test-nats.ts';
import { startSettleWorker } from '../../issuer/settle-worker.ts';
import { createTestDatabases } from '../../issuer/shards/test-shards.ts';
import { nodeProvider } from '../../providers/node-crypto.ts';
import { operaNode } from './node-fixtures.ts';

const postgresUrl = process.env['TEST_DATABASE_URL'];
const skip = postgresUrl === undefined || postgresUrl === '' ? 'TEST_DATABASE_URL is not set: shard databases are PostgreSQL databases' : false;
const natsUrl = testNatsUrl();
const logged: string[] = [];

describe('OPERA on shard databases with an external worker', { skip }, () => {
  test('a charge part left undelivered is received by the settle worker with its tokens, and the tokens deposit', { timeout: 180_000 }, async () => {
    const made = await createTestDatabases(postgresUrl as string, 3);
    const [homeUrl, ...shardUrls] = made.urls as [string, ...string[]];
    // The home as a database of its own, which the worker reaches by its URL.
    const backend: TestBackend = {
      kind: 'postgres',
      skip: undefined,
      async open() {
        const db = await openPostgres(homeUrl, { poolSize: 20 });
        return { db, dispose: () => db.close() };
      },
    };
    const n = await operaNode(backend, {}, { natsUrl, shards: 2, shardDatabases: shardUrls, externalWorkers: true });
    let worker: Awaited<ReturnType<typeof startSettleWorker>> | undefined;
    try {
      worker = await startSettleWorker({
        dataDir: n.h.dataDir,
        databaseUrl: homeUrl,
        natsUrl,
        shards: 2,
        shardDatabases: shardUrls,
        provider: nodeProvider,
        currency: EUR,
        schemes: [n.part],
        env: { TALLY_NODE_PASSPHRASE: 'test passphrase' },
        now: n.h.now,
        log: (line) => logged.push(line),
      });
      const [alice, bob] = [await n.client(), await n.client()];
      await n.mint(alice, '10.00');
      const shards = n.h.node.services.shardLedgers;
      assert.ok(shards !== undefined);
      const issued = async () => {
        let total = 0n;
        for (const place of ['s0', 's1'] as const) {
          const [row] = (await shards.db(place).query<{ v: string }>("SELECT coalesce(sum(value), 0)::text AS v FROM opera_shard_tokens WHERE state = 'issued'")).rows;
          total += BigInt(row?.v ?? '0');
        }
        return total;
      };
      // Shard 0 refuses connections: the route delivers shard 1's part and answers 503.
      const request = n.chargeRequest(alice, [[10n, 24]]);
      await made.takeDown(1);
      await expectError(await n.send(alice, '/v1/opera/charge', { device: alice.deviceId, request: toBase64url(encodeCbor(request)) }), 503, 'SHARD_UNAVAILABLE');
      const waiting = await shards.db('home').query<{ id: string }>("SELECT id FROM shard_outbox WHERE to_party = 's0' AND delivered_at IS NULL");
      assert.equal(waiting.rows.length, 1, "shard 0's part is not received yet");
      await made.bringUp(1);
      // The worker's receiver for shard 0 takes the part from the stream, with its tokens.
      const start = Date.now();
      while ((await issued()) < 240n && Date.now() - start < 60_000) await new Promise((done) => setTimeout(done, 200));
      assert.equal(await issued(), 240n, `the worker received the part (${logged.slice(-3).join(' | ')})`);
      const done = await n.charge(alice, request);
      assert.equal(done.res.status, 200, await done.res.clone().text());
      assert.equal(await n.h.balance(alice), '7.60', 'charged once');
      const spent = await n.deposit(bob, done.tokens);
      assert.deepEqual([spent.credited, await n.h.balance(bob)], ['2.40', '2.40']);
      const audit = (await (await n.h.send('GET', '/v1/audit', { headers: n.h.operator })).json()) as {
        balanced: boolean;
        shards: { problems: string[]; inFlight: unknown[]; places: Array<{ place: string; exposure: Array<{ scheme: string; difference: string }> }> };
      };
      assert.deepEqual(audit.shards.problems, []);
      assert.equal(audit.balanced, true);
      assert.deepEqual(audit.shards.inFlight, []);
      for (const place of audit.shards.places) assert.deepEqual(place.exposure.map((e) => [e.scheme, e.difference]), [['opera', '0.00']], place.place);
    } finally {
      await made.bringUp(1).catch(() => undefined);
      await worker?.stop();
      await n.h.close();
      await made.drop();
    }
  });
});
