/** The wallet-age benchmark runs small and reports both storages at both ages, with their ratios. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runBench } from './harness.ts';
import { benchWalletAge, formatWalletAgeReport, walletAgeBench } from './wallet-age.ts';

test('wallet-age: both storages at 0 and N settled payments, with their ratios', async () => {
  const report = await benchWalletAge({ settled: 300, storeRounds: 3, jsonRounds: 2 });
  assert.deepEqual(report.rows.map((r) => `${r.storage}:${r.settled}`), ['sqlite:0', 'json:0', 'sqlite:300', 'json:300']);
  for (const r of report.rows) assert.ok(r.total.p50Ms > 0 && r.total.samples === (r.storage === 'sqlite' ? 3 : 2));
  assert.ok(Number.isFinite(report.ageRatio.sqlite) && Number.isFinite(report.ageRatio.json) && Number.isFinite(report.jsonOverSqliteOld));
  assert.equal(report.jsonOldOpens, true);
  assert.match(formatWalletAgeReport(report), /ratio old\/new: sqlite [0-9.]+x, json [0-9.]+x/);
});

test('wallet-age through the harness: a Machine line first, then the report with its ratios', async () => {
  const small = { settled: 200, storeRounds: 2, jsonRounds: 2 };
  const output = await runBench({ ...walletAgeBench, parameters: { quick: small, full: small } }, { quick: true, env: {}, progress: () => undefined });
  assert.match(output.text, /^Machine: /);
  assert.match(output.text, /ratio old\/new: sqlite [0-9.]+x, json [0-9.]+x/);
  assert.equal(output.json.bench, 'wallet-age');
});
