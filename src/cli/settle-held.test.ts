/**
 * `tally settle held` and `tally settle release` against a real NATS JetStream server: a part whose
 * handler fails on every delivery is held, listed by the CLI (text and --json), released by its id
 * and then settled once; a held crossing between a node's databases is listed with its amount and
 * released to its receiver's subject; bad usage exits 2 naming the flag; a folder without a node, and a node
 * that never settled through NATS, exit 1 with their codes.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { cliOf, killChildren } from './e2e-process.ts';
import { currency } from '../core/amount.ts';
import { toHex } from '../core/bytes.ts';
import { closeTestTemplates, testBackends } from '../issuer/db/test-databases.ts';
import { ISSUER_MIGRATIONS_DIR, loadMigrations, migrate } from '../issuer/db/migrate.ts';
import { loadOrCreateIdentity } from '../issuer/identity/node-identity.ts';
import { withIdempotency } from '../issuer/ledger/idempotency.ts';
import { openSettleIntake, settlePartId, startSettleWorkers, type SettleHandler } from '../issuer/queue/settle-queue.ts';
import { deleteTestStream, testNatsUrl } from '../issuer/queue/test-nats.ts';
import { holdCrossing } from '../issuer/queue/settle-held.ts';
import { connect } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, RetentionPolicy, StorageType } from '@nats-io/jetstream';
import { keyId } from '../pki/key-id.ts';
import { nodeProvider } from '../providers/node-crypto.ts';

const folders: string[] = [];
after(async () => {
  killChildren();
  await closeTestTemplates();
  for (const folder of folders) await rm(folder, { recursive: true, force: true });
});

const env = { ...process.env, TALLY_NODE_PASSPHRASE: 'settle held test passphrase', TALLY_NATS: '' };
const { run } = cliOf(env);

async function nodeFolder(): Promise<{ dir: string; name: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'tally-held-'));
  folders.push(dir);
  const identity = await loadOrCreateIdentity({ dataDir: dir, passphrase: env.TALLY_NODE_PASSPHRASE, provider: nodeProvider, currency: currency('EUR', 2), now: Date.now() });
  return { dir, name: toHex(keyId(identity.issuerNode.certificate.body.subject)).slice(0, 16) };
}

describe('tally settle held and release', () => {
  test('a part held after failing on every delivery is listed, released by its id, and settled once', async () => {
    const { dir, name } = await nodeFolder();
    const backend = testBackends()[0];
    assert.ok(backend !== undefined);
    const database = await backend.open();
    await migrate(database.db, await loadMigrations(ISSUER_MIGRATIONS_DIR));
    const intake = await openSettleIntake({ url: testNatsUrl(), shards: 2, name, db: database.db, ackWaitMs: 1_000 });
    let broken = true;
    let runs = 0;
    const handler: SettleHandler = async (work) => {
      runs++;
      if (broken) throw new Error('a part this version cannot settle');
      const result = await withIdempotency(database.db, { scope: work.kind, key: work.id, requestHash: work.requestHash }, async () => ({ status: 200, body: { settled: true } }));
      assert.ok(result.ok);
      return result.response;
    };
    const workers = await startSettleWorkers(intake, new Map([['test/part', handler]]), { deliveriesMax: 2 });
    try {
      const nats = ['--data', dir, '--nats', testNatsUrl()];
      const none = await run(['settle', 'held', ...nats]);
      assert.equal(none.code, 0, none.stderr);
      assert.equal(none.stdout, 'No settlement part is held.\n');

      const part = { kind: 'test/part', id: settlePartId('cli', 'held'), shard: 1, requestHash: new Uint8Array(32).fill(7), body: { n: 1 } };
      const [answer] = await intake.submit([part], 20_000);
      assert.equal((answer?.body as { error: { code: string } }).error.code, 'SETTLE_HELD');

      const listed = await run(['settle', 'held', ...nats, '--json']);
      assert.equal(listed.code, 0, listed.stderr);
      const held = JSON.parse(listed.stdout) as { stream: string; held: Array<{ id: string; kind: string; shard: number; deliveries: number; error: string }> };
      assert.equal(held.stream, `TALLY_HELD_${name}`);
      assert.deepEqual(held.held.map((h) => [h.id, h.kind, h.shard, h.deliveries, h.error]), [[part.id, 'test/part', 1, 2, 'a part this version cannot settle']]);
      const text = await run(['settle', 'held', ...nats]);
      assert.match(text.stdout, new RegExp(`^1 settlement part is held .*\\n  ${part.id}  test/part, shard 1, 2 tries, held .*\\n    last error: a part this version cannot settle\\n$`));

      // A part that is not held: nothing released, exit 1, named.
      const other = settlePartId('cli', 'never');
      const missing = await run(['settle', 'release', ...nats, '--part', other, '--json']);
      assert.equal(missing.code, 1, missing.stderr);
      assert.deepEqual(JSON.parse(missing.stdout), { stream: `TALLY_HELD_${name}`, released: [], releasedCrossings: [], notHeld: [other] });

      broken = false;
      const released = await run(['settle', 'release', ...nats, '--part', part.id]);
      assert.equal(released.code, 0, released.stderr);
      assert.equal(released.stdout, `Released 1 part to their shards: ${part.id}\n`);
      const [settled] = await intake.submit([part], 20_000);
      assert.deepEqual(settled, { status: 200, body: { settled: true } });
      assert.equal(runs, 3, 'two failed deliveries, then settled once after the release');
      const after = await run(['settle', 'held', ...nats, '--json']);
      assert.deepEqual((JSON.parse(after.stdout) as { held: unknown[]; crossings: unknown[] }), { stream: `TALLY_HELD_${name}`, held: [], crossings: [] });
    } finally {
      await workers.stop();
      await intake.close();
      await deleteTestStream(testNatsUrl(), intake.stream);
      await database.dispose();
    }
  });

  test('a crossing held after its receipt failed on every delivery is listed with its amount, and released to its receiver by FROM:ID', async () => {
    const { dir, name } = await nodeFolder();
    const connection = await connect({ servers: testNatsUrl() });
    const manager = await jetstreamManager(connection);
    // The node's settlement stream (so the commands know the node) and its credit stream, as a node on shard databases has them.
    const backend = testBackends()[0];
    assert.ok(backend !== undefined);
    const database = await backend.open();
    const intake = await openSettleIntake({ url: testNatsUrl(), shards: 1, name, db: database.db });
    const creditStream = `TALLY_CREDIT_${name}`;
    await manager.streams.add({ name: creditStream, subjects: [`tally.${name}.credit.>`], retention: RetentionPolicy.Workqueue, storage: StorageType.File });
    try {
      const nats = ['--data', dir, '--nats', testNatsUrl()];
      const crossing = { from: 'home', to: 's1', id: 'test-charge/ab12:3', kind: 'test-charge', amount: '1250' };
      await holdCrossing(jetstream(connection), `tally.${name}`, crossing, 20, 'no part of this charge at home');
      const listed = await run(['settle', 'held', ...nats, '--json']);
      assert.equal(listed.code, 0, listed.stderr);
      const shown = JSON.parse(listed.stdout) as { held: unknown[]; crossings: Array<Record<string, unknown>> };
      assert.deepEqual(shown.held, []);
      assert.deepEqual(shown.crossings.map(({ heldAt: _heldAt, ...rest }) => rest), [{ ...crossing, amount: '12.50', currency: 'EUR', deliveries: 20, error: 'no part of this charge at home' }]);
      const text = await run(['settle', 'held', ...nats]);
      assert.match(text.stdout, /^No settlement part is held\.\n1 crossing is held, in flight in the audit .*\n  home:test-charge\/ab12:3  to s1, test-charge, 12\.50 EUR, 20 tries, held .*\n    last error: no part of this charge at home\n$/);

      const wrong = await run(['settle', 'release', ...nats, '--crossing', 's1:test-charge/ab12:3', '--json']);
      assert.equal(wrong.code, 1, 'sent by home, not by s1');
      assert.deepEqual(JSON.parse(wrong.stdout), { stream: `TALLY_HELD_${name}`, released: [], releasedCrossings: [], notHeld: ['s1:test-charge/ab12:3'] });
      assert.equal((await manager.streams.info(creditStream)).state.messages, 0);

      const released = await run(['settle', 'release', ...nats, '--crossing', 'home:test-charge/ab12:3']);
      assert.equal(released.code, 0, released.stderr);
      assert.equal(released.stdout, 'Released 1 crossing to their receivers: home:test-charge/ab12:3\n');
      const sent = await manager.streams.getMessage(creditStream, { last_by_subj: `tally.${name}.credit.s1` });
      assert.deepEqual(sent?.json(), { from: 'home', id: 'test-charge/ab12:3' }, 'published to its receiver, naming only its sender and id');
      const after = await run(['settle', 'held', ...nats, '--json']);
      assert.deepEqual((JSON.parse(after.stdout) as { crossings: unknown[] }).crossings, []);
    } finally {
      await manager.streams.delete(creditStream).catch(() => false);
      await intake.close();
      await deleteTestStream(testNatsUrl(), intake.stream);
      await database.dispose();
      await connection.close();
    }
  });

  test('bad usage exits 2 naming the flag; no node, or a node that never settled through NATS, exits 1 with the code', async () => {
    for (const [args, flag] of [
      [['held'], '--nats'],
      [['held', '--nats', 'http://127.0.0.1:4222'], '--nats'],
      [['release', '--nats', testNatsUrl()], '--part'],
      [['release', '--nats', testNatsUrl(), '--all', '--part', 'a'.repeat(64)], '--part'],
      [['release', '--nats', testNatsUrl(), '--part', 'xyz'], '--part'],
      [['release', '--nats', testNatsUrl(), '--crossing', 'nowhere:id'], '--crossing'],
      [['release', '--nats', testNatsUrl(), '--crossing', 'home:'], '--crossing'],
    ] as const) {
      const r = await run(['settle', ...args]);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, new RegExp(`^tally settle ${args[0]}: ${flag}: `), r.stderr);
    }
    const empty = await mkdtemp(join(tmpdir(), 'tally-held-empty-'));
    folders.push(empty);
    const noNode = await run(['settle', 'held', '--data', empty, '--nats', testNatsUrl()]);
    assert.equal(noNode.code, 1, noNode.stderr);
    assert.match(noNode.stderr, /holds no node.*\[NODE_NOT_FOUND\]\n$/);
    const { dir } = await nodeFolder();
    const noStream = await run(['settle', 'release', '--data', dir, '--nats', testNatsUrl(), '--all']);
    assert.equal(noStream.code, 1, noStream.stderr);
    assert.match(noStream.stderr, /never settled through it.*\[SETTLE_SHARDS_MISMATCH\]\n$/);
  });
});
