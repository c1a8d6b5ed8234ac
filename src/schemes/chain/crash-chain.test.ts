/**
 * chain-tee with the chain itself killed: the node's embedded anvil SIGKILLed at the worst moments
 * of a wallet's deposit and reconciliation, and the node started again on the same data folder
 * (anvil reloads its state file, which it rewrites every ANVIL_STATE_INTERVAL_S):
 * - just after the TEE credited a deposit, or a wallet was created: the node answered only once
 *   the block was in the state file, so the chain still has the deposit and the enclave;
 * - after a reconcile transaction was mined and before the node's statement, with the block saved
 *   (the upload again is a duplicate on chain) and lost (the upload again applies it);
 * - while the node waited for a deposit's block to reach the state file, the block lost: no receipt
 *   is signed, and the deposit step sends the deposit again since the chain no longer knows it.
 * Each case ends with everyone synced: every TEE holds what its account holds on chain, every
 * token minted is somewhere once, and the audit balances.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { getAddress } from 'viem';
import { toHex } from '../../core/bytes.ts';
import { ChainWorld, onceFetching, session } from './crash-fixtures.ts';
import { offlineAccountsAbi } from './contracts.generated.ts';
import { accountOnChain, tokenBalance } from './wallet-chain.ts';
import type { ChainWallet } from './wallet.ts';

/** How many times the contract emitted `eventName`. */
async function events(wallet: ChainWallet, eventName: 'Duplicate' | 'Reconciled' | 'Deposited'): Promise<number> {
  const { info, clients } = await wallet.chain();
  return (await clients.publicClient.getContractEvents({ address: info.contracts.contract, abi: offlineAccountsAbi, eventName, fromBlock: 0n })).length;
}

/** The wallet's offline account on chain. */
async function onChain(wallet: ChainWallet) {
  const { info, clients } = await wallet.chain();
  return accountOnChain(clients, info.contracts, await wallet.account());
}

describe('chain-tee with the embedded chain killed', { timeout: 600_000 }, () => {
  let world: ChainWorld;

  before(async () => {
    world = await ChainWorld.start('tally-chain-crash-chain-', ['alice', 'bob'], { alice: '100.00' });
  });
  after(async () => {
    if (world !== undefined) assert.equal(await world.end(), 0, 'the node stops cleanly');
  });

  test('a deposit the TEE credited survives anvil SIGKILLed right after: its receipt waited for the state file', async () => {
    const alice = world.w('alice');
    const done = await alice.deposit('40.00');
    assert.equal(done.offline, '40.00');
    const { clients } = await alice.chain();
    const mined = (await clients.publicClient.getTransactionReceipt({ hash: done.transaction as `0x${string}` })).blockNumber;
    await world.killAnvil();
    assert.ok(((await world.dumpedBlock()) ?? -1) >= Number(mined), 'the state file held the deposit when the TEE credited it');
    world.credit('alice', 4_000n);
    await world.restartNode();
    const now = await onChain(world.w('alice'));
    assert.deepEqual([now.deposits, now.balance], [1n, 4_000n], 'the chain still has the deposit');
    await world.assertConserved('a deposit, then the chain killed');
  });

  test('a reconcile the chain saved before anvil was killed, ahead of the statement: the upload again is a duplicate', async () => {
    const [alice, bob] = [world.w('alice'), world.w('bob')];
    const paid = await session(alice, bob, '5.00');
    assert.ok(!(paid.payer instanceof Error) && paid.payer.credited, String(paid.payer));
    world.move('alice', 'bob', 500n);
    const { clients } = await bob.chain();
    const undo = onceFetching('/v1/chain/statements', async (go) => {
      // The reconcile is mined: once the state file holds it, anvil dies before the node reads the statement.
      await world.untilDumped(await clients.publicClient.getBlockNumber());
      await world.killAnvil();
      return go();
    });
    try {
      await assert.rejects(bob.sync());
    } finally {
      undo();
    }
    assert.equal((await bob.status()).incoming, 1, 'the TEE took no statement: it keeps the payment');
    await world.restartNode();
    const again = world.w('bob');
    assert.equal((await onChain(again)).balance, 500n, 'the chain kept the reconcile');
    const duplicates = await events(again, 'Duplicate');
    const synced = await again.sync();
    assert.deepEqual([synced.uploads, synced.freed, synced.waiting], [1, 1, 0]);
    assert.equal(await events(again, 'Duplicate'), duplicates + 1, 'the upload again moved nothing');
    await world.assertConserved('a reconcile kept');
  });

  test('a reconcile the chain lost with anvil killed before its next dump: the next sync applies it', async () => {
    const [alice, bob] = [world.w('alice'), world.w('bob')];
    const paid = await session(alice, bob, '3.00');
    assert.ok(!(paid.payer instanceof Error) && paid.payer.credited, String(paid.payer));
    world.move('alice', 'bob', 300n);
    const { clients } = await bob.chain();
    const saved = await world.snapshotAt(await clients.publicClient.getBlockNumber());
    const reconciled = await events(bob, 'Reconciled');
    const undo = onceFetching('/v1/chain/statements', async (go) => {
      await world.killAnvil(saved);
      return go();
    });
    try {
      await assert.rejects(bob.sync());
    } finally {
      undo();
    }
    await world.restartNode();
    const again = world.w('bob');
    assert.equal(await events(again, 'Reconciled'), reconciled, 'the chain lost the reconcile');
    assert.equal((await onChain(again)).balance, 500n);
    const duplicates = await events(again, 'Duplicate');
    const synced = await again.sync();
    assert.deepEqual([synced.uploads, synced.freed, synced.waiting], [1, 1, 0]);
    assert.equal(await events(again, 'Duplicate'), duplicates, 'applied now, not a duplicate');
    assert.equal((await onChain(again)).balance, 800n);
    await world.assertConserved('a reconcile lost');
  });

  test('anvil killed while the node waits for a deposit’s block to reach the state file: no receipt, and the deposit is sent again', async () => {
    const alice = world.w('alice');
    const { info, clients } = await alice.chain();
    const wallet = await alice.onChainAddress();
    const [was, tokens] = [await onChain(alice), await tokenBalance(clients, info.contracts, wallet)];
    const saved = await world.snapshotAt(await clients.publicClient.getBlockNumber());
    const undo = onceFetching('/v1/chain/deposits/', async (go) => {
      // The node reads the deposit's block, then waits out the dump interval: anvil dies in the wait, the block unsaved.
      const answer = go();
      await new Promise((wait) => setTimeout(wait, 300));
      await world.killAnvil(saved);
      return answer;
    });
    try {
      await assert.rejects(alice.deposit('10.00'));
    } finally {
      undo();
    }
    assert.equal((await alice.status()).balance, world.expected.get('alice'), 'the TEE credited nothing');
    await world.restartNode();
    const again = world.w('alice');
    assert.equal((await onChain(again)).deposits, was.deposits, 'the chain lost the deposit');
    const resumed = await again.resume();
    assert.deepEqual(resumed, { finished: ['chain-deposit'], waiting: [], ended: [] });
    world.credit('alice', 1_000n);
    const now = await onChain(again);
    assert.deepEqual([now.deposits, now.balance], [was.deposits + 1n, was.balance + 1_000n], 'deposited again, once');
    const fresh = await again.chain();
    assert.equal(await tokenBalance(fresh.clients, fresh.info.contracts, wallet), tokens - 1_000n, 'the tokens left the wallet once');
    assert.equal((await again.status()).balance, world.expected.get('alice'), 'the TEE credited it once');
    await world.assertConserved('a deposit lost while its receipt waited');
  });

  test('a wallet created just before anvil is SIGKILLed keeps its enclave on chain: its first upload as a payer freezes nobody', async () => {
    await world.cli('wallet', 'create', 'carol', '--scheme', 'chain');
    await world.killAnvil();
    world.expected.set('carol', 0n);
    await world.restartNode();
    const carol = world.w('carol');
    const { info, clients } = await carol.chain();
    const enclave = getAddress(`0x${toHex((await carol.status()).enclave)}`);
    assert.equal(await clients.publicClient.readContract({ address: info.contracts.contract, abi: offlineAccountsAbi, functionName: 'registered', args: [enclave] }), true, 'the chain still has the enclave');
    for (const [payer, payee, amount] of [['alice', 'carol', 200n], ['carol', 'bob', 100n]] as const) {
      const paid = await session(world.w(payer), world.w(payee), `${amount / 100n}.00`);
      assert.ok(!(paid.payer instanceof Error) && paid.payer.credited, String(paid.payer));
      world.move(payer, payee, amount);
    }
    await world.assertConserved('a wallet created, then the chain killed');
    assert.equal((await carol.status()).status, 'open', 'carol is not frozen');
  });
});
