/**
 * The ramp of `bench otp` (paper §3.1, Figures 7–10) and the denominations comparison: payments of
 * n unit coins from a payer to a payee, for each count, repeated, over both placements of the
 * secure elements. Before each payment (untimed) the payer withdraws exactly the coins it pays
 * through the node and the payee is topped up with as many exchange keys; after it (untimed) the
 * payee deposits every coin, so each payment starts from the same empty purses and fresh coins.
 */
import type { TcpServer } from '../../sim/bench/plugin.ts';
import { classOf, depositAll, heldValue, topUpKeys, withdrawCoins, type OtpWorld, type Party } from './bench-setup.ts';
import { payOnce, type PaymentSample } from './bench-payment.ts';
import { withdrawalMix } from './denominations.ts';
import { DENOMINATIONS } from './node-classes.ts';
import type { ClassEntry } from './messages.ts';

/** The paper's coin: one unit of currency (1.00), one OTP each. */
export const UNIT_MINOR = 100n;

/** A payer and payee pair of one placement. */
export interface Pair {
  readonly series: 'isolated' | 'in-process';
  readonly payer: Party;
  readonly payee: Party;
}

/** One measured payment of the ramp. */
export interface RampSample extends PaymentSample {
  readonly series: Pair['series'];
  readonly count: number;
  readonly rep: number;
}

/** What runs around the payment alone (a meter armed for it). */
export type Around = (pay: () => Promise<PaymentSample>) => Promise<PaymentSample>;

/**
 * One payment of `classes` (one coin each) from the pair's payer to its payee, with the online
 * steps around it; checks what moved.
 * @throws Error when a purse does not end as it should
 */
export async function payCoins(world: OtpWorld, server: TcpServer, pair: Pair, classes: readonly ClassEntry[], around: Around = (pay) => pay()): Promise<PaymentSample> {
  const { payer, payee } = pair;
  const amount = await withdrawCoins(world, payer, classes);
  await topUpKeys(world, payee, classes.length);
  const sample = await around(() => payOnce(server, payer, payee, amount));
  const [left, got] = await Promise.all([heldValue(payer), heldValue(payee)]);
  const inFlight = (await payer.se.call('status', {})).inFlight.count;
  if (left !== 0n || got !== amount || inFlight !== 0 || sample.coins !== classes.length) {
    throw new Error(`${pair.series}: after paying ${amount} in ${classes.length} coins the payer holds ${left} (${inFlight} in flight) and the payee ${got}; ${sample.coins} coins moved`);
  }
  const credited = await depositAll(world, payee);
  if (credited !== amount) throw new Error(`${pair.series}: the payee deposited ${credited}, not ${amount}`);
  return sample;
}

/**
 * The ramp: for each repetition, each count in order, each pair (their order alternating from one
 * repetition to the next, so neither placement always runs first).
 */
export async function runRamp(options: { world: OtpWorld; server: TcpServer; pairs: readonly Pair[]; counts: readonly number[]; reps: number; progress: (line: string) => void }): Promise<RampSample[]> {
  const { world, server, pairs, counts, reps } = options;
  const unit = classOf(world, UNIT_MINOR);
  const samples: RampSample[] = [];
  for (let rep = 0; rep < reps; rep++) {
    const order = rep % 2 === 0 ? pairs : [...pairs].reverse();
    for (const count of counts) {
      for (const pair of order) {
        const sample = await payCoins(world, server, pair, Array.from({ length: count }, () => unit));
        samples.push({ ...sample, series: pair.series, count, rep });
        options.progress(`ramp rep ${rep + 1}/${reps}: ${count} OTPs, ${pair.series}: ${(sample.totalMs / 1000).toFixed(3)} s, ${sample.sessionBytes} bytes`);
      }
    }
  }
  return samples;
}

/** One way of paying the amount of the denominations comparison. */
export interface DenominationRow {
  readonly way: 'unit coins' | 'denominations';
  /** The coins paid, by denomination (minor units as text), and their number. */
  readonly coins: Readonly<Record<string, number>>;
  readonly count: number;
  readonly samples: PaymentSample[];
}

/**
 * Pays `amountMinor` `reps` times each way between the pair, alternating: in unit coins, and in
 * the fewest coins of the bank's denominations (withdrawalMix).
 */
export async function runDenominations(options: { world: OtpWorld; server: TcpServer; pair: Pair; amountMinor: bigint; reps: number; progress: (line: string) => void }): Promise<DenominationRow[]> {
  const { world, server, pair, amountMinor, reps } = options;
  const unit = classOf(world, UNIT_MINOR);
  const mix = withdrawalMix(amountMinor, [...DENOMINATIONS]);
  const mixed = [...mix].flatMap(([d, n]) => Array.from({ length: n }, () => classOf(world, d)));
  const ways: Array<{ way: DenominationRow['way']; classes: ClassEntry[]; coins: Record<string, number> }> = [
    { way: 'unit coins', classes: Array.from({ length: Number(amountMinor / UNIT_MINOR) }, () => unit), coins: { [UNIT_MINOR.toString()]: Number(amountMinor / UNIT_MINOR) } },
    { way: 'denominations', classes: mixed, coins: Object.fromEntries([...mix].map(([d, n]) => [d.toString(), n])) },
  ];
  const rows: DenominationRow[] = ways.map((w) => ({ way: w.way, coins: w.coins, count: w.classes.length, samples: [] }));
  for (let rep = 0; rep < reps; rep++) {
    for (const [i, way] of ways.entries()) {
      const sample = await payCoins(world, server, pair, way.classes);
      rows[i]?.samples.push(sample);
      options.progress(`denominations rep ${rep + 1}/${reps}: ${way.way} (${way.classes.length} coins): ${(sample.totalMs / 1000).toFixed(3)} s`);
    }
  }
  return rows;
}
