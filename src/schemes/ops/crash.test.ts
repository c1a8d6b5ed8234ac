/**
 * OPS with each secure element in its own process (IsolatedHost, file counter), killed by SIGKILL
 * at each of the four crash points of a commit during Deposit, Pay and Collect (Figures 5, 7 and
 * 4's Collect). After a kill the host restarts on the same folder and the wallet retries the same
 * call with the same request id: a commit that landed gives back its stored output, one that did
 * not runs now; either way the step happens exactly once. No deposit confirmation applies twice,
 * no payment is made or collected twice, the node finds nothing to reconcile, and conservation
 * holds after every step.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { randomBytes } from '../../core/crypto/hash.ts';
import { isTallyError } from '../../core/errors.ts';
import { closeTestTemplates, testBackends } from '../../issuer/db/test-databases.ts';
import { CRASH_POINTS, type CrashPoint } from '../../secure-element/secure-element.ts';
import { encodePayment, type Payment } from './messages.ts';
import { opsNode, type OpsIsolatedSe, type OpsNode } from './test-fixtures.ts';

after(() => closeTestTemplates());

/** A crash at these points leaves the new state (renamed; the increment is rolled forward on open). */
const LANDED: ReadonlySet<CrashPoint> = new Set(['after-rename', 'after-increment']);

type Isolated = Awaited<ReturnType<OpsNode['isolatedDeviceClient']>>;

/** Asserts that the TA refused with `code`. */
async function refused(call: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(call, (e: unknown) => {
    assert.ok(isTallyError(e, 'SE_REJECTED'), String(e));
    assert.equal(e.details.reason, code, e.message);
    return true;
  });
}

async function counters(se: OpsIsolatedSe) {
  const s = await se.call('status', {});
  return { balance: s.balance, i: s.i, j: s.j, collects: s.unsyncedCollects };
}

/**
 * Arms the crash, runs `call` (which must die with SE_CRASHED at `point`), and starts the host
 * again on the same folder.
 */
async function killedAt(n: OpsNode, client: Isolated, point: CrashPoint, call: () => Promise<unknown>): Promise<void> {
  const pid = client.se.pid;
  await client.se.armCrash(point);
  await assert.rejects(call(), (e: unknown) => isTallyError(e, 'SE_CRASHED') && e.details.point === point);
  assert.equal(client.se.alive, false);
  client.se = await n.startIsolatedSe(client.dir, false);
  assert.notEqual(client.se.pid, pid);
}

// The secure element is what is under test here; one backend keeps the child processes few.
const backend = testBackends().find((b) => b.kind === 'pglite');
assert.ok(backend !== undefined);

describe('OPS with the secure element in a child process killed mid-commit', () => {
  let n: OpsNode;
  let alice: Isolated;
  let bob: Isolated;
  /** Payments made and not yet collected: conservation counts them. */
  const outstanding: Payment[] = [];
  let deposited = 0n;

  before(async () => {
    n = await opsNode(backend);
    [alice, bob] = await Promise.all([n.isolatedDeviceClient(), n.isolatedDeviceClient()]);
    await n.mint(alice, '100.00');
    await n.deposit(alice, '10.00');
    deposited = 1000n;
  });

  after(async () => {
    await n.close([alice, bob]);
  });

  for (const [k, point] of CRASH_POINTS.entries()) {
    test(`Deposit killed at ${point}: the retry with the same request id applies the confirmation exactly once`, async () => {
      const amount = BigInt(100 * (k + 1));
      const start = await counters(alice.se);
      const { status, confirmation } = await n.requestDeposit(alice, `${k + 1}.00`);
      assert.equal(status, 200);
      assert.ok(confirmation !== null);
      assert.equal(confirmation.i, start.i + 1n);
      const requestId = randomBytes(16);
      await killedAt(n, alice, point, () => alice.se.call('deposit', { confirmation }, { requestId }));

      // Old or new state, nothing in between.
      const landed = LANDED.has(point);
      assert.deepEqual(await counters(alice.se), landed ? { ...start, balance: start.balance + amount, i: start.i + 1n } : start);
      // The retry: the stored output if it landed, the deposit now if not; a second retry gives the same.
      assert.deepEqual(await alice.se.call('deposit', { confirmation }, { requestId }), { balance: start.balance + amount });
      assert.deepEqual(await alice.se.call('deposit', { confirmation }, { requestId }), { balance: start.balance + amount });
      // The same confirmation as a new call is a replay.
      await refused(alice.se.call('deposit', { confirmation }), 'COUNTER_MISMATCH');
      assert.deepEqual(await counters(alice.se), { ...start, balance: start.balance + amount, i: start.i + 1n });
      deposited += amount;
      assert.equal(await n.h.balance(alice), ((10_000n - deposited) / 100n).toString() + '.00');
      await n.conservation([alice, bob], outstanding);
    });
  }

  for (const [k, point] of CRASH_POINTS.entries()) {
    test(`Pay killed at ${point}: the retry gives one payment, byte for byte the same on every retry`, async () => {
      const amount = BigInt(200 + k);
      const start = await counters(alice.se);
      const requestId = randomBytes(16);
      const input = { amount, receiver: bob.certificate };
      await killedAt(n, alice, point, () => alice.se.call('pay', input, { requestId }));

      const landed = LANDED.has(point);
      assert.deepEqual(await counters(alice.se), landed ? { ...start, balance: start.balance - amount, j: start.j + 1n } : start);
      const payment = await alice.se.call('pay', input, { requestId });
      const again = await alice.se.call('pay', input, { requestId });
      assert.deepEqual(encodePayment(again), encodePayment(payment));
      assert.equal(payment.index, start.j + 1n);
      assert.equal(payment.amount, amount);
      // One payment, one debit.
      assert.deepEqual(await counters(alice.se), { ...start, balance: start.balance - amount, j: start.j + 1n });
      n.verifyOffline(payment, { receiver: bob.certificate });
      outstanding.push(payment);
      await n.conservation([alice, bob], outstanding);
    });
  }

  for (const [k, point] of CRASH_POINTS.entries()) {
    test(`Collect killed at ${point}: the retry credits the payment exactly once`, async () => {
      const payment = outstanding[0];
      assert.ok(payment !== undefined, 'the Pay tests left a payment for each collect');
      assert.equal(payment.amount, BigInt(200 + k));
      const start = await counters(bob.se);
      const requestId = randomBytes(16);
      await killedAt(n, bob, point, () => bob.se.call('collect', { payment }, { requestId }));

      const landed = LANDED.has(point);
      assert.deepEqual(await counters(bob.se), landed ? { ...start, balance: start.balance + payment.amount, collects: start.collects + 1 } : start);
      assert.deepEqual(await bob.se.call('collect', { payment }, { requestId }), { balance: start.balance + payment.amount });
      assert.deepEqual(await bob.se.call('collect', { payment }, { requestId }), { balance: start.balance + payment.amount });
      await refused(bob.se.call('collect', { payment }), 'PAYMENT_REPLAYED');
      assert.deepEqual(await counters(bob.se), { ...start, balance: start.balance + payment.amount, collects: start.collects + 1 });
      outstanding.shift();
      await n.conservation([alice, bob], outstanding);
    });
  }

  test('afterwards the node reconciles both devices without a finding, and the totals are exact', async () => {
    for (const who of [alice, bob]) assert.deepEqual((await n.sync(who)).fraud, []);
    const paid = 200n + 201n + 202n + 203n;
    assert.deepEqual(await counters(alice.se), { balance: deposited - paid, i: 5n, j: 4n, collects: 0 });
    assert.deepEqual(await counters(bob.se), { balance: paid, i: 0n, j: 0n, collects: 0 });
    const totals = await n.conservation([alice, bob]);
    assert.deepEqual(totals, { issued: 10_000n, online: 10_000n - deposited, float: deposited, held: deposited, unsettled: 0n });
  });
});
