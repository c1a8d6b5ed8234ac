/**
 * `bench otp` at a tiny size, so the benchmark cannot break unnoticed: every payment of the ramp
 * moved its coins through a real node and real secure elements, both placements were measured,
 * the line, the bytes, the CPU time and the floor are real figures, and the ledger balances after.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { makeHarness } from '../../sim/bench/harness.ts';
import { benchOtp, otpBench, withEnvironment } from './bench.ts';
import { rampFigure } from './bench-figure.ts';
import { formatOtpReport, otpRatios } from './bench-report.ts';

test('bench otp, minimal: two counts, both placements, every coin moved and deposited, the audit balanced', { timeout: 240_000 }, async () => {
  // One repetition: two counts already make a line, and both placements run. One warm-up payment
  // per placement first: without it the first payment of the ramp carries the secure elements'
  // first compilation of the protocol code, and a cold 2-coin payment can cost more CPU than a warm
  // 8-coin one (a negative slope; seen on a loaded machine). The counts lie far apart for the same
  // reason: 22 coins more are several hundred milliseconds of work, which a loaded machine's noise
  // does not hide the way it hid 6 (a negative time slope between 2 and 8 coins, seen once).
  const counts = [2, 24];
  const reps = 1;
  const { harness, close } = makeHarness({ quick: true, env: {}, progress: () => undefined });
  const report = await benchOtp(harness, { counts, reps, warmup: 1, meteredCoins: 2, floorBudgetMs: 20, denominationMinor: 300n, denominationReps: 1, svgPath: undefined }).finally(close);
  assert.equal(report.node.database, 'pglite');

  assert.equal(report.samples.length, counts.length * reps * 2);
  for (const s of report.samples) {
    assert.equal(s.coins, s.count, 'each OTP of the payment moved');
    assert.ok(s.totalMs > s.sessionMs && s.sessionMs > 0 && s.linkMs > 0);
    assert.ok(s.handshakeBytes > 0 && s.sessionBytes > 1000 * s.count, `${s.sessionBytes} bytes for ${s.count} coins`);
    assert.ok(s.cpuMs.bench > 0);
    if (s.series === 'isolated') assert.ok(s.cpuMs.elements >= 0);
    else assert.equal(s.cpuMs.elements, 0, 'no SE process in-process');
  }
  assert.deepEqual(report.series.map((s) => s.series), ['isolated', 'in-process']);
  for (const s of report.series) {
    assert.deepEqual(s.rows.map((r) => [r.count, r.seconds.n]), counts.map((c) => [c, reps]));
    assert.ok(s.time.slope > 0, `${s.series}: ${s.time.slope} s per OTP`);
    assert.ok(s.bytes.slope > 1000, `${s.series}: ${s.bytes.slope} bytes per OTP`);
    assert.ok(s.cpu.slope > 0, `${s.series}: ${s.cpu.slope} ms CPU per OTP`);
    assert.ok(Number.isFinite(s.floorRatio) && s.floorRatio > 0);
  }

  // The payer's escrow-tag signature and its check of the payee's exchange key, per OTP.
  assert.deepEqual(report.floor.metered, { signs: 1, verifies: 1 });
  for (const part of [report.floor.meteredMs, report.floor.rsaVerifyMs, report.floor.hpkeSealCoinMs, report.floor.hpkeSealTagMs, report.floor.hpkeOpenCoinMs]) assert.ok(part > 0);
  assert.ok(report.floor.coinBytes > 500 && report.floor.tagBytes > 100);
  assert.deepEqual(otpRatios(report).map((r) => r.value), report.series.map((s) => s.floorRatio));

  // 3.00 in unit coins (3) and in denominations (2.00 + 1.00).
  assert.deepEqual(report.denominations.rows.map((r) => [r.way, r.count, r.coins]), [
    ['unit coins', 3, { '100': 3 }],
    ['denominations', 2, { '200': 1, '100': 1 }],
  ]);
  assert.ok((report.denominations.rows[0]?.sessionBytes ?? 0) > (report.denominations.rows[1]?.sessionBytes ?? 0));

  const text = formatOtpReport(report);
  for (const line of ['| 2 |', '| 24 |', 'time per OTP', 'Crypto floor per OTP', 'unit coins: 3 × 1.00']) assert.ok(text.includes(line), `the text report has ${line}`);
  const svg = rampFigure(report.series, { title: 't', subtitle: 's' });
  assert.ok(svg.startsWith('<svg') && svg.includes('ms per OTP') && svg.trimEnd().endsWith('</svg>'));
});

test('bench otp parameters: quick and full, and what the environment overrides', async () => {
  assert.deepEqual([otpBench.parameters.quick.counts, otpBench.parameters.quick.svgPath], [[5, 10, 20, 50], undefined]);
  assert.deepEqual(otpBench.parameters.full.counts, [5, 10, 20, 30, 40, 50, 100, 200, 300, 400, 500]);
  assert.equal(otpBench.parameters.full.svgPath, 'otp-ramp.svg');
  const set = withEnvironment(otpBench.parameters.full, { TALLY_OTP_REPS: '7', TALLY_OTP_COUNTS: '3, 9', TALLY_OTP_SVG: 'none' });
  assert.deepEqual([set.reps, set.counts, set.svgPath], [7, [3, 9], undefined]);
  assert.throws(() => withEnvironment(otpBench.parameters.quick, { TALLY_OTP_REPS: '0' }), RangeError);
  const { harness, close } = makeHarness({ quick: true, env: {}, progress: () => undefined });
  try {
    await assert.rejects(benchOtp(harness, { ...otpBench.parameters.quick, counts: [5, 513] }), RangeError);
    await assert.rejects(benchOtp(harness, { ...otpBench.parameters.quick, counts: [5, 5] }), RangeError);
  } finally {
    await close();
  }
});
