/**
 * OfflineAccounts on a real anvil: the faults a correct TEE could not see offline, and whom they
 * freeze (docs/chain.md): a fork (one payer and counter, two payments) freezes the payer and is
 * honoured up to its balance; so is a payment attested by an enclave not registered, revoked, or
 * other than the one the payer is bound to; a payee that signed both acks is frozen. A frozen
 * account keeps receiving but pays nothing out to itself.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import type { Hex } from 'viem';
import { startAnvilEnv, testAccount, type AnvilEnv } from './anvil-fixtures.ts';
import { offlineAccountsAbi } from './contracts.generated.ts';
import { ackPayment, itemHash, KIND, makePayment, toItem, type Device } from './upload-fixtures.ts';
import { assertReverts, eventNames, eventsNamed, World } from './world-fixtures.ts';

const FAULT = { enclaveUnregistered: 20, enclaveMismatch: 21, fork: 22, conflictingAck: 23 } as const;
const STATE = { owed: 2, applied: 3, failed: 4 } as const;
const STATUS = { open: 1, frozen: 2 } as const;
const TAG_MASK = ~0xffn & ((1n << 256n) - 1n);

let env: AnvilEnv;
let world: World;
let clean: Hex;
let alice: Device, bob: Device, carol: Device, eve: Device;

before(async () => {
  env = await startAnvilEnv();
  world = new World(env);
  [alice, bob, carol, eve] = ['alice', 'bob', 'carol', 'eve'].map((label) => world.device(label)) as [Device, Device, Device, Device];
  await world.register(alice, bob, carol);
  for (const device of [alice, bob, carol]) await world.deposit(device.address, 100n);
  clean = await env.snapshot();
});

after(async () => {
  await env?.close();
});

beforeEach(async () => {
  await env.revert(clean);
  clean = await env.snapshot();
});

// Conservation after every scenario, whatever it asserted itself.
afterEach(async () => {
  await world.assertConservation();
});

function forkState(payment: Hex): Promise<number> {
  return env.publicClient.readContract({ address: env.accounts, abi: offlineAccountsAbi, functionName: 'forkStateOf', args: [payment] });
}

describe('OfflineAccounts: forks', () => {
  it('freezes the payer of two payments with one counter, names both, and honours the second up to the balance', async () => {
    const first = await world.paid(alice, bob, { amount: 80n, counter: 0n, stateBalance: 100n }, true);
    const second = await world.paid(alice, carol, { amount: 80n, counter: 0n, stateBalance: 100n }, true);
    assert.deepEqual(eventNames(await world.reconcile(bob, [first])), ['Bound', 'Applied', 'Reconciled']);
    const fork = await world.reconcile(carol, [second]);
    assert.equal(fork.result, true);
    assert.deepEqual(eventNames(fork), ['ForkProved', 'Frozen', 'Applied', 'Shortfall', 'Reconciled']);
    assert.deepEqual(eventsNamed(fork, 'ForkProved')[0]?.args, {
      payer: alice.address,
      counter: 0n,
      first: `0x${(BigInt(itemHash(first)) & TAG_MASK).toString(16).padStart(64, '0')}`,
      second: itemHash(second),
    });
    assert.deepEqual(eventsNamed(fork, 'Frozen')[0]?.args, { account: alice.address, reason: FAULT.fork });
    assert.equal(eventsNamed(fork, 'Applied')[0]?.args.honored, 20n);
    assert.deepEqual(eventsNamed(fork, 'Shortfall')[0]?.args, { payer: alice.address, counter: 0n, payee: carol.address, missing: 60n });
    assert.deepEqual([await world.balance(alice), await world.balance(bob), await world.balance(carol)], [0n, 180n, 120n]);
    assert.equal(await forkState(itemHash(second)), STATE.applied);
    assert.equal(await world.paymentState(alice.address, 0n), STATE.applied, 'the first payment keeps its slot');
    await world.assertConservation();

    // Each branch settles once; a third branch is proved again and gets what is left (nothing).
    assert.deepEqual(eventNames(await world.reconcile(carol, [second])), ['Duplicate', 'Reconciled']);
    const third = await world.paid(alice, carol, { amount: 5n, counter: 0n, stateBalance: 100n }, true);
    const again = await world.reconcile(carol, [third]);
    assert.deepEqual(eventNames(again), ['ForkProved', 'Frozen', 'Applied', 'Shortfall', 'Reconciled']);
    assert.equal(eventsNamed(again, 'Applied')[0]?.args.honored, 0n);
    assert.deepEqual([await world.balance(alice), await world.balance(carol)], [0n, 120n]);
    await world.assertConservation();
  });

  it('finds a fork inside one upload, by the payer itself', async () => {
    const items = [
      await world.paid(alice, bob, { amount: 60n, counter: 0n, stateBalance: 100n }, true),
      await world.paid(alice, carol, { amount: 60n, counter: 0n, stateBalance: 100n }, true),
    ];
    const settled = await world.reconcile(alice, items);
    assert.equal(settled.result, true);
    assert.deepEqual(eventNames(settled), ['Bound', 'Applied', 'ForkProved', 'Frozen', 'Applied', 'Shortfall', 'Reconciled']);
    assert.deepEqual([await world.balance(alice), await world.balance(bob), await world.balance(carol)], [0n, 160n, 140n]);
    await world.assertConservation();
  });

  it('leaves a frozen payer receiving, but refuses its deposits and its own withdrawals and closing', async () => {
    await world.reconcile(alice, [
      await world.paid(alice, bob, { amount: 10n, counter: 0n, stateBalance: 100n }, true),
      await world.paid(alice, carol, { amount: 10n, counter: 0n, stateBalance: 100n }, true),
    ]);
    assert.equal((await world.account(alice.address)).status, STATUS.frozen);
    const incoming = await world.paid(bob, alice, { amount: 30n, counter: 0n, stateBalance: 100n }, true);
    assert.deepEqual(eventNames(await world.reconcile(alice, [incoming])).filter((n) => n !== 'Bound'), ['Applied', 'Reconciled']);
    assert.equal(await world.balance(alice), 110n);
    const cash = testAccount('cash-out').address;
    const withdrawal = await world.paid(alice, cash, { amount: 10n, counter: 1n, stateBalance: 110n, kind: KIND.withdraw });
    const closing = await world.paid(alice, cash, { amount: 110n, counter: 2n, stateBalance: 110n, kind: KIND.close });
    assert.deepEqual(eventNames(await world.reconcile(alice, [withdrawal, closing])), ['Failed', 'Failed', 'Reconciled']);
    assert.equal(await world.tokenBalance(cash), 0n);
    await world.mint(world.funder.address, 5n);
    await world.approve(world.funder, 5n);
    await assertReverts(world.depositCall(alice.address, 5n, world.funder), 'AccountFrozen');
    await world.assertConservation();
  });
});

describe('OfflineAccounts: enclaves', () => {
  it('freezes a payer attested by an enclave the bank never registered; honours the payment up to its balance', async () => {
    await world.deposit(eve.address, 50n);
    const item = await world.paid(eve, bob, { amount: 80n, counter: 0n, stateBalance: 80n }, true);
    const settled = await world.reconcile(bob, [item]);
    assert.deepEqual(eventNames(settled), ['Frozen', 'Applied', 'Shortfall', 'Reconciled']);
    assert.deepEqual(eventsNamed(settled, 'Frozen')[0]?.args, { account: eve.address, reason: FAULT.enclaveUnregistered });
    assert.equal(eventsNamed(settled, 'Applied')[0]?.args.honored, 50n);
    assert.deepEqual(await world.account(eve.address), { balance: 0n, deposits: 1n, status: STATUS.frozen, enclave: '0x0000000000000000000000000000000000000000' });
    assert.equal((await world.account(bob.address)).status, STATUS.open, 'the uploader is not blamed');
    await world.assertConservation();
  });

  it('freezes a payer whose enclave was revoked (the payee is paid: the payer has the funds)', async () => {
    await world.reconcile(alice, [await world.paid(alice, bob, { amount: 10n, counter: 0n, stateBalance: 100n }, true)]);
    const bank = await env.wallet(env.bank);
    await world.mined(await bank.writeContract({ address: env.accounts, abi: offlineAccountsAbi, functionName: 'revokeEnclave', args: [alice.enclave.address] }));
    const settled = await world.reconcile(bob, [await world.paid(alice, bob, { amount: 20n, counter: 1n, stateBalance: 90n }, true)]);
    assert.deepEqual(eventNames(settled), ['Frozen', 'Applied', 'Reconciled']);
    assert.deepEqual(eventsNamed(settled, 'Frozen')[0]?.args, { account: alice.address, reason: FAULT.enclaveUnregistered });
    assert.deepEqual([await world.balance(alice), await world.balance(bob)], [70n, 130n]);
    await world.assertConservation();
  });

  it('freezes a payer whose account key shows up attested by another enclave than the one it is bound to', async () => {
    await world.reconcile(alice, [await world.paid(alice, bob, { amount: 10n, counter: 0n, stateBalance: 100n }, true)]);
    assert.equal((await world.account(alice.address)).enclave, alice.enclave.address);
    // The same account key in carol's (registered) enclave: an extracted or cloned key.
    const clone = { ...alice, enclave: carol.enclave };
    const settled = await world.reconcile(bob, [await world.paid(clone, bob, { amount: 20n, counter: 1n, stateBalance: 90n }, true)]);
    assert.deepEqual(eventNames(settled), ['Frozen', 'Applied', 'Reconciled']);
    assert.deepEqual(eventsNamed(settled, 'Frozen')[0]?.args, { account: alice.address, reason: FAULT.enclaveMismatch });
    assert.equal((await world.account(alice.address)).enclave, alice.enclave.address, 'the binding stays');
    await world.assertConservation();
  });
});

describe('OfflineAccounts: a payee that signed both acks', () => {
  it('ack_fail settled, then ack_win: the payee is frozen, nothing moves', async () => {
    const signed = await makePayment(world.domain, alice, { payee: bob.address, amount: 30n, counter: 0n, tGen: await world.now(), stateBalance: 100n });
    await world.reconcile(alice, [toItem(signed, { ok: false, sig: await ackPayment(world.domain, bob, signed, false) })]);
    const settled = await world.reconcile(bob, [toItem(signed, { ok: true, sig: await ackPayment(world.domain, bob, signed, true) })]);
    assert.deepEqual(settled.events.map((e) => e.eventName), ['Frozen', 'Duplicate', 'Reconciled']);
    assert.deepEqual(eventsNamed(settled, 'Frozen')[0]?.args, { account: bob.address, reason: FAULT.conflictingAck });
    assert.equal(await world.paymentState(alice.address, 0n), STATE.failed);
    assert.deepEqual([await world.balance(alice), await world.balance(bob)], [100n, 100n]);
    await world.assertConservation();
  });

  it('ack_win settled, then ack_fail: the payee is frozen, the payment stays applied', async () => {
    const signed = await makePayment(world.domain, alice, { payee: bob.address, amount: 30n, counter: 0n, tGen: await world.now(), stateBalance: 100n });
    await world.reconcile(bob, [toItem(signed, { ok: true, sig: await ackPayment(world.domain, bob, signed, true) })]);
    const settled = await world.reconcile(alice, [toItem(signed, { ok: false, sig: await ackPayment(world.domain, bob, signed, false) })]);
    assert.deepEqual(eventNames(settled), ['Frozen', 'Duplicate', 'Reconciled']);
    assert.equal(await world.paymentState(alice.address, 0n), STATE.applied);
    assert.deepEqual([await world.balance(alice), await world.balance(bob)], [70n, 130n]);
    await world.assertConservation();
  });

  it('ack_win owed (payer short), then ack_fail: the payee is frozen, the payment stays owed', async () => {
    const signed = await makePayment(world.domain, alice, { payee: bob.address, amount: 150n, counter: 0n, tGen: await world.now(), stateBalance: 150n });
    await world.reconcile(bob, [toItem(signed, { ok: true, sig: await ackPayment(world.domain, bob, signed, true) })]);
    assert.equal(await world.paymentState(alice.address, 0n), STATE.owed);
    const settled = await world.reconcile(alice, [toItem(signed, { ok: false, sig: await ackPayment(world.domain, bob, signed, false) })]);
    assert.deepEqual(eventNames(settled), ['Frozen', 'Reconciled']);
    assert.equal((await world.account(bob.address)).status, STATUS.frozen);
    assert.equal(await world.paymentState(alice.address, 0n), STATE.owed);
    await world.assertConservation();
  });
});
