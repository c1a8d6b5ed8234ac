/**
 * `bench opera` at a tiny size, so the benchmark cannot break unnoticed: every payment of the ramp
 * moved its tokens between two isolated ODWs through a real node (charged before, deposited after),
 * each side called exactly the ODW commands of one new transaction, the stages and the bytes add
 * up, the floors are real figures, and the ledger balances after. Timing slopes are not asserted:
 * on a loaded machine their sign is noise at this size.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { makeHarness } from '../../sim/bench/harness.ts';
import { benchOpera, operaBench, withEnvironment } from './bench.ts';
import { figure8Svg } from './bench-figure.ts';
import { expectedCalls, splitStages, STAGES, type OdwCall } from './bench-payment.ts';
import { formatOperaReport, operaRatios } from './bench-report.ts';
import { CREDENTIAL_PROOF_BYTES } from '../../pki/anonymous-credential.ts';

test('bench opera, minimal: two counts, every token moved and deposited, the stages and bytes add up, the audit balanced', { timeout: 300_000 }, async () => {
  const counts = [2, 8];
  const reps = 1;
  const { harness, close } = makeHarness({ quick: true, env: {}, progress: () => undefined });
  // One warm-up payment per pair first: the first payment carries the secure elements' first compilation of the protocol code.
  const report = await benchOpera(harness, { counts, reps, warmup: 1, meteredCounts: [2, 4], floorBudgetMs: 20, proofIterations: 2, commitIterations: 5, svgPath: undefined }).finally(close);
  assert.equal(report.node.database, 'pglite');

  assert.equal(report.samples.length, counts.length * reps);
  for (const s of report.samples) {
    assert.equal(s.tokens, s.count, 'each token of the payment moved');
    assert.deepEqual(s.odwCalls, { payer: s.count + 6, payee: s.count + 6 }, 'each side called the commands of one new transaction');
    const stages = STAGES.reduce((sum, k) => sum + s.stageMs[k], 0);
    assert.ok(Math.abs(s.linkMs + stages - s.totalMs) < 1e-6, 'the link and the three stages make the whole payment');
    for (const k of STAGES) assert.ok(s.stageMs[k] > 0 && s.odwMs[k] > 0, `${k}: ${s.stageMs[k]} ms, ${s.odwMs[k]} ms in the ODWs`);
    // Stage 1 carries both anonymous proofs; Stage 2 a 2-3 (the sealed token) and a 2-4 per token; Stage 3 two signatures.
    assert.ok(s.linkBytes > 0 && s.stageBytes.stage1 > 2 * CREDENTIAL_PROOF_BYTES, `Stage 1: ${s.stageBytes.stage1} bytes`);
    assert.ok(s.stageBytes.stage2 > s.count * 2 * report.floor.msg24Bytes + report.floor.tokenBytes * s.count, `Stage 2: ${s.stageBytes.stage2} bytes for ${s.count} tokens`);
    assert.ok(s.stageBytes.stage3 > 128, `Stage 3: ${s.stageBytes.stage3} bytes`);
    assert.ok(s.cpuMs.bench > 0 && s.cpuMs.elements >= 0);
  }
  assert.deepEqual(report.rows.map((r) => [r.count, r.seconds.n, r.perTokenMs.n]), counts.map((c) => [c, reps, reps]));
  // In Stage 2 the two ODWs take turns: their commands never overlap, so they fill at most all of it.
  for (const r of report.rows) assert.ok(r.odwShare > 0 && r.odwShare <= 1, `the ODWs' share of Stage 2: ${r.odwShare}`);
  const [small, large] = report.rows;
  assert.ok(small !== undefined && large !== undefined && large.stageBytes.stage2 > small.stageBytes.stage2, 'Stage 2 carries more bytes for more tokens');
  assert.ok(report.bytes.slope > report.floor.tokenBytes, `${report.bytes.slope} bytes per token on the link`);

  // The payer signs each token's escrow tag at 2-1; the payee checks the bank's signature on each token at 3-1; the payer signs its release and checks the acceptance, the payee the reverse.
  const f = report.floor;
  assert.deepEqual(f.perToken, { stage1: { signs: 0, verifies: 0 }, stage2: { signs: 1, verifies: 0 }, stage3: { signs: 0, verifies: 1 } });
  assert.deepEqual(f.perPayment, { stage1: { signs: 0, verifies: 0 }, stage2: { signs: 0, verifies: 0 }, stage3: { signs: 2, verifies: 2 } });
  assert.equal(f.proofBytes, CREDENTIAL_PROOF_BYTES);
  for (const part of [f.proveMs, f.verifyMs, f.aeadPerTokenMs, f.perTokenMs, f.commitsPerTokenMs, ...Object.values(f.aead)]) assert.ok(part > 0);
  assert.ok(f.tokenBytes > 64 && f.msg23Bytes > f.tokenBytes && f.msg24Bytes < f.msg23Bytes);
  assert.ok(f.commitSealedBytes.length === 2 && f.commitSealedBytes.every((b) => b > 100));
  assert.deepEqual(operaRatios(report).map((r) => r.value), [report.ratios.perToken, report.ratios.perTokenWithCommits, report.ratios.stage1]);
  for (const r of operaRatios(report)) assert.ok(Number.isFinite(r.value), r.what);

  const text = formatOperaReport(report);
  for (const line of ['| 2 |', '| 8 |', 'per token, ms (8b)', 'Crypto floor per token', 'gives no figures in its text']) assert.ok(text.includes(line), `the text report has ${line}`);
  const svg = figure8Svg(report, { title: 't', subtitle: 's' });
  assert.ok(svg.startsWith('<svg') && svg.includes('ms per token') && svg.includes('(b) tokens') && svg.trimEnd().endsWith('</svg>'));
});

test('bench opera: the stage split refuses calls that are not those of one new transaction', () => {
  const calls = (tokens: number): OdwCall[] =>
    (['payer', 'payee'] as const).flatMap((side) => expectedCalls(tokens)[side].map((command, i) => ({ side, command, startMs: i, endMs: i + 0.5, bytesAtStart: 10 * i })));
  const { starts } = splitStages(calls(3), 3);
  assert.deepEqual([starts.stage1.ms, starts.stage2.ms, starts.stage3.ms], [0, 3, 7]);
  assert.throws(() => splitStages(calls(3), 4), /not those of one new transaction of 4 tokens/);
  assert.throws(() => splitStages(calls(3).filter((c) => !(c.side === 'payee' && c.command === 'meet')), 3), /payee's ODW commands/);
});

test('bench opera parameters: quick and full, and what the environment overrides', async () => {
  assert.deepEqual(operaBench.parameters.full.counts, [100, 200, 300, 400, 500, 600, 700, 800, 900, 1000]);
  assert.equal(operaBench.parameters.full.svgPath, 'opera-figure8.svg');
  assert.equal(operaBench.parameters.quick.svgPath, undefined);
  const set = withEnvironment(operaBench.parameters.full, { TALLY_OPERA_REPS: '1', TALLY_OPERA_COUNTS: '3, 9', TALLY_OPERA_SVG: 'none' });
  assert.deepEqual([set.reps, set.counts, set.svgPath], [1, [3, 9], undefined]);
  const { harness, close } = makeHarness({ quick: true, env: {}, progress: () => undefined });
  try {
    await assert.rejects(benchOpera(harness, { ...operaBench.parameters.quick, counts: [5, 1025] }), RangeError);
    await assert.rejects(benchOpera(harness, { ...operaBench.parameters.quick, counts: [5, 5] }), RangeError);
  } finally {
    await close();
  }
});
