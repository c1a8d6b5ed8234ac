/**
 * chain-tee payments over TCP between wallets whose secure elements are child processes, killed
 * (SIGKILL) at each of the four crash points of the payer's `transfer`, `pay` and `abort` and of the
 * payee's `receive`, against a real issuer node and its embedded anvil. The payer's TEE holds a
 * payment until its ack: the next payment to the same payee sends it again and the payee's TEE
 * answers it with the ack it gave (or credits it now). Then the harder orders: the payee settled the
 * payment on chain before the two meet again, within the clock-drift bound and beyond it (the
 * payee's TEE has forgotten the payer's counter by then). After each case everyone syncs: each
 * payment is credited once, each TEE holds what its account holds on chain, the audit balances.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { CrashPoint } from '../../secure-element/secure-element.ts';
import { ChainWorld, declining, killAt, RUN_CRASH_POINTS, session } from './crash-fixtures.ts';
import { DRIFT_S } from './node-common.ts';

/** The points at which the killed commit had already replaced the state: the command took effect. */
const COMMITTED: readonly CrashPoint[] = ['after-rename', 'after-increment'];

describe('chain-tee payments with secure elements killed mid-commit', { timeout: 600_000 }, () => {
  let world: ChainWorld;

  before(async () => {
    world = await ChainWorld.start('tally-chain-crash-pay-', ['alice', 'bob'], { alice: '100.00' });
    await world.w('alice').deposit('60.00');
    world.credit('alice', 6_000n);
  });
  after(async () => {
    if (world !== undefined) assert.equal(await world.end(), 0, 'the node stops cleanly');
  });

  test('a payment killed in the payer’s transfer, pay or abort, or the payee’s receive, ends once at the next payment to the same payee', async () => {
    const cases: [payer: boolean, command: string][] = [[true, 'transfer'], [true, 'pay'], [true, 'abort'], [false, 'receive']];
    for (const [atPayer, command] of cases) {
      for (const point of RUN_CRASH_POINTS) {
        const label = `${atPayer ? 'payer' : 'payee'} ${command} at ${point}`;
        const [alice, bob] = [world.w('alice'), world.w('bob')];
        const start = { alice: await alice.status(), bob: await bob.status() };
        // abort runs when the payee declines (its TEE's ack_fail): bob declines this one payment.
        const undo = command === 'abort' ? await declining(bob) : () => undefined;
        await killAt(atPayer ? alice : bob, command, point);
        const cut = await session(alice, bob, '1.00');
        undo();
        assert.ok(cut.payer instanceof Error || cut.payee instanceof Error, `${label}: the payment was cut`);
        const mid = { alice: await alice.status(), bob: await bob.status() };
        // A payment held by alice may already be credited by bob (its ack lost), or not: nothing made, nothing lost.
        const [was, spendable] = [start.alice.balance + start.bob.balance, mid.alice.balance + mid.bob.balance];
        assert.ok(spendable <= was, `${label}: no value made (${spendable} spendable of ${was})`);
        assert.ok(spendable + mid.alice.pending >= was, `${label}: none lost (${spendable} + ${mid.alice.pending} held of ${was})`);
        const held = mid.alice.pending;
        const credited = mid.bob.balance - start.bob.balance;
        if (command === 'transfer') assert.equal(held, COMMITTED.includes(point) ? 100n : 0n, `${label}: held iff the transfer committed`);
        if (command === 'receive') assert.equal(credited, COMMITTED.includes(point) ? 100n : 0n, `${label}: credited iff the receive committed`);
        if (command === 'pay') assert.equal(held, COMMITTED.includes(point) ? 0n : 100n, `${label}: held until the ack is taken`);
        if (command === 'abort') assert.equal(mid.alice.balance, start.alice.balance - (COMMITTED.includes(point) ? 0n : 100n), `${label}: given back iff the abort committed`);
        // The next payment to bob sends the held payment again; bob answers it with the ack he gave (or credits it now).
        const next = await session(alice, bob, '1.00');
        assert.ok(!(next.payer instanceof Error), `${label}: ${String(next.payer)}`);
        assert.ok(!(next.payee instanceof Error), `${label}: ${String(next.payee)}`);
        assert.equal(next.payer.resent, held > 0n ? 1 : 0, `${label}: the held payment was sent again`);
        const end = { alice: await alice.status(), bob: await bob.status() };
        assert.equal(end.alice.pending, 0n, `${label}: nothing held any more`);
        // The cut payment moved once (a declined one, or one never signed, never), and the next one moved once.
        const moved = (command === 'abort' ? 0n : command === 'transfer' ? held : 100n) + 100n;
        assert.equal(end.bob.balance - start.bob.balance, moved, `${label}: bob credited once each`);
        assert.equal(start.alice.balance - end.alice.balance, moved, `${label}: alice paid once each`);
        world.move('alice', 'bob', moved);
        await world.assertConserved(label);
      }
    }
  });

  test('a payment whose ack the payer’s TEE never took, settled on chain by the payee before they meet again: the next payment goes through', async () => {
    const [alice, bob] = [world.w('alice'), world.w('bob')];
    await killAt(alice, 'pay', 'before-write');
    const cut = await session(alice, bob, '1.00');
    assert.ok(cut.payer instanceof Error, 'the payment was cut');
    assert.equal((await alice.status()).pending, 100n, 'alice holds it');
    // bob uploads it with his ack_win: the chain applies it and his TEE forgets it (not the payer's counter, yet).
    const settled = await bob.sync();
    assert.equal(settled.freed, 1);
    const next = await session(alice, bob, '1.00');
    assert.ok(!(next.payer instanceof Error), String(next.payer));
    assert.ok(!(next.payee instanceof Error), String(next.payee));
    assert.equal(next.payer.credited, true);
    world.move('alice', 'bob', 200n);
    await world.assertConserved('settled by the payee first');
  });

  test('the same, when the two meet again beyond the clock-drift bound: the payee’s TEE never declines a payment it may have credited', async () => {
    const [alice, bob] = [world.w('alice'), world.w('bob')];
    await killAt(alice, 'pay', 'before-write');
    const cut = await session(alice, bob, '1.00');
    assert.ok(cut.payer instanceof Error, 'the payment was cut');
    // Time passes on chain beyond the drift bound; bob settles, and his TEE forgets alice's counter.
    const { info } = await alice.chain();
    for (const [method, params] of [['evm_increaseTime', [2 * DRIFT_S]], ['evm_mine', []]] as const) {
      const answer = await fetch(info.rpcUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }) });
      assert.equal(answer.status, 200);
    }
    assert.equal((await bob.sync()).freed, 1);
    // alice's TEE learns the time too (not what the chain settled: she has not synced).
    await alice.refreshParams();
    const next = await session(alice, bob, '1.00');
    assert.ok(!(next.payer instanceof Error), String(next.payer));
    assert.ok(!(next.payee instanceof Error), String(next.payee));
    assert.equal(next.payer.credited, true);
    world.move('alice', 'bob', 200n);
    await world.assertConserved('settled by the payee first, met again beyond the drift bound');
    for (const wallet of [alice, bob]) assert.equal((await wallet.status()).status, 'open', 'nobody frozen');
  });
});
