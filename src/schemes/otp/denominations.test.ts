/**
 * Denominations and change (OTP §5's first limitation): the 1-2-5 series, the withdrawal mix, the
 * exact pick with the fewest coins (against a brute force on small wallets), and payment plans with
 * change that always add up and never use a coin a side does not hold.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { count, minus, pickExact, planPayment, series, total, withdrawalMix, type Coins } from './denominations.ts';

const EUR = series(1n, 50_000n); // 0.01 to 500.00

test('the 1-2-5 series, and a withdrawal mix that makes the amount with the fewest coins', () => {
  assert.deepEqual(series(1n, 500n), [1n, 2n, 5n, 10n, 20n, 50n, 100n, 200n, 500n]);
  assert.deepEqual(series(100n, 1_000n), [100n, 200n, 500n, 1_000n]);
  assert.throws(() => series(0n, 10n), RangeError);
  const mix = withdrawalMix(8_700n, EUR); // 87.00
  assert.equal(total(mix), 8_700n);
  assert.deepEqual([...mix].sort((a, b) => Number(b[0] - a[0])), [[5_000n, 1], [2_000n, 1], [1_000n, 1], [500n, 1], [200n, 1]]);
  assert.equal(count(mix), 5, '87.00 in five coins, against 8,700 coins of 0.01 or 87 of 1.00');
  assert.throws(() => withdrawalMix(3n, series(2n, 20n)), RangeError);
  assert.throws(() => withdrawalMix(0n, EUR), RangeError);
});

/** The fewest coins of `held` adding up to `amount`, by trying every sub-multiset (small wallets only). */
function bruteFewest(held: Coins, amount: bigint): number | null {
  const entries = [...held];
  let best: number | null = null;
  const walk = (i: number, left: bigint, used: number) => {
    if (left === 0n) {
      if (best === null || used < best) best = used;
      return;
    }
    if (i === entries.length || left < 0n) return;
    const [value, n] = entries[i] as [bigint, number];
    for (let k = 0; k <= n && BigInt(k) * value <= left; k++) walk(i + 1, left - BigInt(k) * value, used + k);
  };
  walk(0, amount, 0);
  return best;
}

const smallWallet = fc.dictionary(fc.constantFrom('1', '2', '3', '5', '7', '10', '20', '50'), fc.integer({ min: 0, max: 6 })).map((d) => new Map(Object.entries(d).filter(([, n]) => n > 0).map(([v, n]) => [BigInt(v), n] as [bigint, number])));

test('the exact pick: the amount exactly, coins the wallet holds, and as few as a brute force finds', () => {
  fc.assert(
    fc.property(smallWallet, fc.integer({ min: 0, max: 400 }), (held, n) => {
      const amount = BigInt(n);
      const picked = pickExact(held, amount);
      const best = bruteFewest(held, amount);
      if (best === null) return picked === null;
      assert.ok(picked !== null);
      assert.equal(total(picked), amount);
      minus(held, picked); // throws if it used a coin not held
      assert.equal(count(picked), best);
      return true;
    }),
    { numRuns: 300 },
  );
});

test('a payment plan: exact when possible; else an overpayment and the payee change; never coins a side lacks', () => {
  fc.assert(
    fc.property(smallWallet, smallWallet, fc.integer({ min: 1, max: 300 }), (payer, payee, n) => {
      const amount = BigInt(n);
      const plan = planPayment(payer, amount, payee);
      if (plan === null) {
        assert.equal(pickExact(payer, amount), null, 'no plan only when no exact pick either');
        return true;
      }
      assert.equal(total(plan.pay) - total(plan.change), amount);
      minus(payer, plan.pay);
      minus(payee, plan.change);
      if (pickExact(payer, amount) !== null) assert.equal(count(plan.change), 0);
      return true;
    }),
    { numRuns: 300 },
  );
  // 7.00 from a 10.00 coin, the payee holding 2.00 and 1.00: 3.00 back.
  const plan = planPayment(new Map([[1_000n, 1]]), 700n, new Map([[200n, 1], [100n, 1]]));
  assert.deepEqual(plan, { pay: new Map([[1_000n, 1]]), change: new Map([[200n, 1], [100n, 1]]) });
  assert.equal(planPayment(new Map([[1_000n, 1]]), 700n, new Map([[500n, 1]])), null, 'the payee cannot give 3.00 back');
  assert.equal(planPayment(new Map([[100n, 2]]), 700n, new Map()), null, 'the payer holds too little');
});

test('an amount over the exact search bound is refused, not searched', () => {
  assert.throws(() => pickExact(new Map([[1n, 1]]), 1_000_001n), RangeError);
});
