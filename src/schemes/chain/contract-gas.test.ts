/**
 * The gas of OfflineAccounts on a real anvil, beside the paper's Table II (section VI): deploying,
 * depositing, reconciling 1, 3 and 5 acknowledged payments, a withdrawal, a closing and a freeze.
 * The figures are printed; the test asserts only that each reconcile costs less per payment than
 * the paper's (a regression guard), never a time.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Hex } from 'viem';
import { ANVIL_HARDFORK, startAnvilEnv, testAccount, type AnvilEnv } from './anvil-fixtures.ts';
import { KIND, type Device, type UploadItem } from './upload-fixtures.ts';
import { eventNames, World } from './world-fixtures.ts';

/** Table II of the paper: gas to verify and update 1, 3 and 5 transactions, and the other functions. */
const PAPER = { deploy: 987_073n, reconcile: { 1: 463_948n, 3: 551_844n, 5: 639_740n }, balanceExchange: 420_000n, cancellation: 469_884n, freeze: 21_916n } as const;

let env: AnvilEnv;
let world: World;
let alice: Device, bob: Device, carol: Device;
/** Alice deposited 1000 and is bound (one payment to bob settled); bob holds a balance. */
let steady: Hex;

before(async () => {
  env = await startAnvilEnv();
  world = new World(env);
  [alice, bob, carol] = ['alice', 'bob', 'carol'].map((label) => world.device(label)) as [Device, Device, Device];
  await world.register(alice, bob, carol);
  await world.deposit(alice.address, 1000n);
  steady = await env.snapshot();
});

after(async () => {
  await env?.close();
});

/** `count` acknowledged payments from alice to bob, from counter `from` on. */
async function payments(count: number, from: bigint, balance: bigint): Promise<UploadItem[]> {
  const items: UploadItem[] = [];
  for (let i = 0n; i < BigInt(count); i++) items.push(await world.paid(alice, bob, { amount: 10n, counter: from + i, stateBalance: balance - 10n * i }, true));
  return items;
}

/** Runs `measure` from the steady state with alice bound, then returns to it. */
async function fromSteady(measure: () => Promise<bigint>): Promise<bigint> {
  await env.revert(steady);
  steady = await env.snapshot();
  await world.reconcile(alice, await payments(1, 0n, 1000n));
  const gas = await measure();
  await world.assertConservation();
  return gas;
}

describe('OfflineAccounts gas (beside the paper\'s Table II)', () => {
  it('prints deploy, deposit, reconcile of 1/3/5 payments, withdraw, close and freeze', async () => {
    const rows: [string, bigint, bigint | undefined][] = [];
    rows.push(['deploy OfflineAccounts', env.deployGas.accounts, PAPER.deploy]);
    rows.push(['deploy TallyToken', env.deployGas.token, undefined]);

    const firstDeposit = (await world.deposit(carol.address, 100n)).gasUsed;
    const nextDeposit = (await world.deposit(carol.address, 100n)).gasUsed;
    rows.push(['deposit (first of an account)', firstDeposit, PAPER.balanceExchange]);
    rows.push(['deposit (next)', nextDeposit, PAPER.balanceExchange]);

    await env.revert(steady);
    steady = await env.snapshot();
    const cold = await world.reconcile(alice, await payments(1, 0n, 1000n));
    rows.push(['reconcile 1 payment, first upload (binds, new payee)', cold.receipt.gasUsed, PAPER.reconcile[1]]);

    for (const count of [1, 3, 5] as const) {
      const gas = await fromSteady(async () => {
        const settled = await world.reconcile(alice, await payments(count, 1n, 990n));
        assert.equal(eventNames(settled).filter((n) => n === 'Applied').length, count);
        return settled.receipt.gasUsed;
      });
      rows.push([`reconcile ${count} payment${count > 1 ? 's' : ''} (${gas / BigInt(count)} each)`, gas, PAPER.reconcile[count]]);
      assert.ok(gas / BigInt(count) < PAPER.reconcile[count] / BigInt(count), `${count}: ${gas} gas, the paper ${PAPER.reconcile[count]}`);
    }

    const cash = testAccount('cash-out').address;
    rows.push(['withdraw (one-item upload)', await fromSteady(async () => {
      const settled = await world.reconcile(alice, [await world.paid(alice, cash, { amount: 100n, counter: 1n, stateBalance: 990n, kind: KIND.withdraw })]);
      assert.deepEqual(eventNames(settled), ['Withdrawn', 'Reconciled']);
      return settled.receipt.gasUsed;
    }), PAPER.balanceExchange]);
    rows.push(['close (one-item upload)', await fromSteady(async () => {
      const settled = await world.reconcile(alice, [await world.paid(alice, cash, { amount: 990n, counter: 1n, stateBalance: 990n, kind: KIND.close })]);
      assert.deepEqual(eventNames(settled), ['Closed', 'Reconciled']);
      return settled.receipt.gasUsed;
    }), PAPER.cancellation]);
    rows.push(['freeze (an upload with a refused item)', await fromSteady(async () => {
      const settled = await world.reconcile(alice, [await world.paid(alice, bob, { amount: 991n, counter: 1n, stateBalance: 990n }, true)]);
      assert.equal(settled.result, false);
      return settled.receipt.gasUsed;
    }), PAPER.freeze]);

    const width = Math.max(...rows.map(([name]) => name.length));
    const lines = rows.map(([name, gas, paper]) => `  ${name.padEnd(width)}  ${gas.toString().padStart(9)}  ${paper === undefined ? '' : `paper ${paper.toString().padStart(7)}`}`);
    console.log(`OfflineAccounts gas on anvil (${ANVIL_HARDFORK}):\n${lines.join('\n')}`);
  });
});
