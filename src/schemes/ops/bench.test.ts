/**
 * `bench ops` in a minimal configuration, so the benchmark cannot break unnoticed: its report has
 * every row, its figures are measurements, and every payment it timed was verified and stored.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TEST_DATABASE_URL_VARIABLE } from '../../issuer/db/test-databases.ts';
import { makeHarness } from '../../sim/bench/harness.ts';
import type { Latency } from '../../sim/bench/plugin.ts';
import { benchOps, formatOpsReport, opsRatios } from './bench.ts';

function assertLatency(latency: Latency, samples: number, what: string): void {
  assert.equal(latency.samples, samples, `${what}: samples`);
  assert.ok(Number.isFinite(latency.p50Ms) && latency.p50Ms > 0, `${what}: p50 ${latency.p50Ms}`);
  assert.ok(latency.p99Ms >= latency.p50Ms, `${what}: p99 ${latency.p99Ms} below p50 ${latency.p50Ms}`);
}

test('bench ops, minimal: every payment is verified and stored, every claim credited, every row reported', { timeout: 180_000 }, async () => {
  const postgresUrl = process.env[TEST_DATABASE_URL_VARIABLE] || undefined;
  const payments = 3;
  const claimsPerRow = 6;
  const { harness, close } = makeHarness({ quick: true, env: { TEST_DATABASE_URL: postgresUrl }, progress: () => undefined });
  const report = await benchOps(harness, { payments, claimsPerRow, claimConcurrencies: [1, 2], floorIterations: 20 }).finally(close);

  assert.deepEqual(report.payments.map((r) => r.transport), ['memory', 'tcp']);
  for (const row of report.payments) {
    assert.equal(row.payments, payments);
    for (const [what, latency] of Object.entries({ link: row.link, payment: row.payment, total: row.total, pay: row.parts.pay, verify: row.parts.verify, collect: row.parts.collect })) {
      assertLatency(latency, payments, `${row.transport} ${what}`);
    }
    assert.ok(row.total.p50Ms >= row.payment.p50Ms, 'the total includes the payment');
    // Pay, PayVerify and Collect are timed inside the payment: what is left is the messages' own time.
    assertLatency(row.parts.rest, payments, `${row.transport} rest`);
    // Both certificates cross the wire in the request and the payment: well over a kilobyte.
    assert.ok(row.paymentBytes > 1000, `${row.transport}: ${row.paymentBytes} payment bytes`);
    assert.ok(row.handshakeBytes > 0, `${row.transport}: ${row.handshakeBytes} handshake bytes`);
  }

  // Every payment (warm-up included) reached the payee's TA: it gained exactly what the payer's TA paid.
  const { stored } = report;
  assert.ok(stored.payments >= 2 * payments);
  assert.equal(stored.paidMinor, stored.payments * report.paymentAmountMinor);
  assert.equal(stored.payeeGainedMinor, stored.paidMinor);
  assert.equal(stored.payerSpentMinor, stored.paidMinor);

  // One signature by the payer's TA; PayVerify, twice, checks the payment and two chains of three
  // certificates that share their root and intermediary (checked once per payment): 5 each.
  assert.equal(report.floor.crypto.signs, 1);
  assert.equal(report.floor.crypto.verifies, 10);
  assertLatency(report.floor.crypto.latency, 20, 'crypto floor');
  // The persistence floor is timed once after each timed payment (both transports).
  assertLatency(report.floor.persistence.latency, 2 * payments, 'persistence floor');
  assert.ok(report.floor.persistence.sealedBytes.every((n) => n > 0));

  const databases = postgresUrl === undefined ? ['pglite'] : ['pglite', 'postgres'];
  assert.deepEqual(
    report.claims.map((r) => `${r.database} ${r.mode} ${r.concurrency}`),
    databases.flatMap((d) => [`${d} single 1`, `${d} single 2`, `${d} batch 1`, `${d} batch 2`]),
  );
  for (const row of report.claims) {
    assert.equal(row.claims, claimsPerRow);
    assert.ok(row.claimsPerSecond > 0);
    assertLatency(row.latency, row.requests, `${row.database} ${row.mode} ${row.concurrency}`);
    if (row.mode === 'single') assert.equal(row.requests, claimsPerRow);
    else assert.equal(row.requests, row.concurrency, 'each claimer sends its few payments in one batch');
  }
  assert.equal(report.skipped.length, postgresUrl === undefined ? 1 : 0);

  // Collect timed with the payee's log empty and with 20 entries per payment in it.
  assert.deepEqual(report.collectLog.map((r) => r.logEntries), [0, 20 * payments]);
  for (const row of report.collectLog) assertLatency(row.collect, 2 * payments, `collect with ${row.logEntries} log entries`);

  // Every ratio to a floor is reported for the harness's noise check.
  const ratios = opsRatios(report);
  assert.equal(ratios.length, 12, 'six printed ratios per transport');
  assert.ok(ratios.every((r) => Number.isFinite(r.value) && r.value > 0));
  assert.deepEqual(
    ratios.filter((r) => r.what.startsWith('tcp')).map((r) => r.what),
    [
      'tcp payment / crypto floor p50',
      'tcp payment / crypto floor p99',
      'tcp payment / (crypto + persistence) floor p50',
      'tcp payment / (crypto + persistence) floor p99',
      'tcp total / (crypto + persistence) floor p50',
      'tcp total / (crypto + persistence) floor p99',
    ],
  );

  const text = formatOpsReport(report);
  for (const line of ['| memory |', '| tcp |', '| crypto |', '| pglite | batch |']) assert.ok(text.includes(line), `the text report has ${line}`);
});
