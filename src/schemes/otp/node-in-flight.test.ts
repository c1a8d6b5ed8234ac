/**
 * OTP coins in flight on the node, PGlite and PostgreSQL: a payer's report is refunded only after the
 * coin's deposit window, once; a coin deposited is never refunded and a coin refunded is never
 * credited again, in either order and when a deposit and a refund race (two node workers whose
 * clocks stand on either side of the window's end). Every test ends with the audit.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { toHex } from '../../core/bytes.ts';
import { closeTestTemplates, testBackends } from '../../issuer/db/test-databases.ts';
import { expectError } from '../../issuer/http/test-harness.ts';
import type { Coin } from './coin.ts';
import { otpNode, SHORT, type OtpClient, type OtpNode } from './node-fixtures.ts';

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
  const boxes = coins.map((coin) => n.sealForDeposit(n.pay({ coin, tags: [] }, alice.device, escrowKey), depositKey));
  const depositUntil = Math.max(...classes.map((c) => c.depositUntil));
  assert.equal(depositUntil, entry.depositUntil);
  return { alice, bob, coins, boxes, depositUntil };
}

function outcomesOf(settled: readonly { serial: string; outcome: string }[], coins: readonly Coin[]): (string | undefined)[] {
  return coins.map((c) => settled.find((s) => s.serial === toHex(c.serial))?.outcome);
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
      waiting = async () => Number((await tx.query<{ n: bigint }>("SELECT count(*)::bigint AS n FROM pg_locks WHERE NOT granted AND relation = 'otp_spent'::regclass")).rows[0]?.n);
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

async function balances(n: OtpNode, ...who: OtpClient[]): Promise<string[]> {
  return Promise.all(who.map((w) => n.h.balance(w)));
}

for (const backend of testBackends()) {
  describe(`OTP coins in flight on ${backend.kind}`, { skip: backend.skip }, () => {
    test('a coin in flight is refunded only after its deposit window, once; the refunded serial is then a double spend', async () => {
      const n = await otpNode(backend, SHORT);
      try {
        const { alice, bob, coins, boxes, depositUntil } = await inFlightCoins(n, 1);
        const before = await n.inFlight(alice, coins);
        assert.deepEqual(before.settled, [], 'within the window the coin stays in flight');
        assert.equal(before.refunded, '0.00');
        n.h.tick(depositUntil - n.h.now());
        assert.deepEqual((await n.inFlight(alice, coins)).settled, [], 'at the last instant of the window it still may be deposited');
        n.h.tick(1);
        const refunded = await n.inFlight(alice, coins);
        assert.deepEqual(outcomesOf(refunded.settled, coins), ['refunded']);
        assert.equal(refunded.refunded, '1.00');
        assert.equal(await n.h.balance(alice), '1.00');
        await n.conservation(0n);
        const again = await n.inFlight(alice, [...coins, ...coins]);
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
        const { alice, bob, coins, boxes, depositUntil } = await inFlightCoins(n, 2);
        assert.deepEqual((await n.deposit(bob, [boxes[0] as (typeof boxes)[number]])).outcomes, ['credited']);
        const early = await n.inFlight(alice, coins);
        assert.deepEqual(outcomesOf(early.settled, coins), ['deposited', undefined]);
        n.h.tick(depositUntil - n.h.now() + 1);
        const late = await n.inFlight(alice, coins);
        assert.deepEqual(outcomesOf(late.settled, coins), ['deposited', 'refunded']);
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
        const { alice, bob, coins, boxes, depositUntil } = await inFlightCoins(n, count);
        // Alice's claims are on record before the window closes, as a payer's TA reports at every sync.
        assert.deepEqual((await n.inFlight(alice, coins)).settled, []);
        n.h.tick(depositUntil - n.h.now() + 1);
        const behind = n.worker(() => depositUntil);
        // On PostgreSQL both transactions are held at their first write of a serial until both are open
        // and have read it unspent; they take the serials in opposite orders, so they may also deadlock
        // and be retried. (PGlite runs one transaction at a time.)
        const gate = backend.kind === 'postgres' ? await holdSpentWrites(n) : null;
        const racing = Promise.all([n.deposit(bob, boxes, { app: behind, now: depositUntil }), n.inFlight(alice, [...coins].reverse())]);
        if (gate !== null) await gate.releaseWhenWaiting(2);
        const [deposited, refunded] = await racing;
        assert.equal(deposited.res.status, 200);
        assert.equal(refunded.res.status, 200);
        const refundedOutcomes = outcomesOf(refunded.settled, coins);
        for (const [i, outcome] of deposited.outcomes.entries()) {
          if (outcome === 'credited') assert.equal(refundedOutcomes[i], 'deposited', `coin ${i}: credited to Bob, so not refunded`);
          else {
            assert.equal(outcome, 'double-spend', `coin ${i}`);
            assert.equal(refundedOutcomes[i], 'refunded', `coin ${i}: refunded to Alice, so not credited`);
          }
        }
        const [a, b] = await balances(n, alice, bob);
        assert.equal(Number(a) + Number(b), count, `Alice ${a} + Bob ${b}: each coin paid once`);
        const after = await n.inFlight(alice, coins);
        assert.deepEqual(outcomesOf(after.settled, coins), refundedOutcomes);
        assert.equal(after.refunded, '0.00');
        await n.conservation(0n);
      } finally {
        await n.h.close();
      }
    });

    test("another account's claim of a serial settles nothing; a report not signed by the device or of an unknown class is refused or left out", async () => {
      const n = await otpNode(backend, SHORT);
      try {
        const { alice, coins, depositUntil } = await inFlightCoins(n, 1);
        const mallory = await n.client();
        assert.deepEqual((await n.inFlight(alice, coins)).settled, []);
        n.h.tick(depositUntil - n.h.now() + 1);
        const stolen = await n.inFlight(mallory, coins);
        assert.deepEqual(stolen.settled, []);
        assert.equal(await n.h.balance(mallory), '0.00');
        await expectError((await n.inFlight(alice, coins, { signer: mallory.device })).res, 401, 'SIGNATURE_INVALID');
        const unknown = await n.inFlight(alice, [{ serial: new Uint8Array(32).fill(9), classId: new Uint8Array(16).fill(9), prefix: new Uint8Array(32), signature: new Uint8Array(256).fill(1) }]);
        assert.deepEqual(unknown.settled, []);
        assert.equal((await n.h.node.services.db.query('SELECT 1 FROM otp_claims')).rowCount, 1, 'a coin of no class is not claimed');
        const own = await n.inFlight(alice, coins);
        assert.deepEqual(outcomesOf(own.settled, coins), ['refunded']);
        assert.deepEqual(await balances(n, alice, mallory), ['1.00', '0.00']);
        await n.conservation(0n);
      } finally {
        await n.h.close();
      }
    });
    test("a coin paid twice and in flight at two devices: the second reporter is told of the coin's deposit (its TA may forget it), never refunded", async () => {
      // Found by `tally sim --scheme otp --seed 5 --devices 6 --payments 40 --attackers 0.34 --faults 0.08`: an
      // honest TA paid on a copy of a coin paid twice, its payee deposited it, and its report was
      // left out forever because the attacker's device had claimed the serial first.
      const n = await otpNode(backend, SHORT);
      try {
        const { alice, bob, coins, boxes } = await inFlightCoins(n, 1);
        const carol = await n.client();
        assert.deepEqual((await n.inFlight(alice, coins)).settled, [], 'Alice claims the serial first; it stays in flight');
        assert.deepEqual((await n.deposit(bob, boxes)).outcomes, ['credited']);
        const told = await n.inFlight(carol, coins);
        assert.deepEqual(outcomesOf(told.settled, coins), ['deposited']);
        assert.equal(told.refunded, '0.00');
        assert.deepEqual(outcomesOf((await n.inFlight(alice, coins)).settled, coins), ['deposited']);
        assert.deepEqual(await balances(n, alice, bob, carol), ['0.00', '1.00', '0.00']);
        await n.conservation(0n);
      } finally {
        await n.h.close();
      }
    });
    test('a refund claimed for a serial the bank never signed is left out: its signature does not verify, nothing is claimed or paid', async () => {
      const n = await otpNode(backend, SHORT);
      try {
        const { alice, coins, depositUntil } = await inFlightCoins(n, 1);
        const mallory = await n.client();
        const entry = await n.classOf(50_000n);
        // A device whose TA is broken reports a coin it never had, with a signature of its own making.
        const made = { serial: new Uint8Array(32).fill(5), classId: entry.coinClass.classId, prefix: new Uint8Array(32).fill(6), signature: Uint8Array.from(coins[0]!.signature) };
        n.h.tick(depositUntil - n.h.now() + 1);
        const claimed = await n.inFlight(mallory, [made]);
        assert.deepEqual(claimed.settled, []);
        assert.equal(claimed.refunded, '0.00');
        assert.equal(await n.h.balance(mallory), '0.00');
        assert.equal((await n.h.node.services.db.query('SELECT 1 FROM otp_claims WHERE serial = $1', [made.serial])).rowCount, 0, 'no claim is recorded for it');
        assert.deepEqual(outcomesOf((await n.inFlight(alice, coins)).settled, coins), ['refunded']);
        assert.equal(await n.h.balance(alice), '1.00');
        await n.conservation(0n);
      } finally {
        await n.h.close();
      }
    });
  });
}
