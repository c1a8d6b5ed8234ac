/**
 * The settlement intake on a real NATS JetStream server (test-nats.ts) and a migrated database:
 * a part is settled once and answered; the same part submitted again is dropped by the stream and
 * answered from its stored answer; a handler that fails has its part delivered again; a part not
 * answered in time is answered on a later submission; a malformed part or one of an unknown kind is
 * dropped, never retried; bad options and an unreachable server are refused.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, test } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { toHex } from '../../core/bytes.ts';
import { isTallyError } from '../../core/errors.ts';
import { closeTestTemplates, testBackends } from '../db/test-databases.ts';
import { withIdempotency, type StoredResponse } from '../ledger/idempotency.ts';
import type { Database } from '../db/database.ts';
import { ISSUER_MIGRATIONS_DIR, loadMigrations, migrate } from '../db/migrate.ts';
import { openSettleIntake, retryDelayMs, settlePartId, startSettleWorkers, type SettleHandler, type SettleIntake } from './settle-queue.ts';
import type { SettlePart } from './settle-part.ts';
import { deleteTestStream, testNatsUrl } from './test-nats.ts';

after(() => closeTestTemplates());

const backend = testBackends()[0];
const hash = (text: string) => new Uint8Array(Buffer.from(settlePartId(text), 'hex'));

/**
 * An intake of its own on the test server, over a fresh database, removed at the end. The ack wait
 * is the default's third: these tests count a handler's runs, and a wait of a second let JetStream
 * deliver a part again while its handler still ran on a machine at load 12 (the heartbeat that
 * holds it off came late), which is redelivery by design and no fault of the intake.
 */
async function withIntake(shards: number, run: (intake: SettleIntake, db: Database) => Promise<void>): Promise<void> {
  assert.ok(backend !== undefined);
  const database = await backend.open();
  await migrate(database.db, await loadMigrations(ISSUER_MIGRATIONS_DIR));
  const intake = await openSettleIntake({ url: testNatsUrl(), shards, name: `test${toHex(randomBytes(6))}`, db: database.db, ackWaitMs: 10_000 });
  try {
    await run(intake, database.db);
  } finally {
    await intake.close();
    await deleteTestStream(testNatsUrl(), intake.stream);
    await database.dispose();
  }
}

/** A handler that counts its runs and stores `{ n }` under the part's idempotency record. */
function counting(db: Database, fail: (run: number) => boolean = () => false): { handler: SettleHandler; runs: () => number } {
  let runs = 0;
  return {
    runs: () => runs,
    handler: async (work) => {
      runs++;
      if (fail(runs)) throw new Error(`run ${runs} fails`);
      const result = await withIdempotency(db, { scope: work.kind, key: work.id, requestHash: work.requestHash }, async () => ({ status: 200, body: { n: (work.body as { n: number }).n, shard: work.shard } }));
      assert.ok(result.ok);
      return result.response;
    },
  };
}

const part = (intake: SettleIntake, n: number, kind = 'test/part'): SettlePart => ({ kind, id: settlePartId('test', String(n)), shard: intake.shardOf(`device-${n}`), requestHash: hash(`request-${n}`), body: { n } });

describe('settlement intake on NATS JetStream', () => {
  test('parts are settled once on their shards and answered in order; the same part again is dropped by the stream and answered from the database', async () => {
    await withIntake(3, async (intake, db) => {
      const { handler, runs } = counting(db);
      const workers = await startSettleWorkers(intake, new Map([['test/part', handler]]));
      try {
        const parts = Array.from({ length: 12 }, (_unused, n) => part(intake, n));
        assert.ok(new Set(parts.map((p) => p.shard)).size > 1, 'the keys spread over more than one shard');
        const answers = await intake.submit(parts, 20_000);
        assert.deepEqual(answers.map((a) => (a?.body as { n: number }).n), parts.map((_p, n) => n));
        assert.deepEqual(answers.map((a) => (a?.body as { shard: number }).shard), parts.map((p) => p.shard));
        assert.equal(runs(), 12);
        const again = await intake.submit(parts.slice(0, 3), 20_000);
        assert.deepEqual(again, answers.slice(0, 3));
        assert.equal(runs(), 12, 'a re-published part is not settled again');
        const info = await (await jetstreamManager(intake.connection)).streams.info(intake.stream);
        assert.equal(info.state.messages, 0, 'every part was acknowledged and left the work queue');
        assert.equal(workers.settled, 12);
      } finally {
        await workers.stop();
      }
    });
  });

  test('a handler that fails has its part delivered again; another request under a part id is a conflict', async () => {
    await withIntake(1, async (intake, db) => {
      const { handler, runs } = counting(db, (run) => run <= 2);
      const workers = await startSettleWorkers(intake, new Map([['test/part', handler]]));
      try {
        const [answer] = await intake.submit([part(intake, 7)], 20_000);
        assert.deepEqual(answer, { status: 200, body: { n: 7, shard: 0 } } satisfies StoredResponse);
        assert.equal(runs(), 3, 'two failed runs, then the one that settled it');
        const [conflict] = await intake.submit([{ ...part(intake, 7), requestHash: hash('another request') }], 20_000);
        assert.equal(conflict?.status, 409);
        // Both at once, before either is settled: the second waits on the same part and is told it is another request's.
        const [first, second] = await Promise.all([intake.submit([part(intake, 8)], 20_000), intake.submit([{ ...part(intake, 8), requestHash: hash('yet another') }], 20_000)]);
        assert.deepEqual(first[0]?.body, { n: 8, shard: 0 });
        assert.equal(second[0]?.status, 409);
      } finally {
        await workers.stop();
      }
    });
  });

  test('a part that fails on every delivery is held after the last: answered SETTLE_HELD, listed, released by the operator and then settled once', async () => {
    await withIntake(1, async (intake, db) => {
      let broken = true;
      const { handler, runs } = counting(db, () => broken);
      const logged: string[] = [];
      const workers = await startSettleWorkers(intake, new Map([['test/part', handler]]), { deliveriesMax: 3, log: (line) => logged.push(line) });
      try {
        const stuck = part(intake, 11);
        const [answer] = await intake.submit([stuck], 20_000);
        assert.equal(answer?.status, 503);
        const problem = (answer?.body as { error: { code: string; details: { part: string; deliveries: number } } }).error;
        assert.equal(problem.code, 'SETTLE_HELD');
        assert.deepEqual([problem.details.part, problem.details.deliveries], [stuck.id, 3]);
        assert.equal(runs(), 3, 'tried on each of its three deliveries, then held');
        assert.ok(logged.some((l) => /held for the operator/.test(l)), logged.join('\n'));
        const manager = await jetstreamManager(intake.connection);
        assert.equal((await manager.streams.info(intake.stream)).state.messages, 0, 'no longer delivered');
        const held = await intake.held();
        assert.deepEqual(held.map((h) => [h.id, h.kind, h.shard, h.deliveries, h.error]), [[stuck.id, 'test/part', 0, 3, 'run 3 fails']]);
        // Sent again before the operator looked: answered as held at once, tried no more.
        const [again] = await intake.submit([stuck], 5_000);
        assert.equal((again?.body as { error: { code: string } }).error.code, 'SETTLE_HELD');
        assert.equal(runs(), 3);
        // An id that is not held, or not an id at all, releases nothing.
        assert.deepEqual(await intake.release([settlePartId('never held'), 'not an id']), []);
        broken = false;
        const released = await intake.release([stuck.id]);
        assert.deepEqual(released.map((h) => h.id), [stuck.id]);
        assert.deepEqual(await intake.held(), []);
        const [settled] = await intake.submit([stuck], 20_000);
        assert.deepEqual(settled, { status: 200, body: { n: 11, shard: 0 } } satisfies StoredResponse);
        assert.equal(runs(), 4, 'settled once after its release');
        // Released again by mistake (say, after a crash between the two steps): answered from the record.
        assert.deepEqual(await intake.release('all'), []);
      } finally {
        await workers.stop();
      }
    });
  });

  test('a part whose database does not answer is delivered again past the last try, never held', async () => {
    await withIntake(1, async (intake, db) => {
      let down = 3;
      const { handler: settle } = counting(db);
      let runs = 0;
      const handler: SettleHandler = async (work) => {
        runs++;
        if (down-- > 0) throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
        return settle(work);
      };
      const workers = await startSettleWorkers(intake, new Map([['test/part', handler]]), { deliveriesMax: 2 });
      try {
        const [answer] = await intake.submit([part(intake, 12)], 30_000);
        assert.deepEqual(answer?.body, { n: 12, shard: 0 });
        assert.equal(runs, 4, 'three refused connections, then settled');
        assert.deepEqual(await intake.held(), []);
      } finally {
        await workers.stop();
      }
      await assert.rejects(startSettleWorkers(intake, new Map(), { deliveriesMax: 0 }), RangeError);
    });
  });

  test('a part not answered in time stays in the stream and is answered when submitted again', async () => {
    await withIntake(1, async (intake, db) => {
      const { handler } = counting(db);
      const [late] = await intake.submit([part(intake, 1)], 300);
      assert.equal(late, undefined, 'no worker yet: not answered');
      const workers = await startSettleWorkers(intake, new Map([['test/part', handler]]));
      try {
        const [answer] = await intake.submit([part(intake, 1)], 20_000);
        assert.deepEqual(answer?.body, { n: 1, shard: 0 });
      } finally {
        await workers.stop();
      }
    });
  });

  test('a malformed part is dropped and logged; one of a kind a worker lacks is left to a worker that has it; the shard goes on', async () => {
    await withIntake(1, async (intake, db) => {
      const { handler, runs } = counting(db);
      const logged: string[] = [];
      const workers = await startSettleWorkers(intake, new Map([['test/part', handler]]), { log: (line) => logged.push(line) });
      let others: Awaited<ReturnType<typeof startSettleWorkers>> | undefined;
      try {
        intake.connection.publish(`${intake.subjectPrefix}.work.0`, new TextEncoder().encode('{"not":"a part"'));
        await (await import('@nats-io/jetstream')).jetstream(intake.connection).publish(`${intake.subjectPrefix}.work.0`, new TextEncoder().encode(JSON.stringify({ kind: 'test/part', id: 'x' })));
        const [unknown] = await intake.submit([part(intake, 2, 'test/unknown')], 1_500);
        assert.equal(unknown, undefined, 'no worker here settles that kind');
        const [answer] = await intake.submit([part(intake, 3)], 20_000);
        assert.deepEqual(answer?.body, { n: 3, shard: 0 });
        assert.equal(runs(), 1);
        assert.ok(logged.some((l) => /malformed/.test(l)), logged.join('\n'));
        assert.ok(logged.some((l) => /no handler/.test(l)), logged.join('\n'));
        // A rolling upgrade: the old worker stops, one of a version that knows the kind takes it when it comes round again.
        await workers.stop();
        const other = counting(db);
        others = await startSettleWorkers(intake, new Map([['test/unknown', other.handler]]));
        const [late] = await intake.submit([part(intake, 2, 'test/unknown')], 20_000);
        assert.deepEqual(late?.body, { n: 2, shard: 0 });
        const manager = await jetstreamManager(intake.connection);
        let left = -1;
        for (let waited = 0; waited < 5_000 && left !== 0; waited += 100) {
          left = (await manager.streams.info(intake.stream)).state.messages;
          if (left !== 0) await new Promise((done) => setTimeout(done, 100));
        }
        assert.equal(left, 0, 'nothing is left to be delivered again');
      } finally {
        await others?.stop();
        await workers.stop();
      }
    });
  });

  test('a part settled and then its worker crashed before the acknowledgement: the redelivery is answered from the record, the work done once', async () => {
    await withIntake(1, async (intake, db) => {
      let work = 0;
      let runs = 0;
      const handler: SettleHandler = async (w) => {
        runs++;
        const result = await withIdempotency(db, { scope: w.kind, key: w.id, requestHash: w.requestHash }, async () => ({ status: 200, body: { work: ++work } }));
        assert.ok(result.ok);
        // The first run dies after its commit, before the acknowledgement.
        if (runs === 1) throw new Error('crashed after the commit');
        return result.response;
      };
      const workers = await startSettleWorkers(intake, new Map([['test/part', handler]]));
      try {
        const [answer] = await intake.submit([part(intake, 5)], 20_000);
        assert.deepEqual(answer?.body, { work: 1 });
        assert.equal(runs, 2);
        assert.equal(work, 1, 'settled once');
      } finally {
        await workers.stop();
      }
    });
  });

  test('a wake-up from anyone carries no answer: the answer is read from the database', async () => {
    await withIntake(1, async (intake, db) => {
      const forged = part(intake, 6);
      // Someone on the server wakes the node with a made-up answer before any worker settled the part.
      const forger = setInterval(() => intake.connection.publish(`${intake.subjectPrefix}.done.${forged.id}`, new TextEncoder().encode(JSON.stringify({ status: 200, body: { credited: 640 } }))), 50);
      try {
        const [unanswered] = await intake.submit([forged], 600);
        assert.equal(unanswered, undefined, 'no answer is stored, so none is given');
      } finally {
        clearInterval(forger);
      }
      const { handler } = counting(db);
      const workers = await startSettleWorkers(intake, new Map([['test/part', handler]]));
      try {
        const [answer] = await intake.submit([forged], 20_000);
        assert.deepEqual(answer?.body, { n: 6, shard: 0 });
      } finally {
        await workers.stop();
      }
    });
  });

  test('the stream records the shard count: a worker takes it or is refused another; the node changes it only while no part waits', async () => {
    await withIntake(2, async (intake, db) => {
      const name = intake.stream.replace(/^TALLY_SETTLE_/, '');
      const worker = await openSettleIntake({ url: testNatsUrl(), shards: 0, role: 'worker', name, db });
      assert.equal(worker.shards, 2);
      await worker.close();
      await assert.rejects(openSettleIntake({ url: testNatsUrl(), shards: 3, role: 'worker', name, db }), (e: unknown) => isTallyError(e, 'SETTLE_SHARDS_MISMATCH') && /--shards 2/.test(e.message));
      await assert.rejects(openSettleIntake({ url: testNatsUrl(), shards: 0, role: 'worker', name: `none${toHex(randomBytes(4))}`, db }), (e: unknown) => isTallyError(e, 'SETTLE_SHARDS_MISMATCH') && /start the node/.test(e.message));
      // A part waits on shard 1: the node may not drop to one shard.
      await intake.submit([{ ...part(intake, 9), shard: 1 }], 100);
      await assert.rejects(openSettleIntake({ url: testNatsUrl(), shards: 1, name, db }), (e: unknown) => isTallyError(e, 'SETTLE_SHARDS_MISMATCH') && /still wait in 2 shards/.test(e.message));
      const { handler } = counting(db);
      const workers = await startSettleWorkers(intake, new Map([['test/part', handler]]));
      try {
        const [answer] = await intake.submit([{ ...part(intake, 9), shard: 1 }], 20_000);
        assert.deepEqual(answer?.body, { n: 9, shard: 1 });
      } finally {
        await workers.stop();
      }
      const fewer = await openSettleIntake({ url: testNatsUrl(), shards: 1, name, db });
      assert.equal(fewer.shards, 1);
      await fewer.close();
    });
  });

  test('a failed part waits longer at each delivery, up to a minute', () => {
    assert.deepEqual([1, 2, 3, 4, 7, 50].map(retryDelayMs), [1_000, 2_000, 4_000, 8_000, 60_000, 60_000]);
  });

  test('bad options are refused before connecting; a server that does not answer is NATS_UNREACHABLE', async () => {
    assert.ok(backend !== undefined);
    const database = await backend.open();
    try {
      const base = { url: testNatsUrl(), name: 'x', db: database.db };
      await assert.rejects(openSettleIntake({ ...base, shards: 0 }), RangeError);
      await assert.rejects(openSettleIntake({ ...base, shards: 65 }), RangeError);
      await assert.rejects(openSettleIntake({ ...base, shards: 1, name: 'a.b' }), TypeError);
      await assert.rejects(openSettleIntake({ ...base, shards: 1, url: 'nats://127.0.0.1:1' }), (e: unknown) => isTallyError(e, 'NATS_UNREACHABLE'));
    } finally {
      await database.dispose();
    }
  });
});
