/**
 * chain-tee with each wallet's secure element in its own process, killed (SIGKILL) at each of the
 * four crash points of a commit, against a real issuer node and its embedded anvil (the payments
 * are in crash-pay.test.ts, the chain itself killed in crash-chain.test.ts):
 * - the TEE's `deposit` (the chain has taken the deposit): the wallet opened again finishes the
 *   step with resume (or sync, then resume) and the TEE credits it once; no second deposit is sent;
 * - `finalize` in a sync (and the SE killed under the `onchainUpdate` read): the next sync uploads
 *   again, the chain takes the repeat as a duplicate, and the TEE frees what it settled.
 * After each kill everyone syncs: each TEE holds what the test expects (each deposit and payment
 * credited once), exactly what its account holds on chain, and the node's audit balances, the
 * chain's part too.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { CrashPoint } from '../../secure-element/secure-element.ts';
import { ChainWorld, crashed, killAt, killDuring, minor, RUN_CRASH_POINTS, session } from './crash-fixtures.ts';
import { offlineAccountsAbi } from './contracts.generated.ts';
import { accountOnChain, tokenBalance } from './wallet-chain.ts';
import type { ChainWallet } from './wallet.ts';

/** How many uploaded payments the contract found already settled (Duplicate events). */
async function duplicates(wallet: ChainWallet): Promise<number> {
  const { info, clients } = await wallet.chain();
  return (await clients.publicClient.getContractEvents({ address: info.contracts.contract, abi: offlineAccountsAbi, eventName: 'Duplicate', fromBlock: 0n })).length;
}

/** The points at which the killed commit had already replaced the state: the command took effect. */
const COMMITTED: readonly CrashPoint[] = ['after-rename', 'after-increment'];

describe('chain-tee with secure elements killed mid-commit', { timeout: 600_000 }, () => {
  let world: ChainWorld;

  before(async () => {
    world = await ChainWorld.start('tally-chain-crash-', ['alice', 'bob'], { alice: '100.00' });
  });
  after(async () => {
    if (world !== undefined) assert.equal(await world.end(), 0, 'the node stops cleanly');
  });

  test('a deposit whose credit the TEE was killed in is credited once when the wallet comes back, and never sent twice', async () => {
    for (const [i, point] of RUN_CRASH_POINTS.entries()) {
      const alice = world.w('alice');
      const { info, clients } = await alice.chain();
      const account = await alice.account();
      const was = await accountOnChain(clients, info.contracts, account);
      const tokens = await tokenBalance(clients, info.contracts, await alice.onChainAddress());
      await killAt(alice, 'deposit', point);
      await assert.rejects(alice.deposit('10.00'), crashed, `deposit at ${point}`);
      const taken = await accountOnChain(clients, info.contracts, account);
      assert.equal(taken.deposits, was.deposits + 1n, `${point}: the chain took the deposit`);
      const tee = await (await alice.se()).call('status', {});
      assert.equal(tee.deposits, Number(COMMITTED.includes(point) ? taken.deposits : was.deposits), `${point}: the TEE credited it iff the commit went through`);
      // The app starts again: the deposit is a journal step, found pending.
      const again = await world.reopen('alice');
      assert.equal(again.snapshot().pending.length, 1, `${point}: the deposit waits in the journal`);
      if (i % 2 === 1) {
        // A sync credits what the chain holds; resume then only ends the step.
        await again.sync();
        assert.equal((await again.status()).deposits, Number(taken.deposits), `${point}: sync credited it`);
      }
      const resumed = await again.resume();
      assert.deepEqual(resumed, { finished: ['chain-deposit'], waiting: [], ended: [] }, `${point}`);
      assert.deepEqual(await again.resume(), { finished: [], waiting: [], ended: [] }, `${point}: nothing left to resume`);
      world.credit('alice', 1_000n);
      const settled = await accountOnChain(clients, info.contracts, account);
      assert.equal(settled.deposits, was.deposits + 1n, `${point}: one deposit on chain, not two`);
      assert.equal(settled.balance, was.balance + 1_000n, `${point}: the account on chain holds it once`);
      assert.equal(await tokenBalance(clients, info.contracts, await again.onChainAddress()), tokens - 1_000n, `${point}: the tokens left the wallet once`);
      const s = await again.status();
      assert.equal(s.deposits, Number(settled.deposits), `${point}: the TEE credited every deposit on chain`);
      assert.equal(s.balance, world.expected.get('alice'), `${point}: the TEE credited it once`);
    }
    await world.assertConserved('after the deposits');
  });

  test('a sync whose finalize the TEE was killed in is finished by the next sync: the chain takes the upload again as a duplicate', async () => {
    // bob holds money on chain, so that his payments to alice are applied at her first upload (not owed until his).
    const first = await session(world.w('alice'), world.w('bob'), '5.00');
    assert.ok(!(first.payer instanceof Error) && first.payer.credited, String(first.payer));
    world.move('alice', 'bob', 500n);
    await world.assertConserved('before the syncs cut');
    for (const point of RUN_CRASH_POINTS) {
      const [alice, bob] = [world.w('alice'), world.w('bob')];
      // alice holds a payment she made and one she received when her sync is cut.
      for (const [payer, payee, amount] of [[alice, bob, '1.50'], [bob, alice, '0.50']] as const) {
        const paid = await session(payer, payee, amount);
        assert.ok(!(paid.payer instanceof Error) && paid.payer.credited, String(paid.payer));
      }
      world.move('alice', 'bob', 100n);
      await killAt(alice, 'finalize', point);
      await assert.rejects(alice.sync(), crashed, `finalize at ${point}`);
      const cut = await alice.status();
      assert.equal(cut.outgoing + cut.incoming, COMMITTED.includes(point) ? 0 : 2, `${point}: the TEE freed its payments iff finalize committed`);
      const repeats = await duplicates(alice);
      const again = await alice.sync();
      assert.equal(again.uploads, COMMITTED.includes(point) ? 0 : 1, `${point}: uploaded again iff nothing was freed`);
      assert.equal(await duplicates(alice), repeats + (COMMITTED.includes(point) ? 0 : 2), `${point}: both payments of the upload again were duplicates on chain`);
      assert.equal(again.waiting, 0, `${point}: everything settled`);
      await world.assertConserved(`finalize at ${point}`);
    }
  });

  test('a sync whose SE dies under the onchainUpdate read is finished by the next one', async () => {
    const [alice, bob] = [world.w('alice'), world.w('bob')];
    const paid = await session(alice, bob, '2.00');
    assert.ok(!(paid.payer instanceof Error) && paid.payer.credited, String(paid.payer));
    world.move('alice', 'bob', 200n);
    await killDuring(alice, 'onchainUpdate');
    await assert.rejects(alice.sync(), crashed);
    assert.equal((await alice.status()).outgoing, 1, 'nothing changed in the TEE');
    const again = await alice.sync();
    assert.deepEqual([again.uploads, again.payments, again.freed, again.waiting], [1, 1, 1, 0]);
    assert.equal(minor(again.onChain), world.expected.get('alice'));
    await world.assertConserved('onchainUpdate killed');
  });
});
