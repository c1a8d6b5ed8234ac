/**
 * OfflineAccounts on a real anvil: the bank's functions, deposits, and the settlement of honest
 * uploads (docs/chain.md): ack_win applied once, ack_fail, an ack that comes later, a payer short
 * on chain, voiding after the window, withdrawals and closing. Conservation is checked after
 * every scenario. Uploader faults and refusals are in contract-attacks.test.ts, payer and payee
 * faults in contract-faults.test.ts, gas in contract-gas.test.ts.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { domainSeparator, type Hex } from 'viem';
import { SETTLE_WINDOW_SECONDS, startAnvilEnv, testAccount, type AnvilEnv } from './anvil-fixtures.ts';
import { offlineAccountsAbi, tallyTokenAbi } from './contracts.generated.ts';
import { ackPayment, KIND, makePayment, toItem, type Device } from './upload-fixtures.ts';
import { assertReverts, eventNames, eventsNamed, World } from './world-fixtures.ts';

/** Payment states and account statuses (OfflineAccounts' constants). */
const STATE = { none: 0, recorded: 1, owed: 2, applied: 3, failed: 4, voided: 5 } as const;
const STATUS = { none: 0, open: 1, frozen: 2, closed: 3 } as const;

let env: AnvilEnv;
let world: World;
let clean: Hex;
let alice: Device;
let bob: Device;
let carol: Device;

before(async () => {
  env = await startAnvilEnv();
  world = new World(env);
  [alice, bob, carol] = [world.device('alice'), world.device('bob'), world.device('carol')];
  await world.register(alice, bob, carol);
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

/** A payment by `payer` with `payee`'s ack (none when `ok` is undefined), as an upload item. */
const paid: World['paid'] = (...args) => world.paid(...args);

describe('OfflineAccounts: deployment and the bank', () => {
  it('exposes the EIP-712 domain viem expects (EIP-5267 and the separator)', async () => {
    const { domain } = await env.publicClient.getEip712Domain({ address: env.accounts });
    assert.deepEqual(
      { name: domain.name, version: domain.version, chainId: domain.chainId, verifyingContract: domain.verifyingContract },
      { name: 'Tally chain-tee', version: '1', chainId: env.chain.id, verifyingContract: env.accounts },
    );
    const separator = await env.publicClient.readContract({ address: env.accounts, abi: offlineAccountsAbi, functionName: 'domainSeparator' });
    assert.equal(separator, domainSeparator({ domain: world.domain }));
    const read = (functionName: 'token' | 'bank' | 'settleWindow' | 'MAX_ITEMS') => env.publicClient.readContract({ address: env.accounts, abi: offlineAccountsAbi, functionName });
    assert.equal(await read('token'), env.token);
    assert.equal(await read('bank'), env.bank.address);
    assert.equal(await read('settleWindow'), SETTLE_WINDOW_SECONDS);
    assert.equal(await read('MAX_ITEMS'), 64n);
  });

  it('registers and revokes enclave keys by the bank only', async () => {
    const dave = world.device('dave');
    const registered = () => env.publicClient.readContract({ address: env.accounts, abi: offlineAccountsAbi, functionName: 'registered', args: [dave.enclave.address] });
    const stranger = await env.wallet(testAccount('stranger'));
    const call = (who: typeof stranger, functionName: 'registerEnclave' | 'revokeEnclave') =>
      who.writeContract({ address: env.accounts, abi: offlineAccountsAbi, functionName, args: [dave.enclave.address] });
    await assertReverts(call(stranger, 'registerEnclave'), 'NotRegistrar');
    assert.equal(await registered(), false);
    const bank = await env.wallet(env.bank);
    await world.mined(await call(bank, 'registerEnclave'));
    assert.equal(await registered(), true);
    await assertReverts(call(bank, 'registerEnclave'), 'EnclaveAlreadyRegistered');
    await assertReverts(call(stranger, 'revokeEnclave'), 'NotRegistrar');
    await world.mined(await call(bank, 'revokeEnclave'));
    assert.equal(await registered(), false);
    await assertReverts(call(bank, 'revokeEnclave'), 'EnclaveNotRegistered');
    await assertReverts(bank.writeContract({ address: env.accounts, abi: offlineAccountsAbi, functionName: 'registerEnclave', args: ['0x0000000000000000000000000000000000000000'] }), 'ZeroAddress');
  });

  it('admits intermediaries that register their own enclaves and mint; a revoked one is never admitted again and its enclaves stop counting', async () => {
    const erin = world.device('erin');
    const frank = world.device('frank');
    const registered = (d: typeof erin) => env.publicClient.readContract({ address: env.accounts, abi: offlineAccountsAbi, functionName: 'registered', args: [d.enclave.address] });
    const bankB = testAccount('intermediary B');
    const stranger = await env.wallet(testAccount('stranger'));
    const bank = await env.wallet(env.bank);
    const b = await env.wallet(bankB);
    await env.testClient.setBalance({ address: bankB.address, value: 10n ** 19n });
    const admit = (who: typeof bank, fn: 'admitIntermediary' | 'revokeIntermediary') => who.writeContract({ address: env.accounts, abi: offlineAccountsAbi, functionName: fn, args: [bankB.address] });
    await assertReverts(admit(stranger, 'admitIntermediary'), 'NotBank');
    await assertReverts(b.writeContract({ address: env.accounts, abi: offlineAccountsAbi, functionName: 'registerEnclave', args: [erin.enclave.address] }), 'NotRegistrar');
    await world.mined(await admit(bank, 'admitIntermediary'));
    await assertReverts(admit(bank, 'admitIntermediary'), 'IntermediaryAlreadyAdmitted');
    await world.mined(await b.writeContract({ address: env.accounts, abi: offlineAccountsAbi, functionName: 'registerEnclave', args: [erin.enclave.address] }));
    await world.mined(await bank.writeContract({ address: env.accounts, abi: offlineAccountsAbi, functionName: 'registerEnclave', args: [frank.enclave.address] }));
    assert.equal(await env.publicClient.readContract({ address: env.accounts, abi: offlineAccountsAbi, functionName: 'registrarOf', args: [erin.enclave.address] }), bankB.address);
    assert.equal(await registered(erin), true);
    // An intermediary revokes only what it registered.
    await assertReverts(b.writeContract({ address: env.accounts, abi: offlineAccountsAbi, functionName: 'revokeEnclave', args: [frank.enclave.address] }), 'NotRegistrar');
    // Minting: only once the central bank allows it.
    const mint = () => b.writeContract({ address: env.token, abi: tallyTokenAbi, functionName: 'mint', args: [bankB.address, 100n] });
    await assertReverts(mint(), 'NotMinter');
    await assertReverts(stranger.writeContract({ address: env.token, abi: tallyTokenAbi, functionName: 'setMinter', args: [bankB.address, true] }), 'NotMinter');
    await world.mined(await bank.writeContract({ address: env.token, abi: tallyTokenAbi, functionName: 'setMinter', args: [bankB.address, true] }));
    const minted = world.parse(await world.mined(await mint()));
    assert.equal(minted.length, 0, 'the token events are not OfflineAccounts events');
    assert.equal(await world.tokenBalance(bankB.address), 100n);
    await assertReverts(admit(stranger, 'revokeIntermediary'), 'NotBank');
    await world.mined(await admit(bank, 'revokeIntermediary'));
    assert.equal(await registered(erin), false, "a revoked intermediary's enclaves are no longer registered");
    assert.equal(await registered(frank), true);
    await assertReverts(b.writeContract({ address: env.accounts, abi: offlineAccountsAbi, functionName: 'registerEnclave', args: [testAccount('gina/enclave').address] }), 'NotRegistrar');
    await assertReverts(admit(bank, 'admitIntermediary'), 'IntermediaryAlreadyAdmitted');
    await assertReverts(admit(bank, 'revokeIntermediary'), 'IntermediaryNotAdmitted');
  });
});

describe('OfflineAccounts: deposit', () => {
  it('credits the account, numbers its deposits and takes the tokens from the caller', async () => {
    const first = await world.deposit(alice.address, 500n);
    const second = await world.deposit(alice.address, 250n);
    const deposited = (receipt: typeof first) => world.parse(receipt).filter((e) => e.eventName === 'Deposited').map((e) => e.args);
    assert.deepEqual(deposited(first), [{ account: alice.address, index: 0n, amount: 500n, from: world.funder.address }]);
    assert.deepEqual(deposited(second), [{ account: alice.address, index: 1n, amount: 250n, from: world.funder.address }]);
    assert.deepEqual(await world.account(alice.address), { balance: 750n, deposits: 2n, status: STATUS.open, enclave: '0x0000000000000000000000000000000000000000' });
    assert.equal(await world.tokenBalance(world.funder.address), 0n);
    await world.assertConservation();
  });

  it('refuses amount 0, the zero account, and a caller without allowance or without tokens', async () => {
    const payer = testAccount('depositor');
    await world.mint(payer.address, 100n);
    await assertReverts(world.depositCall(alice.address, 0n, payer), 'ZeroAmount');
    await assertReverts(world.depositCall('0x0000000000000000000000000000000000000000', 10n, payer), 'ZeroAddress');
    await assertReverts(world.depositCall(alice.address, 10n, payer), 'InsufficientAllowance');
    await world.approve(payer, 1000n);
    await assertReverts(world.depositCall(alice.address, 101n, payer), 'InsufficientBalance');
    await world.mined(await world.depositCall(alice.address, 100n, payer));
    assert.equal(await world.balance(alice), 100n);
    await world.assertConservation();
  });

  it('refuses a frozen account', async () => {
    await world.deposit(alice.address, 100n);
    await world.reconcile(alice, [await paid(alice, bob, { amount: 10n, counter: 0n, stateBalance: 100n }, true)]);
    // An item a correct TEE would refuse (amount above State.balance) freezes its (bound) uploader.
    const settled = await world.reconcile(alice, [await paid(alice, bob, { amount: 91n, counter: 1n, stateBalance: 90n }, true)]);
    assert.equal(settled.result, false);
    assert.equal((await world.account(alice.address)).status, STATUS.frozen);
    await world.mint(world.funder.address, 10n);
    await world.approve(world.funder, 10n);
    await assertReverts(world.depositCall(alice.address, 10n, world.funder), 'AccountFrozen');
    await world.assertConservation();
  });
});

describe('OfflineAccounts: offline payments', () => {
  it('applies a payment with ack_win once: the upload replayed and the payee uploading it again are duplicates', async () => {
    await world.deposit(alice.address, 100n);
    const item = await paid(alice, bob, { amount: 30n, counter: 0n, stateBalance: 100n }, true);
    const first = await world.reconcile(alice, [item]);
    assert.equal(first.result, true);
    assert.deepEqual(eventNames(first), ['Bound', 'Applied', 'Reconciled']);
    assert.deepEqual(eventsNamed(first, 'Applied')[0]?.args, { payer: alice.address, counter: 0n, payment: eventsNamed(first, 'Applied')[0]?.args.payment, payee: bob.address, honored: 30n });
    assert.deepEqual(eventsNamed(first, 'Reconciled')[0]?.args, { account: alice.address, applied: 1, recorded: 0, failed: 0 });
    assert.equal(await world.balance(alice), 70n);
    assert.equal(await world.balance(bob), 30n);
    assert.equal(await world.paymentState(alice.address, 0n), STATE.applied);
    await world.assertConservation();

    const replay = await world.reconcile(alice, [item]);
    assert.deepEqual(eventNames(replay), ['Duplicate', 'Reconciled']);
    assert.equal(eventsNamed(replay, 'Duplicate')[0]?.args.state, STATE.applied);
    const byPayee = await world.reconcile(bob, [item]);
    assert.deepEqual(eventNames(byPayee), ['Duplicate', 'Reconciled']);
    assert.equal(await world.balance(alice), 70n);
    assert.equal(await world.balance(bob), 30n);
    await world.assertConservation();
  });

  it('marks a payment with ack_fail failed, once, and moves nothing', async () => {
    await world.deposit(alice.address, 100n);
    const item = await paid(alice, bob, { amount: 30n, counter: 0n, stateBalance: 100n }, false);
    const settled = await world.reconcile(bob, [item]);
    assert.deepEqual(eventNames(settled), ['Bound', 'Failed', 'Reconciled']);
    assert.equal(await world.paymentState(alice.address, 0n), STATE.failed);
    const again = await world.reconcile(alice, [item]);
    assert.deepEqual(eventNames(again), ['Duplicate', 'Reconciled']);
    assert.equal(await world.balance(alice), 100n);
    assert.equal(await world.balance(bob), 0n);
    await world.assertConservation();
  });

  it('records a payment without ack, then applies it when the payee uploads the ack', async () => {
    await world.deposit(alice.address, 100n);
    const signed = await makePayment(world.domain, alice, { payee: bob.address, amount: 40n, counter: 0n, tGen: await world.now(), stateBalance: 100n });
    const recorded = await world.reconcile(alice, [toItem(signed)]);
    assert.deepEqual(eventsNamed(recorded, 'Recorded')[0]?.args.acknowledged, false);
    assert.equal(await world.paymentState(alice.address, 0n), STATE.recorded);
    assert.equal(await world.balance(alice), 100n);
    const acked = await world.reconcile(bob, [toItem(signed, { ok: true, sig: await ackPayment(world.domain, bob, signed, true) })]);
    assert.deepEqual(eventNames(acked), ['Applied', 'Reconciled']);
    assert.equal(await world.balance(alice), 60n);
    assert.equal(await world.balance(bob), 40n);
    await world.assertConservation();
  });

  it('keeps a payment owed while its payer is short on chain, and applies it after the payer\'s incoming payment', async () => {
    // carol pays alice 50 offline; alice, who has nothing on chain, pays bob 30 out of it.
    await world.deposit(carol.address, 50n);
    const carolToAlice = await paid(carol, alice, { amount: 50n, counter: 0n, stateBalance: 50n }, true);
    const signed = await makePayment(world.domain, alice, { payee: bob.address, amount: 30n, counter: 0n, tGen: await world.now(), stateBalance: 50n });
    const aliceToBob = toItem(signed, { ok: true, sig: await ackPayment(world.domain, bob, signed, true) });
    const owed = await world.reconcile(bob, [aliceToBob]);
    assert.deepEqual(eventsNamed(owed, 'Recorded').map((e) => e.args.acknowledged), [true]);
    assert.equal(await world.paymentState(alice.address, 0n), STATE.owed);
    await world.assertConservation();
    // After the window an owed payment is not voided: its ack was seen.
    await world.advance(SETTLE_WINDOW_SECONDS + 1n);
    // (alice was bound to her enclave when bob's upload verified her attestation.)
    const stillOwed = await world.reconcile(alice, [toItem(signed)]);
    assert.deepEqual(eventNames(stillOwed), ['Recorded', 'Reconciled']);
    assert.equal(await world.paymentState(alice.address, 0n), STATE.owed);
    await world.reconcile(carol, [carolToAlice]);
    assert.equal(await world.balance(alice), 50n);
    // The payer re-uploads it, without the ack: the contract remembers it was acknowledged.
    const applied = await world.reconcile(alice, [toItem(signed)]);
    assert.deepEqual(eventNames(applied), ['Applied', 'Reconciled']);
    assert.deepEqual([await world.balance(alice), await world.balance(bob), await world.balance(carol)], [20n, 30n, 0n]);
    await world.assertConservation();
  });

  it('applies an upload in order: the payer\'s incoming payment first covers its outgoing one', async () => {
    await world.deposit(carol.address, 50n);
    const items = [
      await paid(carol, alice, { amount: 50n, counter: 0n, stateBalance: 50n }, true),
      await paid(alice, bob, { amount: 30n, counter: 0n, stateBalance: 50n }, true),
      await paid(alice, carol, { amount: 20n, counter: 1n, stateBalance: 20n }, true),
    ];
    const settled = await world.reconcile(alice, items);
    assert.deepEqual(eventsNamed(settled, 'Reconciled')[0]?.args, { account: alice.address, applied: 3, recorded: 0, failed: 0 });
    assert.deepEqual([await world.balance(alice), await world.balance(bob), await world.balance(carol)], [0n, 30n, 20n]);
    await world.assertConservation();
  });

  it('voids an unacknowledged payment its payer uploads after the window; a later ack_win moves nothing', async () => {
    await world.deposit(alice.address, 100n);
    const signed = await makePayment(world.domain, alice, { payee: bob.address, amount: 40n, counter: 0n, tGen: await world.now(), stateBalance: 100n });
    // Before the window: recorded, by the payer or the payee.
    await world.reconcile(alice, [toItem(signed)]);
    assert.equal(await world.paymentState(alice.address, 0n), STATE.recorded);
    await world.advance(SETTLE_WINDOW_SECONDS + 1n);
    // After the window, by the payee: still only recorded (only the payer voids).
    const viaCarol = await paid(carol, bob, { amount: 1n, counter: 0n, stateBalance: 1n });
    const byPayee = await world.reconcile(bob, [toItem(signed), viaCarol]);
    assert.deepEqual(eventNames(byPayee).filter((n) => n !== 'Bound'), ['Recorded', 'Recorded', 'Reconciled']);
    const voided = await world.reconcile(alice, [toItem(signed)]);
    assert.deepEqual(eventNames(voided), ['Voided', 'Reconciled']);
    assert.deepEqual(eventsNamed(voided, 'Reconciled')[0]?.args, { account: alice.address, applied: 0, recorded: 0, failed: 1 });
    assert.equal(await world.paymentState(alice.address, 0n), STATE.voided);
    const late = await world.reconcile(bob, [toItem(signed, { ok: true, sig: await ackPayment(world.domain, bob, signed, true) })]);
    assert.deepEqual(eventNames(late), ['Duplicate', 'Reconciled']);
    assert.equal(eventsNamed(late, 'Duplicate')[0]?.args.state, STATE.voided);
    assert.deepEqual([await world.balance(alice), await world.balance(bob)], [100n, 0n]);
    await world.assertConservation();
  });
});

describe('OfflineAccounts: withdrawal and closing', () => {
  const cash = testAccount('cash-out').address;

  it('pays a withdrawal out to its on-chain address, once', async () => {
    await world.deposit(alice.address, 100n);
    const item = await paid(alice, cash, { amount: 40n, counter: 0n, stateBalance: 100n, kind: KIND.withdraw });
    const settled = await world.reconcile(alice, [item]);
    assert.deepEqual(eventNames(settled), ['Bound', 'Withdrawn', 'Reconciled']);
    assert.deepEqual(eventsNamed(settled, 'Withdrawn')[0]?.args.amount, 40n);
    assert.equal(await world.tokenBalance(cash), 40n);
    assert.equal(await world.balance(alice), 60n);
    const replay = await world.reconcile(alice, [item]);
    assert.deepEqual(eventNames(replay), ['Duplicate', 'Reconciled']);
    assert.equal(await world.tokenBalance(cash), 40n);
    const [held, deposited, withdrawn] = await env.publicClient.readContract({ address: env.accounts, abi: offlineAccountsAbi, functionName: 'totals' });
    assert.deepEqual([held, deposited, withdrawn], [60n, 100n, 40n]);
    await world.assertConservation();
  });

  it('keeps a withdrawal short on chain waiting, pays it once covered, voids one still short after the window', async () => {
    await world.deposit(carol.address, 50n);
    const withdrawal = await paid(alice, cash, { amount: 30n, counter: 0n, stateBalance: 50n, kind: KIND.withdraw });
    const waiting = await world.reconcile(alice, [withdrawal]);
    assert.deepEqual(eventNames(waiting), ['Bound', 'Recorded', 'Reconciled']);
    const incoming = await paid(carol, alice, { amount: 50n, counter: 0n, stateBalance: 50n }, true);
    await world.reconcile(alice, [incoming, withdrawal]);
    assert.equal(await world.tokenBalance(cash), 30n);
    assert.equal(await world.balance(alice), 20n);
    const tooMuch = await paid(alice, cash, { amount: 25n, counter: 1n, stateBalance: 25n, kind: KIND.withdraw });
    await world.advance(SETTLE_WINDOW_SECONDS + 1n);
    const voided = await world.reconcile(alice, [tooMuch]);
    assert.deepEqual(eventNames(voided), ['Voided', 'Reconciled']);
    assert.equal(await world.balance(alice), 20n);
    await world.assertConservation();
  });

  it('closes an account with its whole balance only; a closed account refuses deposits and pay-outs', async () => {
    await world.deposit(alice.address, 100n);
    const below = await paid(alice, cash, { amount: 90n, counter: 0n, stateBalance: 100n, kind: KIND.close });
    const failed = await world.reconcile(alice, [below]);
    assert.deepEqual(eventNames(failed), ['Bound', 'Failed', 'Reconciled']);
    assert.equal(await world.paymentState(alice.address, 0n), STATE.failed);
    const above = await paid(alice, cash, { amount: 150n, counter: 1n, stateBalance: 150n, kind: KIND.close });
    const waiting = await world.reconcile(alice, [above]);
    assert.deepEqual(eventNames(waiting), ['Recorded', 'Reconciled']);
    assert.equal(await world.paymentState(alice.address, 1n), STATE.recorded);
    const exact = await paid(alice, cash, { amount: 100n, counter: 2n, stateBalance: 100n, kind: KIND.close });
    const closed = await world.reconcile(alice, [exact]);
    assert.deepEqual(eventNames(closed), ['Closed', 'Reconciled']);
    assert.deepEqual(eventsNamed(closed, 'Closed')[0]?.args.amount, 100n);
    assert.equal(await world.tokenBalance(cash), 100n);
    assert.deepEqual(await world.account(alice.address), { balance: 0n, deposits: 1n, status: STATUS.closed, enclave: alice.enclave.address });
    await world.mint(world.funder.address, 10n);
    await world.approve(world.funder, 10n);
    await assertReverts(world.depositCall(alice.address, 10n, world.funder), 'AccountClosed');
    const after = await paid(alice, cash, { amount: 1n, counter: 3n, stateBalance: 1n, kind: KIND.withdraw });
    assert.deepEqual(eventNames(await world.reconcile(alice, [after])), ['Failed', 'Reconciled']);
    await world.assertConservation();
  });
});
