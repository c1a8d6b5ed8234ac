/**
 * Money crossing between a node's databases: real PostgreSQL databases (one home, two shards) on
 * the test server and the real NATS JetStream. Each test ends with the audit over shards.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { connect } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import { toHex } from '../../core/bytes.ts';
import { isTallyError } from '../../core/errors.ts';
import type { Database } from '../db/database.ts';
import { migrateIssuer } from '../db/migrate.ts';
import { openPostgres } from '../db/postgres.ts';
import { ensureAccount } from '../ledger/account.ts';
import { clearingAccount, CROSSING_ID_LENGTH_MAX, outboxEntry, receiveAcross, sendAcross, type Crossing, type Party } from '../ledger/cross-shard.ts';
import { mint } from '../ledger/mint.ts';
import { openCreditRelay, type CreditReceivers, type CreditRelay, type CreditRelayOptions, type CrossingReceipt } from '../queue/credit-relay.ts';
import { deleteTestStream, streamMessages, testNatsUrl } from '../queue/test-nats.ts';
import { auditShards, type ShardsAudit } from './audit.ts';
import { claimPlace, openShardDatabases, type ShardDatabases } from './shard-databases.ts';
import { createTestDatabases, type TestShardDatabases } from './test-shards.ts';

const postgresUrl = process.env['TEST_DATABASE_URL'];
const skip = postgresUrl === undefined || postgresUrl === '' ? 'TEST_DATABASE_URL is not set: shard databases are PostgreSQL databases' : false;
const natsUrl = testNatsUrl();
const CURRENCY = 'EUR';

interface World {
  readonly made: TestShardDatabases;
  readonly home: Database;
  readonly shards: ShardDatabases;
  readonly relay: CreditRelay;
  readonly nodeKeyId: string;
  receivers?: CreditReceivers;
  readonly log: Array<{ line: string; fields?: Record<string, unknown> | undefined }>;
}

async function world(relayOptions: Pick<CreditRelayOptions, 'receipts' | 'deliveriesMax' | 'retryDelayMs'> = {}): Promise<World> {
  const made = await createTestDatabases(postgresUrl as string, 3);
  const home = await openPostgres(made.urls[0] as string, { poolSize: 4 });
  await migrateIssuer(home);
  const nodeKeyId = toHex(randomBytes(32));
  await home.transaction(async (tx) => {
    await ensureAccount(tx, { id: 'cb:issuance', kind: 'issuance', currency: CURRENCY });
    await ensureAccount(tx, { id: 'user:alice', kind: 'user', currency: CURRENCY });
    await mint(tx, { idempotencyKey: 'mint-alice', account: 'user:alice', amount: 100_00n });
  });
  const shards = await openShardDatabases({ home, urls: made.urls.slice(1), nodeKeyId, currency: CURRENCY, poolSize: 4 });
  for (const [party, owner] of [['s0', 'bob'], ['s1', 'carol']] as const) {
    await shards.db(party).transaction((tx) => ensureAccount(tx, { id: `user:${owner}`, kind: 'user', currency: CURRENCY }));
  }
  const log: World['log'] = [];
  const relay = await openCreditRelay({ url: natsUrl, name: nodeKeyId.slice(0, 16), shards, ackWaitMs: 2_000, log: (line, fields) => log.push({ line, fields }), ...relayOptions });
  return { made, home, shards, relay, nodeKeyId, log };
}

async function dispose(w: World): Promise<void> {
  await w.receivers?.stop();
  await w.relay.close();
  await deleteTestStream(natsUrl, w.relay.stream);
  await w.shards.close();
  await w.home.close();
  await w.made.drop();
}

async function balance(w: World, party: Party, account: string): Promise<bigint> {
  const found = await w.shards.db(party).query<{ balance: bigint }>('SELECT balance FROM accounts WHERE id = $1', [account]);
  const row = found.rows[0];
  if (row === undefined) throw new Error(`${party} has no ${account}`);
  return row.balance;
}

/** What a place's clearing accounts for a peer hold together. */
async function clearingBalance(w: World, party: Party, peer: Party): Promise<bigint> {
  const found = await w.shards.db(party).query<{ total: bigint }>(`SELECT coalesce(sum(balance::numeric), 0) AS total FROM accounts WHERE id LIKE $1`, [`clearing:${peer}.%`]);
  return found.rows[0]?.total ?? 0n;
}

/** Sends in a transaction of the sender's database and answers the outbox entry (not published). */
async function send(w: World, from: Party, crossing: Crossing) {
  const sent = await w.shards.db(from).transaction((tx) => sendAcross(tx, from, crossing));
  if (!sent.ok) throw new Error(`${sent.code}: ${sent.message}`);
  return sent.entry;
}

async function until(what: string, check: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const start = Date.now();
  while (!(await check())) {
    if (Date.now() - start > ms) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((done) => setTimeout(done, 25));
  }
}

function assertBalanced(audit: ShardsAudit, inFlight: bigint): void {
  assert.deepEqual(audit.problems, [], audit.problems.join('\n'));
  assert.equal(audit.balanced, true);
  assert.equal(audit.totals.issued, 100_00n, 'the money minted at home, wherever it is now');
  assert.equal(audit.inFlight.reduce((t, f) => t + f.amount, 0n), inFlight, JSON.stringify(audit.inFlight, (_, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)));
  // With nothing moving, the clearing accounts over the node sum to what is in flight.
  assert.equal(audit.totals.clearing, inFlight);
  assert.equal(audit.totals.online + audit.totals.clearing, audit.totals.issued);
}

describe('credits across shard databases', { skip }, () => {
  let w: World;
  before(async () => {
    w = await world();
  });
  after(async () => {
    if (w !== undefined) await dispose(w);
  });

  test('a credit crosses once: sent and in flight, received, published again and swept without effect', async () => {
    const entry = await send(w, 'home', { id: 'pay-1', to: 's0', debit: 'user:alice', credit: 'user:bob', amount: 30_00n, kind: 'test-credit' });
    assert.equal(await balance(w, 'home', 'user:alice'), 70_00n);
    assert.equal(await clearingBalance(w, 'home', 's0'), 30_00n);
    assertBalanced(await auditShards(w.shards), 30_00n);
    await w.relay.publish('home', [entry]);
    w.receivers = await w.relay.receive(['home', 's0', 's1']);
    await until('bob credited', async () => (await balance(w, 's0', 'user:bob')) === 30_00n);
    assert.equal(await clearingBalance(w, 's0', 'home'), -30_00n, 'the receiver\'s clearing accounts pair the sender\'s');
    // Published again (the stream drops it) and swept (nothing is left unpublished).
    await w.relay.publish('home', [entry]);
    assert.equal(await w.relay.sweep(0), 0);
    await until('the stream empty', async () => (await streamMessages(natsUrl, w.relay.stream)) === 0);
    assert.equal(await balance(w, 's0', 'user:bob'), 30_00n);
    assertBalanced(await auditShards(w.shards), 0n);
  });

  test('a credit to an account the receiver does not have comes back to where it left', async () => {
    const entry = await send(w, 's0', { id: 'to-nobody', to: 's1', debit: 'user:bob', credit: 'user:nobody', amount: 5_00n, kind: 'test-credit' });
    await w.relay.publish('s0', [entry]);
    await until('bob paid back', async () => (await balance(w, 's0', 'user:bob')) === 30_00n);
    assert.equal(await clearingBalance(w, 's1', 's0'), 0n, 'the money never stayed at s1');
    assert.ok(w.log.some((l) => l.line.includes('returned')), 'the return is logged');
    await until('the stream empty', async () => (await streamMessages(natsUrl, w.relay.stream)) === 0);
    assertBalanced(await auditShards(w.shards), 0n);
  });

  test('interrupted at each step: before the commit, before the publish, before the mark, before the acknowledgement', async () => {
    // 1. The sender's transaction fails after the send: nothing moved, nothing to publish.
    await assert.rejects(
      w.shards.db('home').transaction(async (tx) => {
        const sent = await sendAcross(tx, 'home', { id: 'rolled-back', to: 's1', debit: 'user:alice', credit: 'user:carol', amount: 1_00n, kind: 'test-credit' });
        assert.equal(sent.ok, true);
        throw new Error('crash before the commit');
      }),
      /crash before the commit/,
    );
    assert.equal(await outboxEntry(w.home, 'rolled-back'), undefined);
    assert.equal(await balance(w, 'home', 'user:alice'), 70_00n);
    assertBalanced(await auditShards(w.shards), 0n);

    // 2. Committed, never published (the sender died): in flight until the sweep publishes it.
    await send(w, 'home', { id: 'unpublished', to: 's1', debit: 'user:alice', credit: 'user:carol', amount: 2_00n, kind: 'test-credit' });
    assertBalanced(await auditShards(w.shards), 2_00n);
    assert.equal(await balance(w, 's1', 'user:carol'), 0n);
    assert.equal(await w.relay.sweep(0), 1);
    await until('carol credited', async () => (await balance(w, 's1', 'user:carol')) === 2_00n);

    // 3. Published, not marked (died between the stream's receipt and the mark): the sweep
    //    publishes it again, and it is credited once.
    const third = await send(w, 'home', { id: 'unmarked', to: 's1', debit: 'user:alice', credit: 'user:carol', amount: 3_00n, kind: 'test-credit' });
    const raw = await connect({ servers: natsUrl });
    await jetstream(raw).publish(`tally.${w.nodeKeyId.slice(0, 16)}.credit.s1`, JSON.stringify({ from: 'home', id: third.id }), { msgID: `home:${third.id}` });
    await raw.close();
    await until('carol credited', async () => (await balance(w, 's1', 'user:carol')) === 5_00n);
    assert.equal(await w.relay.sweep(0), 1, 'the unmarked row is published again');
    await until('the stream empty', async () => (await streamMessages(natsUrl, w.relay.stream)) === 0);

    // 4. The receiver committed and died before its acknowledgement: the delivery that follows
    //    finds the inbox row and credits nothing.
    const fourth = await send(w, 'home', { id: 'unacknowledged', to: 's1', debit: 'user:alice', credit: 'user:carol', amount: 4_00n, kind: 'test-credit' });
    const first = await w.shards.db('s1').transaction((tx) => receiveAcross(tx, 's1', 'home', fourth));
    assert.equal(first.outcome, 'credited');
    const receivedBefore = w.receivers?.received ?? 0;
    await w.relay.publish('home', [fourth]);
    await until('the stream empty', async () => (await streamMessages(natsUrl, w.relay.stream)) === 0);
    assert.equal(w.receivers?.received, receivedBefore, 'the delivery after the commit received nothing');
    assert.equal(await balance(w, 's1', 'user:carol'), 9_00n);
    assert.equal(await balance(w, 'home', 'user:alice'), 61_00n);
    assertBalanced(await auditShards(w.shards), 0n);
  });

  test('a shard\'s database down and back: the crossing waits in the stream, then is credited once', { timeout: 60_000 }, async () => {
    await w.made.takeDown(2); // s1
    const entry = await send(w, 's0', { id: 'while-down', to: 's1', debit: 'user:bob', credit: 'user:carol', amount: 6_00n, kind: 'test-credit' });
    await w.relay.publish('s0', [entry]);
    await until('a failed delivery', async () => w.log.some((l) => l.line.includes('receiving a crossing failed') && l.fields?.['id'] === 'while-down'));
    assert.equal(await streamMessages(natsUrl, w.relay.stream), 1, 'the crossing waits in the stream');
    // A sweep goes on past the place it cannot read.
    // (to an account the home does not have: it comes back to bob)
    await send(w, 's0', { id: 'swept-past', to: 'home', debit: 'user:bob', credit: 'user:nobody', amount: 1n, kind: 'test-credit' });
    assert.equal(await w.relay.sweep(0), 1);
    assert.ok(w.log.some((l) => l.line.includes('publishing the crossings a place left unpublished failed') && l.fields?.['place'] === 's1'));
    // The audit reads the others and says which one it could not read.
    const partial = await auditShards(w.shards);
    assert.equal(partial.balanced, false);
    assert.deepEqual(partial.places.map((p) => p.party), ['home', 's0']);
    assert.ok(partial.problems.some((p) => p.startsWith('s1: its database could not be read')), partial.problems.join('\n'));
    await w.made.bringUp(2);
    await until('carol credited', async () => (await balance(w, 's1', 'user:carol')) === 15_00n, 40_000);
    await until('the stream empty', async () => (await streamMessages(natsUrl, w.relay.stream)) === 0);
    await until('bob paid back', async () => (await balance(w, 's0', 'user:bob')) === 24_00n);
    assertBalanced(await auditShards(w.shards), 0n);
  });

  test('a returned credit stays returned when it is delivered again after its account was opened', async () => {
    const entry = await send(w, 'home', { id: 'to-late', to: 's0', debit: 'user:alice', credit: 'user:late', amount: 7_00n, kind: 'test-credit' });
    await w.relay.publish('home', [entry]);
    await until('alice paid back', async () => (await balance(w, 'home', 'user:alice')) === 61_00n);
    await w.shards.db('s0').transaction((tx) => ensureAccount(tx, { id: 'user:late', kind: 'user', currency: CURRENCY }));
    const again = await w.shards.db('s0').transaction((tx) => receiveAcross(tx, 's0', 'home', entry));
    assert.equal(again.outcome, 'already');
    // And through the stream, under a message id nobody used.
    const raw = await connect({ servers: natsUrl });
    await jetstream(raw).publish(`tally.${w.nodeKeyId.slice(0, 16)}.credit.s0`, JSON.stringify({ from: 'home', id: 'to-late' }), { msgID: 'once-more' });
    await raw.close();
    await until('the stream empty', async () => (await streamMessages(natsUrl, w.relay.stream)) === 0);
    assert.equal(await balance(w, 's0', 'user:late'), 0n);
    assert.equal(await balance(w, 'home', 'user:alice'), 61_00n);
    assertBalanced(await auditShards(w.shards), 0n);
  });

  test('a message id taken first by someone else: the reconciler publishes the crossing again under a new one, and it is credited once', async () => {
    const raw = await connect({ servers: natsUrl });
    await jetstream(raw).publish(`tally.${w.nodeKeyId.slice(0, 16)}.credit.s1`, JSON.stringify({ from: 'home', id: 'pre-taken' }), { msgID: 'home:pre-taken' });
    await raw.close();
    await until('the forged message dropped', async () => w.log.some((l) => l.line.includes('never sent') && l.fields?.['id'] === 'pre-taken'));
    const entry = await send(w, 'home', { id: 'pre-taken', to: 's1', debit: 'user:alice', credit: 'user:carol', amount: 1_00n, kind: 'test-credit' });
    await w.relay.publish('home', [entry]);
    await new Promise((done) => setTimeout(done, 300));
    assert.equal(await balance(w, 's1', 'user:carol'), 15_00n, 'the stream took the real publish for a duplicate');
    assertBalanced(await auditShards(w.shards), 1_00n);
    assert.deepEqual(await w.relay.reconcile(0), { delivered: 0, republished: 1, held: 0 });
    await until('carol credited', async () => (await balance(w, 's1', 'user:carol')) === 16_00n);
    await until('the stream empty', async () => (await streamMessages(natsUrl, w.relay.stream)) === 0);
    assert.deepEqual(await w.relay.reconcile(0), { delivered: 0, republished: 0, held: 0 }, 'the receiver marked it delivered');
    assertBalanced(await auditShards(w.shards), 0n);
  });

  test('a credit under the longest id, refused by its receiver, comes back', async () => {
    const id = 'z'.repeat(CROSSING_ID_LENGTH_MAX);
    const entry = await send(w, 's1', { id, to: 'home', debit: 'user:carol', credit: 'user:nobody', amount: 50n, kind: 'test-credit' });
    assert.equal(await balance(w, 's1', 'user:carol'), 15_50n);
    await w.relay.publish('s1', [entry]);
    await until('carol paid back', async () => (await balance(w, 's1', 'user:carol')) === 16_00n);
    await until('the stream empty', async () => (await streamMessages(natsUrl, w.relay.stream)) === 0);
    assertBalanced(await auditShards(w.shards), 0n);
  });

  test('concurrent deliveries of one crossing credit it once', async () => {
    const entry = await send(w, 's1', { id: 'raced', to: 's0', debit: 'user:carol', credit: 'user:bob', amount: 1_00n, kind: 'test-credit' });
    const outcomes = await Promise.all(Array.from({ length: 40 }, () => w.shards.db('s0').transaction((tx) => receiveAcross(tx, 's0', 's1', entry))));
    assert.equal(outcomes.filter((o) => o.outcome === 'credited').length, 1);
    assert.equal(outcomes.filter((o) => o.outcome === 'already').length, 39);
    assert.equal(await balance(w, 's0', 'user:bob'), 25_00n);
    // Its message later finds it received.
    await w.relay.publish('s1', [entry]);
    await until('the stream empty', async () => (await streamMessages(natsUrl, w.relay.stream)) === 0);
    assert.equal(await balance(w, 's0', 'user:bob'), 25_00n);
    assertBalanced(await auditShards(w.shards), 0n);
  });

  test('forged messages credit nothing: an id nobody sent, a sender that did not send it, a malformed one', async () => {
    const raw = await connect({ servers: natsUrl });
    const js = jetstream(raw);
    const subject = `tally.${w.nodeKeyId.slice(0, 16)}.credit.s0`;
    await js.publish(subject, JSON.stringify({ from: 'home', id: 'never-sent' }), { msgID: 'forged-1' });
    // home's outbox holds 'pay-1' for s0, but s1's does not: named as s1's, it is nobody's.
    await js.publish(subject, JSON.stringify({ from: 's1', id: 'pay-1' }), { msgID: 'forged-2' });
    await js.publish(subject, JSON.stringify({ from: 's0', id: 'pay-1' }), { msgID: 'forged-3' });
    await js.publish(subject, '{"credit":"user:bob","amount":"1000000"}', { msgID: 'forged-4' });
    await raw.close();
    await until('the stream empty', async () => (await streamMessages(natsUrl, w.relay.stream)) === 0);
    assert.equal(w.log.filter((l) => l.line.includes('never sent') && ['never-sent', 'pay-1'].includes(String(l.fields?.['id']))).length, 2);
    assert.equal(w.log.filter((l) => l.line.includes('malformed')).length, 2);
    assert.equal(await balance(w, 's0', 'user:bob'), 25_00n);
    assertBalanced(await auditShards(w.shards), 0n);
  });

  test('refused sends change nothing: a clearing account as debit, a return id, another credit under a used id, funds short, a bad place', async () => {
    const tryIt = (c: Partial<Crossing>) =>
      w.shards.db('home').transaction((tx) => sendAcross(tx, 'home', { id: 'refused', to: 's0', debit: 'user:alice', credit: 'user:bob', amount: 1n, kind: 'test-credit', ...c }));
    const codes = [
      await tryIt({ debit: clearingAccount('s1', 3) }),
      await tryIt({ id: 'return:home:x' }),
      await tryIt({ id: 'pay-1', credit: 'user:someone-else' }),
      await tryIt({ amount: 1_000_00n }),
      await tryIt({ to: 'home' }),
      await tryIt({ to: 's9' as Party, id: 'x'.repeat(200) }),
      await tryIt({ amount: 0n }),
      await tryIt({ credit: clearingAccount('home', 0) }),
      await tryIt({ id: 'y'.repeat(CROSSING_ID_LENGTH_MAX + 1) }),
    ].map((r) => (r.ok ? 'ok' : r.code));
    assert.deepEqual(codes, ['REQUEST_INVALID', 'REQUEST_INVALID', 'IDEMPOTENCY_CONFLICT', 'INSUFFICIENT_FUNDS', 'REQUEST_INVALID', 'REQUEST_INVALID', 'AMOUNT_INVALID', 'REQUEST_INVALID', 'REQUEST_INVALID']);
    // The longest id leaves room for the longest key made of it.
    assert.equal('across-in:home:return:home:'.length + CROSSING_ID_LENGTH_MAX, 128);
    // An outbox row keeps its fields: only its two times are set, once each.
    await assert.rejects(w.home.query(`UPDATE shard_outbox SET amount = amount + 1 WHERE id = 'pay-1'`), /only published_at and delivered_at/);
    await assert.rejects(w.home.query(`UPDATE shard_outbox SET published_at = now() - interval '1 day' WHERE id = 'pay-1'`), /only published_at and delivered_at/);
    assert.equal(await outboxEntry(w.home, 'refused'), undefined);
    // The same send again answers the first.
    const again = await w.shards.db('home').transaction((tx) => sendAcross(tx, 'home', { id: 'pay-1', to: 's0', debit: 'user:alice', credit: 'user:bob', amount: 30_00n, kind: 'test-credit' }));
    assert.ok(again.ok && again.replayed);
    assertBalanced(await auditShards(w.shards), 0n);
  });

  test('the audit catches a credit received that was never sent', async () => {
    await w.shards.db('s1').transaction((tx) => receiveAcross(tx, 's1', 's0', { id: 'made-up', to: 's1', credit: 'user:carol', returnTo: 'user:bob', currency: CURRENCY, amount: 50n, kind: 'test-credit', reference: null }));
    const audit = await auditShards(w.shards);
    assert.equal(audit.balanced, false);
    assert.ok(audit.problems.some((p) => p.startsWith('s1 received') && p.includes('from s0')), audit.problems.join('\n'));
  });
});

describe('a crossing that cannot be received', { skip }, () => {
  const failures = (w: World, id: string) => w.log.filter((l) => l.line.includes('receiving a crossing failed') && l.fields?.['id'] === id).length;

  test('because its receipt fails on every delivery: held after its last try, not published again, listed, released once fixed and credited once', async () => {
    let broken = true;
    let runs = 0;
    const receipt: CrossingReceipt = async () => {
      runs++;
      if (broken) throw new Error(`receipt run ${runs} fails`);
    };
    const w = await world({ receipts: new Map([['test-stuck', receipt]]), deliveriesMax: 3, retryDelayMs: () => 50 });
    try {
      w.receivers = await w.relay.receive(['home', 's0', 's1']);
      const entry = await send(w, 'home', { id: 'stuck/1', to: 's0', debit: 'user:alice', credit: 'user:bob', amount: 5_00n, kind: 'test-stuck', reference: { receipt: true } });
      await w.relay.publish('home', [entry]);
      await until('the crossing held', async () => w.log.some((l) => l.line.includes('held for the operator') && l.fields?.['id'] === 'stuck/1'));
      assert.equal(runs, 3, 'tried on each of its three deliveries, then held');
      assert.equal(await streamMessages(natsUrl, w.relay.stream), 0, 'no longer delivered');
      assert.equal(await balance(w, 's0', 'user:bob'), 0n);
      assertBalanced(await auditShards(w.shards), 5_00n);
      const held = await w.relay.held();
      assert.deepEqual(
        held.map((h) => [h.from, h.to, h.id, h.kind, h.amount, h.deliveries, h.error]),
        [['home', 's0', 'stuck/1', 'test-stuck', '500', 3, 'receipt run 3 fails']],
      );
      // The reconciler sees it undelivered and leaves it to the operator.
      assert.deepEqual(await w.relay.reconcile(0), { delivered: 0, republished: 0, held: 1 });
      await new Promise((done) => setTimeout(done, 300));
      assert.equal(runs, 3, 'not tried again');
      // A key that names no held crossing releases nothing.
      assert.deepEqual(await w.relay.release(['home:never-sent', 'no-place', 's9:stuck/1', 's0:stuck/1']), []);
      broken = false;
      assert.deepEqual((await w.relay.release(['home:stuck/1'])).map((h) => h.id), ['stuck/1']);
      await until('bob credited', async () => (await balance(w, 's0', 'user:bob')) === 5_00n);
      assert.equal(runs, 4, 'received once after its release');
      assert.deepEqual(await w.relay.held(), []);
      // Released again by mistake (after a crash between its two steps, say): nothing is held, nothing moves.
      assert.deepEqual(await w.relay.release('all'), []);
      await until('the stream empty', async () => (await streamMessages(natsUrl, w.relay.stream)) === 0);
      assert.equal(await balance(w, 's0', 'user:bob'), 5_00n);
      assertBalanced(await auditShards(w.shards), 0n);
    } finally {
      await dispose(w);
    }
  });

  test('because its database does not answer, or its receipt is another receiver\'s: delivered again past the last try, never held', { timeout: 60_000 }, async () => {
    const w = await world({ deliveriesMax: 2, retryDelayMs: () => 50 });
    try {
      w.receivers = await w.relay.receive(['home', 's0', 's1']);
      await w.made.takeDown(2); // s1
      const down = await send(w, 'home', { id: 'to-s1-while-down', to: 's1', debit: 'user:alice', credit: 'user:carol', amount: 2_00n, kind: 'test-credit' });
      // This receiver has no receipt for this kind: one of a newer version would.
      const orphan = await send(w, 'home', { id: 'needs-a-receipt', to: 's0', debit: 'user:alice', credit: 'user:bob', amount: 3_00n, kind: 'test-newer', reference: { receipt: true } });
      await w.relay.publish('home', [down, orphan]);
      await until('five failed deliveries of each', async () => failures(w, 'to-s1-while-down') >= 5 && failures(w, 'needs-a-receipt') >= 5, 30_000);
      assert.deepEqual(await w.relay.held(), []);
      assert.ok(!w.log.some((l) => l.line.includes('held for the operator')));
      await w.made.bringUp(2);
      await until('carol credited', async () => (await balance(w, 's1', 'user:carol')) === 2_00n, 40_000);
      assert.equal(await balance(w, 's0', 'user:bob'), 0n, 'the crossing without its receipt is not credited');
      assert.equal(await streamMessages(natsUrl, w.relay.stream), 1, 'and waits in the stream for a receiver that has it');
      assertBalanced(await auditShards(w.shards), 3_00n);
    } finally {
      await dispose(w);
    }
  });
});

describe('shard databases are marked', { skip }, () => {
  test('a database given for another shard, another node or another count, or an empty one for a shard in use, is refused, and nothing is written to it', async () => {
    const made = await createTestDatabases(postgresUrl as string, 4);
    const home = await openPostgres(made.urls[0] as string, { poolSize: 2 });
    try {
      await migrateIssuer(home);
      const nodeKeyId = toHex(randomBytes(32));
      const shards = await openShardDatabases({ home, urls: made.urls.slice(1, 3), nodeKeyId, currency: CURRENCY, poolSize: 2 });
      await shards.close();
      const refused = async (urls: readonly string[], key = nodeKeyId): Promise<string> => {
        try {
          const opened = await openShardDatabases({ home, urls, nodeKeyId: key, currency: CURRENCY, poolSize: 2 });
          await opened.close();
          return 'opened';
        } catch (e) {
          assert.ok(isTallyError(e), String(e));
          return `${e.code}: ${e.message}`;
        }
      };
      assert.match(await refused([made.urls[2] as string, made.urls[1] as string]), /^SHARD_DATABASE_MISMATCH: this database is the node's s1, not its s0/);
      assert.match(await refused(made.urls.slice(1, 2)), /^SHARD_DATABASE_MISMATCH: .*over 2 shard databases, not 1/);
      assert.match(await refused(made.urls.slice(1, 3), toHex(randomBytes(32))), /^SHARD_DATABASE_MISMATCH: this database belongs to node/);
      // The home database given as a shard's.
      assert.match(await refused([made.urls[0] as string, made.urls[2] as string]), /^SHARD_DATABASE_MISMATCH: this database is the node's home, not its s0/);
      await assert.rejects(claimPlace(home, nodeKeyId, 's0', 2), /home, not its s0/);
      // An empty database for s1, which the node has used: a lost or replaced shard, refused
      // before a table is made in it.
      assert.match(await refused([made.urls[1] as string, made.urls[3] as string]), /^SHARD_DATABASE_MISMATCH: this database is empty, but the node has kept s1's part/);
      const empty = await openPostgres(made.urls[3] as string, { poolSize: 1 });
      assert.deepEqual((await empty.query(`SELECT to_regclass('shard_self') AS t`)).rows, [{ t: null }]);
      await empty.close();
      await assert.rejects(openShardDatabases({ home, urls: [made.urls[1] as string, made.urls[1] as string], nodeKeyId, currency: CURRENCY }), /each shard needs a database of its own/);
      const marks = await home.query<{ party: string }>('SELECT party FROM shard_self');
      assert.deepEqual(marks.rows, [{ party: 'home' }]);
    } finally {
      await home.close();
      await made.drop();
    }
  });
});
