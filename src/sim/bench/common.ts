/**
 * `npm run bench -- common`: the one workload every scheme runs alike. One payment of 12.50 (in
 * minor units of the node's currency, EUR) from a payer to a payee whose secure elements run in
 * their own processes (file counters), over a fresh TCP connection on loopback and a fresh Noise
 * link, repeated: the latency of the link and of the payment, the bytes through the socket, the
 * signatures and verifications of one payment (counted by the metering provider on a pair in this
 * process), the commits each secure element made (read off its counter), and the payment against
 * its floor measured in the same run (those signatures replayed, those commits made by the host's
 * commit alone). Where the scheme settles each payment with the node, the settlement is timed too.
 * The workloads come from the registry (`Scheme.common`); this file names no scheme.
 */
import { listenTcp } from '../../channel/tcp.ts';
import type { FloorRatio } from './machine.ts';
import type { BenchHarness, BenchPlugin, CommonSample, CommonWorkload } from './plugin.ts';
import { summarise, type Latency } from './stats.ts';

/** A scheme's common workload as the registry offers it (loaded when it runs). */
export interface CommonSource {
  readonly name: string;
  load(): Promise<CommonWorkload>;
}

/** The sources of every scheme that has a common workload. */
export function commonSources(schemes: readonly { readonly name: string; common?(): Promise<CommonWorkload> }[]): CommonSource[] {
  return schemes.flatMap((scheme) => (scheme.common === undefined ? [] : [{ name: scheme.name, load: () => scheme.common?.() ?? Promise.reject(new Error(`${scheme.name} has no common workload`)) }]));
}

/** How much to run. */
export interface CommonOptions {
  /** Timed payments per scheme. */
  readonly payments: number;
  /** Untimed payments before them. */
  readonly warmup: number;
  /** Replays of the metered signatures, for the crypto floor (the persistence floor is timed after each payment). */
  readonly floorIterations: number;
  /** Each payment's amount, minor units (1250 is 12.50). */
  readonly amountMinor: bigint;
  /** Only these schemes, when set (by name). */
  readonly only?: readonly string[] | undefined;
}

/** One scheme's row. */
export interface CommonRow {
  readonly scheme: string;
  readonly currency: string;
  readonly carries: string;
  readonly payments: number;
  readonly link: Latency;
  readonly session: Latency;
  readonly total: Latency;
  /** Mean bytes through the socket per payment, both ways. */
  readonly handshakeBytes: number;
  readonly sessionBytes: number;
  /** Of one payment, counted by the metering provider. */
  readonly signs: number;
  readonly verifies: number;
  /** Mean commits per payment of the payer's and of the payee's secure element. */
  readonly commits: { readonly payer: number; readonly payee: number };
  /** The floor of one payment: its signatures and verifications replayed; its commits as the host makes them. */
  readonly floor: { readonly crypto: Latency; readonly persistence: Latency; readonly sealedBytes: readonly [number, number]; readonly p50Ms: number; readonly p99Ms: number };
  /** The payment with its link (what the metered signatures include) over its floor. */
  readonly ratio: { readonly p50: number; readonly p99: number };
  /** The payee's settlement of one payment with the node, or why none was timed. */
  readonly settle: { readonly latency: Latency; readonly what: string; readonly gasPerPayment: number | undefined } | { readonly none: string };
  readonly loadAverage: { readonly start: number; readonly end: number };
}

/** What the common workload measured. */
export interface CommonReport {
  readonly amountMinor: number;
  readonly rows: CommonRow[];
  /** Schemes whose side of the common workload is not written yet. */
  readonly missing: string[];
  /** Schemes whose workload failed in this run, and why. */
  readonly failed: { readonly scheme: string; readonly reason: string }[];
}

const mean = (xs: readonly number[]) => (xs.length === 0 ? 0 : xs.reduce((s, x) => s + x, 0) / xs.length);

/** Runs one scheme's workload. */
export async function measureScheme(harness: BenchHarness, name: string, workload: CommonWorkload, options: CommonOptions): Promise<CommonRow> {
  const loadStart = harness.loadAverage();
  const meter = harness.meter(['payment'] as const);
  harness.progress(`${name}: opening its world (a node, two isolated secure elements, a metered pair)`);
  if (workload.open === undefined) throw new Error(`${name} has no common workload to run`);
  const world = await workload.open({ harness, amountMinor: options.amountMinor, payments: options.payments + options.warmup + 1, meter });
  const server = await listenTcp(0, '127.0.0.1');
  try {
    const [payerDir, payeeDir] = world.elementDirs;
    for (let i = 0; i < options.warmup; i++) {
      await world.prepare();
      await world.pay(server);
      await world.settle();
    }
    harness.progress(`${name}: ${options.payments} payment(s) of ${world.carries}`);
    const samples: CommonSample[] = [];
    const commits = { payer: [] as number[], payee: [] as number[] };
    const sealed = { payer: [] as number[], payee: [] as number[] };
    const settles: { ms: number; what: string; gas: bigint | undefined }[] = [];
    let unsettled = false;
    // After each payment, as many floor commits as it made, of the sizes its elements wrote: the
    // persistence floor sees the disk in the state the payment saw it (commit-floor.ts).
    const floor = await harness.openCommitFloor();
    const floorSamples: number[] = [];
    for (let i = 0; i < options.payments; i++) {
      await world.prepare();
      const [payerBefore, payeeBefore] = await Promise.all([harness.elementState(payerDir), harness.elementState(payeeDir)]);
      samples.push(await world.pay(server));
      const [payerAfter, payeeAfter] = await Promise.all([harness.elementState(payerDir), harness.elementState(payeeDir)]);
      commits.payer.push(payerAfter.commits - payerBefore.commits);
      commits.payee.push(payeeAfter.commits - payeeBefore.commits);
      sealed.payer.push(payerAfter.sealedBytes);
      sealed.payee.push(payeeAfter.sealedBytes);
      const made = [
        ...Array.from({ length: payerAfter.commits - payerBefore.commits }, () => payerAfter.sealedBytes),
        ...Array.from({ length: payeeAfter.commits - payeeBefore.commits }, () => payeeAfter.sealedBytes),
      ];
      floorSamples.push(await floor.round(made));
      const settled = await world.settle();
      if (settled === undefined) unsettled = true;
      else settles.push({ ms: settled.ms, what: settled.what, gas: settled.gas });
    }
    harness.progress(`${name}: one payment on the metered pair, then the floor`);
    const metered = await world.metered(server);
    const crypto = metered.replay.latency(options.floorIterations);
    const sealedBytes: [number, number] = [Math.round(mean(sealed.payer)), Math.round(mean(sealed.payee))];
    const persistence = summarise(floorSamples);
    await world.verify();
    const floorP50 = crypto.p50Ms + persistence.p50Ms;
    const floorP99 = crypto.p99Ms + persistence.p99Ms;
    const session = summarise(samples.map((s) => s.sessionMs));
    const total = summarise(samples.map((s) => s.linkMs + s.sessionMs));
    const gas = settles.filter((s) => s.gas !== undefined).map((s) => Number(s.gas));
    return {
      scheme: name,
      currency: world.currency,
      carries: world.carries,
      payments: samples.length,
      link: summarise(samples.map((s) => s.linkMs)),
      session,
      total,
      handshakeBytes: Math.round(mean(samples.map((s) => s.handshakeBytes))),
      sessionBytes: Math.round(mean(samples.map((s) => s.sessionBytes))),
      signs: metered.counts.signs,
      verifies: metered.counts.verifies,
      commits: { payer: mean(commits.payer), payee: mean(commits.payee) },
      floor: { crypto, persistence, sealedBytes, p50Ms: floorP50, p99Ms: floorP99 },
      ratio: { p50: total.p50Ms / floorP50, p99: total.p99Ms / floorP99 },
      settle:
        unsettled || settles.length === 0
          ? { none: 'the scheme does not settle each payment with the node' }
          : { latency: summarise(settles.map((s) => s.ms)), what: settles[0]?.what ?? '', gasPerPayment: gas.length === 0 ? undefined : Math.round(mean(gas)) },
      loadAverage: { start: loadStart, end: harness.loadAverage() },
    };
  } finally {
    await server.close();
    await world.close();
  }
}

/** Runs every source's workload, one scheme after the other. */
export async function measureCommon(harness: BenchHarness, sources: readonly CommonSource[], options: CommonOptions): Promise<CommonReport> {
  const rows: CommonRow[] = [];
  const missing: string[] = [];
  const failed: { scheme: string; reason: string }[] = [];
  for (const source of sources) {
    if (options.only !== undefined && !options.only.includes(source.name)) continue;
    const workload = await source.load();
    if (workload.open === undefined) {
      missing.push(source.name);
      continue;
    }
    try {
      rows.push(await measureScheme(harness, source.name, workload, options));
    } catch (e) {
      // One scheme's failure is reported, and the others still run.
      const reason = e instanceof Error ? e.message : String(e);
      harness.progress(`${source.name}: failed: ${reason}`);
      failed.push({ scheme: source.name, reason });
    }
  }
  return { amountMinor: Number(options.amountMinor), rows, missing, failed };
}

/** Each payment's ratio to its floor: below 1, the run was too noisy to trust. */
export function commonRatios(report: CommonReport): FloorRatio[] {
  return report.rows.flatMap((r) => [
    { what: `${r.scheme} total / floor p50`, value: r.ratio.p50 },
    { what: `${r.scheme} total / floor p99`, value: r.ratio.p99 },
  ]);
}

const ms = (x: number) => x.toFixed(2);
const minor = (x: number) => (x / 100).toFixed(2);
const commitsText = (x: number) => (Number.isInteger(x) ? String(x) : x.toFixed(1));

/** The common workload's tables. */
export function formatCommon(report: CommonReport): string {
  const currency = report.rows[0]?.currency ?? 'EUR';
  const lines = [
    `One payment of ${minor(report.amountMinor)} ${currency} from a payer to a payee, secure elements in their own processes (file counters), a new TCP connection on loopback and a new Noise link per payment`,
    '',
    '| scheme | carried as | payments | link p50 ms | payment p50 ms | payment p99 ms | total p50 ms | total p99 ms | handshake bytes | payment bytes | signatures | verifications | SE commits (payer + payee) | floor p50 ms | total / floor p50 | p99 |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of report.rows) {
    lines.push(
      `| ${r.scheme} | ${r.carries} | ${r.payments} | ${ms(r.link.p50Ms)} | ${ms(r.session.p50Ms)} | ${ms(r.session.p99Ms)} | ${ms(r.total.p50Ms)} | ${ms(r.total.p99Ms)} | ${r.handshakeBytes} | ${r.sessionBytes} | ${r.signs} | ${r.verifies} | ${commitsText(r.commits.payer)} + ${commitsText(r.commits.payee)} | ${ms(r.floor.p50Ms)} | ${r.ratio.p50.toFixed(2)}x | ${r.ratio.p99.toFixed(2)}x |`,
    );
  }
  for (const f of report.failed) lines.push('', `${f.scheme}: the workload failed in this run: ${f.reason}`);
  if (report.missing.length > 0) lines.push('', `Not measured in this workload yet: ${report.missing.join(', ')} (their side of \`Scheme.common\` has no world yet).`);
  lines.push('', 'The floor: the signatures and verifications of one payment as the code made them (counted on a pair in this process by the metering provider), replayed with node:crypto; plus, timed after each payment, as many commits as the two secure elements made in it, each a sealed write of the size they wrote, fsync, rename and a file-counter increment (the floor and the payment see the disk in the same state).', '');
  lines.push('| scheme | crypto floor p50 ms | persistence floor p50 ms | sealed bytes (payer, payee) | load average (start, end) |', '|---|---:|---:|---:|---:|');
  for (const r of report.rows) lines.push(`| ${r.scheme} | ${ms(r.floor.crypto.p50Ms)} | ${ms(r.floor.persistence.p50Ms)} | ${r.floor.sealedBytes[0]}, ${r.floor.sealedBytes[1]} | ${r.loadAverage.start.toFixed(1)}, ${r.loadAverage.end.toFixed(1)} |`);
  lines.push('', 'Settlement of one payment with the node (the payee online, after the payment)', '', '| scheme | what | p50 ms | p99 ms | gas |', '|---|---|---:|---:|---:|');
  for (const r of report.rows) {
    if ('none' in r.settle) lines.push(`| ${r.scheme} | not measured: ${r.settle.none} | | | |`);
    else lines.push(`| ${r.scheme} | ${r.settle.what} | ${ms(r.settle.latency.p50Ms)} | ${ms(r.settle.latency.p99Ms)} | ${r.settle.gasPerPayment ?? ''} |`);
  }
  return lines.join('\n');
}

/** `npm run bench -- common`: the common workload alone (TALLY_COMMON_SCHEMES=ops,otp for some schemes only). */
export function commonBench(sources: readonly CommonSource[]): BenchPlugin<CommonOptions, CommonReport> {
  return {
    name: 'common',
    paper: 'Tally',
    reproduces: 'one payment of 12.50 on every scheme alike, against its floor',
    parameters: { quick: { payments: 8, warmup: 1, floorIterations: 50, amountMinor: 1250n }, full: { payments: 100, warmup: 5, floorIterations: 400, amountMinor: 1250n } },
    async run(harness, parameters) {
      const only = harness.env['TALLY_COMMON_SCHEMES']?.split(',').map((s) => s.trim()).filter((s) => s !== '');
      const report = await measureCommon(harness, sources, { ...parameters, only });
      return { report, text: formatCommon(report), ratios: commonRatios(report) };
    },
  };
}
