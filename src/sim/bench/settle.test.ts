/**
 * `bench settle` at a tiny size, so that it cannot break unnoticed: the node runs in its own
 * process, every payment the scheme made is settled once (the bench checks each receiver's balance
 * and the audit, and fails otherwise), and the report has every row with measured figures. Each
 * node process starts on a copy of the tests' new PGlite cluster (test-pglite-cluster.ts) rather
 * than running initdb: a row measures settling, after the start.
 */
import { newClusterFolder } from '../../issuer/db/test-pglite-cluster.ts';
import { testNatsUrl } from '../../issuer/queue/test-nats.ts';
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SCHEMES } from '../../schemes/index.ts';
import { makeHarness } from './harness.ts';
import { benchSettle, floorPaymentsPerSecond, formatSettleReport, settleRatios, settleSources, type SettleSource } from './settle.ts';

test('bench settle, tiny: every payment settled once, the audit balanced, every row reported', { timeout: 180_000 }, async () => {
  const sources = settleSources(SCHEMES);
  assert.ok(sources.length >= 1, 'some scheme gives a settlement workload');
  const { harness, close } = makeHarness({ quick: true, env: {}, progress: () => undefined, pgliteCluster: await newClusterFolder() });
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
  for (const w of workloads) assert.ok(text.includes(`| ${scheme} | ${w.name} | pglite | inline | 2 | ${payments} |`), text);
  assert.ok(report.rows.every((r) => r.shards === null));
  assert.match(text, /Floor: [0-9,]+ Ed25519 verifications\/s/);
});

test('bench settle, tiny, in shards: the OPS claims settled through NATS JetStream in two shards, every payment once, beside the inline row', { timeout: 180_000 }, async () => {
  const { harness, close } = makeHarness({ quick: true, env: {}, progress: () => undefined, pgliteCluster: await newClusterFolder() });
  const payments = 200;
  const report = await benchSettle(harness, settleSources(SCHEMES), { devices: 3, payments, submitters: [2], warmup: 0, floorMs: 100, postgres: false, only: ['ops/claims'], shards: [2], natsUrl: testNatsUrl() }).finally(close);
  assert.deepEqual(report.rows.map((r) => `${r.workload} ${r.database} ${r.shards ?? 'inline'} ${r.submitters}`), ['claims pglite inline 2', 'claims pglite 2 2']);
  for (const row of report.rows) {
    assert.equal(row.payments, payments, 'every payment made was settled');
    assert.ok(row.paymentsPerSecond > 0 && row.nodeCpuMsPerPayment > 0);
  }
  const text = formatSettleReport(report);
  assert.ok(text.includes(`| ops | claims | pglite | 2 | 2 | ${payments} |`), text);
  assert.ok(settleRatios(report).some((r) => /2 shard\(s\) 2 submitter/.test(r.what)));
});

test('bench settle, tiny, OTP and OPERA deposits: every coin and token deposited once, the floors of their own cryptography', { timeout: 240_000 }, async () => {
  const sources = settleSources(SCHEMES).filter((s) => s.scheme === 'otp' || s.scheme === 'opera');
  assert.deepEqual(sources.map((s) => s.scheme).sort(), ['opera', 'otp'], 'OTP and OPERA give settlement workloads');
  const { harness, close } = makeHarness({ quick: true, env: {}, progress: () => undefined, pgliteCluster: await newClusterFolder() });
  // One row of two submitters (each a deposit of 32 coins or tokens) keeps it short: most of its time is starting a node per workload and provisioning the TAs.
  const payments = 64;
  const report = await benchSettle(harness, sources, { devices: 1, payments, submitters: [2], warmup: 0, floorMs: 100, postgres: false, only: ['otp', 'opera'] }).finally(close);

  const names = report.workloads.map((w) => `${w.scheme} ${w.workload}`).sort();
  assert.deepEqual(names, ['opera deposits', 'otp deposits']);
  assert.deepEqual(report.rows.map((r) => `${r.scheme} ${r.submitters}`).sort(), ['opera 2', 'otp 2']);
  // OTP's coin has no Ed25519 signature: its floor is the RSA verification and the X25519 agreement, measured as the Ed25519 floor is.
  assert.deepEqual(report.operationFloors.map((f) => f.operation), ['rsa2048-pss-verify', 'x25519']);
  for (const f of report.operationFloors) {
    assert.ok(f.perSecond > 0 && f.measuredPerSecond.length === 2 && f.perSecond === Math.max(...f.measuredPerSecond), f.operation);
    assert.equal(f.perThread.length, f.threads);
  }
  const rates = new Map(report.operationFloors.map((f) => [f.operation, f.perSecond]));
  for (const row of report.rows) {
    assert.equal(row.payments, payments, `${row.scheme}: every payment made was deposited`);
    assert.equal(row.requests, 2, 'one deposit a submitter');
    assert.ok(row.paymentsPerSecond > 0 && Number.isFinite(row.paymentsPerSecond));
    assert.ok(row.nodeCpuMsPerPayment > 0);
    const w = report.workloads.find((x) => x.scheme === row.scheme);
    assert.ok(w !== undefined);
    const floor = floorPaymentsPerSecond(report.floor.perSecond, w.verificationsPerPayment, w.floorOperations, rates);
    assert.ok(Number.isFinite(floor) && floor > 0);
    assert.ok(Math.abs(row.floorPaymentsPerSecond - floor) < 1e-6);
    if (row.scheme === 'otp') {
      // No Ed25519 in it: one RSA verification and one agreement, each at its own rate.
      assert.equal(w.verificationsPerPayment, 0);
      assert.ok(Math.abs(1 / row.floorPaymentsPerSecond - (1 / (rates.get('rsa2048-pss-verify') ?? 0) + 1 / (rates.get('x25519') ?? 0))) < 1e-9);
    } else {
      // The bank's signature on each token, and the ODW's on the request shared by its tokens.
      assert.ok(w.verificationsPerPayment > 1 && w.verificationsPerPayment < 1.01);
      assert.ok(Math.abs(row.floorPaymentsPerSecond - report.floor.perSecond / w.verificationsPerPayment) < 1e-6);
    }
  }
  const text = formatSettleReport(report);
  assert.match(text, /Floor of x25519: [0-9,]+\/s/);
  assert.match(text, /one rsa2048-pss-verify and one x25519 per payment at the least/);
  assert.ok(text.includes(`| otp | deposits | pglite | inline | 2 | ${payments} |`), text);
  assert.ok(text.includes(`| opera | deposits | pglite | inline | 2 | ${payments} |`), text);
});

test('bench settle, tiny, DOT-M event uploads: every payment settled by both wallets\' events, the payees\' redemptions credited once', { timeout: 180_000 }, async () => {
  const sources = settleSources(SCHEMES).filter((s) => s.scheme === 'dotm');
  assert.equal(sources.length, 1, 'DOT-M gives a settlement workload');
  const { harness, close } = makeHarness({ quick: true, env: {}, progress: () => undefined, pgliteCluster: await newClusterFolder() });
  // 40 payments need two pairs of wallets (at most 32 events each between uploads); a warm-up row before them makes the payees redeem in between.
  const payments = 40;
  const report = await benchSettle(harness, sources, { devices: 1, payments, submitters: [2], warmup: 4, floorMs: 100, postgres: false, only: ['dotm/events'] }).finally(close);
  assert.deepEqual(report.rows.map((r) => `${r.scheme} ${r.workload} ${r.submitters} ${r.payments}`), [`dotm events 2 ${payments}`]);
  const row = report.rows[0];
  assert.ok(row !== undefined);
  // Each wallet's events go up in uploads of at most 16: two pairs of wallets, 20 events each, two uploads each.
  assert.equal(row.requests, 8);
  assert.ok(row.nodeCpuMsPerPayment > 0 && row.paymentsPerSecond > 0);
  assert.ok(Math.abs(row.floorPaymentsPerSecond - report.floor.perSecond / 5) < 1e-6, 'five verifications a payment at the least');
});

test('bench settle: a workload that names no operation a payment needs is refused before any node starts', async () => {
  const { harness, close } = makeHarness({ quick: true, env: {}, progress: () => undefined, pgliteCluster: await newClusterFolder() });
  const [ops] = await (settleSources(SCHEMES)[0] as SettleSource).load();
  assert.ok(ops !== undefined);
  const free: SettleSource = { scheme: 'ops', load: async () => [{ ...ops, name: 'free', verificationsPerPayment: 0 }] };
  try {
    await assert.rejects(benchSettle(harness, [free], { devices: 1, payments: 10, submitters: [1], warmup: 0, floorMs: 50, postgres: false }), /ops\/free names no public-key operation a payment needs/);
  } finally {
    await close();
  }
});

test('bench settle: a workload that no scheme gives is refused before any node starts', async () => {
  const { harness, close } = makeHarness({ quick: true, env: {}, progress: () => undefined, pgliteCluster: await newClusterFolder() });
  try {
    await assert.rejects(
      benchSettle(harness, settleSources(SCHEMES), { devices: 2, payments: 10, submitters: [1], warmup: 0, floorMs: 50, postgres: false, only: ['ops/no-such-workload'] }),
      /no workload is named "ops\/no-such-workload"/,
    );
  } finally {
    await close();
  }
});
