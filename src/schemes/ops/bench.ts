/**
 * `bench ops`: OPS end to end, measured in one run.
 * - Offline payments between two wallets whose secure elements run isolated (child processes, file
 *   counters), both certified by a node: a secure link bound to both users' certificates, then
 *   request → Pay → PayVerify → Collect → receipt; over the in-memory pair and over TCP + Noise.
 *   Latency, bytes on the wire, and the ratio to the cryptographic floor (the payment's signature
 *   and PayVerify's checks, twice) and to that floor plus the two commits the TAs make.
 * - Claims settled by the node, one per request and batched, on PGlite and PostgreSQL.
 * - Collect with the payee's payment log empty and with 5,000 entries (bench-collect-log.ts).
 */
import { summarise, type BenchHarness, type BenchNode, type BenchPlugin, type FloorRatio, type Latency, listenTcp, type TcpServer } from '../../sim/bench/plugin.ts';
import { measureClaims, type ClaimsRow } from './bench-claims.ts';
import { measureCollectLog, type CollectLogRow } from './bench-collect-log.ts';
import { measureCryptoFloor, type CryptoFloor, type PersistenceFloor } from './bench-floor.ts';
import { payOnce, walletOf, type PaymentContext, type PaymentSample, type Pinned, type Transport, type Wallet } from './bench-payment.ts';
import { assertAuditBalanced, deviceClient, enrolOem, fundDevice, syncDevice, type BenchDevice } from './bench-setup.ts';
import { opsNodePart } from './node.ts';
import { REPORT_ENTRIES_MAX } from './messages.ts';
import { IN_PAYMENT_LOG_MAX } from './trusted-app.ts';

/** How much to run. */
export interface OpsBenchOptions {
  /** Timed payments per transport. */
  payments: number;
  /** Claims timed per claims row. */
  claimsPerRow: number;
  /** How many claimers claim at once, one row each. */
  claimConcurrencies: readonly number[];
  /** Iterations of the cryptographic floor (the persistence floor is timed once after each timed payment). */
  floorIterations: number;
  /** Entries in the payee's log for the second Collect row (default 5,000; 20 per payment below 100 payments). */
  collectLogEntries?: number | undefined;
}

/** The offline payments over one transport. */
export interface PaymentRow {
  transport: Transport;
  payments: number;
  /** Opening the secure link (connection, Noise XX, both bindings and chains checked). */
  link: Latency;
  /** The payment on the open link: request → Pay → PayVerify → Collect → receipt. */
  payment: Latency;
  /** Both, per payment. */
  total: Latency;
  /** Where the payment's time went: the payer TA's Pay, the wallet's PayVerify, the payee TA's Collect, and the rest (messages, link, wallets). */
  parts: { pay: Latency; verify: Latency; collect: Latency; rest: Latency };
  /** Bytes both ways per payment (transport payload, so TCP/IP headers are not counted). */
  handshakeBytes: number;
  paymentBytes: number;
}

/** Everything `bench ops` measured. */
export interface OpsBenchReport {
  /** Each payment's amount, in minor units. */
  paymentAmountMinor: number;
  payments: PaymentRow[];
  floor: { crypto: CryptoFloor; persistence: PersistenceFloor };
  /** Checks that every payment went through: what the payee's TA gained, what the payer's lost, what was paid. */
  stored: { payments: number; paidMinor: number; payeeGainedMinor: number; payerSpentMinor: number };
  claims: ClaimsRow[];
  /** Collect with the payee's log empty, then with many entries in it. */
  collectLog: CollectLogRow[];
  skipped: string[];
}

/** Each offline payment: 0.10 EUR. */
const PAYMENT_AMOUNT_MINOR = 10n;
/** Untimed payments per transport before timing starts (links, JIT, caches). */
const WARMUP_PAYMENTS = 5;

/** The node's limits for bench devices: the default holding limit, and as many payments between syncs as a TA can report. */
const benchLimits = <L extends { offlinePaymentsMax: number }>(defaults: L): L => ({ ...defaults, offlinePaymentsMax: REPORT_ENTRIES_MAX });

async function balanceOf(device: BenchDevice): Promise<bigint> {
  return (await device.se.call('status', {})).balance;
}

/** Syncs either TA when its next payment or collect would not fit before a sync (outside the timed part). */
async function syncWhenFull(node: BenchNode, payer: BenchDevice, payee: BenchDevice): Promise<void> {
  const limits = node.deviceLimits;
  const paid = await payer.se.call('status', {});
  if (paid.unsyncedPayments >= Math.min(limits.offlinePaymentsMax, REPORT_ENTRIES_MAX)) await syncDevice(node, payer);
  const collected = await payee.se.call('status', {});
  if (collected.unsyncedCollects >= REPORT_ENTRIES_MAX) await syncDevice(node, payee);
}

/** Runs the offline payments: both transports interleaved, so both see the payee's log at the same sizes. */
async function measurePayments(harness: BenchHarness, options: OpsBenchOptions, root: string): Promise<Pick<OpsBenchReport, 'payments' | 'floor' | 'stored'>> {
  const count = 2 * (options.payments + WARMUP_PAYMENTS);
  // Collect keeps every payment in T.inPaymentLog until its sender's certificate ends: one payee holds them all.
  if (count > IN_PAYMENT_LOG_MAX) throw new RangeError(`payments: at most ${IN_PAYMENT_LOG_MAX / 2 - WARMUP_PAYMENTS} per transport (the payee's payment log), got ${options.payments}`);
  const funds = BigInt(count) * PAYMENT_AMOUNT_MINOR;

  const node = await harness.openNode({ schemes: [opsNodePart], deviceLimits: benchLimits });
  if (funds > node.deviceLimits.holdingLimitMinor) throw new RangeError(`payments: ${options.payments} per transport would pass the holding limit`);
  const devices: BenchDevice[] = [];
  let server: TcpServer | undefined;
  try {
    harness.progress('payments: registering and certifying two devices with isolated secure elements');
    const oem = await enrolOem(node);
    const payer = await deviceClient(harness, node, oem, `${root}/payer`);
    devices.push(payer);
    const payee = await deviceClient(harness, node, oem, `${root}/payee`);
    devices.push(payee);
    await fundDevice(node, payer, node.amount(funds));
    // A TA's clock starts at its own certificate; a sync brings it to the node's time, past the payer's certificate start.
    await syncDevice(node, payer);
    await syncDevice(node, payee);

    server = await listenTcp(0, '127.0.0.1');
    const pinned: Pinned = { root: node.certificates.root, intermediary: node.certificates.intermediary, currency: node.currency.code, provider: harness.provider };
    const context: PaymentContext = { pinned, server, amount: PAYMENT_AMOUNT_MINOR };
    const wallets: [Wallet, Wallet] = [walletOf(payer), walletOf(payee)];
    const payerBefore = await balanceOf(payer);
    const payeeBefore = await balanceOf(payee);

    const transports: Transport[] = ['memory', 'tcp'];
    const samples = new Map<Transport, PaymentSample[]>(transports.map((t) => [t, []]));
    let last: PaymentSample | undefined;
    // The sealed states the TAs write (their heads; the logs are in their records files).
    const sealedFiles = [`${root}/payer/se/ops.sealed`, `${root}/payee/se/ops.sealed`] as const;
    const sealedSums = [0, 0];
    // The two commits of the persistence floor are timed after every timed payment, with the
    // sizes the TAs have just written: the floor and the payments see the disk in the same state.
    const floor = await harness.openCommitFloor();
    const floorSamples: number[] = [];
    harness.progress(`payments: ${options.payments} per transport (+${WARMUP_PAYMENTS} warm-up), in memory and over TCP, interleaved, each followed by the two commits of the persistence floor`);
    for (let k = 0; k < options.payments + WARMUP_PAYMENTS; k++) {
      for (const transport of transports) {
        await syncWhenFull(node, payer, payee);
        last = await payOnce(transport, ...wallets, context);
        if (k < WARMUP_PAYMENTS) continue;
        samples.get(transport)?.push(last);
        const sizes = await Promise.all(sealedFiles.map((file) => harness.fileBytes(file)));
        for (const [i, size] of sizes.entries()) sealedSums[i] = (sealedSums[i] ?? 0) + size;
        floorSamples.push(await floor.round(sizes));
      }
      if ((k + 1) % 100 === 0) harness.progress(`payments: ${k + 1} of ${options.payments + WARMUP_PAYMENTS} per transport`);
    }
    const payerSpent = payerBefore - (await balanceOf(payer));
    const payeeGained = (await balanceOf(payee)) - payeeBefore;

    // Settle what the TAs did, then check: no fraud (syncDevice throws), the books balance, and the
    // float holds exactly what both TAs hold.
    await syncDevice(node, payer);
    await syncDevice(node, payee);
    const float = await assertAuditBalanced(node);
    const held = (await balanceOf(payer)) + (await balanceOf(payee));
    if (float !== held) throw new Error(`float:ops holds ${float}, the TAs ${held}`);

    if (last === undefined) throw new RangeError('payments: expected at least one');
    harness.progress('floors: signatures (node:crypto) and secure-element commits');
    const crypto = await measureCryptoFloor(harness, { payment: last.payment, pinned, receiver: payee.taCertificate, iterations: options.floorIterations });
    const timed = 2 * options.payments;
    const sealedBytes = [Math.round((sealedSums[0] ?? 0) / timed), Math.round((sealedSums[1] ?? 0) / timed)] as const;
    const persistence: PersistenceFloor = { sealedBytes, latency: summarise(floorSamples) };

    const payments = transports.map((transport): PaymentRow => {
      const rows = samples.get(transport) ?? [];
      const mean = (f: (s: PaymentSample) => number) => Math.round(rows.reduce((sum, s) => sum + f(s), 0) / rows.length);
      return {
        transport,
        payments: rows.length,
        link: summarise(rows.map((s) => s.linkMs)),
        payment: summarise(rows.map((s) => s.paymentMs)),
        total: summarise(rows.map((s) => s.linkMs + s.paymentMs)),
        parts: {
          pay: summarise(rows.map((s) => s.payMs)),
          verify: summarise(rows.map((s) => s.verifyMs)),
          collect: summarise(rows.map((s) => s.collectMs)),
          rest: summarise(rows.map((s) => s.paymentMs - s.payMs - s.verifyMs - s.collectMs)),
        },
        handshakeBytes: mean((s) => s.handshakeBytes),
        paymentBytes: mean((s) => s.paymentBytes),
      };
    });
    return {
      payments,
      floor: { crypto, persistence },
      stored: { payments: count, paidMinor: Number(BigInt(count) * PAYMENT_AMOUNT_MINOR), payeeGainedMinor: Number(payeeGained), payerSpentMinor: Number(payerSpent) },
    };
  } finally {
    await server?.close();
    for (const device of devices) await device.se.close();
    await node.stop();
  }
}

/** Runs `bench ops` in `harness`. */
export async function benchOps(harness: BenchHarness, options: OpsBenchOptions): Promise<OpsBenchReport> {
  const root = await harness.tempDir('ops');
  const offline = await measurePayments(harness, options, root);
  const collectLog = await measureCollectLog(harness, {
    entries: options.collectLogEntries ?? (options.payments < 100 ? 20 * options.payments : 5000),
    samples: Math.min(50, 2 * options.payments),
    deviceLimits: benchLimits,
    dir: `${root}/collect-log`,
  });
  const claims: ClaimsRow[] = [];
  const skipped: string[] = [];
  const common = { claimsPerRow: options.claimsPerRow, concurrencies: options.claimConcurrencies, deviceLimits: benchLimits };
  claims.push(...(await measureClaims(harness, { ...common, database: 'pglite' })));
  if (harness.postgresUrl === undefined) {
    skipped.push('postgres: set DATABASE_URL or TEST_DATABASE_URL to a PostgreSQL URL to measure it');
  } else {
    claims.push(...(await measureClaims(harness, { ...common, database: 'postgres' })));
  }
  return { paymentAmountMinor: Number(PAYMENT_AMOUNT_MINOR), ...offline, claims, collectLog, skipped };
}

/** Every ratio the report prints of a payment to its floors: one below 1 means a floor was measured slower than the payment. */
export function opsRatios(report: OpsBenchReport): FloorRatio[] {
  const { crypto, persistence } = report.floor;
  const floorP50 = crypto.latency.p50Ms + persistence.latency.p50Ms;
  const floorP99 = crypto.latency.p99Ms + persistence.latency.p99Ms;
  return report.payments.flatMap((r) => [
    { what: `${r.transport} payment / crypto floor p50`, value: r.payment.p50Ms / crypto.latency.p50Ms },
    { what: `${r.transport} payment / crypto floor p99`, value: r.payment.p99Ms / crypto.latency.p99Ms },
    { what: `${r.transport} payment / (crypto + persistence) floor p50`, value: r.payment.p50Ms / floorP50 },
    { what: `${r.transport} payment / (crypto + persistence) floor p99`, value: r.payment.p99Ms / floorP99 },
    { what: `${r.transport} total / (crypto + persistence) floor p50`, value: r.total.p50Ms / floorP50 },
    { what: `${r.transport} total / (crypto + persistence) floor p99`, value: r.total.p99Ms / floorP99 },
  ]);
}

/** `npm run bench -- ops`. */
export const opsBench: BenchPlugin<OpsBenchOptions, OpsBenchReport> = {
  name: 'ops',
  paper: 'OPS (ops.txt)',
  // The paper has no evaluation section: it measures the protocol's own flows against their floors.
  reproduces: 'Figure 7 (offline payment, §3.5) against its cryptographic and persistence floors; Figure 9 (claims, §3.6) settled by the node',
  parameters: {
    quick: { payments: 30, claimsPerRow: 64, claimConcurrencies: [1, 4], floorIterations: 200 },
    full: { payments: 400, claimsPerRow: 512, claimConcurrencies: [1, 8], floorIterations: 1000 },
  },
  async run(harness, parameters) {
    const report = await benchOps(harness, parameters);
    return { report, text: formatOpsReport(report), ratios: opsRatios(report) };
  },
};

const ms = (x: number) => x.toFixed(2);
const ratio = (x: number) => `${x.toFixed(2)}x`;
/** Minor units of the bench currency (two decimals) as text. */
const minorText = (minor: number) => (minor / 100).toFixed(2);

/** The report as Markdown tables, with every ratio taken from this run. */
export function formatOpsReport(report: OpsBenchReport): string {
  const { crypto, persistence } = report.floor;
  const floorP50 = crypto.latency.p50Ms + persistence.latency.p50Ms;
  const floorP99 = crypto.latency.p99Ms + persistence.latency.p99Ms;
  const lines: string[] = [];
  lines.push(
    `Offline payments of ${minorText(report.paymentAmountMinor)} EUR, isolated secure elements (file counter), a new secure link per payment`,
    '',
    '| transport | payments | link p50 ms | link p99 ms | payment p50 ms | payment p99 ms | total p50 ms | total p99 ms | handshake bytes | payment bytes |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  );
  for (const r of report.payments) {
    lines.push(
      `| ${r.transport} | ${r.payments} | ${ms(r.link.p50Ms)} | ${ms(r.link.p99Ms)} | ${ms(r.payment.p50Ms)} | ${ms(r.payment.p99Ms)} | ${ms(r.total.p50Ms)} | ${ms(r.total.p99Ms)} | ${r.handshakeBytes} | ${r.paymentBytes} |`,
    );
  }
  lines.push(
    '',
    'Floors of one payment (same run)',
    '',
    '| floor | what | p50 ms | p99 ms |',
    '|---|---|---:|---:|',
    `| crypto | ${crypto.signs} Ed25519 signature + ${crypto.verifies} verifications (PayVerify in the wallet and in Collect), node:crypto | ${ms(crypto.latency.p50Ms)} | ${ms(crypto.latency.p99Ms)} |`,
    `| persistence | 2 commits (Pay, Collect): sealed ${persistence.sealedBytes[0]} + ${persistence.sealedBytes[1]} bytes (mean sizes written), fsync, rename, file counter; timed after each payment | ${ms(persistence.latency.p50Ms)} | ${ms(persistence.latency.p99Ms)} |`,
    `| crypto + persistence | | ${ms(floorP50)} | ${ms(floorP99)} |`,
    '',
    'Payment against its floors',
    '',
    '| transport | payment / crypto p50 | payment / crypto p99 | payment / (crypto + persistence) p50 | p99 | total / (crypto + persistence) p50 | p99 |',
    '|---|---:|---:|---:|---:|---:|---:|',
  );
  for (const r of report.payments) {
    lines.push(
      `| ${r.transport} | ${ratio(r.payment.p50Ms / crypto.latency.p50Ms)} | ${ratio(r.payment.p99Ms / crypto.latency.p99Ms)} | ${ratio(r.payment.p50Ms / floorP50)} | ${ratio(r.payment.p99Ms / floorP99)} | ${ratio(r.total.p50Ms / floorP50)} | ${ratio(r.total.p99Ms / floorP99)} |`,
    );
  }
  lines.push(
    '',
    'Where a payment\'s time goes (p50 ms; Pay and Collect as the wallets see them: the call to the isolated TA, its work and its commit)',
    '',
    '| transport | TA Pay | wallet PayVerify | TA Collect | the rest (link messages, wallets) |',
    '|---|---:|---:|---:|---:|',
  );
  for (const r of report.payments) lines.push(`| ${r.transport} | ${ms(r.parts.pay.p50Ms)} | ${ms(r.parts.verify.p50Ms)} | ${ms(r.parts.collect.p50Ms)} | ${ms(r.parts.rest.p50Ms)} |`);
  const s = report.stored;
  lines.push('', `Stored: ${s.payments} payments (warm-up included) of ${s.paidMinor} minor units in all; the payee's TA gained ${s.payeeGainedMinor}, the payer's lost ${s.payerSpentMinor}`);
  lines.push('', 'Claims settled by the node (POST /v1/ops/claims, /v1/ops/claims/batch), over HTTP on loopback', '', '| database | mode | claimers | claims | requests | payments/request | claims/s | request p50 ms | request p99 ms |', '|---|---|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of report.claims) {
    lines.push(`| ${r.database} | ${r.mode} | ${r.concurrency} | ${r.claims} | ${r.requests} | ${r.paymentsPerRequest.toFixed(1)} | ${r.claimsPerSecond.toFixed(0)} | ${ms(r.latency.p50Ms)} | ${ms(r.latency.p99Ms)} |`);
  }
  const databases = [...new Set(report.claims.map((r) => r.database))];
  for (const database of databases) {
    for (const concurrency of [...new Set(report.claims.map((r) => r.concurrency))]) {
      const single = report.claims.find((r) => r.database === database && r.mode === 'single' && r.concurrency === concurrency);
      const batch = report.claims.find((r) => r.database === database && r.mode === 'batch' && r.concurrency === concurrency);
      if (single !== undefined && batch !== undefined) lines.push('', `${database}, ${concurrency} claimer(s): batched / single claims per second: ${ratio(batch.claimsPerSecond / single.claimsPerSecond)}`);
    }
  }
  for (const row of report.claims.filter((r) => r.database === 'postgres')) {
    const lite = report.claims.find((r) => r.database === 'pglite' && r.mode === row.mode && r.concurrency === row.concurrency);
    if (lite !== undefined) lines.push('', `PostgreSQL / PGlite claims per second, ${row.mode}, ${row.concurrency} claimer(s): ${ratio(row.claimsPerSecond / lite.claimsPerSecond)}`);
  }
  lines.push('', "Collect against the payee's payment log (isolated secure element, file counter; the log is kept in the SE's append-only records)", '', '| entries in the log | collects | collect p50 ms | collect p99 ms | sealed head bytes |', '|---:|---:|---:|---:|---:|');
  for (const r of report.collectLog) lines.push(`| ${r.logEntries} | ${r.collect.samples} | ${ms(r.collect.p50Ms)} | ${ms(r.collect.p99Ms)} | ${r.sealedBytes} |`);
  const [empty, full] = report.collectLog;
  if (empty !== undefined && full !== undefined) lines.push('', `Collect with ${full.logEntries} entries / with an empty log, p50: ${ratio(full.collect.p50Ms / empty.collect.p50Ms)}`);
  for (const reason of report.skipped) lines.push('', `Skipped: ${reason}`);
  return lines.join('\n');
}
