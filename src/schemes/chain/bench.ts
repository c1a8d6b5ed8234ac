/**
 * `bench chain`: section VI of the chain-tee paper reproduced on this machine.
 *
 * - Table II: the contracts deployed on the harness's anvil (the node's embedded chain, instant
 *   mining), and each of the contract's functions the paper lists, with uploads built by real
 *   trusted apps (their `onchainUpdate` mapped to the contract's calldata): gas from the receipts,
 *   time from submission to receipt, median of the runs.
 * - Figure 3: the five enclave operations between two trusted apps in isolated secure elements
 *   (child processes, file counters), each run a whole account life (bench-lifecycle.ts), each
 *   operation against its cryptographic floor measured in the same run (bench-floor.ts).
 * - Table I: lines of code counted in the tree (bench-loc.ts).
 * A full run writes Figure 3 as an SVG into docs/.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from '../../core/crypto/hash.ts';
import type { BenchHarness, BenchPlugin } from '../../sim/bench/plugin.ts';
import { bytesOf, deploy, fundFunder, hexOf, makeSender, readAccount, readTotals, registerEnclave, type Sent } from './bench-chain.ts';
import { FIGURE3_SVG_PATH, figure3Svg } from './bench-figure.ts';
import { measureFloor } from './bench-floor.ts';
import { makeBenchIssuer } from './bench-issuer.ts';
import { AMOUNTS, CHAIN_CALLS, runLifecycle, TA_COMMANDS, UPLOAD_SIZES, type RunSample, type Stage } from './bench-lifecycle.ts';
import { countLines } from './bench-loc.ts';
import { makeBrokenTee, makeDevice } from './bench-parties.ts';
import { chainRatios, figure3Of, formatChainReport, PAPER, summary, table2Of, type ChainBenchReport } from './bench-report.ts';
import { SOLC_VERSION } from './contracts.generated.ts';

/** How much to run. */
export interface ChainBenchOptions {
  /** Timed runs of the lifecycle (the paper: 50 of each operation). */
  readonly runs: number;
  /** Untimed runs before them (the first touches storage every later run finds warm). */
  readonly warmup: number;
  /** Deployments of the two contracts, timed. */
  readonly deploys: number;
  /** Replays of each command's metered signatures for its floor. */
  readonly floorIterations: number;
  /** Time per unmetered primitive of the floor, ms. */
  readonly floorBudgetMs: number;
  /** Commits timed for the persistence floor. */
  readonly commitIterations: number;
  /** Where to write Figure 3; none when undefined. */
  readonly svgPath?: string | undefined;
}

/** A full run: the paper's 50 runs, the figure to docs/. */
const FULL: ChainBenchOptions = { runs: PAPER.runs, warmup: 2, deploys: PAPER.runs, floorIterations: 200, floorBudgetMs: 500, commitIterations: 200, svgPath: FIGURE3_SVG_PATH };
/** `--quick`: 3 runs, no figure. */
const QUICK: ChainBenchOptions = { runs: 3, warmup: 1, deploys: 3, floorIterations: 30, floorBudgetMs: 40, commitIterations: 20, svgPath: undefined };

/** Most runs the environment may ask for. */
const RUNS_MAX = 1000;
/** The contract's settlement window and the TAs' clock-drift bound, seconds. */
const SETTLE_WINDOW_S = 3600;
const DRIFT_S = 300;

/**
 * The parameters with what the environment sets: TALLY_CHAIN_RUNS (timed runs), TALLY_CHAIN_SVG (a
 * path, or `none`).
 * @throws RangeError for a value out of range
 */
export function withEnvironment(base: ChainBenchOptions, env: Readonly<Record<string, string | undefined>>): ChainBenchOptions {
  const text = env['TALLY_CHAIN_RUNS'];
  const runs = text === undefined || text === '' ? base.runs : Number(text);
  if (!Number.isInteger(runs) || runs < 1 || runs > RUNS_MAX) throw new RangeError(`TALLY_CHAIN_RUNS: expected 1 to ${RUNS_MAX}, got ${text}`);
  const svg = env['TALLY_CHAIN_SVG'];
  return { ...base, runs, svgPath: svg === 'none' ? undefined : (svg ?? base.svgPath) };
}

/** The size of the payee's sealed state: the commit a typical command makes. @throws Error when the state file is missing */
async function sealedBytes(harness: BenchHarness, dir: string): Promise<number> {
  const names = (await readdir(join(dir, 'se'))).filter((n) => n.endsWith('.sealed'));
  const name = names[0];
  if (names.length !== 1 || name === undefined) throw new Error(`expected one sealed state in ${dir}/se, found ${names.join(', ') || 'none'}`);
  return harness.fileBytes(join(dir, 'se', name));
}

/**
 * Runs `bench chain` in `harness`.
 * @throws Error when a trusted app, the chain or the money's conservation is not what a correct run gives
 */
export async function benchChain(harness: BenchHarness, options: ChainBenchOptions): Promise<ChainBenchReport> {
  const loadStart = harness.loadAverage();
  harness.progress('starting the chain (embedded anvil) and deploying the contracts');
  const chain = await harness.chain();
  const client = await chain.publicClient.request({ method: 'web3_clientVersion' });
  const [deployer, funder, relayer] = [await makeSender(chain), await makeSender(chain), await makeSender(chain)];
  const deploys: { token: Sent[]; accounts: Sent[] } = { token: [], accounts: [] };
  let deployment: Stage['deployment'] | undefined;
  for (let i = 0; i < options.deploys; i++) {
    const made = await deploy(chain, deployer, SETTLE_WINDOW_S);
    deploys.token.push(made.token);
    deploys.accounts.push(made.accounts);
    deployment ??= made.deployment;
  }
  if (deployment === undefined) throw new RangeError('bench chain needs one deployment at least');

  harness.progress('provisioning two trusted apps in isolated secure elements; registering their enclaves');
  const issuer = makeBenchIssuer(harness.provider, Date.now());
  const head = await chain.publicClient.getBlock();
  const params = issuer.params({
    chainId: deployment.domain.chainId,
    contract: deployment.domain.contract,
    token: bytesOf(deployment.token),
    currency: 'EUR',
    settleWindowS: SETTLE_WINDOW_S,
    driftS: DRIFT_S,
    revoked: [],
    block: head.number,
    at: Number(head.timestamp) * 1000,
  });
  const root = await harness.tempDir('chain');
  const payer = await makeDevice(harness, issuer, params, 'payer', join(root, 'payer'), { kind: 'isolated' });
  const payee = await makeDevice(harness, issuer, params, 'payee', join(root, 'payee'), { kind: 'isolated' });
  const broken = makeBrokenTee(harness.provider);
  for (const enclave of [payer.enclave, payee.enclave, broken.address]) await registerEnclave(chain, deployment, enclave);
  const payeeAccount = (await payee.se.call('open', {})).account;
  // Twice what the runs deposit: the last deposit must not empty the funder's balance and allowance (a refund would lower its gas).
  await fundFunder(chain, deployment, funder, 2n * (AMOUNTS.firstDeposit + AMOUNTS.recharge) * BigInt(options.runs + options.warmup));
  const stage: Stage = { chain, deployment, issuer, payer, payee, payeeAccount, funder, relayer, cashOut: randomBytes(20), broken };

  for (let i = 0; i < options.warmup; i++) {
    harness.progress(`warm-up run ${i + 1} of ${options.warmup}`);
    await runLifecycle(stage);
  }
  const runs: RunSample[] = [];
  for (let i = 0; i < options.runs; i++) {
    const started = performance.now();
    runs.push(await runLifecycle(stage));
    harness.progress(`run ${i + 1} of ${options.runs}: ${(performance.now() - started).toFixed(0)} ms`);
  }
  const loadEnd = harness.loadAverage();

  // Every run closes its account: what stays on chain is the payee's, which its TA must hold too.
  const payeeStatus = await payee.se.call('status', {});
  const payeeChain = await readAccount(chain, deployment, payeeAccount, []);
  const totals = await readTotals(chain, deployment, hexOf(stage.cashOut));
  if (payeeStatus.balance !== payeeChain.balance || totals.held !== payeeChain.balance || totals.contractTokens !== totals.held || totals.deposited !== totals.held + totals.withdrawn || totals.holderTokens !== totals.withdrawn) {
    throw new Error(`money is not conserved: the payee's TA holds ${payeeStatus.balance}, its account ${payeeChain.balance}; the contract holds ${totals.held} (${totals.contractTokens} in tokens) of ${totals.deposited} deposited, ${totals.withdrawn} withdrawn, ${totals.holderTokens} paid out`);
  }

  harness.progress('floor: the commands counted over the metering provider and replayed; the unmetered primitives and a commit timed');
  const floor = await measureFloor({ harness, issuer, params, iterations: options.floorIterations, budgetMs: options.floorBudgetMs });
  const bytes = await sealedBytes(harness, payee.dir);
  const commit = { sealedBytes: bytes, latency: await harness.measureCommits([bytes], options.commitIterations) };
  harness.progress('Table I: counting lines');
  const loc = await countLines(harness.repoDir);

  const table2 = table2Of(deploys, runs, CHAIN_CALLS);
  const gasOf = (name: string) => table2.find((r) => r.name === name)?.gas.median ?? Number.NaN;
  const small = UPLOAD_SIZES[0];
  const large = UPLOAD_SIZES[UPLOAD_SIZES.length - 1] ?? small;
  const report: ChainBenchReport = {
    machine: harness.machine,
    loadAverage: { start: loadStart, end: loadEnd },
    runs: options.runs,
    warmup: options.warmup,
    chain: { node: `${client} (the node's embedded chain, instant mining)`, chainId: chain.chainId, solc: SOLC_VERSION },
    table2,
    gasPerExtraPayment: {
      ours: (gasOf(`reconcile ${large}`) - gasOf(`reconcile ${small}`)) / (large - small),
      paper: (PAPER.table2.reconcile5.gas - PAPER.table2.reconcile1.gas) / 4,
    },
    figure3: figure3Of(runs, floor, commit.latency.p50Ms),
    commands: Object.fromEntries(TA_COMMANDS.map((c) => [c, summary(runs.map((r) => r.ta[c]))])) as ChainBenchReport['commands'],
    provisioning: {
      init: summary([payer, payee].map((d) => d.provisioning.init)),
      certInit: summary([payer, payee].map((d) => d.provisioning.certInit)),
      setParams: summary([payer, payee].map((d) => d.provisioning.setParams)),
    },
    floor,
    commit,
    loc,
    conservation: { payeeTa: payeeStatus.balance.toString(), payeeChain: payeeChain.balance.toString(), held: totals.held.toString(), withdrawn: totals.withdrawn.toString(), paidOut: totals.holderTokens.toString() },
  };
  if (options.svgPath !== undefined) {
    const m = harness.machine;
    const svg = figure3Svg(report.figure3, { title: 'chain-tee Figure 3 (§VI-B3): the enclave operations, measured on Tally', subtitle: `isolated secure elements (child processes); ${m.cpu}, ${m.cores} cores, Node ${m.node}; ${options.runs} runs; ${m.date}` });
    report.svgPath = await harness.writeFile(options.svgPath, svg);
    harness.progress(`wrote ${report.svgPath}`);
  }
  return report;
}

/** `npm run bench -- chain`. */
export const chainBench: BenchPlugin<ChainBenchOptions, ChainBenchReport> = {
  name: 'chain',
  paper: 'chain-tee (chain-tee.txt)',
  reproduces: 'section VI: Table II (gas and time of the contract), Figure 3 (the enclave operations P1–P5), Table I (lines of code)',
  parameters: { quick: QUICK, full: FULL },
  async run(harness, parameters) {
    const report = await benchChain(harness, withEnvironment(parameters, harness.env));
    return { report, text: formatChainReport(report), ratios: chainRatios(report) };
  },
};
