/**
 * OPERA on a node with shard databases: the home and each shard a real PostgreSQL database of its
 * own (CREATE DATABASE on the test server), crossings carried on the real NATS JetStream. Charges
 * put each token on the shard of its serial with its value in that shard's float; deposits spend
 * them there, one part per shard, and credit the depositor at home once; a token deposited twice
 * (one after the other, and at once) is credited once, with the double spend found and the device
 * that paid it twice named; a shard down in the middle of a charge or a deposit leaves nothing half
 * done, and the same request sent again finishes it; forged and malformed inputs change nothing;
 * settlement is refused. Every test ends with the audit over every database, balanced.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { toBase64url, toHex } from '../../core/bytes.ts';
import { encodeCbor } from '../../core/cbor.ts';
import { randomBytes } from '../../core/crypto/hash.ts';
import { closeTestTemplates, testBackends } from '../../issuer/db/test-databases.ts';
import { expectError } from '../../issuer/http/test-harness.ts';
import { formatMinor } from '../../issuer/plugin.ts';
import type { SqlParam } from '../../issuer/db/database.ts';
import { sendAcross } from '../../issuer/ledger/cross-shard.ts';
import { testNatsUrl } from '../../issuer/queue/test-nats.ts';
import { holdCrossing } from '../../issuer/queue/settle-held.ts';
import type { CreditRelay } from '../../issuer/queue/credit-relay.ts';
import { connect } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import { createTestDatabases, type TestShardDatabases } from '../../issuer/shards/test-shards.ts';
import { bankPayee, tagged } from './escrow.ts';
import { DEPOSIT_REQUEST_TAG, depositRequestBodyCodec, interbankEvidenceCodec, NONCE_BYTES, signed } from './messages.ts';
import { judgeOperaInterbankClaim } from './node-interbank.ts';
import { operaNode, type OperaClient, type OperaNode } from './node-fixtures.ts';
import { serialPlace } from './node-shards.ts';
import { signToken, TOKEN_SERIAL_BYTES, type Token } from './token.ts';

after(() => closeTestTemplates());

const postgres = testBackends().find((b) => b.kind === 'postgres');
const skip = postgres === undefined || postgres.skip !== undefined ? 'TEST_DATABASE_URL is not set: shard databases are PostgreSQL databases' : false;
const natsUrl = testNatsUrl();

interface Sharded {
  readonly n: OperaNode;
  readonly made: TestShardDatabases;
  readonly places: readonly `s${number}`[];
}

async function shardedNode(shards: number): Promise<Sharded> {
  const made = await createTestDatabases(process.env['TEST_DATABASE_URL'] as string, shards);
  try {
    const n = await operaNode(postgres as NonNullable<typeof postgres>, {}, { natsUrl, shards, shardDatabases: made.urls });
    return { n, made, places: made.urls.map((_, k) => `s${k}` as const) };
  } catch (e) {
    await made.drop();
    throw e;
  }
}

async function dispose(s: Sharded): Promise<void> {
  try {
    await s.n.h.close();
  } finally {
    await s.made.drop();
  }
}

/** Rows of one place's database. */
async function rowsAt<R extends object>(s: Sharded, place: 'home' | `s${number}`, sql: string, values: readonly SqlParam[] = []): Promise<R[]> {
  const shards = s.n.h.node.services.shardLedgers;
  assert.ok(shards !== undefined);
  return (await shards.db(place).query<R>(sql, values)).rows;
}

/** The value of a place's float:opera, in minor units. */
async function floatAt(s: Sharded, place: 'home' | `s${number}`): Promise<bigint> {
  const [row] = await rowsAt<{ balance: string }>(s, place, "SELECT balance::text AS balance FROM accounts WHERE id = 'float:opera'");
  return BigInt(row?.balance ?? '0');
}

/** The tokens of one state on each shard: their value, by place. */
async function tokensByPlace(s: Sharded, state: string): Promise<bigint[]> {
  const out: bigint[] = [];
  for (const place of s.places) {
    const [row] = await rowsAt<{ v: string }>(s, place, 'SELECT coalesce(sum(value), 0)::text AS v FROM opera_shard_tokens WHERE state = $1', [state]);
    out.push(BigInt(row?.v ?? '0'));
  }
  return out;
}

interface ShardsJson {
  balanced: boolean;
  places: Array<{ place: string; online: string; offlineFloat: string; clearing: string; exposure: Array<{ scheme: string; float: string; expected: string; difference: string }> }>;
  inFlight: unknown[];
  totals: { issued: string; online: string; offlineFloat: string; clearing: string };
  problems: string[];
}

/**
 * Waits until nothing is in flight, then the audit over every database: balanced, each place's
 * OPERA float equal to its tokens still issued, the node's totals adding up. Answers the totals.
 */
async function balanced(s: Sharded): Promise<ShardsJson['totals']> {
  let audit: { balanced: boolean; shards?: ShardsJson } = { balanced: false };
  const start = Date.now();
  do {
    if (Date.now() - start > 0) await new Promise((done) => setTimeout(done, 100));
    audit = (await (await s.n.h.send('GET', '/v1/audit', { headers: s.n.h.operator })).json()) as typeof audit;
  } while ((audit.shards?.inFlight.length ?? 0) > 0 && Date.now() - start < 20_000);
  const shards = audit.shards;
  assert.ok(shards !== undefined, 'the audit covers the shard databases');
  assert.deepEqual(shards.problems, [], JSON.stringify(shards, null, 1));
  assert.equal(audit.balanced, true);
  assert.deepEqual(shards.inFlight, []);
  assert.equal(shards.places.length, s.places.length + 1);
  for (const place of shards.places) {
    const opera = place.exposure.find((e) => e.scheme === 'opera');
    assert.ok(opera !== undefined, `${place.place}: the OPERA float is checked`);
    assert.equal(opera.difference, '0.00', `${place.place}: float:opera ${opera.float} against tokens issued ${opera.expected}`);
  }
  const issued = (await rowsAt<{ v: string }>(s, 'home', "SELECT coalesce(sum(value), 0)::text AS v FROM opera_tokens WHERE state = 'issued'"))[0]?.v;
  assert.equal(issued, '0', 'the home keeps no OPERA token');
  assert.equal(await floatAt(s, 'home'), 0n, "the home's float:opera stays empty");
  assert.equal(shards.totals.clearing, '0.00', 'nothing in flight: the clearing accounts sum to zero');
  return shards.totals;
}

/** A deposit request of `tokens` signed by `who`'s ODW, sent as the fixture sends it (for a retry under one nonce). */
function depositBody(who: OperaClient, tokens: readonly Token[], nonce: Uint8Array) {
  const request = signed(depositRequestBodyCodec, who.device, DEPOSIT_REQUEST_TAG, { nonce, tokens: [...tokens] });
  return { device: who.deviceId, request: toBase64url(encodeCbor(request)) };
}

describe('OPERA on shard databases', { skip }, () => {
  test('a charge puts each token on the shard of its serial, a deposit spends them there and credits home once; a replay answers the same receipt', { timeout: 120_000 }, async () => {
    const s = await shardedNode(3);
    const { n } = s;
    try {
      const [alice, bob] = [await n.client(), await n.client()];
      await n.mint(alice, '20.00');
      const tokens = await n.charged(alice, [[10n, 40], [50n, 2]]);
      assert.equal(await n.h.balance(alice), '15.00');
      // Each token is issued on its serial's shard, and each shard's float holds exactly its tokens.
      const held = await tokensByPlace(s, 'issued');
      const expected = s.places.map((place) => tokens.filter((t) => serialPlace(t.body.serial, s.places) === place).reduce((sum, t) => sum + t.body.value, 0n));
      assert.deepEqual(held, expected);
      assert.ok(held.every((v) => v > 0n), 'forty tokens reach every one of three shards');
      for (const [k, place] of s.places.entries()) assert.equal(await floatAt(s, place), expected[k]);
      assert.equal((await balanced(s)).offlineFloat, '5.00');

      const nonce = randomBytes(NONCE_BYTES);
      const first = await n.deposit(bob, tokens, { nonce });
      assert.equal(first.res.status, 200, await first.res.clone().text());
      assert.equal(first.credited, '5.00');
      assert.ok(first.outcomes.every((o) => o === 'credited'));
      assert.equal(await n.h.balance(bob), '5.00', 'every part credited home');
      assert.deepEqual(await tokensByPlace(s, 'issued'), [0n, 0n, 0n]);
      assert.deepEqual(await tokensByPlace(s, 'deposited'), expected);
      // One crossing per part: three parts, three credits home.
      assert.equal((await rowsAt(s, 'home', "SELECT 1 FROM shard_inbox WHERE id LIKE 'opera-deposit:%'")).length, 3);

      const replay = await n.deposit(bob, tokens, { nonce });
      assert.equal(replay.res.headers.get('idempotent-replayed'), 'true');
      assert.deepEqual([replay.credited, replay.outcomes], [first.credited, first.outcomes]);
      await expectError((await n.deposit(bob, tokens.slice(1), { nonce })).res, 409, 'IDEMPOTENCY_CONFLICT');
      assert.equal(await n.h.balance(bob), '5.00', 'a replay credits nothing more');
      const totals = await balanced(s);
      assert.deepEqual([totals.issued, totals.online, totals.offlineFloat], ['20.00', '20.00', '0.00']);
    } finally {
      await dispose(s);
    }
  });

  test('a token deposited twice is credited once, one after the other and at once; the double spend is found and its tags name the ODW that paid it twice', { timeout: 120_000 }, async () => {
    const s = await shardedNode(2);
    const { n } = s;
    try {
      const escrowKey = (await n.params()).escrowKey;
      const [alice, bob, carol, dave] = [await n.client(), await n.client(), await n.client(), await n.client()];
      await n.mint(alice, '20.00');
      const pay = (tokens: readonly Token[], from: OperaClient, to: OperaClient) => tagged(tokens, { payee: to.sn, device: from.device, escrowKey, random: randomBytes });
      const depositTagged = (tokens: readonly Token[], who: OperaClient) => tagged(tokens, { payee: bankPayee(n.bank), device: who.device, escrowKey, random: randomBytes });

      // Alice's ODW pays a token to Bob; her clone pays the same token to Carol.
      const [token] = (await n.charged(alice, [[500n, 1]])) as [Token];
      const first = await n.deposit(bob, depositTagged(pay([token], alice, bob), bob));
      assert.deepEqual([first.credited, first.outcomes], ['5.00', ['credited']]);
      const second = await n.deposit(carol, depositTagged(pay([token], alice, carol), carol));
      assert.deepEqual([second.credited, second.outcomes], ['0.00', ['double-spend']]);
      const serial = toHex(token.body.serial);
      assert.deepEqual((await n.findings()).map((f) => [f.kind, f.serial, f.device, f.first]), [
        ['paid-twice', serial, alice.deviceId, null],
        ['double-spend', serial, carol.deviceId, bob.deviceId],
      ]);
      assert.equal((await n.rows('SELECT 1 FROM revoked_certificates WHERE subject_key_id = $1', [alice.deviceId])).length, 1, "the cloned ODW's certificate is revoked");
      const place = serialPlace(token.body.serial, s.places);
      assert.equal((await rowsAt(s, place, 'SELECT 1 FROM opera_shard_double_spends WHERE serial = $1', [token.body.serial])).length, 1, 'the copy kept as evidence on its shard');
      assert.deepEqual([await n.h.balance(bob), await n.h.balance(carol)], ['5.00', '0.00']);
      await balanced(s);

      // Concurrently: Dave's tokens deposited by Bob and by Carol at once, in opposite orders, and the same request of Bob's twice.
      await n.mint(dave, '10.00');
      const daves = await n.charged(dave, [[100n, 8]]);
      const nonce = randomBytes(NONCE_BYTES);
      const [b1, b2, c] = await Promise.all([n.deposit(bob, daves, { nonce }), n.deposit(bob, daves, { nonce }), n.deposit(carol, [...daves].reverse())]);
      for (const r of [b1, b2, c]) assert.equal(r.res.status, 200, await r.res.clone().text());
      assert.deepEqual(b1.outcomes, b2.outcomes, 'one request, one answer');
      const credited = [...b1.outcomes, ...c.outcomes].filter((o) => o === 'credited').length;
      assert.equal(credited, daves.length, 'each token credited once');
      assert.equal([...b1.outcomes, ...c.outcomes].filter((o) => o === 'double-spend').length, daves.length);
      const sum = [await n.h.balance(bob), await n.h.balance(carol)].reduce((t, b) => t + Number(b.replace('.', '')), 0);
      assert.equal(sum, 500 + 800, "Bob's first token and Dave's eight, once each");
      assert.equal((await n.findings()).filter((f) => f.kind === 'double-spend').length, 1 + daves.length);
      await balanced(s);
    } finally {
      await dispose(s);
    }
  });

  test('a shard down in the middle of a charge and of a deposit: nothing half done, and the same request sent again finishes it', { timeout: 180_000 }, async () => {
    const s = await shardedNode(2);
    const { n, made } = s;
    try {
      const [alice, bob] = [await n.client(), await n.client()];
      await n.mint(alice, '20.00');
      const tokens = await n.charged(alice, [[10n, 30]]);
      await balanced(s);

      // Shard 1 refuses connections while Bob deposits: its part is not settled, shard 0's is.
      const nonce = randomBytes(NONCE_BYTES);
      const body = depositBody(bob, tokens, nonce);
      const onS1 = tokens.filter((t) => serialPlace(t.body.serial, s.places) === 's1').reduce((sum, t) => sum + t.body.value, 0n);
      await made.takeDown(1);
      await expectError(await n.send(bob, '/v1/opera/deposit', body), 503, 'SHARD_UNAVAILABLE');
      assert.equal(await n.h.balance(bob), formatMinor(n.h.node.services.currency, 300n - onS1), "shard 0's part credited, once");
      const [s0Issued] = await tokensByPlace({ ...s, places: ['s0'] }, 'issued');
      assert.equal(s0Issued, 0n);
      await expectError(await n.send(bob, '/v1/opera/deposit', body), 503, 'SHARD_UNAVAILABLE');
      await made.bringUp(1);
      // Back: the same request settles shard 1's part, reads shard 0's, and answers the whole receipt.
      const res = await n.send(bob, '/v1/opera/deposit', body);
      assert.equal(res.status, 200, await res.clone().text());
      assert.equal(((await res.json()) as { credited: string }).credited, '3.00');
      assert.equal(await n.h.balance(bob), '3.00');
      assert.equal((await n.send(bob, '/v1/opera/deposit', body)).headers.get('idempotent-replayed'), 'true');
      assert.equal(await n.h.balance(bob), '3.00');
      await balanced(s);

      // Shard 0 down while Alice charges: the charge is recorded but not answered until its tokens are on their shards.
      const request = n.chargeRequest(alice, [[10n, 20]]);
      await made.takeDown(0);
      const pending = await n.send(alice, '/v1/opera/charge', { device: alice.deviceId, request: toBase64url(encodeCbor(request)) });
      await expectError(pending, 503, 'SHARD_UNAVAILABLE');
      assert.equal(await n.h.balance(alice), '15.00', 'charged once');
      await made.bringUp(0);
      // The stream's receiver delivers the part left, with its tokens (the same receipt the route runs).
      const start = Date.now();
      while ((await tokensByPlace(s, 'issued')).reduce((t, v) => t + v, 0n) < 200n && Date.now() - start < 60_000) await new Promise((done) => setTimeout(done, 200));
      assert.deepEqual((await tokensByPlace(s, 'issued')).reduce((t, v) => t + v, 0n), 200n, 'the stream delivered the part');
      const done = await n.charge(alice, request);
      assert.equal(done.res.status, 200, await done.res.clone().text());
      assert.equal(done.res.headers.get('idempotent-replayed'), 'true', 'the stored tokens');
      assert.equal(done.tokens.length, 20);
      assert.equal(await n.h.balance(alice), '15.00', 'the retry charges nothing more');
      assert.deepEqual((await tokensByPlace(s, 'issued')).reduce((t, v) => t + v, 0n), 200n);
      const spent = await n.deposit(bob, done.tokens);
      assert.equal(spent.credited, '2.00');
      const totals = await balanced(s);
      assert.deepEqual([totals.issued, totals.online, totals.offlineFloat], ['20.00', '20.00', '0.00']);
    } finally {
      await s.made.bringUp(0).catch(() => undefined);
      await s.made.bringUp(1).catch(() => undefined);
      await dispose(s);
    }
  });

  test('forged, altered and never-issued tokens, bad signatures and malformed bodies change nothing; settlement is refused; a charge part nobody sent is not credited', { timeout: 120_000 }, async () => {
    const s = await shardedNode(2);
    const { n } = s;
    try {
      const [alice, bob] = [await n.client(), await n.client()];
      await n.mint(alice, '10.00');
      const [good, other] = (await n.charged(alice, [[200n, 1], [50n, 1]])) as [Token, Token];
      const forged = signToken(alice.device, { ...good.body, serial: randomBytes(TOKEN_SERIAL_BYTES) });
      const altered: Token = { body: { ...other.body, value: 5000n }, signature: other.signature };
      const bankKey = n.h.node.services.identity.issuerNode.signer;
      const unknown = signToken(bankKey, { ...good.body, serial: randomBytes(TOKEN_SERIAL_BYTES) });
      const revalued = signToken(bankKey, { ...other.body, value: 5000n });
      const mixed = await n.deposit(bob, [forged, good, altered, unknown, good, revalued, other]);
      assert.equal(mixed.res.status, 200, await mixed.res.clone().text());
      assert.deepEqual(mixed.outcomes, ['refused', 'credited', 'refused', 'refused', 'refused', 'refused', 'credited']);
      assert.equal(mixed.credited, '2.50');
      assert.equal(await n.h.balance(bob), '2.50');
      assert.equal((await n.findings()).length, 0, 'refusals are not double spends');
      await balanced(s);

      const [kept] = (await n.charged(alice, [[100n, 1]])) as [Token];
      await expectError((await n.deposit(bob, [kept], { signer: alice.device })).res, 401, 'SIGNATURE_INVALID');
      await expectError(await n.send(bob, '/v1/opera/deposit', depositBody(alice, [kept], randomBytes(NONCE_BYTES))), 404, 'DEVICE_UNKNOWN');
      await expectError(await n.send(bob, '/v1/opera/deposit', { device: bob.deviceId, request: toBase64url(new Uint8Array([0xa0])) }), 400, 'BODY_INVALID');
      // Settlement of unfinished exchanges is not built on shard databases: refused, nothing written.
      const exchange = n.transaction(alice, bob, [kept]);
      await expectError((await n.settle(alice, exchange.payer(0))).res, 501, 'SHARDED_UNSUPPORTED');
      assert.equal((await n.rows('SELECT 1 FROM opera_settlements')).length, 0);
      assert.deepEqual(await tokensByPlace(s, 'issued'), s.places.map((p) => (serialPlace(kept.body.serial, s.places) === p ? 100n : 0n)));
      assert.equal((await n.rows("SELECT 1 FROM opera_answers WHERE kind <> 'charge' AND answer IS NULL")).length, 0, 'no request left half claimed');

      // A claim another bank presents on one of this bank's tokens is refused on shards, the token left issued.
      const evidence = encodeCbor(interbankEvidenceCodec.decode({ token: kept, depositor: new Uint8Array(32) }, 'evidence'));
      const judged = await n.h.node.services.db.transaction((tx) => judgeOperaInterbankClaim(tx, n.h.node.services, { claimId: 'claim-on-shards', payeeBank: '00'.repeat(32), amount: 100n, evidence }, 'cb:reserve'));
      assert.deepEqual([judged.accepted, judged.accepted ? '' : judged.code], [false, 'SHARDED_UNSUPPORTED']);
      assert.equal((await tokensByPlace(s, 'issued')).reduce((t, v) => t + v, 0n), 100n, 'the token stays issued');

      // A crossing of the charge kind that no charge sent (no part recorded at home): its receivers
      // will not credit it without the part's tokens, so it stays in flight, the audit still balanced.
      const services = n.h.node.services;
      const shards = services.shardLedgers;
      assert.ok(shards !== undefined && services.crossings !== undefined);
      const sent = await shards.db('home').transaction((tx) => sendAcross(tx, 'home', { id: 'opera-charge:forged:s0', to: 's0', debit: alice.account, credit: 'float:opera', amount: 1_00n, kind: 'opera-charge', reference: { receipt: true } }));
      assert.ok(sent.ok);
      assert.deepEqual([...(await services.crossings.deliver('home', [sent.entry]))], [], 'not received');
      assert.equal(await floatAt(s, 's0'), (await tokensByPlace(s, 'issued'))[0], "shard 0's float is its tokens");
      const audit = (await (await n.h.send('GET', '/v1/audit', { headers: n.h.operator })).json()) as { balanced: boolean; shards: ShardsJson };
      assert.deepEqual(audit.shards.problems, []);
      assert.equal(audit.balanced, true);
      assert.deepEqual(audit.shards.inFlight, [{ from: 'home', to: 's0', count: 1, amount: '1.00' }]);
      // After its last try (twenty, a quarter of an hour) its receiver holds it for the operator, as
      // written here; the operator's list shows it in major units, and no sweep publishes it again.
      const name = (services.settleQueue?.stream ?? '').replace(/^TALLY_SETTLE_/, '');
      const nats = await connect({ servers: testNatsUrl() });
      try {
        await holdCrossing(jetstream(nats), `tally.${name}`, { from: 'home', to: 's0', id: 'opera-charge:forged:s0', kind: 'opera-charge', amount: '100' }, 20, 'no charge part at home');
      } finally {
        await nats.close();
      }
      const held = await n.h.send('GET', '/v1/settle/held', { headers: n.h.operator });
      assert.equal(held.status, 200, await held.clone().text());
      const listed = (await held.json()) as { held: unknown[]; crossings: Array<Record<string, unknown>> };
      assert.deepEqual(listed.held, []);
      assert.deepEqual(listed.crossings.map(({ heldAt: _heldAt, ...rest }) => rest), [{ from: 'home', to: 's0', id: 'opera-charge:forged:s0', kind: 'opera-charge', amount: '1.00', deliveries: 20, error: 'no charge part at home' }]);
      assert.ok(services.crossings !== undefined && 'reconcile' in services.crossings);
      assert.deepEqual(await (services.crossings as CreditRelay).reconcile(0), { delivered: 0, republished: 0, held: 1 });
    } finally {
      await dispose(s);
    }
  });
});
