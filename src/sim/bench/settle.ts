/**
 * `bench settle`: how many payments a second the issuer node settles, at the scale of a country.
 * A payment counts once the node has received it over the network, checked every signature on it,
 * recorded it and moved the money, with the audit balanced at the end. The node runs in a process
 * of its own (node-process.ts) on PGlite and, when a URL is set, on PostgreSQL; the load comes from
 * this process, 1, 2, 4 and 8 submitters at once, with every request encoded before the clock
 * starts. Each row says the rate, the latency of a request, the CPU per payment of the node and of
 * PostgreSQL, and the rate over its floor: Ed25519 verifications per second on every core
 * (verify-floor.ts) over the verifications a payment needs, and, for a workload whose cryptography
 * is another (an RSA blind signature, an X25519 agreement), those operations measured the same way.
 *
 * What is settled comes from a scheme (a `SettleWorkload` given by the registry): this file names none.
 */
import { countFrom, listFrom, shardsFrom } from './settle-env.ts';
import { loadavg } from 'node:os';
import { postgresCpuMs } from './cpu.ts';
import { plotSvg, type PlotSeries } from './figure.ts';
import type { BenchHarness, BenchPlugin, BenchProcessNode, FloorRatio, SettleSubmitter, SettleWorkload } from './plugin.ts';
import { summarise, type Latency } from './stats.ts';
import { FLOOR_OPERATIONS, measureOperationFloor, measureVerifyFloor, type FloorOperation, type VerifyFloor } from './verify-floor.ts';

/** Where a scheme's workloads come from: its name in the registry and its lazy loader. */
export interface SettleSource {
  readonly scheme: string;
  load(): Promise<readonly SettleWorkload[]>;
}

/** The workloads of the schemes that give some (the registry's `settle`), in the registry's order. */
export function settleSources(schemes: ReadonlyArray<{ readonly name: string; settle?(): Promise<readonly SettleWorkload[]> }>): SettleSource[] {
  return schemes.flatMap((scheme) => {
    const settle = scheme.settle;
    return settle === undefined ? [] : [{ scheme: scheme.name, load: () => settle.call(scheme) }];
  });
}

/** How much to run. */
export interface SettleParameters {
  /** Devices that make the payments. */
  readonly devices: number;
  /** Payments settled per row. */
  readonly payments: number;
  /** Submitters at once, one row each. */
  readonly submitters: readonly number[];
  /** Payments settled untimed before the first row (a cold node would be measured otherwise). */
  readonly warmup: number;
  /** How long each thread of the verification floor runs, ms. */
  readonly floorMs: number;
  /** Also on PostgreSQL when a URL is set (the default); false keeps to PGlite. */
  readonly postgres?: boolean | undefined;
  /** Where the figure goes (in docs/ when relative); none when undefined. */
  readonly figure?: string | undefined;
  /** Only these workloads, as `scheme/name` (or `scheme` for all of its); every one when undefined. */
  readonly only?: readonly string[] | undefined;
  /**
   * Shard counts (`--shards 1,2,4`): each workload that settles through the intake also runs with
   * the node on NATS JetStream in that many shards, with the most submitters; none when undefined.
   */
  readonly shards?: readonly number[] | undefined;
  /** The NATS server of the sharded rows. */
  readonly natsUrl?: string | undefined;
}

/** One row: a scheme's workload, a database, a number of submitters. */
export interface SettleRow {
  readonly scheme: string;
  readonly workload: string;
  readonly database: 'pglite' | 'postgres';
  /** The shards the node settled in through NATS JetStream; null when it settled inline. */
  readonly shards: number | null;
  /** True when the node kept its ledger on as many shard databases (the workload's `shardDatabases`). */
  readonly shardDatabases?: boolean | undefined;
  readonly submitters: number;
  readonly payments: number;
  readonly requests: number;
  readonly elapsedMs: number;
  readonly paymentsPerSecond: number;
  /** Per request (a bulk of payments). */
  readonly latency: Latency;
  /** CPU of the node process per payment, ms (PGlite's included: it runs inside the node). */
  readonly nodeCpuMsPerPayment: number;
  /** CPU of the machine's PostgreSQL processes per payment, ms; null on PGlite (counted in the node's). */
  readonly postgresCpuMsPerPayment: number | null;
  /** CPU of this process (the submitters, signing and sending) per payment, ms. */
  readonly benchCpuMsPerPayment: number;
  /** The most payments a second the workload's public-key operations allow on every core: the floor over its verifications per payment, with its other operations' floors. */
  readonly floorPaymentsPerSecond: number;
  /** Time per payment over the floor's time per payment: floor payments per second / payments per second. */
  readonly floorRatio: number;
}

/** Everything `bench settle` measured. */
export interface SettleReport {
  /** The floor: the faster of its two measurements, before and after the rows (a disturbed one is the slower). */
  readonly floor: VerifyFloor & { readonly spanMs: number; readonly measuredPerSecond: readonly number[] };
  /** The floors of the other operations the workloads name (none when every workload is Ed25519's alone), kept as the floor is. */
  readonly operationFloors: ReadonlyArray<VerifyFloor & { readonly operation: FloorOperation; readonly measuredPerSecond: readonly number[] }>;
  readonly devices: number;
  readonly paymentsPerRow: number;
  readonly workloads: ReadonlyArray<{ readonly scheme: string; readonly workload: string; readonly describes: string; readonly verificationsPerPayment: number; readonly floorOperations: Readonly<Partial<Record<FloorOperation, number>>> }>;
  readonly rows: readonly SettleRow[];
  /** The 1-minute load average after each database's rows. */
  readonly loadAfter: ReadonlyArray<{ readonly scheme: string; readonly workload: string; readonly database: 'pglite' | 'postgres'; readonly loadAverage: number }>;
  readonly skipped: readonly string[];
  /** Where the figure was written, if it was. */
  readonly figure: string | null;
}

/** A workload's other operations with a count above 0, in FLOOR_OPERATIONS' order. */
function operationsOf(operations: Readonly<Partial<Record<FloorOperation, number>>> | undefined): Array<[FloorOperation, number]> {
  return FLOOR_OPERATIONS.flatMap((op): Array<[FloorOperation, number]> => {
    const n = operations?.[op] ?? 0;
    return n > 0 ? [[op, n]] : [];
  });
}

/**
 * A workload's floor, payments a second: one over the time its operations take per payment, each at
 * its measured rate on every core.
 */
export function floorPaymentsPerSecond(ed25519PerSecond: number, verificationsPerPayment: number, operations: Readonly<Partial<Record<FloorOperation, number>>> | undefined, rates: ReadonlyMap<FloorOperation, number>): number {
  let seconds = verificationsPerPayment / ed25519PerSecond;
  for (const [op, n] of operationsOf(operations)) {
    const perSecond = rates.get(op);
    if (perSecond === undefined) throw new Error(`bench settle: the floor of ${op} was not measured`);
    seconds += n / perSecond;
  }
  return 1 / seconds;
}

/** The bench's own CPU so far, ms. */
function ownCpuMs(): number {
  const used = process.cpuUsage();
  return (used.user + used.system) / 1000;
}

/** Sends every submitter's requests, all submitters at once; answers the payments settled, the request latencies and the span. */
async function drive(submitters: readonly SettleSubmitter[], settled: (n: number) => void): Promise<{ payments: number; samples: number[]; elapsedMs: number }> {
  const samples: number[] = [];
  let payments = 0;
  const started = performance.now();
  await Promise.all(
    submitters.map(async (submitter) => {
      for (let i = 0; i < submitter.requests; i++) {
        const t = performance.now();
        const n = await submitter.submit(i);
        samples.push(performance.now() - t);
        payments += n;
        settled(n);
      }
    }),
  );
  return { payments, samples, elapsedMs: performance.now() - started };
}

/** Times every row of one workload on one database, then checks that every payment was settled once and the audit balances. */
async function measureDatabase(
  harness: BenchHarness,
  source: SettleSource,
  workload: SettleWorkload,
  database: 'pglite' | 'postgres',
  parameters: SettleParameters,
  shards: number | null = null,
): Promise<Array<Omit<SettleRow, 'floorRatio' | 'floorPaymentsPerSecond'>>> {
  const label = `${source.scheme} ${workload.name} on ${database}${shards === null ? '' : workload.shardDatabases === true ? ` on ${shards} shard database(s)` : ` in ${shards} shard(s)`}`;
  // A sharded row runs with the most submitters only: it is compared with the inline row there.
  const submitterRows = shards === null ? parameters.submitters : [Math.max(...parameters.submitters)];
  const settle = shards === null ? undefined : { natsUrl: parameters.natsUrl ?? 'nats://127.0.0.1:4222', shards, ...(workload.shardDatabases === true ? { shardDatabases: true } : {}) };
  const perRow = Math.min(parameters.payments, workload.paymentsPerRowMax ?? Number.POSITIVE_INFINITY);
  const warmup = Math.min(parameters.warmup, perRow);
  harness.progress(`${label}: opening the node process`);
  const node: BenchProcessNode = await harness.openNodeProcess({ schemes: workload.schemes, database, deviceLimits: (d) => workload.deviceLimits(d), ...(settle === undefined ? {} : { settle }) });
  try {
    const submittersMax = Math.max(...parameters.submitters);
    harness.progress(`${label}: setting up ${parameters.devices} devices and ${submittersMax} receivers`);
    const world = await workload.open({
      harness,
      node,
      devices: parameters.devices,
      submittersMax,
      paymentsTotal: warmup + perRow * submitterRows.length,
      paymentsPerRow: perRow,
    });
    try {
      if (warmup > 0) {
        const warm = await world.prepare({ submitters: 1, payments: warmup, made: () => undefined });
        await drive(warm, () => undefined);
      }
      const rows: Array<Omit<SettleRow, 'floorRatio' | 'floorPaymentsPerSecond'>> = [];
      for (const submitters of submitterRows) {
        const making = harness.progressBar(`${label}, ${submitters} submitter(s): paying`, perRow);
        const work = await world.prepare({ submitters, payments: perRow, made: (n) => making.advance(n) });
        making.done();
        const settling = harness.progressBar(`${label}, ${submitters} submitter(s): settling`, perRow);
        const before = { node: await node.cpuMs(), postgres: postgresCpuMs(), bench: ownCpuMs() };
        const timed = await drive(work, (n) => settling.advance(n));
        const after = { node: await node.cpuMs(), postgres: postgresCpuMs(), bench: ownCpuMs() };
        settling.done();
        if (timed.payments !== perRow) throw new Error(`${label}: ${timed.payments} payments settled, ${perRow} made`);
        const paymentsPerSecond = (timed.payments * 1000) / timed.elapsedMs;
        rows.push({
          scheme: source.scheme,
          workload: workload.name,
          database,
          shards,
          ...(shards !== null && workload.shardDatabases === true ? { shardDatabases: true } : {}),
          submitters,
          payments: timed.payments,
          requests: timed.samples.length,
          elapsedMs: timed.elapsedMs,
          paymentsPerSecond,
          latency: summarise(timed.samples),
          nodeCpuMsPerPayment: (after.node - before.node) / timed.payments,
          postgresCpuMsPerPayment: database === 'postgres' ? (after.postgres - before.postgres) / timed.payments : null,
          benchCpuMsPerPayment: (after.bench - before.bench) / timed.payments,
        });
      }
      // Every payment settled exactly once, and the books balance.
      harness.progress(`${label}: checking every receiver's balance and the audit`);
      await world.verify();
      await node.assertBalanced();
      return rows;
    } finally {
      await world.close();
    }
  } finally {
    await node.stop();
  }
}

const COLOURS: Readonly<Record<'pglite' | 'postgres', string>> = { pglite: '#1f77b4', postgres: '#d62728' };
const FLOOR_COLOUR = '#555555';

/** Straight lines between a series' points, for the figure's line through them. */
function through(points: ReadonlyArray<{ x: number; y: number }>): (x: number) => number {
  return (x) => {
    const after = points.findIndex((p) => p.x >= x);
    if (after <= 0) return (points[Math.max(0, after)] ?? points[points.length - 1])?.y ?? 0;
    const a = points[after - 1] as { x: number; y: number };
    const b = points[after] as { x: number; y: number };
    return a.y + ((b.y - a.y) * (x - a.x)) / (b.x - a.x);
  };
}

/** The figure: payments a second by submitters, one line per database, the verification floor as a line. */
export function settleFigure(report: Pick<SettleReport, 'rows' | 'floor'>, subtitle: string): string {
  const series: PlotSeries[] = [];
  const xs = [...new Set(report.rows.map((r) => r.submitters))].sort((a, b) => a - b);
  for (const database of ['pglite', 'postgres'] as const) {
    for (const workload of [...new Set(report.rows.map((r) => `${r.scheme} ${r.workload}`))]) {
      const rows = report.rows.filter((r) => r.database === database && r.shards === null && `${r.scheme} ${r.workload}` === workload);
      if (rows.length === 0) continue;
      const points = rows.map((r) => ({ x: r.submitters, y: r.paymentsPerSecond, sd: 0, title: `${workload}, ${database}, ${r.submitters} submitter(s): ${Math.round(r.paymentsPerSecond)} payments/s` }));
      series.push({ label: `${workload}, ${database}`, colour: COLOURS[database], points, fit: { from: points[0]?.x ?? 1, at: through(points) } });
    }
  }
  const floor = report.floor.perSecond;
  series.push({
    label: `floor: Ed25519 verifications/s on ${report.floor.threads} threads`,
    colour: FLOOR_COLOUR,
    points: xs.map((x) => ({ x, y: floor, sd: 0, title: `${Math.round(floor)} verifications/s` })),
    fit: { from: xs[0] ?? 1, at: () => floor },
  });
  return plotSvg({ title: 'Payments settled per second by the issuer node', subtitle, panels: [{ xLabel: 'submitters at once', yLabel: 'payments per second', series }] });
}

const rate = (x: number) => Math.round(x).toLocaleString('en-US');
const ms = (x: number, digits = 3) => x.toFixed(digits);

/** The report as text: the floor, then one table row per scheme, database and number of submitters. */
export function formatSettleReport(report: SettleReport): string {
  const lines: string[] = [];
  const count = (n: number, what: string) => `${n === 1 ? 'one' : Number.isInteger(n) ? String(n) : n.toPrecision(4)} ${what}${n === 1 ? '' : 's'}`;
  for (const w of report.workloads) {
    const needs = [...(w.verificationsPerPayment > 0 ? [count(w.verificationsPerPayment, 'Ed25519 verification')] : []), ...operationsOf(w.floorOperations).map(([op, n]) => count(n, op))];
    lines.push(`Workload (${w.scheme} ${w.workload}): ${w.describes}; ${(report.rows.find((r) => r.scheme === w.scheme && r.workload === w.workload)?.payments ?? report.paymentsPerRow).toLocaleString('en-US')} payments per row; ${needs.join(' and ')} per payment at the least`);
  }
  lines.push(
    `Floor: ${rate(report.floor.perSecond)} Ed25519 verifications/s (node:crypto, ${report.floor.threads} worker threads at once, ${report.floor.spanMs} ms each; the faster of ${report.floor.measuredPerSecond.map(rate).join(' before and ')} after the rows): a workload's floor is this over its verifications per payment, the most payments a second a node could settle here that checked nothing else`,
    ...report.operationFloors.map((f) => `Floor of ${f.operation}: ${rate(f.perSecond)}/s (node:crypto, ${f.threads} worker threads at once; the faster of ${f.measuredPerSecond.map(rate).join(' before and ')} after the rows): a workload that needs it adds its time per payment to the Ed25519 floor's`),
    '',
    '| scheme | workload | database | shards | submitters | payments | requests | payments/s | p50 ms / request | p99 ms / request | node CPU ms / payment | PostgreSQL CPU ms / payment | bench CPU ms / payment | floor payments/s | floor / rate |',
    '|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  );
  for (const r of report.rows) {
    lines.push(
      `| ${r.scheme} | ${r.workload} | ${r.database} | ${r.shards === null ? 'inline' : r.shardDatabases === true ? `${r.shards} databases` : r.shards} | ${r.submitters} | ${r.payments} | ${r.requests} | ${rate(r.paymentsPerSecond)} | ${ms(r.latency.p50Ms, 1)} | ${ms(r.latency.p99Ms, 1)} | ${ms(r.nodeCpuMsPerPayment)} | ${r.postgresCpuMsPerPayment === null ? 'in node' : ms(r.postgresCpuMsPerPayment)} | ${ms(r.benchCpuMsPerPayment)} | ${rate(r.floorPaymentsPerSecond)} | ${r.floorRatio.toFixed(1)}x |`,
    );
  }
  if (report.loadAfter.length > 0) lines.push('', `Load average after each database: ${report.loadAfter.map((l) => `${l.scheme} ${l.workload} ${l.database} ${l.loadAverage.toFixed(1)}`).join(', ')}`);
  for (const s of report.skipped) lines.push('', `Skipped: ${s}`);
  if (report.figure !== null) lines.push('', `Figure: ${report.figure}`);
  return lines.join('\n');
}

/** The ratios the harness checks: a rate above its floor means the floor was measured disturbed. */
export function settleRatios(report: SettleReport): FloorRatio[] {
  return report.rows.map((r) => ({ what: `${r.scheme} ${r.workload} ${r.database}${r.shards === null ? '' : ` ${r.shards} shard(s)`} ${r.submitters} submitter(s): floor / rate`, value: r.floorRatio }));
}

/** Runs `bench settle` over `sources`. */
export async function benchSettle(harness: BenchHarness, sources: readonly SettleSource[], parameters: SettleParameters): Promise<SettleReport> {
  if (sources.length === 0) throw new RangeError('bench settle: no scheme in the registry gives a settlement workload');
  const only = parameters.only;
  const chosen: Array<{ source: SettleSource; workload: SettleWorkload }> = [];
  for (const source of sources) {
    for (const workload of await source.load()) {
      if (only === undefined || only.includes(source.scheme) || only.includes(`${source.scheme}/${workload.name}`)) chosen.push({ source, workload });
    }
  }
  if (chosen.length === 0) throw new RangeError(`bench settle: no workload is named ${JSON.stringify(only?.join(',') ?? '')}`);
  for (const { source, workload } of chosen) {
    if (!(workload.verificationsPerPayment >= 0) || (workload.verificationsPerPayment === 0 && operationsOf(workload.floorOperations).length === 0)) {
      throw new RangeError(`bench settle: ${source.scheme}/${workload.name} names no public-key operation a payment needs, so it has no floor`);
    }
  }
  const operations = FLOOR_OPERATIONS.filter((op) => chosen.some(({ workload }) => (workload.floorOperations?.[op] ?? 0) > 0));
  const measureOperations = async () => {
    const out = new Map<FloorOperation, VerifyFloor>();
    for (const op of operations) {
      harness.progress(`floor of ${op}: ${parameters.floorMs} ms on every core`);
      out.set(op, await measureOperationFloor(op, parameters.floorMs));
    }
    return out;
  };
  harness.progress(`verification floor: ${parameters.floorMs} ms on every core`);
  const first = await measureVerifyFloor(parameters.floorMs);
  const firstOperations = await measureOperations();
  const wantPostgres = parameters.postgres !== false;
  const databases: Array<'pglite' | 'postgres'> = wantPostgres && harness.postgresUrl !== undefined ? ['pglite', 'postgres'] : ['pglite'];
  const skipped = wantPostgres && harness.postgresUrl === undefined ? ['PostgreSQL rows: set DATABASE_URL or TEST_DATABASE_URL'] : [];
  const measuredRows: Array<Omit<SettleRow, 'floorRatio' | 'floorPaymentsPerSecond'>> = [];
  const workloads: Array<SettleReport['workloads'][number]> = [];
  const loadAfter: Array<{ scheme: string; workload: string; database: 'pglite' | 'postgres'; loadAverage: number }> = [];
  for (const { source, workload } of chosen) {
    workloads.push({ scheme: source.scheme, workload: workload.name, describes: workload.describes, verificationsPerPayment: workload.verificationsPerPayment, floorOperations: { ...workload.floorOperations } });
    for (const database of databases) {
      measuredRows.push(...(await measureDatabase(harness, source, workload, database, parameters)));
      if (workload.sharded === true) for (const n of parameters.shards ?? []) measuredRows.push(...(await measureDatabase(harness, source, workload, database, parameters, n)));
      // Shard databases are PostgreSQL databases.
      if (workload.shardDatabases === true && database === 'postgres') for (const n of parameters.shards ?? []) measuredRows.push(...(await measureDatabase(harness, source, workload, database, parameters, n)));
      loadAfter.push({ scheme: source.scheme, workload: workload.name, database, loadAverage: loadavg()[0] ?? Number.NaN });
    }
  }
  harness.progress(`verification floor again: ${parameters.floorMs} ms on every core`);
  const second = await measureVerifyFloor(parameters.floorMs);
  const secondOperations = await measureOperations();
  const best = second.perSecond > first.perSecond ? second : first;
  const floor = { ...best, spanMs: parameters.floorMs, measuredPerSecond: [first.perSecond, second.perSecond] };
  const operationFloors = operations.map((operation) => {
    const a = firstOperations.get(operation) as VerifyFloor;
    const b = secondOperations.get(operation) as VerifyFloor;
    return { ...(b.perSecond > a.perSecond ? b : a), operation, measuredPerSecond: [a.perSecond, b.perSecond] };
  });
  const rates = new Map(operationFloors.map((f) => [f.operation, f.perSecond]));
  const rows: SettleRow[] = measuredRows.map((r) => {
    const w = workloads.find((x) => x.scheme === r.scheme && x.workload === r.workload);
    const perSecond = floorPaymentsPerSecond(floor.perSecond, w?.verificationsPerPayment ?? 1, w?.floorOperations, rates);
    return { ...r, floorPaymentsPerSecond: perSecond, floorRatio: perSecond / r.paymentsPerSecond };
  });
  let figure: string | null = null;
  if (parameters.figure !== undefined) {
    const m = harness.machine;
    figure = await harness.writeFile(parameters.figure, settleFigure({ rows, floor }, `${m.cpu}, ${m.cores} cores, Node ${m.node}; ${m.date}; ${parameters.payments.toLocaleString('en-US')} payments per point`));
  }
  return { floor, operationFloors, devices: parameters.devices, paymentsPerRow: parameters.payments, workloads, rows, loadAfter, skipped, figure };
}

/** `npm run bench -- settle`, over the workloads the registry's schemes give (`TALLY_SETTLE_PAYMENTS` per row and `TALLY_SETTLE_DEVICES` override the parameters). */
export function settleBench(sources: readonly SettleSource[]): BenchPlugin<SettleParameters, SettleReport> {
  return {
    name: 'settle',
    paper: 'Tally',
    reproduces: 'settlement at national scale: payments settled per second by the issuer node, against the signature-verification floor',
    parameters: {
      quick: { devices: 8, payments: 6_000, submitters: [1, 4], warmup: 200, floorMs: 500, figure: 'settle.svg' },
      full: { devices: 64, payments: 25_000, submitters: [1, 2, 4, 8], warmup: 1_000, floorMs: 1_000, figure: 'settle.svg' },
    },
    async run(harness, parameters) {
      const report = await benchSettle(harness, sources, {
        ...parameters,
        payments: countFrom(harness.env, 'TALLY_SETTLE_PAYMENTS') ?? parameters.payments,
        devices: countFrom(harness.env, 'TALLY_SETTLE_DEVICES') ?? parameters.devices,
        only: listFrom(harness.env, 'TALLY_SETTLE_WORKLOADS') ?? parameters.only,
        shards: shardsFrom(harness.env) ?? parameters.shards,
        natsUrl: harness.env['TALLY_NATS'] || harness.env['TEST_NATS_URL'] || 'nats://127.0.0.1:4222',
      });
      return { report, text: formatSettleReport(report), ratios: settleRatios(report) };
    },
  };
}
