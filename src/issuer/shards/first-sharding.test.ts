/**
 * The first start of a node on shard databases asks each scheme whether what it keeps at home can
 * follow; a reason stops the start before any shard database is marked. Once the ledger is spread,
 * a start without its shard databases is refused too (node-shards.test.ts, through `tally`).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { currency } from '../../core/amount.ts';
import { isTallyError } from '../../core/errors.ts';
import { nodeProvider } from '../../providers/node-crypto.ts';
import { openPostgres } from '../db/postgres.ts';
import type { SchemeModule } from '../http/scheme-module.ts';
import { deleteTestStream, testNatsUrl } from '../queue/test-nats.ts';
import { openNode } from '../services.ts';
import { createTestDatabases } from './test-shards.ts';

const postgresUrl = process.env['TEST_DATABASE_URL'];
const skip = postgresUrl === undefined || postgresUrl === '' ? 'TEST_DATABASE_URL is not set: shard databases are PostgreSQL databases' : false;

test("a scheme's reason stops the first start on shard databases, and is not asked once the ledger is spread", { skip, timeout: 120_000 }, async () => {
  const made = await createTestDatabases(postgresUrl as string, 3);
  const dataDir = await mkdtemp(join(tmpdir(), 'tally-first-sharding-'));
  const [home, s0, s1] = made.urls as [string, string, string];
  let reason: string | undefined = 'its tokens at home would be stranded';
  let asked = 0;
  const toy: SchemeModule = {
    name: 'toy',
    async shardingRefusal() {
      asked++;
      return reason;
    },
    register: () => undefined,
  };
  const streams = new Set<string>();
  const start = async () => {
    const node = await openNode({
      dataDir,
      db: await openPostgres(home, { poolSize: 2 }),
      provider: nodeProvider,
      currency: currency('EUR', 2),
      env: { TALLY_NODE_PASSPHRASE: 'first sharding passphrase' },
      schemes: [toy],
      settle: { natsUrl: testNatsUrl(), shards: 2, shardDatabases: [s0, s1] },
    });
    if (node.intake !== undefined) streams.add(node.intake.stream);
    if (node.credits !== undefined) streams.add(node.credits.stream);
    return node;
  };
  try {
    await assert.rejects(start(), (e: unknown) => isTallyError(e, 'SHARD_DATABASE_MISMATCH') && /cannot move to shard databases: its tokens at home would be stranded/.test(e.message));
    assert.equal(asked, 1);
    // Nothing was marked: the shard databases are as they were made.
    const shard = await openPostgres(s0, { poolSize: 1 });
    try {
      const { rows } = await shard.query<{ n: string }>("SELECT count(*)::text AS n FROM information_schema.tables WHERE table_name = 'shard_self'");
      assert.equal(rows[0]?.n, '0', 'the refused start wrote nothing to a shard database');
    } finally {
      await shard.close();
    }
    reason = undefined;
    const first = await start();
    assert.equal(asked, 2);
    await first.close();
    // Spread now: the scheme is not asked again, whatever it would say.
    reason = 'asked too late';
    const again = await start();
    assert.equal(asked, 2);
    await again.close();
  } finally {
    for (const stream of streams) await deleteTestStream(testNatsUrl(), stream);
    await rm(dataDir, { recursive: true, force: true });
    await made.drop();
  }
});
