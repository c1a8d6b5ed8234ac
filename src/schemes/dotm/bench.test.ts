/**
 * `bench dotm` in a minimal configuration, so the benchmark cannot break unnoticed: every cell is
 * reported with measured times, the payment used exactly the cell's n_b blocks and n_d records,
 * our counts cover Table 3's, and the bytes and floors are real figures.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { makeHarness } from '../../sim/bench/harness.ts';
import { benchDotm, dotmRatios, withEnvironment, dotmBench } from './bench.ts';
import { PHASES } from './bench-payment.ts';
import { figure10, formatDotmReport, type MeasuredCell } from './bench-report.ts';
import { recordsPerBlock } from './bench-setup.ts';

test('recordsPerBlock spreads n_d over n_b blocks as evenly as possible', () => {
  assert.deepEqual(recordsPerBlock(1, 12), [12]);
  assert.deepEqual(recordsPerBlock(4, 6), [2, 2, 1, 1]);
  assert.deepEqual(recordsPerBlock(6, 1), [1, 0, 0, 0, 0, 0]);
  assert.equal(recordsPerBlock(20, 60).reduce((s, k) => s + k, 0), 60);
});

test('bench dotm, minimal: two cells, every run paid and counted', { timeout: 60_000 }, async () => {
  const runs = 2;
  const { harness, close } = makeHarness({ quick: true, env: {}, progress: () => undefined });
  const report = await benchDotm(harness, { blocks: [1, 2], records: [3], runs, warmup: 0, suite: 'ed25519', floorIterations: 3 }).finally(close);
  // A real node registered the wallets and acknowledged every event.
  assert.equal(report.node.database, 'pglite');

  assert.deepEqual(
    report.cells.map((c) => [c.nb, c.nd, c.status]),
    [
      [1, 3, 'measured'],
      [2, 3, 'measured'],
    ],
  );
  for (const cell of report.cells as MeasuredCell[]) {
    const at = `(${cell.nb}, ${cell.nd})`;
    assert.equal(cell.total.samples, runs, at);
    assert.ok(cell.total.p50Ms > 0 && cell.total.p90Ms >= cell.total.p50Ms, `${at}: ${cell.total.p50Ms} / ${cell.total.p90Ms}`);
    assert.ok(cell.handshake.p50Ms > 0, at);
    for (const [step, ms] of Object.entries(cell.steps)) assert.ok(ms > 0, `${at} ${step}: ${ms}`);
    assert.equal(cell.shares.reduce((s, k) => s + k, 0), cell.nd);
    assert.equal(cell.vMinor, 100 * cell.nb);
    // λ, σ with every block and its records, the notification, the success message.
    assert.ok(cell.bytes.transaction > 1000 * (cell.nb + cell.nd), `${at}: ${cell.bytes.transaction} bytes`);
    assert.ok(cell.bytes.handshake > 0, at);
    assert.ok(Math.abs(cell.nfcMs - (cell.bytes.transaction * 8) / 424) < 1e-6, at);

    // Table 3 for this cell, and ours at least as many in every step.
    assert.equal(cell.table3.signs, 4 + cell.nb);
    assert.equal(cell.table3.verifies, 4 + cell.nb + cell.nd);
    for (const p of PHASES) {
      assert.ok(cell.ours.byPhase[p].signs >= cell.table3.byPhase[p].signs, `${at} ${p} signs`);
      assert.ok(cell.ours.byPhase[p].verifies >= cell.table3.byPhase[p].verifies, `${at} ${p} verifies`);
    }
    // What this implementation adds, exactly. Signatures: an event at steps 7 and 9, and step 8's
    // success message signed with wsk_P. Verifications: that message at step 9; the payer's wallet
    // checks ucert_R's chain (3) at 2.3; and the certificates, each distinct one verified once per
    // command: at step 2 the root, the intermediary, ucert_R and wcert_R (4); at steps 4-6 the
    // root, the intermediary, ucert_P and wcert_P (4) and one leaf per other user the records name:
    // R, and the feeder F, X and Y as far as the cell's blocks carry records through them.
    const others = 1 + (cell.shares.some((k) => k >= 1) ? 1 : 0) + (cell.shares.some((k) => k >= 2) ? 1 : 0) + (cell.shares.some((k) => k >= 3) ? 1 : 0);
    assert.equal(cell.ours.signs, 7 + cell.nb);
    assert.equal(cell.ours.verifies, 16 + 2 * cell.nb + cell.nd + others);
    assert.deepEqual(
      [cell.ours.byPhase['steps 2-3'].verifies, cell.ours.byPhase['steps 4-6'].verifies, cell.ours.byPhase['step 9'].verifies],
      [6, 5 + 2 * cell.nb + cell.nd + others, 1],
    );

    assert.ok(cell.floor.perOperationMs > 0 && cell.floor.replayMs > 0, at);
    assert.ok(cell.ratio.perOperation > 1, `${at}: a transaction costs more than its signatures (${cell.ratio.perOperation})`);

    // The online steps around the runs went through the node: (1, 3)'s block and (2, 3)'s are all carried, so none was issued to P.
    assert.equal(cell.online.issueMs, null, at);
    assert.ok(cell.online.redeemMs > 0 && cell.online.syncMs > 0, `${at}: ${JSON.stringify(cell.online)}`);
  }

  assert.equal(dotmRatios(report).length, 2 * report.cells.length);

  const text = formatDotmReport(report);
  for (const line of ['| n_b \\ n_d | 3 |', '| **1** |', '| **2** |', '| steps 4-6 |', '| issue + load |']) assert.ok(text.includes(line), `the text report has ${line}`);
  const svg = figure10(report);
  assert.ok(svg.startsWith('<svg') && svg.includes('n_b: blocks paid') && svg.trimEnd().endsWith('</svg>'));
});

test('bench dotm parameters: quick and full, and what the environment overrides', () => {
  assert.deepEqual([dotmBench.parameters.quick.blocks, dotmBench.parameters.quick.records, dotmBench.parameters.quick.svgPath], [[1, 4], [1, 12], undefined]);
  assert.equal(dotmBench.parameters.full.blocks.length * dotmBench.parameters.full.records.length, 56);
  const set = withEnvironment(dotmBench.parameters.full, { TALLY_DOTM_RUNS: '5', TALLY_DOTM_BLOCKS: '2', TALLY_DOTM_RECORDS: '1,6', TALLY_DOTM_SVG: 'none', TALLY_DOTM_SUITE: 'sm2' });
  assert.deepEqual([set.runs, set.blocks, set.records, set.svgPath, set.suite], [5, [2], [1, 6], undefined, 'sm2']);
  assert.throws(() => withEnvironment(dotmBench.parameters.quick, { TALLY_DOTM_RUNS: '0' }), RangeError);
  assert.throws(() => withEnvironment(dotmBench.parameters.quick, { TALLY_DOTM_SUITE: 'rsa' }), RangeError);
  assert.throws(() => withEnvironment(dotmBench.parameters.quick, { TALLY_DOTM_BLOCKS: '1,x' }), RangeError);
});
