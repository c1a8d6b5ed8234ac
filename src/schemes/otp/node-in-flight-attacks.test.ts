/**
 * OTP coins in flight under attack, PGlite and PostgreSQL: chains that do not open past their last
 * tag, a payer who paid a coin twice and reports a longer branch of its own, a clone reporting a
 * deeper chain, a chain longer than the coin's hops, a revoked device. Every test ends with the audit.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, test } from 'node:test';
import { toHex } from '../../core/bytes.ts';
import { HPKE_ENC_BYTES } from '../../core/crypto/hpke.ts';
import { closeTestTemplates, testBackends } from '../../issuer/db/test-databases.ts';
import { expectError } from '../../issuer/http/test-harness.ts';
import type { Coin } from './coin.ts';
import type { SealedTag } from './escrow.ts';
import { claimsUntil, type CarriedCoin } from './messages.ts';
import { HOPS } from './node-common.ts';
import { balances, findings, otpNode, rowsOf, SHORT, WAITING_ON_THIS_SQL, type OtpClient, type OtpNode } from './node-fixtures.ts';

after(() => closeTestTemplates());

/** Alice with one coin of 1.00 paid (her tag on it) and in flight at her device. */
async function oneCoin(n: OtpNode) {
  const alice = await n.client();
  await n.mint(alice, '1.00');
  const { escrowKey } = await n.params();
  const entry = await n.classOf(100n);
  const { coins } = await n.withdraw(alice, [entry]);
  const coin = coins[0] as Coin;
  const sent = n.pay({ coin, tags: [] }, alice.device, escrowKey);
  return { alice, coin, sent, escrowKey, depositUntil: entry.depositUntil, claimsUntil: claimsUntil(entry) };
}

/** A sealed tag of random bytes: it has a tag's shape and opens for nobody. */
function junkTag(): SealedTag {
  return { enc: new Uint8Array(randomBytes(HPKE_ENC_BYTES)), ciphertext: new Uint8Array(randomBytes(64)) };
}

function outcomeOf(settled: readonly { serial: string; outcome: string }[], coin: Coin): string | undefined {
  return settled.find((s) => s.serial === toHex(coin.serial))?.outcome;
}

/**
 * Holds an exclusive lock on `table` in a transaction of its own (PostgreSQL), so that its writers
 * wait; `waiting()` counts the sessions waiting on it, directly or through another that waits;
 * `release()` lets them go.
 */
async function holdWrites(n: OtpNode, table: string) {
  let release = () => {};
  const released = new Promise<void>((resolve) => (release = resolve));
  let waiting: () => Promise<number> = async () => 0;
  const locked = new Promise<void>((ready) => {
    void n.h.node.services.db.transaction(async (tx) => {
      await tx.query(`LOCK TABLE ${table} IN EXCLUSIVE MODE`);
      // Those waiting on this transaction only: other tests run beside it on the same server.
      waiting = async () => Number((await tx.query<{ n: bigint }>(WAITING_ON_THIS_SQL)).rows[0]?.n);
      ready();
      await released;
    });
  });
  await locked;
  return {
    async untilWaiting(count: number) {
      const deadline = Date.now() + 20_000;
      let seen = 0;
      while ((seen = await waiting()) < count && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      // Let the held transaction go before failing, or the node's pool would wait for it when closed.
      if (seen !== count) release();
      assert.equal(seen, count, `${count} lock requests waiting`);
    },
    release: () => release(),
  };
}

for (const backend of testBackends()) {
  describe(`OTP coins in flight under attack on ${backend.kind}`, { skip: backend.skip }, () => {
    test('a chain whose tags before the last do not open claims nothing: it cannot outrun, nor put in dispute, the payee who took the coin', async () => {
      const n = await otpNode(backend, SHORT);
      try {
        const { alice, coin, sent, escrowKey, claimsUntil: until } = await oneCoin(n);
        const [henry, mallory, eve] = [await n.client(), await n.client(), await n.client()];
        // Henry took Alice's coin and paid it on; his payment was cut.
        const atHenry = n.pay(sent, henry.device, escrowKey);
        assert.deepEqual((await n.inFlight(henry, [atHenry])).settled, []);
        // Mallory knows the coin (its serial and bank signature, as anyone it passed through) and signs,
        // with her device key taken out of its SE, one tag of her own after tags of random bytes.
        const junkFirst: CarriedCoin = { coin, tags: n.pay({ coin, tags: [junkTag(), junkTag()] }, mallory.device, escrowKey).tags };
        // Eve, who took the coin from Alice too (or read Alice's tag off Henry's copy), does the same after Alice's tag.
        const junkAfter: CarriedCoin = { coin, tags: n.pay({ coin, tags: [...sent.tags, junkTag(), junkTag()] }, eve.device, escrowKey).tags };
        assert.deepEqual((await n.inFlight(mallory, [junkFirst])).settled, []);
        assert.deepEqual((await n.inFlight(eve, [junkAfter])).settled, []);
        assert.equal(await rowsOf(n, 'otp_claims', coin.serial), 1, "Henry's claim only");
        n.h.tick(until - n.h.now() + 1);
        const answered = await n.inFlight(mallory, [junkFirst]);
        assert.equal(outcomeOf(answered.settled, coin), undefined, 'Mallory has no claim on the coin and learns nothing of it');
        assert.equal(answered.refunded, '0.00');
        assert.equal(outcomeOf((await n.inFlight(henry, [atHenry])).settled, coin), 'refunded');
        assert.deepEqual(await balances(n, alice, henry, mallory, eve), ['0.00', '1.00', '0.00', '0.00']);
        const { findings: named, disputes } = await findings(n);
        assert.deepEqual([named, disputes], [[], []]);
        await n.conservation(0n);
      } finally {
        await n.h.close();
      }
    });

    test('a payer who paid a coin twice is not refunded by a longer branch of its own making: it is named and the other branch refunded', async () => {
      const n = await otpNode(backend, SHORT);
      try {
        const { alice, coin, sent, escrowKey, claimsUntil: until } = await oneCoin(n);
        const carol = await n.client();
        // Carol took Alice's coin and paid it on (cut). Alice's copy (a clone, or her key out of its SE)
        // paid the same coin to itself twice more: a branch longer than Carol's, reported by Alice.
        const atCarol = n.pay(sent, carol.device, escrowKey);
        const own = n.pay(n.pay(n.pay({ coin, tags: [] }, alice.device, escrowKey), alice.device, escrowKey), alice.device, escrowKey);
        assert.deepEqual((await n.inFlight(carol, [atCarol])).settled, []);
        assert.deepEqual((await n.inFlight(alice, [own])).settled, []);
        n.h.tick(until - n.h.now() + 1);
        const answered = await n.inFlight(carol, [atCarol]);
        assert.equal(outcomeOf(answered.settled, coin), 'refunded');
        assert.equal(answered.refunded, '1.00');
        assert.deepEqual(await balances(n, alice, carol), ['0.00', '1.00']);
        const named = (await findings(n)).findings;
        assert.deepEqual(named.map((f) => [f.device, f.hop]), [[alice.deviceId, 1]]);
        await expectError((await n.inFlight(alice, [own])).res, 403, 'CERT_REVOKED');
        await n.conservation(0n);
      } finally {
        await n.h.close();
      }
    });

    test('a branch of a coin paid twice deposited late, after the refund, names its payer', async () => {
      const n = await otpNode(backend, SHORT);
      try {
        const { alice, coin, sent, escrowKey, depositUntil, claimsUntil: until } = await oneCoin(n);
        const [carol, dave, eve] = [await n.client(), await n.client(), await n.client()];
        const { depositKey } = await n.params();
        // Carol took Alice's coin and paid it on (cut). Alice's clone paid the same coin to Dave, who
        // paid it to Eve; Dave never heard her ACK.
        const atCarol = n.pay(sent, carol.device, escrowKey);
        const atDave = n.pay(n.pay({ coin, tags: [] }, alice.device, escrowKey), dave.device, escrowKey);
        assert.deepEqual((await n.inFlight(carol, [atCarol])).settled, []);
        n.h.tick(until - n.h.now() + 1);
        assert.equal(outcomeOf((await n.inFlight(carol, [atCarol])).settled, coin), 'refunded');
        assert.deepEqual((await findings(n)).findings, [], 'one branch alone names nobody');
        // Eve deposits Dave's copy on a worker whose clock is behind: the serial is spent.
        const behind = n.worker(() => depositUntil);
        const late = await n.deposit(eve, [n.sealForDeposit(atDave, depositKey)], { app: behind, now: depositUntil });
        assert.deepEqual(late.outcomes, ['double-spend']);
        assert.deepEqual((await findings(n)).findings.map((f) => [f.serial, f.device, f.hop]), [[toHex(coin.serial), alice.deviceId, 1]], 'named by the deposit');
        assert.deepEqual(await balances(n, alice, carol, dave, eve), ['0.00', '1.00', '0.00', '0.00']);
        await n.conservation(0n);
      } finally {
        await n.h.close();
      }
    });

    test("a branch of a coin paid twice reported after the refund hears 'double-spent' and names its payer", async () => {
      const n = await otpNode(backend, SHORT);
      try {
        const { alice, coin, sent, escrowKey, claimsUntil: until } = await oneCoin(n);
        const [carol, dave] = [await n.client(), await n.client()];
        const atCarol = n.pay(sent, carol.device, escrowKey);
        const atDave = n.pay(n.pay({ coin, tags: [] }, alice.device, escrowKey), dave.device, escrowKey);
        assert.deepEqual((await n.inFlight(carol, [atCarol])).settled, []);
        n.h.tick(until - n.h.now() + 1);
        assert.equal(outcomeOf((await n.inFlight(carol, [atCarol])).settled, coin), 'refunded');
        // Dave syncs only now: his claim is not recorded, but his tags show Alice paid the coin twice.
        const daves = await n.inFlight(dave, [atDave]);
        assert.equal(outcomeOf(daves.settled, coin), 'double-spent');
        assert.equal(daves.refunded, '0.00');
        assert.equal(await rowsOf(n, 'otp_claims', coin.serial), 1, "Carol's claim only");
        assert.deepEqual((await findings(n)).findings.map((f) => [f.serial, f.device, f.hop]), [[toHex(coin.serial), alice.deviceId, 1]]);
        await expectError((await n.inFlight(alice, [sent])).res, 403, 'CERT_REVOKED');
        assert.deepEqual(await balances(n, alice, carol, dave), ['0.00', '1.00', '0.00']);
        await n.conservation(0n);
      } finally {
        await n.h.close();
      }
    });

    test("a branch of a coin paid twice reported after the other branch was deposited hears 'double-spent' and names its payer; the deposited branch's payer hears 'deposited'", async () => {
      const n = await otpNode(backend, SHORT);
      try {
        const { alice, coin, sent, escrowKey } = await oneCoin(n);
        const [carol, dave] = [await n.client(), await n.client()];
        const { depositKey } = await n.params();
        // Carol deposits the coin Alice paid her. Alice's clone paid the same coin to Dave, who paid
        // it on; Dave never heard his payee's ACK and reports it in flight.
        const deposited = await n.deposit(carol, [n.sealForDeposit(sent, depositKey)]);
        assert.deepEqual(deposited.outcomes, ['credited']);
        const atDave = n.pay(n.pay({ coin, tags: [] }, alice.device, escrowKey), dave.device, escrowKey);
        // Alice's own report: the deposited chain continues hers (Carol took the coin).
        assert.equal(outcomeOf((await n.inFlight(alice, [sent])).settled, coin), 'deposited');
        assert.deepEqual((await findings(n)).findings, [], 'the deposit alone names nobody');
        const daves = await n.inFlight(dave, [atDave]);
        assert.equal(outcomeOf(daves.settled, coin), 'double-spent');
        assert.equal(daves.refunded, '0.00');
        assert.deepEqual((await findings(n)).findings.map((f) => [f.serial, f.device, f.hop]), [[toHex(coin.serial), alice.deviceId, 1]]);
        await expectError((await n.inFlight(alice, [sent])).res, 403, 'CERT_REVOKED');
        // Reported again: named once.
        assert.equal(outcomeOf((await n.inFlight(dave, [atDave])).settled, coin), 'double-spent');
        assert.equal((await findings(n)).findings.length, 1);
        assert.deepEqual(await balances(n, alice, carol, dave), ['0.00', '1.00', '0.00']);
        await n.conservation(0n);
      } finally {
        await n.h.close();
      }
    });

    // The two races below need PostgreSQL's concurrent transactions (PGlite runs one at a time).
    if (backend.kind === 'postgres') test('a report that puts the coin in dispute and one that brings a further claim, deciding at once: the coin is disputed or refunded, never both', async () => {
      const n = await otpNode(backend, SHORT);
      try {
        const { alice, coin, sent, escrowKey, claimsUntil: until } = await oneCoin(n);
        const [bob, mallory, dave, eve] = [await n.client(), await n.client(), await n.client(), await n.client()];
        // Bob took Alice's coin and paid it on (cut); Mallory signed a tag after Alice's with her key
        // out of its SE; Alice's clone paid the coin to Dave, who paid it to Eve, who paid it on (cut).
        const atBob = n.pay(sent, bob.device, escrowKey);
        const forged = n.pay(sent, mallory.device, escrowKey);
        const atEve = n.pay(n.pay(n.pay({ coin, tags: [] }, alice.device, escrowKey), dave.device, escrowKey), eve.device, escrowKey);
        assert.deepEqual((await n.inFlight(bob, [atBob])).settled, []);
        assert.deepEqual((await n.inFlight(mallory, [forged])).settled, []);
        n.h.tick(until - n.h.now() + 1);
        // Bob's report decides on Bob's and Mallory's claims (a dispute) and is held at its write of it.
        // Eve's report, which brings a claim further than both (its fork names Alice, a refund for
        // Eve), comes meanwhile: it reads the serial undisputed, and its claim waits on the class row
        // Bob's decision holds; it then decides on what Bob's decision left.
        const gate = await holdWrites(n, 'otp_claim_disputes');
        const bobs = n.inFlight(bob, [atBob]);
        await gate.untilWaiting(1);
        const eves = n.inFlight(eve, [atEve]);
        await gate.untilWaiting(2);
        gate.release();
        const [b, e] = await Promise.all([bobs, eves]);
        assert.equal(b.res.status, 200);
        assert.equal(e.res.status, 200);
        const disputed = await rowsOf(n, 'otp_claim_disputes', coin.serial);
        const spent = await rowsOf(n, 'otp_spent', coin.serial);
        assert.deepEqual([disputed, spent], [1, 0], 'disputed by the first decision, and not refunded by the second');
        assert.deepEqual([outcomeOf(b.settled, coin), outcomeOf(e.settled, coin)], ['double-spent', 'double-spent']);
        assert.deepEqual(await balances(n, alice, bob, mallory, dave, eve), ['0.00', '0.00', '0.00', '0.00', '0.00']);
        await n.conservation(100n);
      } finally {
        await n.h.close();
      }
    });

    if (backend.kind === 'postgres') test('two branches of a coin paid twice deciding at once: one refund, the payer named and revoked once, and the report that waited hears its refund', async () => {
      const n = await otpNode(backend, SHORT);
      try {
        const { alice, coin, sent, escrowKey, claimsUntil: until } = await oneCoin(n);
        const [carol, dave] = [await n.client(), await n.client()];
        const atCarol = n.pay(sent, carol.device, escrowKey);
        const atDave = n.pay(n.pay({ coin, tags: [] }, alice.device, escrowKey), dave.device, escrowKey);
        assert.deepEqual((await n.inFlight(carol, [atCarol])).settled, []);
        assert.deepEqual((await n.inFlight(dave, [atDave])).settled, []);
        n.h.tick(until - n.h.now() + 1);
        const lists = async () => Number((await n.h.node.services.db.query<{ n: bigint }>('SELECT count(*)::bigint AS n FROM revocation_lists')).rows[0]?.n);
        const before = await lists();
        // Dave's report decides first and is held at its refund; Carol's waits on the class row meanwhile,
        // and then finds the coin spent, the class with no coin out: it answers the refund all the same.
        const gate = await holdWrites(n, 'otp_spent');
        const daves = n.inFlight(dave, [atDave]);
        await gate.untilWaiting(1);
        const carols = n.inFlight(carol, [atCarol]);
        await gate.untilWaiting(2);
        gate.release();
        const [d, c] = await Promise.all([daves, carols]);
        assert.deepEqual([outcomeOf(d.settled, coin), outcomeOf(c.settled, coin)], ['double-spent', 'refunded']);
        assert.deepEqual([d.refunded, c.refunded], ['0.00', '0.00'], "Carol's refund is credited by the transaction that decided, Dave's");
        assert.deepEqual(await balances(n, alice, carol, dave), ['0.00', '1.00', '0.00']);
        assert.deepEqual((await findings(n)).findings.map((f) => [f.device, f.hop]), [[alice.deviceId, 1]]);
        assert.equal((await lists()) - before, 1, 'one revocation list issued');
        assert.equal(await rowsOf(n, 'otp_spent', coin.serial), 1);
        await n.conservation(0n);
      } finally {
        await n.h.close();
      }
    });

    test("a chain longer than the coin's hops claims nothing; a clone reporting a deeper chain of its own does not replace the claim on record, and names the device", async () => {
      const n = await otpNode(backend, SHORT);
      try {
        const { alice, coin, sent, escrowKey, claimsUntil: until } = await oneCoin(n);
        const [henry, mallory] = [await n.client(), await n.client()];
        // Mallory's key, out of its SE, pays the coin to herself past its hops.
        let long: CarriedCoin = { coin, tags: [] };
        for (let i = 0; i <= HOPS; i++) long = n.pay(long, mallory.device, escrowKey);
        assert.equal(long.tags.length, HOPS + 1);
        assert.deepEqual((await n.inFlight(mallory, [long])).settled, []);
        assert.equal(await rowsOf(n, 'otp_claims', coin.serial), 0);
        // Alice claims; Henry took her coin and paid it on (cut) and claims further.
        const atHenry = n.pay(sent, henry.device, escrowKey);
        assert.deepEqual((await n.inFlight(alice, [sent])).settled, []);
        assert.deepEqual((await n.inFlight(henry, [atHenry])).settled, []);
        // A clone of Alice's device paid the coin again, to itself, further than Henry carried it.
        const deeper = n.pay(n.pay(n.pay({ coin, tags: [] }, alice.device, escrowKey), alice.device, escrowKey), alice.device, escrowKey);
        assert.deepEqual((await n.inFlight(alice, [deeper])).settled, []);
        const stored = await n.h.node.services.db.query<{ device_key_id: string; hops: number }>('SELECT device_key_id, hops FROM otp_claims WHERE serial = $1 ORDER BY seq', [coin.serial]);
        assert.deepEqual(stored.rows.map((r) => [r.device_key_id, r.hops]), [[alice.deviceId, 1], [henry.deviceId, 2]], 'one claim per device: the first chain it reported');
        // The two chains of Alice's device part at her own hop: she paid the coin twice, named at once.
        assert.deepEqual((await findings(n)).findings.map((f) => [f.serial, f.device, f.hop]), [[toHex(coin.serial), alice.deviceId, 1]]);
        n.h.tick(until - n.h.now() + 1);
        await expectError((await n.inFlight(alice, [deeper])).res, 403, 'CERT_REVOKED');
        assert.equal(outcomeOf((await n.inFlight(mallory, [long])).settled, coin), undefined);
        assert.equal(outcomeOf((await n.inFlight(henry, [atHenry])).settled, coin), 'refunded');
        assert.deepEqual(await balances(n, alice, henry, mallory), ['0.00', '1.00', '0.00']);
        await n.conservation(0n);
      } finally {
        await n.h.close();
      }
    });

    test('a coin that came back to its payer and was paid on again: the longer chain continues the one on record and names nobody', async () => {
      const n = await otpNode(backend, SHORT);
      try {
        const { alice, coin, sent, escrowKey, claimsUntil: until } = await oneCoin(n);
        const [bob, carol] = [await n.client(), await n.client()];
        assert.deepEqual((await n.inFlight(alice, [sent])).settled, []);
        // Bob took Alice's coin and paid it back to her; she paid it on to Carol, cut again.
        const again = n.pay(n.pay(sent, bob.device, escrowKey), alice.device, escrowKey);
        assert.deepEqual((await n.inFlight(alice, [again])).settled, []);
        assert.deepEqual((await findings(n)).findings, [], 'one device, one chain that continues its first: nobody paid twice');
        n.h.tick(until - n.h.now() + 1);
        // The claim on record is her first chain; nobody carried the coin further on record.
        assert.equal(outcomeOf((await n.inFlight(alice, [again])).settled, coin), 'refunded');
        assert.deepEqual((await findings(n)).findings, []);
        assert.deepEqual(await balances(n, alice, bob, carol), ['1.00', '0.00', '0.00']);
        await n.conservation(0n);
      } finally {
        await n.h.close();
      }
    });

    test('a claim recorded before claims carried tags: refunded when alone, taken when a tagged claim carries the coin further', async () => {
      const n = await otpNode(backend, SHORT);
      try {
        const first = await oneCoin(n);
        const second = await oneCoin(n);
        const henry = await n.client();
        const legacy = async (who: OtpClient, coin: Coin) => {
          await n.h.node.services.db.query('INSERT INTO otp_claims (serial, class_id, account_id, device_key_id, at) VALUES ($1, $2, $3, $4, now())', [coin.serial, coin.classId, who.account, who.deviceId]);
        };
        await legacy(first.alice, first.coin);
        await legacy(second.alice, second.coin);
        const atHenry = n.pay(second.sent, henry.device, first.escrowKey);
        assert.deepEqual((await n.inFlight(henry, [atHenry])).settled, []);
        n.h.tick(Math.max(first.claimsUntil, second.claimsUntil) - n.h.now() + 1);
        // The first Alice reports someone else's chain: her legacy claim still answers, against an empty chain.
        const one = await n.inFlight(first.alice, [{ coin: first.coin, tags: n.pay({ coin: first.coin, tags: [] }, henry.device, first.escrowKey).tags }]);
        assert.deepEqual([outcomeOf(one.settled, first.coin), one.refunded], ['refunded', '1.00']);
        const two = await n.inFlight(second.alice, [second.sent]);
        assert.deepEqual([outcomeOf(two.settled, second.coin), two.refunded], ['taken', '0.00']);
        assert.deepEqual(await balances(n, first.alice, second.alice, henry), ['1.00', '0.00', '1.00']);
        await n.conservation(0n);
      } finally {
        await n.h.close();
      }
    });
  });
}
