/**
 * `tally demo` as a user runs it: a separate process that starts its own node and wallets and
 * narrates the OPS and then the DOT-M story; with --json every step is a line, numbered steps carry
 * their number, and the last one is the node's audit.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { BIN } from '../cli/e2e-process.ts';

test('`tally demo --json` tells every step of OPS, DOT-M and OTP, numbered once each in order, refuses the replay, and ends with a balanced audit', { timeout: 240_000 }, () => {
  const run = spawnSync(process.execPath, [BIN, 'demo', '--json'], { encoding: 'utf8', timeout: 230_000 });
  assert.equal(run.status, 0, run.stderr);
  const steps = run.stdout.trim().split('\n').map((line) => JSON.parse(line) as { step: string; [key: string]: unknown });
  const names = steps.map((s) => s.step);
  for (const expected of ['node', 'oem', 'wallets', 'mint', 'deposit', 'request', 'pay', 'accept', 'replay', 'collect', 'receive', 'pay-link', 'claim', 'sync', 'withdraw', 'balance', 'pay-dotm', 'audit']) {
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
    dave: { online: '20.00', offline: '18.00' },
    erin: { online: '12.00', offline: '0.00' },
    gwen: { online: '12.00', offline: '27.00' },
    hal: { online: '11.00', offline: '0.00' },
  });
  // OTP: coins withdrawn blindly, keys at a sync, an exact payment and one with change, hal's coins deposited.
  const otp = steps.filter((s) => s['scheme'] === 'otp');
  assert.deepEqual(otp.map((s) => s.step).filter((n) => n !== 'balance'), ['wallets', 'mint', 'deposit', 'sync', 'pay-otp', 'pay-otp-change', 'withdraw']);
  assert.deepEqual([otp.find((s) => s.step === 'pay-otp')?.['change'], otp.find((s) => s.step === 'pay-otp-change')?.['change']], [0, 2]);
  assert.equal(otp.find((s) => s.step === 'withdraw')?.['credited'], '11.00');
  // DOT-M: two wallets, a deposit as blocks, the nine steps completed on both sides, both synced with
  // nothing refused, a withdrawal credited at once.
  const dotm = steps.filter((s) => s['scheme'] === 'dotm').map((s) => s.step);
  assert.deepEqual(dotm.filter((n) => n !== 'balance'), ['wallets', 'mint', 'deposit', 'sync', 'withdraw'], dotm.join(', '));
  assert.equal(steps.find((s) => s.step === 'deposit' && s['scheme'] === 'dotm')?.['blocks'], 3);
  const nine = steps.find((s) => s.step === 'pay-dotm');
  assert.deepEqual({ amount: nine?.['amount'], payer: nine?.['payer'], payee: nine?.['payee'] }, { amount: '12.00', payer: 'completed', payee: 'completed' });
  const dotmAt = (step: string) => steps.findIndex((s) => s.step === step && s['scheme'] === 'dotm');
  assert.ok(names.indexOf('pay-dotm') > dotmAt('deposit') && names.indexOf('pay-dotm') < dotmAt('sync'), 'paid after the deposit, synced after the payment');
  const dotmSync = steps.find((s) => s.step === 'sync' && s['scheme'] === 'dotm')?.['wallets'] as { refused: number; findings: number }[];
  assert.deepEqual(dotmSync.map((w) => [w.refused, w.findings]), [[0, 0], [0, 0]]);
  assert.equal(steps.find((s) => s.step === 'withdraw' && s['scheme'] === 'dotm')?.['credited'], true);
  // Numbering: every numbered step has the next number, 1 to the audit, none twice.
  const numbers = steps.filter((s) => s['number'] !== undefined).map((s) => s['number']);
  assert.deepEqual(numbers, numbers.map((_, i) => i + 1), `steps numbered 1, 2, 3, ... in order: ${numbers.join(', ')}`);
  assert.equal(steps[steps.length - 1]?.['number'], numbers.length, 'the audit is the last numbered step');
  assert.ok(numbers.length >= 20, `OPS and DOT-M steps are numbered: ${numbers.length}`);
  const audit = steps[steps.length - 1];
  assert.equal(audit?.step, 'audit');
  assert.equal(audit['balanced'], true);
});
