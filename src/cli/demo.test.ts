/**
 * `tally demo` as a user runs it: a separate process that starts its own node and wallets and
 * narrates the OPS story; with --json every step is a line, and the last one is the node's audit.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../../bin/tally.mjs', import.meta.url));

test('`tally demo --json` tells every step, refuses the replay, and ends with a balanced audit', { timeout: 120_000 }, () => {
  const run = spawnSync(process.execPath, [BIN, 'demo', '--json'], { encoding: 'utf8', timeout: 110_000 });
  assert.equal(run.status, 0, run.stderr);
  const steps = run.stdout.trim().split('\n').map((line) => JSON.parse(line) as { step: string; [key: string]: unknown });
  const names = steps.map((s) => s.step);
  for (const expected of ['node', 'oem', 'wallets', 'mint', 'deposit', 'request', 'pay', 'accept', 'replay', 'collect', 'receive', 'pay-link', 'claim', 'sync', 'withdraw', 'balance', 'audit']) {
    assert.ok(names.includes(expected), `step ${expected} is told: ${names.join(', ')}`);
  }
  const replay = steps.find((s) => s.step === 'replay');
  assert.deepEqual({ refused: replay?.['refused'], code: replay?.['code'] }, { refused: true, code: 'PAYMENT_REPLAYED' });
  assert.equal(steps.find((s) => s.step === 'pay-link')?.['confirmed'], true);
  const balances = Object.fromEntries(steps.filter((s) => s.step === 'balance').map((s) => [s['wallet'], { online: s['online'], offline: s['offline'] }]));
  assert.deepEqual(balances, {
    alice: { online: '60.00', offline: '27.50' },
    bob: { online: '0.00', offline: '7.50' },
    carol: { online: '5.00', offline: null },
  });
  const audit = steps[steps.length - 1];
  assert.equal(audit?.step, 'audit');
  assert.equal(audit['balanced'], true);
});
