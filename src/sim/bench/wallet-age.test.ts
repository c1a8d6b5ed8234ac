/** The wallet-age benchmark runs small and reports both storages at both ages, with their ratios. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { benchWalletAge, formatWalletAgeReport } from './wallet-age.ts';

test('wallet-age: both storages at 0 and N settled payments, ratios and a Machine line', async () => {
  const report = await benchWalletAge({ settled: 300, storeRounds: 3, jsonRounds: 2 });
  assert.deepEqual(report.rows.map((r) => `${r.storage}:${r.settled}`), ['sqlite:0', 'json:0', 'sqlite:300', 'json:300']);
  for (const r of report.rows) assert.ok(r.total.p50Ms > 0 && r.total.samples === (r.storage === 'sqlite' ? 3 : 2));
  assert.ok(Number.isFinite(report.ageRatio.sqlite) && Number.isFinite(report.ageRatio.json) && Number.isFinite(report.jsonOverSqliteOld));
  assert.equal(report.jsonOldOpens, true);
  const text = formatWalletAgeReport(report);
  assert.match(text, /^Machine: /);
  assert.match(text, /ratio old\/new: sqlite [0-9.]+x, json [0-9.]+x/);
});
