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

test('bench settle, tiny: every payment settled once, the audit balanced, every row reported', { timeout: 120_000 }, async () => {
  const sources = settleSources(SCHEMES);
  assert.ok(sources.length >= 1, 'some scheme gives a settlement workload');
  const { harness, close } = makeHarness({ quick: true, env: {}, progress: () => undefined });
  const payments = 300;
  const report = await benchSettle(harness, sources.slice(0, 1), { devices: 2, payments, submitters: [1, 2], warmup: 10, floorMs: 200, postgres: false }).finally(close);

  const scheme = sources[0]?.scheme;
  assert.deepEqual(
    report.rows.map((r) => `${r.scheme} ${r.database} ${r.submitters}`),
    [`${scheme} pglite 1`, `${scheme} pglite 2`],
  );
  for (const row of report.rows) {
    assert.equal(row.payments, payments, 'every payment made was settled');
    assert.ok(row.requests >= row.submitters, `${row.requests} requests`);
    assert.ok(row.paymentsPerSecond > 0 && Number.isFinite(row.paymentsPerSecond));
    assert.ok(row.latency.p50Ms > 0 && row.latency.p99Ms >= row.latency.p50Ms);
    // The node's process did the settling: its CPU moved; PGlite's is inside it.
    assert.ok(row.nodeCpuMsPerPayment > 0, `node CPU ${row.nodeCpuMsPerPayment} ms per payment`);
    assert.equal(row.postgresCpuMsPerPayment, null);
    assert.ok(row.floorRatio > 0 && Number.isFinite(row.floorRatio));
  }
  assert.ok(report.floor.threads >= 1 && report.floor.perSecond > 0);
  assert.equal(report.floor.perThread.length, report.floor.threads);
  // Measured before and after the rows; the faster is the floor.
  assert.equal(report.floor.measuredPerSecond.length, 2);
  assert.equal(report.floor.perSecond, Math.max(...report.floor.measuredPerSecond));
  assert.equal(report.figure, null);
  assert.equal(settleRatios(report).length, report.rows.length);
  const text = formatSettleReport(report);
  assert.ok(text.includes(`| ${scheme} | pglite | 2 | ${payments} |`), text);
  assert.match(text, /Floor: [0-9,]+ Ed25519 verifications\/s/);
});
