/**
 * Denominations and change, the first limitation the OTP paper names (§5): one coin per unit makes
 * a payment of N units cost N program runs. Coins here come in a 1-2-5 series of minor units; a
 * payment picks held coins that add up to the amount exactly, with as few coins as possible, and
 * when the payer's coins cannot make the amount exactly, the payer gives a little more and the payee
 * gives change from its own coins in the same session.
 *
 * Pure arithmetic over counts of coins by value (minor units, bigint); no coin identities.
 */

/** How many coins of each value (minor units) a wallet holds or a payment moves. */
export type Coins = ReadonlyMap<bigint, number>;

/** Largest amount (minor units) the exact search works on: its table has one entry per minor unit. */
export const EXACT_SEARCH_MAX = 1_000_000n;

/** The 1-2-5 series from `smallest` to at most `largest` (minor units): 1, 2, 5, 10, 20, 50, ... */
export function series(smallest: bigint, largest: bigint): bigint[] {
  if (smallest <= 0n || largest < smallest) throw new RangeError(`a series needs 0 < smallest <= largest, got ${smallest} and ${largest}`);
  const out: bigint[] = [];
  for (let decade = smallest; decade <= largest; decade *= 10n) {
    for (const step of [1n, 2n, 5n]) if (decade * step <= largest) out.push(decade * step);
  }
  return out;
}

/** The value of some coins. */
export function total(coins: Coins): bigint {
  let sum = 0n;
  for (const [value, count] of coins) sum += value * BigInt(count);
  return sum;
}

/** How many coins. */
export function count(coins: Coins): number {
  let n = 0;
  for (const c of coins.values()) n += c;
  return n;
}

/** `a` minus `b`. @throws RangeError when `b` holds coins `a` does not */
export function minus(a: Coins, b: Coins): Map<bigint, number> {
  const out = new Map(a);
  for (const [value, n] of b) {
    const left = (out.get(value) ?? 0) - n;
    if (left < 0) throw new RangeError(`not enough coins of ${value}`);
    if (left === 0) out.delete(value);
    else out.set(value, left);
  }
  return out;
}

/**
 * The coins a withdrawal of `amount` asks for: the fewest coins of the series (greedy, which is
 * optimal for a 1-2-5 series), with `amount` made exactly.
 * @throws RangeError when the series cannot make the amount (it does not reach down to its unit)
 */
export function withdrawalMix(amount: bigint, denominations: readonly bigint[]): Map<bigint, number> {
  if (amount <= 0n) throw new RangeError('a withdrawal is of a positive amount');
  const out = new Map<bigint, number>();
  let left = amount;
  for (const value of [...denominations].sort((a, b) => (a > b ? -1 : a < b ? 1 : 0))) {
    if (left < value) continue;
    const n = left / value;
    out.set(value, Number(n));
    left -= n * value;
  }
  if (left !== 0n) throw new RangeError(`the denominations cannot make ${amount} exactly (${left} left)`);
  return out;
}

/**
 * The fewest of the held coins that add up to `amount` exactly, or null when none do. A bounded
 * dynamic programme over amounts 0..amount (each value's coins taken in binary-split bundles, so a
 * wallet of many coins of one value costs their logarithm).
 * @throws RangeError for an amount over EXACT_SEARCH_MAX
 */
export function pickExact(held: Coins, amount: bigint): Map<bigint, number> | null {
  if (amount < 0n) throw new RangeError('a negative amount');
  if (amount === 0n) return new Map();
  if (amount > EXACT_SEARCH_MAX) throw new RangeError(`an amount over ${EXACT_SEARCH_MAX} minor units is not searched exactly`);
  if (total(held) < amount) return null;
  const target = Number(amount);
  // Bundles: (value, how many coins) with counts 1, 2, 4, ..., rest, so any count up to the held one is a sum of bundles.
  const bundles: { value: bigint; n: number; worth: number }[] = [];
  for (const [value, heldCount] of held) {
    if (value <= 0n || heldCount <= 0 || value > amount) continue;
    let left = heldCount;
    for (let n = 1; left > 0; n *= 2) {
      const take = Math.min(n, left);
      bundles.push({ value, n: take, worth: Number(value) * take });
      left -= take;
    }
  }
  const INF = Number.MAX_SAFE_INTEGER;
  const fewest = new Array<number>(target + 1).fill(INF);
  fewest[0] = 0;
  // Each bundle used at most once (0/1 knapsack, amounts walked downwards); the choices are kept per
  // bundle so the picked set can be read back.
  const choice: Uint8Array[] = [];
  for (const [b, bundle] of bundles.entries()) {
    const took = new Uint8Array(target + 1);
    for (let a = target; a >= bundle.worth; a--) {
      const before = fewest[a - bundle.worth] as number;
      if (before !== INF && before + bundle.n < (fewest[a] as number)) {
        fewest[a] = before + bundle.n;
        took[a] = 1;
      }
    }
    choice[b] = took;
  }
  if (fewest[target] === INF) return null;
  const out = new Map<bigint, number>();
  let a = target;
  for (let b = bundles.length - 1; b >= 0 && a > 0; b--) {
    if ((choice[b] as Uint8Array)[a] === 1) {
      const bundle = bundles[b] as { value: bigint; n: number; worth: number };
      out.set(bundle.value, (out.get(bundle.value) ?? 0) + bundle.n);
      a -= bundle.worth;
    }
  }
  return a === 0 ? out : null;
}

/** Which amounts 0..upTo some of the coins add up to exactly. */
function reachable(held: Coins, upTo: bigint): Uint8Array {
  const limit = Number(upTo < EXACT_SEARCH_MAX ? upTo : EXACT_SEARCH_MAX);
  const can = new Uint8Array(limit + 1);
  can[0] = 1;
  for (const [value, heldCount] of held) {
    if (value <= 0n || heldCount <= 0 || value > BigInt(limit)) continue;
    let left = heldCount;
    for (let n = 1; left > 0; n *= 2) {
      const take = Math.min(n, left);
      const worth = Number(value) * take;
      for (let a = limit; a >= worth; a--) if (can[a - worth] === 1) can[a] = 1;
      left -= take;
    }
  }
  return can;
}

/** How a payment is made: the coins the payer sends, and the change the payee sends back. */
export interface PaymentPlan {
  readonly pay: Map<bigint, number>;
  readonly change: Map<bigint, number>;
}

/**
 * Plans a payment of `amount` from the payer's coins: exactly when it can (no change), else the
 * smallest overpayment whose excess the payee can give back exactly from its own coins, with the
 * fewest coins moved for that excess. Null when neither is possible (the payer holds too little,
 * or the payee cannot make the change).
 */
export function planPayment(payer: Coins, amount: bigint, payee: Coins): PaymentPlan | null {
  const exact = pickExact(payer, amount);
  if (exact !== null) return { pay: exact, change: new Map() };
  const have = total(payer);
  if (have < amount) return null;
  // Overpay by the least the payee can change: one table of what each side can make exactly, then
  // the smallest excess both can make.
  const payerCan = reachable(payer, have < EXACT_SEARCH_MAX ? have : EXACT_SEARCH_MAX);
  const most = have - amount;
  const changeable = total(payee);
  const payeeCan = reachable(payee, changeable < most ? changeable : most);
  for (let excess = 1; excess < payeeCan.length; excess++) {
    const paid = Number(amount) + excess;
    if (paid >= payerCan.length || !payerCan[paid] || !payeeCan[excess]) continue;
    const pay = pickExact(payer, BigInt(paid));
    const change = pickExact(payee, BigInt(excess));
    if (pay !== null && change !== null) return { pay, change };
  }
  return null;
}
