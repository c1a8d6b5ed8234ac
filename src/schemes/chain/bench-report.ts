/**
 * What `bench chain` reports, with the paper's figures (section VI) beside ours: Table II (gas and
 * time of the contract's functions), Figure 3 (the five enclave operations, each against its
 * cryptographic floor), the trusted-app commands they are made of, and Table I (lines of code).
 */
import type { FloorRatio, Latency, Machine } from '../../sim/bench/plugin.ts';
import type { ChainFloor, FloorCommand } from './bench-floor.ts';
import type { ChainCall, RunSample, TaCommand } from './bench-lifecycle.ts';
import type { LocReport } from './bench-loc.ts';

/** Section VI of the paper: Intel SGX through Occlum (Python, web3.py), a local go-Ethereum node. */
export const PAPER = {
  machine: 'Intel Core i7-10510U 2.4 GHz, 16 GB, Ubuntu 20.04; Occlum 0.29.2 on SGX; Solidity 0.8.1 on a local geth',
  runs: 50,
  /** Table II: gas and ms of each function. */
  table2: {
    deploy: { gas: 987_073, ms: 19.88 },
    reconcile1: { gas: 463_948, ms: 8.8 },
    reconcile3: { gas: 551_844, ms: 11.12 },
    reconcile5: { gas: 639_740, ms: 12.89 },
    balanceExchange: { gas: 420_000, ms: 8.46 },
    cancellation: { gas: 469_884, ms: 9.47 },
    freeze: { gas: 21_916, ms: 0.44 },
  },
  /** Figure 3 as the text gives it, ms (P1: "focused on 46 to 50 ms"). */
  figure3: { P1: { low: 46, high: 50 }, P2: 32, P3: 50, P4: 37, P5: 55 },
  /** Table I. */
  table1: { protocol: 560, dependent: 2849, occlum: 63, contract: 215 },
} as const;

type PaperRow = { readonly gas: number; readonly ms: number };

/** Which of the paper's rows each of our transactions stands beside. */
export const PAPER_ROW_OF: Readonly<Record<ChainCall | 'deploy OfflineAccounts' | 'deploy TallyToken', PaperRow | undefined>> = {
  'deploy OfflineAccounts': PAPER.table2.deploy,
  'deploy TallyToken': undefined,
  'deposit (first of an account)': PAPER.table2.balanceExchange,
  'deposit (next)': PAPER.table2.balanceExchange,
  'reconcile 1 (first upload: binds)': undefined,
  'reconcile 1': PAPER.table2.reconcile1,
  'reconcile 3': PAPER.table2.reconcile3,
  'reconcile 5': PAPER.table2.reconcile5,
  withdrawal: PAPER.table2.balanceExchange,
  closing: PAPER.table2.cancellation,
  freeze: PAPER.table2.freeze,
};

/** Mean and sample standard deviation, with the median and the extremes. */
export interface Summary {
  readonly n: number;
  readonly mean: number;
  readonly sd: number;
  readonly median: number;
  readonly min: number;
  readonly max: number;
}

/** Summarises samples. @throws RangeError for none */
export function summary(values: readonly number[]): Summary {
  if (values.length === 0) throw new RangeError('a summary of no values');
  const sorted = [...values].sort((a, b) => a - b);
  const n = sorted.length;
  const mean = sorted.reduce((s, x) => s + x, 0) / n;
  const sd = n < 2 ? 0 : Math.sqrt(sorted.reduce((s, x) => s + (x - mean) ** 2, 0) / (n - 1));
  const median = n % 2 === 1 ? (sorted[(n - 1) / 2] as number) : ((sorted[n / 2 - 1] as number) + (sorted[n / 2] as number)) / 2;
  return { n, mean, sd, median, min: sorted[0] as number, max: sorted[n - 1] as number };
}

/** One row of Table II. */
export interface Table2Row {
  readonly name: string;
  readonly gas: Summary;
  readonly ms: Summary;
  /** `eth_call` of the same transaction, ms. */
  readonly callMs: Summary;
  readonly paper: PaperRow | undefined;
}

/** The five operations of Figure 3 (and the whole exchange beside P2). */
export const OPERATIONS = ['P1', 'P2', 'P2 exchange', 'P3', 'P4', 'P5'] as const;
/** One of Figure 3's operations. */
export type Operation = (typeof OPERATIONS)[number];

/** Each operation: what it is in the paper and in Tally, and the commands it adds up. */
export const OPERATION_OF: Readonly<Record<Operation, { readonly paper: string; readonly ours: string; readonly commands: readonly (TaCommand & FloorCommand)[]; readonly commits: number }>> = {
  P1: { paper: 'account initialisation: the key pair and the account state (Algorithm 2)', ours: '`open` (provisioning, once per device, not included)', commands: ['open'], commits: 1 },
  P2: { paper: 'offline transaction, the TEE alone', ours: "`transfer` on the payer's TA", commands: ['transfer'], commits: 1 },
  'P2 exchange': { paper: 'not timed (it times the payer\'s TEE alone)', ours: "`transfer` + the payee's `receive` + the payer's `pay`", commands: ['transfer', 'receive', 'pay'], commits: 3 },
  P3: { paper: 'upload verification and update of 3 transactions', ours: '`onchainUpdate` of 3 items + `finalize` of their statement', commands: ['onchainUpdate', 'finalize'], commits: 1 },
  P4: { paper: 'dynamic balance exchange (recharge/withdrawal)', ours: '`withdraw` + `deposit` of a second deposit (recharge)', commands: ['withdraw', 'deposit'], commits: 2 },
  P5: { paper: 'offline account logout', ours: '`logout` + `finalize` of the closed statement + `clean`', commands: ['logout', 'finalize (closed)', 'clean'], commits: 3 },
};

/** Our sample of `command` in one run (the recharge is the second deposit's credit). */
function sampleOf(run: RunSample, command: TaCommand & FloorCommand): number {
  return command === 'deposit' ? run.ta.recharge : run.ta[command];
}

/** One operation of Figure 3, ours against the paper and the floors. */
export interface Figure3Row {
  readonly operation: Operation;
  readonly ms: Summary;
  /** Per run, ms (the figure's series). */
  readonly samples: readonly number[];
  readonly paperMs: number | undefined;
  readonly floorMs: number;
  /** The floor with the commits the commands make (the harness's persistence floor). */
  readonly floorWithCommitsMs: number;
}

/** Everything `bench chain` measured. */
export interface ChainBenchReport {
  readonly machine: Machine;
  readonly loadAverage: { readonly start: number; readonly end: number };
  readonly runs: number;
  readonly warmup: number;
  readonly chain: { readonly node: string; readonly chainId: number; readonly solc: string };
  readonly table2: readonly Table2Row[];
  /** Gas of each payment beyond the first in one upload (from the 1- and 5-payment uploads). */
  readonly gasPerExtraPayment: { readonly ours: number; readonly paper: number };
  readonly figure3: readonly Figure3Row[];
  readonly commands: Readonly<Record<TaCommand, Summary>>;
  readonly provisioning: Readonly<Record<'init' | 'certInit' | 'setParams', Summary>>;
  readonly floor: ChainFloor;
  readonly commit: { readonly sealedBytes: number; readonly latency: Latency };
  readonly loc: LocReport;
  readonly conservation: { readonly payeeTa: string; readonly payeeChain: string; readonly held: string; readonly withdrawn: string; readonly paidOut: string };
  svgPath?: string;
}

/** Table II from the deployments and the runs. */
export function table2Of(deploys: { token: { gas: bigint; ms: number; callMs: number }[]; accounts: { gas: bigint; ms: number; callMs: number }[] }, runs: readonly RunSample[], calls: readonly ChainCall[]): Table2Row[] {
  const row = (name: keyof typeof PAPER_ROW_OF, sends: readonly { gas: bigint; ms: number; callMs: number }[]): Table2Row => ({
    name,
    gas: summary(sends.map((s) => Number(s.gas))),
    ms: summary(sends.map((s) => s.ms)),
    callMs: summary(sends.map((s) => s.callMs)),
    paper: PAPER_ROW_OF[name],
  });
  return [row('deploy OfflineAccounts', deploys.accounts), row('deploy TallyToken', deploys.token), ...calls.map((c) => row(c, runs.map((r) => r.chain[c])))];
}

/** Figure 3's rows from the runs and the floors. */
export function figure3Of(runs: readonly RunSample[], floor: ChainFloor, commitMs: number): Figure3Row[] {
  return OPERATIONS.map((operation) => {
    const { commands, commits } = OPERATION_OF[operation];
    const samples = runs.map((r) => commands.reduce((s, c) => s + sampleOf(r, c), 0));
    const floorMs = commands.reduce((s, c) => s + floor.commands[c].totalMs, 0);
    const paper = operation === 'P2 exchange' ? undefined : operation === 'P1' ? (PAPER.figure3.P1.low + PAPER.figure3.P1.high) / 2 : PAPER.figure3[operation];
    return { operation, ms: summary(samples), samples, paperMs: paper, floorMs, floorWithCommitsMs: floorMs + commits * commitMs };
  });
}

/** Each operation's median over its crypto floor: below 1 means the run was too noisy. */
export function chainRatios(report: ChainBenchReport): FloorRatio[] {
  return report.figure3.map((r) => ({ what: `${r.operation} median / crypto floor`, value: r.ms.median / r.floorMs }));
}

const n0 = (x: number) => Math.round(x).toLocaleString('en-US');
const f = (x: number, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : '—');
const ratio = (x: number) => (Number.isFinite(x) ? `${x.toFixed(2)}×` : '—');
const ms = (s: Summary) => `${f(s.median)} (${f(s.mean)} ± ${f(s.sd)})`;

/** The report as Markdown. */
export function formatChainReport(report: ChainBenchReport): string {
  const lines: string[] = [];
  const { runs, warmup } = report;
  lines.push(
    `Chain: ${report.chain.node}, chain id ${report.chain.chainId}; contracts compiled by solc ${report.chain.solc}. ${runs} timed run(s) after ${warmup} untimed; load average ${f(report.loadAverage.start, 1)} → ${f(report.loadAverage.end, 1)}.`,
    `The paper: ${PAPER.machine}; ${PAPER.runs} runs.`,
    '',
    `Table II: gas (median, min–max over the runs) and time from eth_sendRawTransaction to the receipt (median, mean ± sd), ms; eth_call = the same call executed alone at the state before it (median, ms)`,
    '',
    '| function | paper gas | our gas | gas ours/paper | paper ms | our ms | ms ours/paper | eth_call ms |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
  );
  for (const r of report.table2) {
    const range = r.gas.min === r.gas.max ? '' : ` (${n0(r.gas.min)}–${n0(r.gas.max)})`;
    lines.push(
      `| ${r.name} | ${r.paper === undefined ? '—' : n0(r.paper.gas)} | ${n0(r.gas.median)}${range} | ${r.paper === undefined ? '—' : ratio(r.gas.median / r.paper.gas)} | ${r.paper === undefined ? '—' : f(r.paper.ms)} | ${ms(r.ms)} | ${r.paper === undefined ? '—' : ratio(r.ms.median / r.paper.ms)} | ${f(r.callMs.median)} |`,
    );
  }
  lines.push('', `Gas per payment beyond the first in one upload: ours ${n0(report.gasPerExtraPayment.ours)}, the paper ${n0(report.gasPerExtraPayment.paper)} (${ratio(report.gasPerExtraPayment.ours / report.gasPerExtraPayment.paper)}).`);

  lines.push(
    '',
    `Figure 3: the five enclave operations between two trusted apps in isolated secure elements (child processes, file counters), ${runs} runs each, ms. Floor = the cryptography the commands do (counted and replayed bare); + commits = with one secure-element commit of ${report.commit.sealedBytes} sealed bytes (${f(report.commit.latency.p50Ms)} ms p50) per committing command.`,
    '',
    '| | paper (SGX) | ours: median | mean ± sd | ours/paper (mean) | crypto floor | median / floor | floor + commits | median / (floor + commits) |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  );
  for (const r of report.figure3) {
    const paper = r.operation === 'P1' ? `${PAPER.figure3.P1.low}–${PAPER.figure3.P1.high}` : r.paperMs === undefined ? '—' : f(r.paperMs, 0);
    lines.push(
      `| ${r.operation} | ${paper} | ${f(r.ms.median)} | ${f(r.ms.mean)} ± ${f(r.ms.sd)} | ${r.paperMs === undefined ? '—' : ratio(r.ms.mean / r.paperMs)} | ${f(r.floorMs, 3)} | ${ratio(r.ms.median / r.floorMs)} | ${f(r.floorWithCommitsMs, 3)} | ${ratio(r.ms.median / r.floorWithCommitsMs)} |`,
    );
  }
  lines.push('', 'What each operation is:', '');
  for (const op of Object.keys(OPERATION_OF) as Operation[]) lines.push(`- ${op}: in the paper, ${OPERATION_OF[op].paper}; ours, ${OPERATION_OF[op].ours}.`);

  const fl = report.floor;
  lines.push(
    '',
    'The trusted-app commands, as the wallet calls them (ms; the payer\'s unless named), with their floors: signatures (s) and verifications (v) counted by the metering provider, and the primitives it does not see',
    '',
    '| command | median | mean ± sd | metered | unmetered | floor ms | median / floor |',
    '|---|---:|---:|---|---|---:|---:|',
  );
  for (const [command, s] of Object.entries(report.commands) as [TaCommand, Summary][]) {
    const floor = command === 'recharge' ? fl.commands.deposit : command === 'exchange' ? undefined : fl.commands[command];
    const unmetered = floor === undefined ? '' : Object.entries(floor.unmetered).map(([p, k]) => `${k} ${p}`).join(', ');
    lines.push(
      `| ${command} | ${f(s.median)} | ${f(s.mean)} ± ${f(s.sd)} | ${floor === undefined ? '—' : `${floor.metered.signs} s, ${floor.metered.verifies} v`} | ${unmetered || '—'} | ${floor === undefined ? '—' : f(floor.totalMs, 3)} | ${floor === undefined || floor.totalMs === 0 ? '—' : ratio(s.median / floor.totalMs)} |`,
    );
  }
  lines.push('', `Unmetered primitives, bare (ms each): ${Object.entries(fl.primitiveMs).map(([p, v]) => `${p} ${f(v, 4)}`).join(', ')}.`);
  const p = report.provisioning;
  lines.push(`Provisioning, once per device (not in P1; median of the devices, ms): init ${f(p.init.median)}, certInit ${f(p.certInit.median)}, setParams ${f(p.setParams.median)}.`);

  lines.push('', 'Table I: lines of code (non-blank, non-comment), counted in the tree now', '', '| component | language | files | lines | the paper |', '|---|---|---:|---:|---|');
  const paperOf = [
    `offline payment protocol, Python: ${PAPER.table1.protocol}`,
    '—',
    '—',
    `dependent codes (web3.py modified), Python: ${PAPER.table1.dependent}`,
    `Occlum setting, scripts: ${PAPER.table1.occlum}`,
    `online contract, Solidity: ${PAPER.table1.contract}`,
  ];
  report.loc.rows.forEach((r, i) => lines.push(`| ${r.component} | ${r.language} | ${r.files} | ${n0(r.lines)} | ${paperOf[i] ?? '—'} |`));
  lines.push('', `Contracts: ${Object.entries(report.loc.contracts).map(([file, n]) => `${file} ${n}`).join(', ')}.`);
  const c = report.conservation;
  lines.push('', `Conservation after the runs: the payee's TA holds ${c.payeeTa} and its account on chain ${c.payeeChain}; the contract holds ${c.held} (every other account closed or never funded); ${c.withdrawn} withdrawn, ${c.paidOut} in the pay-out address.`);
  if (report.svgPath !== undefined) lines.push('', `Figure: ${report.svgPath}`);
  return lines.join('\n');
}
