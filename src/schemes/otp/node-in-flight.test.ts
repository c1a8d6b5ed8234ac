/**
 * OTP coins in flight on the node, PGlite and PostgreSQL: a payer's report is refunded only after the
 * coin's claim window, once, to the report that carries the coin furthest; a coin deposited is never
 * refunded and a coin refunded is never credited again, in either order and when a deposit and a
 * refund race (two node workers whose clocks stand on either side of the window's end); a coin paid
 * twice names its payer; a chain that is not the reporter's claims nothing. Every test ends with the
 * audit.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { toHex } from '../../core/bytes.ts';
import { closeTestTemplates, testBackends } from '../../issuer/db/test-databases.ts';
import { expectError } from '../../issuer/http/test-harness.ts';
import type { Coin } from './coin.ts';
import { claimsUntil, IN_FLIGHT_REPORT_BYTES_MAX, type CarriedCoin } from './messages.ts';
import { balances, findings, otpNode, rowsOf, SHORT, WAITING_ON_THIS_SQL, type OtpNode } from './node-fixtures.ts';

after(() => closeTestTemplates());

/** Alice with `count` coins of 1.00 paid to Bob's side (sealed for deposit) and still in flight at her device. */
async function inFlightCoins(n: OtpNode, count: number) {
  const alice = await n.client();
  const bob = await n.client();
  await n.mint(alice, `${count}.00`);
  const { escrowKey, depositKey, classes } = await n.params();
  const entry = await n.classOf(100n);
  const { coins } = await n.withdraw(alice, Array.from({ length: count }, () => entry));
  assert.equal(coins.length, count);
  // What Alice's TA keeps in flight: each coin with the tags it was sent with, hers last.
  const sent = coins.map((coin) => n.pay({ coin, tags: [] }, alice.device, escrowKey));
  const boxes = sent.map((carried) => n.sealForDeposit(carried, depositKey));
  const depositUntil = Math.max(...classes.map((c) => c.depositUntil));
  assert.equal(depositUntil, entry.depositUntil);
  return { alice, bob, coins, sent, boxes, escrowKey, depositKey, depositUntil, claimsUntil: claimsUntil(entry) };
}

function outcomesOf(settled: readonly { serial: string; outcome: string }[], coins: readonly (Coin | CarriedCoin)[]): (string | undefined)[] {
  return coins.map((c) => settled.find((s) => s.serial === toHex('coin' in c ? c.coin.serial : c.serial))?.outcome);
}

/**
 * Holds an exclusive lock on otp_spent in a transaction of its own (PostgreSQL), so that writers
 * of a serial wait; `releaseWhenWaiting(k)` lets them go once `k` transactions wait on it.
 */
async function holdSpentWrites(n: OtpNode) {
  let release = () => {};
  const released = new Promise<void>((resolve) => (release = resolve));
  let waiting: (count: number) => Promise<number> = async () => 0;
  const locked = new Promise<void>((ready) => {
    void n.h.node.services.db.transaction(async (tx) => {
      await tx.query('LOCK TABLE otp_spent IN EXCLUSIVE MODE');
      // Those waiting on this transaction only: other tests run beside it on the same server.
      waiting = async () => Number((await tx.query<{ n: bigint }>(WAITING_ON_THIS_SQL)).rows[0]?.n);
      ready();
      await released;
    });
  });
  await locked;
  return {
    async releaseWhenWaiting(count: number) {
      const deadline = Date.now() + 20_000;
      let seen = 0;
      while ((seen = await waiting(count)) < count && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      release();
      assert.equal(seen, count, 'both transactions were open and waiting on the same serials at once');
    },
  };
}

for (const backend of testBackends()) {
  describe(`OTP coins in flight on ${backend.kind}`, { skip: backend.skip }, () => {
    test('a coin in flight is refunded only after its claim window, once; the refunded serial is then a double spend', async () => {
      const n = await otpNode(backend, SHORT);
      try {
        const { alice, bob, sent, boxes, depositUntil, claimsUntil: until } = await inFlightCoins(n, 1);
        assert.ok(until > depositUntil, 'the claim window closes after the deposit window');
        const before = await n.inFlight(alice, sent);
        assert.deepEqual(before.settled, [], 'within the window the coin stays in flight');
        assert.equal(before.refunded, '0.00');
        n.h.tick(depositUntil - n.h.now() + 1);
        assert.deepEqual((await n.inFlight(alice, sent)).settled, [], 'past the deposit window a later holder may still claim it');
        n.h.tick(until - n.h.now());
        assert.deepEqual((await n.inFlight(alice, sent)).settled, [], 'at the last instant of the claim window');
        n.h.tick(1);
        const refunded = await n.inFlight(alice, sent);
        assert.deepEqual(outcomesOf(refunded.settled, sent), ['refunded']);
        assert.equal(refunded.refunded, '1.00');
        assert.equal(await n.h.balance(alice), '1.00');
        await n.conservation(0n);
        const again = await n.inFlight(alice, [...sent, ...sent]);
        assert.deepEqual(again.settled.map((s) => s.outcome), ['refunded'], 'answered again, once per serial');
        assert.equal(again.refunded, '0.00');
        assert.equal(await n.h.balance(alice), '1.00', 'credited once');
        // Bob comes too late: on this node the class is closed; on a worker whose clock is behind, the serial is spent.
        assert.deepEqual((await n.deposit(bob, boxes)).outcomes, ['refused']);
        const behind = n.worker(() => depositUntil);
        const late = await n.deposit(bob, boxes, { app: behind, now: depositUntil });
        assert.deepEqual(late.outcomes, ['double-spend']);
        assert.equal(late.credited, '0.00');
        assert.deepEqual(await balances(n, alice, bob), ['1.00', '0.00']);
        await n.conservation(0n);
      } finally {
        await n.h.close();
      }
    });

    test('a coin deposited is reported deposited and never refunded', async () => {
      const n = await otpNode(backend, SHORT);
      try {
        const { alice, bob, sent, boxes, claimsUntil: until } = await inFlightCoins(n, 2);
        assert.deepEqual((await n.deposit(bob, [boxes[0] as (typeof boxes)[number]])).outcomes, ['credited']);
        const early = await n.inFlight(alice, sent);
        assert.deepEqual(outcomesOf(early.settled, sent), ['deposited', undefined]);
        n.h.tick(until - n.h.now() + 1);
        const late = await n.inFlight(alice, sent);
        assert.deepEqual(outcomesOf(late.settled, sent), ['deposited', 'refunded']);
        assert.equal(late.refunded, '1.00');
        assert.deepEqual(await balances(n, alice, bob), ['1.00', '1.00']);
        await n.conservation(0n);
      } finally {
        await n.h.close();
      }
    });

    test('a deposit and a refund of the same coins racing on two workers: each serial is paid exactly once', async () => {
      const n = await otpNode(backend, SHORT);
      try {
        const count = 6;
        const { alice, bob, sent, boxes, depositUntil, claimsUntil: until } = await inFlightCoins(n, count);
        // Alice's claims are on record before the window closes, as a payer's TA reports at every sync.
        assert.deepEqual((await n.inFlight(alice, sent)).settled, []);
        n.h.tick(until - n.h.now() + 1);
        const behind = n.worker(() => depositUntil);
        // On PostgreSQL both transactions are held at their first write of a serial until both are open
        // and have read it unspent; they take the serials in opposite orders, so they may also deadlock
        // and be retried. (PGlite runs one transaction at a time.)
        const gate = backend.kind === 'postgres' ? await holdSpentWrites(n) : null;
        const racing = Promise.all([n.deposit(bob, boxes, { app: behind, now: depositUntil }), n.inFlight(alice, [...sent].reverse())]);
        if (gate !== null) await gate.releaseWhenWaiting(2);
        const [deposited, refunded] = await racing;
        assert.equal(deposited.res.status, 200);
        assert.equal(refunded.res.status, 200);
        const refundedOutcomes = outcomesOf(refunded.settled, sent);
        for (const [i, outcome] of deposited.outcomes.entries()) {
          if (outcome === 'credited') assert.equal(refundedOutcomes[i], 'deposited', `coin ${i}: credited to Bob, so not refunded`);
          else {
            assert.equal(outcome, 'double-spend', `coin ${i}`);
            assert.equal(refundedOutcomes[i], 'refunded', `coin ${i}: refunded to Alice, so not credited`);
          }
        }
        const [a, b] = await balances(n, alice, bob);
        assert.equal(Number(a) + Number(b), count, `Alice ${a} + Bob ${b}: each coin paid once`);
        const after = await n.inFlight(alice, sent);
        assert.deepEqual(outcomesOf(after.settled, sent), refundedOutcomes);
        assert.equal(after.refunded, '0.00');
        await n.conservation(0n);
      } finally {
        await n.h.close();
      }
    });

    test("a chain that is not the reporter's claims nothing; a report not signed by the device or of an unknown class is refused or left out", async () => {
      const n = await otpNode(backend, SHORT);
      try {
        const { alice, coins, sent, escrowKey, claimsUntil: until } = await inFlightCoins(n, 1);
        const mallory = await n.client();
        assert.deepEqual((await n.inFlight(alice, sent)).settled, []);
        n.h.tick(until - n.h.now() + 1);
        // Mallory replays Alice's coin with Alice's tags (as its payee would hold them): the last tag is not hers.
        const stolen = await n.inFlight(mallory, sent);
        assert.deepEqual(stolen.settled, []);
        assert.equal(await n.h.balance(mallory), '0.00');
        await expectError((await n.inFlight(alice, sent, { signer: mallory.device })).res, 401, 'SIGNATURE_INVALID');
        const tags = (sent[0] as CarriedCoin).tags;
        const unknown = await n.inFlight(alice, [{ coin: { serial: new Uint8Array(32).fill(9), classId: new Uint8Array(16).fill(9), prefix: new Uint8Array(32), signature: new Uint8Array(256).fill(1), program: (coins[0] as Coin).program }, tags }]);
        assert.deepEqual(unknown.settled, []);
        // Mallory's own tag, made for another coin, does not open for this serial: nothing claimed either.
        const [other] = (await inFlightCoins(n, 1)).sent;
        const swapped = await n.inFlight(mallory, [{ coin: (sent[0] as CarriedCoin).coin, tags: n.pay(other as CarriedCoin, mallory.device, escrowKey).tags }]);
        assert.deepEqual(swapped.settled, []);
        assert.equal(await rowsOf(n, 'otp_claims', (coins[0] as Coin).serial), 1, 'one claim: Alice\'s own');
        const own = await n.inFlight(alice, sent);
        assert.deepEqual(outcomesOf(own.settled, sent), ['refunded']);
        assert.deepEqual(await balances(n, alice, mallory), ['1.00', '0.00']);
        await n.conservation();
      } finally {
        await n.h.close();
      }
    });

    test("a coin paid twice and in flight at two devices, one branch deposited: the other branch's reporter hears 'double-spent' (its TA forgets the coin), never refunded, and the payer is named", async () => {
      // Found by `tally sim --scheme otp --seed 5 --devices 6 --payments 40 --attackers 0.34 --faults 0.08`: an
      // honest TA paid on a copy of a coin paid twice, its payee deposited it, and its report was
      // left out forever because the attacker's device had claimed the serial first. It was then
      // told `deposited`; its tags part from the deposited coin's at Alice's hop, which names her.
      const n = await otpNode(backend, SHORT);
      try {
        const { alice, bob, sent, boxes, escrowKey } = await inFlightCoins(n, 1);
        const carol = await n.client();
        // Alice's copy paid the coin a second time, to Carol, who paid it on: her payment was cut.
        const atCarol = n.pay(n.pay({ coin: (sent[0] as CarriedCoin).coin, tags: [] }, alice.device, escrowKey), carol.device, escrowKey);
        assert.deepEqual((await n.inFlight(alice, sent)).settled, [], 'Alice claims the serial first; it stays in flight');
        assert.deepEqual((await n.deposit(bob, boxes)).outcomes, ['credited']);
        // Alice's own claim: Bob, her payee on the deposited branch, took the coin.
        assert.deepEqual(outcomesOf((await n.inFlight(alice, sent)).settled, sent), ['deposited']);
        const told = await n.inFlight(carol, [atCarol]);
        assert.deepEqual(outcomesOf(told.settled, [atCarol]), ['double-spent']);
        assert.equal(told.refunded, '0.00');
        const serial = toHex((sent[0] as CarriedCoin).coin.serial);
        assert.deepEqual((await findings(n)).findings.map((f) => [f.serial, f.device, f.hop]), [[serial, alice.deviceId, 1]]);
        await expectError((await n.inFlight(alice, sent)).res, 403, 'CERT_REVOKED');
        assert.deepEqual(await balances(n, alice, bob, carol), ['0.00', '1.00', '0.00']);
        await n.conservation(0n);
      } finally {
        await n.h.close();
      }
    });

    test('a coin its payee took and paid on, cut twice: the payee who carried it furthest is refunded, whoever reports first; the payer hears it was taken', async () => {
      // Found by `tally sim --scheme ops,dotm,otp --seed 1 --devices 4 --payments 10 --attackers 0.34 --faults 0.08`:
      // a copy of the payer's TA reported the coin first and was refunded; the payee who had taken
      // it, and whose own payment of it was cut, lost it.
      const n = await otpNode(backend, SHORT);
      try {
        const { alice, sent, escrowKey, claimsUntil: until } = await inFlightCoins(n, 2);
        const henry = await n.client();
        // Henry took both of Alice's boxes (her ACKs were lost) and paid both on; both payments were cut.
        const atHenry = sent.map((carried) => n.pay(carried, henry.device, escrowKey));
        assert.deepEqual((await n.inFlight(alice, sent)).settled, [], 'Alice (or her clone) claims first');
        assert.deepEqual((await n.inFlight(henry, atHenry)).settled, []);
        n.h.tick(until - n.h.now() + 1);
        const first = await n.inFlight(alice, sent);
        assert.deepEqual(outcomesOf(first.settled, sent), ['taken', 'taken']);
        assert.equal(first.refunded, '0.00');
        assert.deepEqual(await balances(n, alice, henry), ['0.00', '2.00'], 'Henry is refunded when the bank decides, whoever asked');
        const second = await n.inFlight(henry, atHenry);
        assert.deepEqual(outcomesOf(second.settled, atHenry), ['refunded', 'refunded']);
        assert.equal(second.refunded, '0.00', 'credited once, when decided');
        assert.deepEqual(outcomesOf((await n.inFlight(alice, sent)).settled, sent), ['taken', 'taken'], 'a replayed report changes nothing');
        assert.deepEqual(await balances(n, alice, henry), ['0.00', '2.00']);
        assert.deepEqual((await findings(n)).findings, [], 'nobody paid twice');
        await n.conservation(0n);
      } finally {
        await n.h.close();
      }
    });

    test('a coin paid twice, each branch paid on and cut: one branch refunded, the other told, the payer named and revoked', async () => {
      const n = await otpNode(backend, SHORT);
      try {
        const { alice, coins, sent, escrowKey, claimsUntil: until } = await inFlightCoins(n, 1);
        const [carol, dave] = [await n.client(), await n.client()];
        const coin = (coins[0] as Coin);
        // Alice's clone paid the same coin to Dave; Carol took the first copy. Both paid on, both cut.
        const atCarol = n.pay(sent[0] as CarriedCoin, carol.device, escrowKey);
        const atDave = n.pay(n.pay({ coin, tags: [] }, alice.device, escrowKey), dave.device, escrowKey);
        assert.deepEqual((await n.inFlight(carol, [atCarol])).settled, []);
        assert.deepEqual((await n.inFlight(dave, [atDave])).settled, []);
        assert.deepEqual((await n.inFlight(alice, sent)).settled, []);
        n.h.tick(until - n.h.now() + 1);
        const daves = await n.inFlight(dave, [atDave]);
        assert.deepEqual(outcomesOf(daves.settled, [atDave]), ['double-spent'], 'Carol claimed as far, and first');
        assert.deepEqual(await balances(n, alice, carol, dave), ['0.00', '1.00', '0.00']);
        assert.deepEqual(outcomesOf((await n.inFlight(carol, [atCarol])).settled, [atCarol]), ['refunded']);
        const named = (await findings(n)).findings;
        assert.deepEqual(named.map((f) => [f.serial, f.device, f.hop]), [[toHex(coin.serial), alice.deviceId, 1]]);
        await expectError((await n.inFlight(alice, sent)).res, 403, 'CERT_REVOKED');
        await n.conservation(0n);
      } finally {
        await n.h.close();
      }
    });

    test('claims that part at a tag two devices signed: nobody is refunded, the operator sees both devices', async () => {
      const n = await otpNode(backend, SHORT);
      try {
        const { alice, coins, sent, escrowKey, claimsUntil: until } = await inFlightCoins(n, 1);
        const [carol, mallory] = [await n.client(), await n.client()];
        // Carol took the coin and paid it on (cut). Mallory, who learnt Alice's tags from someone on
        // the chain, signs a tag of her own after them with her device key taken out of its SE.
        const atCarol = n.pay(sent[0] as CarriedCoin, carol.device, escrowKey);
        const forged = n.pay(n.pay(sent[0] as CarriedCoin, mallory.device, escrowKey), mallory.device, escrowKey);
        assert.deepEqual((await n.inFlight(carol, [atCarol])).settled, []);
        assert.deepEqual((await n.inFlight(mallory, [forged])).settled, []);
        n.h.tick(until - n.h.now() + 1);
        const answered = await n.inFlight(mallory, [forged]);
        assert.deepEqual(outcomesOf(answered.settled, [forged]), ['double-spent']);
        assert.deepEqual(outcomesOf((await n.inFlight(carol, [atCarol])).settled, [atCarol]), ['double-spent']);
        assert.deepEqual(outcomesOf((await n.inFlight(alice, sent)).settled, sent), ['double-spent']);
        assert.deepEqual(await balances(n, alice, carol, mallory), ['0.00', '0.00', '0.00']);
        const { findings: named, disputes } = await findings(n);
        assert.deepEqual(named, []);
        assert.deepEqual(disputes.map((d) => [d.serial, d.hop, [...d.devices].sort()]), [[toHex((coins[0] as Coin).serial), 2, [carol.deviceId, mallory.deviceId].sort()]]);
        assert.equal(await rowsOf(n, 'otp_spent', (coins[0] as Coin).serial), 0, 'the coin stays in float:otp');
        await n.conservation(100n);
      } finally {
        await n.h.close();
      }
    });

    test("claims that part at a tag two devices signed, after a key the bank signed: settled for that key's device, the other device named and revoked", async () => {
      const n = await otpNode(backend, SHORT);
      try {
        const { alice, coins, escrowKey, claimsUntil: until } = await inFlightCoins(n, 1);
        const [carol, mallory] = [await n.client(), await n.client()];
        const coin = coins[0] as Coin;
        // Alice paid the coin to an exchange key the bank signed for Carol's device (her ACK was lost);
        // Carol paid it on (cut). Mallory, who learnt the tags, signs two tags of her own after Alice's
        // with her device key taken out of its SE: a deeper claim.
        const toCarol = n.pay({ coin, tags: [] }, alice.device, escrowKey, await n.exchangeKeyOf(carol));
        const atCarol = n.pay(toCarol, carol.device, escrowKey);
        const forged = n.pay(n.pay(toCarol, mallory.device, escrowKey, await n.exchangeKeyOf(mallory)), mallory.device, escrowKey);
        for (const [who, carried] of [[alice, toCarol], [carol, atCarol], [mallory, forged]] as const) assert.deepEqual((await n.inFlight(who, [carried])).settled, []);
        n.h.tick(until - n.h.now() + 1);
        const answered = await n.inFlight(alice, [toCarol]);
        assert.deepEqual(outcomesOf(answered.settled, [toCarol]), ['taken']);
        assert.deepEqual(await balances(n, alice, carol, mallory), ['0.00', '1.00', '0.00'], 'Carol held the key Alice paid to: hers is the claim');
        assert.deepEqual(outcomesOf((await n.inFlight(carol, [atCarol])).settled, [atCarol]), ['refunded']);
        const { findings: named, disputes } = await findings(n);
        assert.deepEqual(disputes, []);
        assert.deepEqual(named.map((f) => [f.serial, f.device, f.hop]), [[toHex(coin.serial), mallory.deviceId, 2]]);
        await expectError((await n.inFlight(mallory, [forged])).res, 403, 'CERT_REVOKED');
        await n.conservation(0n);
      } finally {
        await n.h.close();
      }
    });

    test('a report over its limit is refused whole, and nothing is claimed', async () => {
      const n = await otpNode(backend, SHORT);
      try {
        const { alice, sent } = await inFlightCoins(n, 1);
        const oversized = await n.send(alice, '/v1/otp/in-flight', { device: alice.deviceId, report: 'A'.repeat(Math.ceil((IN_FLIGHT_REPORT_BYTES_MAX * 4) / 3) + 8) });
        assert.ok([400, 413].includes(oversized.status), `status ${oversized.status}`);
        assert.equal(await rowsOf(n, 'otp_claims', (sent[0] as CarriedCoin).coin.serial), 0);
        await n.conservation();
      } finally {
        await n.h.close();
      }
    });

    test('a refund claimed for a serial the bank never signed is left out: its signature does not verify, nothing is claimed or paid', async () => {
      const n = await otpNode(backend, SHORT);
      try {
        const { alice, coins, sent, escrowKey, claimsUntil: until } = await inFlightCoins(n, 1);
        const mallory = await n.client();
        const entry = await n.classOf(50_000n);
        // A device whose TA is broken reports a coin it never had, with a signature of its own making.
        const made = n.pay({ coin: { serial: new Uint8Array(32).fill(5), classId: entry.coinClass.classId, prefix: new Uint8Array(32).fill(6), signature: Uint8Array.from((coins[0] as Coin).signature), program: entry.program }, tags: [] }, mallory.device, escrowKey);
        n.h.tick(until - n.h.now() + 1);
        const claimed = await n.inFlight(mallory, [made]);
        assert.deepEqual(claimed.settled, []);
        assert.equal(claimed.refunded, '0.00');
        assert.equal(await n.h.balance(mallory), '0.00');
        assert.equal(await rowsOf(n, 'otp_claims', made.coin.serial), 0, 'no claim is recorded for it');
        assert.deepEqual(outcomesOf((await n.inFlight(alice, sent)).settled, sent), ['refunded']);
        assert.equal(await n.h.balance(alice), '1.00');
        await n.conservation(0n);
      } finally {
        await n.h.close();
      }
    });
  });
}
