/**
 * The ramp of `bench opera` (paper §5.2, Figure 8): payments of n tokens of 0.01 from a payer's ODW
 * to a payee's, for each count, repeated. Before each payment (untimed) the bank charges exactly the
 * n tokens into the payer's ODW; after it (untimed) the payee deposits every token back, so each
 * payment starts from the same empty repositories.
 */
import type { TcpServer } from '../../sim/bench/plugin.ts';
import { chargeTokens, depositAll, heldValue, type OperaWorld, type Party } from './bench-setup.ts';
import { payOnce, type OnCall, type PaymentSample } from './bench-payment.ts';

/** A payer and payee pair, and where their ODWs run. */
export interface Pair {
  readonly series: 'isolated' | 'in-process';
  readonly payer: Party;
  readonly payee: Party;
}

/** One measured payment of the ramp. */
export interface RampSample extends PaymentSample {
  readonly count: number;
  readonly rep: number;
}

/** What runs around the payment alone (a meter armed for it), and what is told of each ODW command. */
export interface Hooks {
  readonly around?: ((pay: () => Promise<PaymentSample>) => Promise<PaymentSample>) | undefined;
  readonly onCall?: OnCall | undefined;
}

/**
 * One payment of `count` tokens from the pair's payer to its payee, with the online steps around
 * it; checks what moved: the payer's ODW empty with no transaction in its log, the payee's holding
 * exactly the tokens paid, then deposited back in full.
 * @throws Error when a repository or the deposit does not end as it should
 */
export async function payTokens(world: OperaWorld, server: TcpServer, pair: Pair, count: number, hooks: Hooks = {}): Promise<PaymentSample> {
  const { payer, payee } = pair;
  const amount = await chargeTokens(world, payer, count);
  const pay = () => payOnce(server, payer, payee, amount, count, hooks.onCall);
  const sample = await (hooks.around === undefined ? pay() : hooks.around(pay));
  const [left, got] = await Promise.all([payer.se.call('status', {}), payee.se.call('status', {})]);
  const held = got.tokens.map((t) => `${t.count} × ${t.value}`).join(' + ');
  if (left.balance !== 0n || left.pending !== undefined || got.pending !== undefined || got.balance !== amount || held !== `${count} × 1`) {
    throw new Error(`${pair.series}: after paying ${count} tokens the payer holds ${left.balance} (a transaction in its log: ${left.pending !== undefined}), the payee ${held || 'nothing'}`);
  }
  const deposited = await depositAll(world, payee);
  if (deposited.credited !== amount || deposited.tokens !== count || (await heldValue(payee)) !== 0n) throw new Error(`${pair.series}: the payee deposited ${deposited.tokens} tokens for ${deposited.credited}, not ${count} for ${amount}`);
  return sample;
}

/**
 * The ramp: for each repetition each count, ascending in even repetitions and descending in odd
 * ones, so that a drift of the machine's load does not always fall on the same end of the ramp.
 */
export async function runRamp(options: { world: OperaWorld; server: TcpServer; pair: Pair; counts: readonly number[]; reps: number; progress: (line: string) => void }): Promise<RampSample[]> {
  const { world, server, pair, counts, reps } = options;
  const samples: RampSample[] = [];
  for (let rep = 0; rep < reps; rep++) {
    const order = rep % 2 === 0 ? counts : [...counts].reverse();
    for (const count of order) {
      const sample = await payTokens(world, server, pair, count);
      samples.push({ ...sample, count, rep });
      const perToken = sample.totalMs / count;
      options.progress(`ramp rep ${rep + 1}/${reps}: ${count} tokens: ${(sample.totalMs / 1000).toFixed(3)} s (${perToken.toFixed(2)} ms per token), ${sample.stageBytes.stage2} bytes in Stage 2`);
    }
  }
  return samples;
}
