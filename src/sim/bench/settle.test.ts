/**
 * `bench settle` at a tiny size, so that it cannot break unnoticed: the node runs in its own
 * process, every payment the scheme made is settled once (the bench checks each receiver's balance
 * and the audit, and fails otherwise), and the report has every row with measured figures.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SCHEMES } from '../../schemes/index.ts';
import { makeHarness } from './harness.ts';
import { benchSettle, formatSettleReport, settleRatios, settleSources } from './settle.ts';

test('bench settle, tiny: every payment settled once, the audit balanced, every row reported', { timeout: 180_000 }, async () => {
  const sources = settleSources(SCHEMES);
  assert.ok(sources.length >= 1, 'some scheme gives a settlement workload');
  const { harness, close } = makeHarness({ quick: true, env: {}, progress: () => undefined });
  const payments = 300;
  const source = sources[0];
  assert.ok(source !== undefined);
  const workloads = await source.load();
  assert.ok(workloads.length >= 1);
  const report = await benchSettle(harness, [source], { devices: 2, payments, submitters: [1, 2], warmup: 10, floorMs: 200, postgres: false }).finally(close);

  const scheme = source.scheme;
  assert.deepEqual(
    report.rows.map((r) => `${r.scheme} ${r.workload} ${r.database} ${r.submitters}`),
    workloads.flatMap((w) => [`${scheme} ${w.name} pglite 1`, `${scheme} ${w.name} pglite 2`]),
  );
  for (const row of report.rows) {
    assert.equal(row.payments, payments, 'every payment made was settled');
    assert.ok(row.requests >= row.submitters, `${row.requests} requests`);
    assert.ok(row.paymentsPerSecond > 0 && Number.isFinite(row.paymentsPerSecond));
    assert.ok(row.latency.p50Ms > 0 && row.latency.p99Ms >= row.latency.p50Ms);
    // The node's process did the settling: its CPU moved; PGlite's is inside it.
    assert.ok(row.nodeCpuMsPerPayment > 0, `node CPU ${row.nodeCpuMsPerPayment} ms per payment`);
    assert.equal(row.postgresCpuMsPerPayment, null);
    // The workload's floor is the machine's verifications over the verifications a payment needs.
    const perPayment = workloads.find((w) => w.name === row.workload)?.verificationsPerPayment;
    assert.ok(perPayment !== undefined && perPayment > 0);
    assert.ok(Math.abs(row.floorPaymentsPerSecond - report.floor.perSecond / perPayment) < 1e-6);
    assert.ok(Math.abs(row.floorRatio - row.floorPaymentsPerSecond / row.paymentsPerSecond) < 1e-9);
  }
  assert.ok(report.floor.threads >= 1 && report.floor.perSecond > 0);
  assert.equal(report.floor.perThread.length, report.floor.threads);
  // Measured before and after the rows; the faster is the floor.
  assert.equal(report.floor.measuredPerSecond.length, 2);
  assert.equal(report.floor.perSecond, Math.max(...report.floor.measuredPerSecond));
  assert.equal(report.figure, null);
  assert.equal(settleRatios(report).length, report.rows.length);
  const text = formatSettleReport(report);
  for (const w of workloads) assert.ok(text.includes(`| ${scheme} | ${w.name} | pglite | 2 | ${payments} |`), text);
  assert.match(text, /Floor: [0-9,]+ Ed25519 verifications\/s/);
});

test('bench settle: a workload that no scheme gives is refused before any node starts', async () => {
  const { harness, close } = makeHarness({ quick: true, env: {}, progress: () => undefined });
  try {
    await assert.rejects(
      benchSettle(harness, settleSources(SCHEMES), { devices: 2, payments: 10, submitters: [1], warmup: 0, floorMs: 50, postgres: false, only: ['ops/no-such-workload'] }),
      /no workload is named "ops\/no-such-workload"/,
    );
  } finally {
    await close();
  }
});
