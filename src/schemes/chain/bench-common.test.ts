/**
 * chain-tee's world of the common workload on a real node (its embedded anvil, the contracts it
 * deployed, isolated secure elements): payments over TCP and Noise, each settled by the payee's
 * reconciliation on chain, the commits each TEE made read off its counter, the metered payment's
 * signatures counted; conservation checked across the node's audit, the chain and the TEEs, and
 * refused while a payment is credited offline and not yet on chain.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { listenTcp } from '../../channel/tcp.ts';
import { makeHarness } from '../../sim/bench/harness.ts';
import { chainCommon } from './bench-common.ts';

test('the common workload on chain-tee: payments over TCP, the payee reconciling each on chain, conservation across node, chain and TEEs', { timeout: 180_000 }, async () => {
  const { harness, close } = makeHarness({ quick: true, env: {}, progress: () => undefined });
  try {
    assert.ok(chainCommon.open !== undefined);
    const world = await chainCommon.open({ harness, amountMinor: 1250n, payments: 3, meter: harness.meter(['payment'] as const) });
    const server = await listenTcp(0, '127.0.0.1');
    try {
      assert.equal(world.currency, 'EUR');
      const [payerDir, payeeDir] = world.elementDirs;
      await world.prepare();
      const [payerBefore, payeeBefore] = await Promise.all([harness.elementState(payerDir), harness.elementState(payeeDir)]);
      const sample = await world.pay(server);
      const [payerAfter, payeeAfter] = await Promise.all([harness.elementState(payerDir), harness.elementState(payeeDir)]);
      // The payer's TEE commits transfer and pay; the payee's commits receive (bind is read-only).
      assert.deepEqual([payerAfter.commits - payerBefore.commits, payeeAfter.commits - payeeBefore.commits], [2, 1]);
      assert.ok(sample.handshakeBytes > 0 && sample.sessionBytes > 0 && sample.sessionMs > 0);
      const settled = await world.settle();
      assert.ok(settled !== undefined, 'the payee settles each payment');
      assert.ok(settled.gas !== undefined && settled.gas > 21_000n, `a reconcile spends gas: ${settled.gas}`);
      await world.verify();
      // The second payment, made offline and not yet on chain: the payer's TEE holds less than its account there.
      await world.prepare();
      await world.pay(server);
      await assert.rejects(world.verify(), /payer's TEE holds 1250, its account on chain 2500/);
      await world.settle();
      await world.verify();
      const metered = await world.metered(server);
      // The payer's TEE signs tx_off twice (the account key's σ_1, the enclave's σ_att); the payee's TEE signs the binding (enclave key) and the ack (account key); each side checks the other's.
      assert.equal(metered.counts.signs, 4, `${metered.counts.signs} signatures`);
      assert.ok(metered.counts.verifies >= 4, `${metered.counts.verifies} verifications`);
      await world.verify();
    } finally {
      await server.close();
      await world.close();
    }
  } finally {
    await close();
  }
});
