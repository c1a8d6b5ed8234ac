import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { assertPaid, balance, charge, makeOdw, pay } from './ta-fixtures.ts';

describe('OPERA trusted app: a payment between two ODWs', () => {
  it('moves exactly the amount in tokens through Stages 1–3, and both logs end empty', async () => {
    const [a, b] = await Promise.all([makeOdw('a'), makeOdw('b')]);
    await charge(a, [100n, 50n, 20n, 5n, 2n]);
    await charge(b, [10n]);
    const [paid, got] = assertPaid(await pay(a, b, 77n));
    assert.deepEqual([paid.plan, paid.ending, paid.count], ['new', 'paid', 4]);
    assert.deepEqual([got.plan, got.ending, got.count], ['new', 'paid', 4]);
    assert.equal(await balance(a), 100n);
    assert.equal(await balance(b), 87n);
    for (const odw of [a, b]) assert.equal((await odw.se.call('status', {})).pending, undefined);
  });

  it('works the same with the paper\'s SHA-1 chain', async () => {
    const [a, b] = await Promise.all([makeOdw('a1', { hash: 'sha1' }), makeOdw('b1', { hash: 'sha1' })]);
    await charge(a, [5n, 5n]);
    assertPaid(await pay(a, b, 10n));
    assert.deepEqual([await balance(a), await balance(b)], [0n, 10n]);
  });
});

/**
 * A payment cut at every frame of either side, with or without a reset of both ODWs, then mounted
 * again: the payer sends 4 + n + 2 frames (offer, hello, ready, 2-1, n × 2-3, 3-1, FIN) and with m
 * change tokens m more (2-5, (m − 1) × 2-7); the payee 3 + 1 + n + 1 (offer, hello, ready, 2-2,
 * n × 2-4, 3-2) and m more (m × 2-6).
 */
function cutEverywhere(title: string, setup: { payer: bigint[]; payee: bigint[]; amount: bigint; n: number; m: number }) {
  describe(title, () => {
    const { amount, n, m } = setup;
    const held = (values: bigint[]) => values.reduce((s, v) => s + v, 0n);
    const [a0, b0] = [held(setup.payer), held(setup.payee)];
    const cuts: Array<{ side: 'outgoing' | 'incoming'; after: number; reset: boolean }> = [];
    for (let after = 0; after <= 4 + n + m + 1; after++) cuts.push({ side: 'outgoing', after, reset: after % 2 === 0 });
    for (let after = 0; after <= 3 + 1 + n + m; after++) cuts.push({ side: 'incoming', after, reset: after % 2 === 1 });
    const plans: string[] = [];
    for (const cut of cuts) {
      it(`the ${cut.side === 'outgoing' ? "payer's" : "payee's"} frames cut after ${cut.after}${cut.reset ? ', both ODWs reset' : ''}: the next mount finishes it, and the amount moves once`, async () => {
        const [a, b] = await Promise.all([makeOdw('cut-a'), makeOdw('cut-b')]);
        await charge(a, setup.payer);
        if (setup.payee.length > 0) await charge(b, setup.payee);
        const first = await pay(a, b, amount, { faults: { seed: 1, [cut.side]: { cutAfterUnits: cut.after } }, stepTimeoutMs: 300 });
        if (cut.reset) await Promise.all([a.reopen(), b.reopen()]);
        const cutShort = first.some((o) => o instanceof Error);
        const status = await Promise.all([a.se.call('status', {}), b.se.call('status', {})]);
        if (cutShort) {
          const [again, got] = assertPaid(await pay(a, b, amount));
          // A transaction both logs hold is resumed; otherwise it ended in Stage 1 and a new one ran.
          assert.equal(again.plan, got.plan);
          if (status[0].pending !== undefined && status[1].pending !== undefined) assert.equal(again.plan, 'resume');
          plans.push(again.plan);
        }
        assert.deepEqual([await balance(a), await balance(b)], [a0 - amount, b0 + amount], 'the amount moved exactly once');
        for (const odw of [a, b]) assert.equal((await odw.se.call('status', {})).pending, undefined, `${odw.name}'s log is clear`);
      });
    }
    it('the cuts inside Stages 2 and 3 were resumed from the logs, those before restarted Stage 1', () => {
      assert.ok(plans.filter((p) => p === 'resume').length >= n + m + 2, `resumed: ${plans.join(', ')}`);
      assert.ok(plans.filter((p) => p === 'new').length >= 4, `restarted: ${plans.join(', ')}`);
    });
  });
}

cutEverywhere('OPERA trusted app: a payment cut at every message, then mounted again (§4.1, §5.1)', { payer: [5n, 2n, 1n, 10n], payee: [], amount: 8n, n: 3, m: 0 });
cutEverywhere('OPERA trusted app: a payment with change cut at every message, the change leg too', { payer: [5n, 5n], payee: [2n, 1n], amount: 7n, n: 2, m: 2 });
