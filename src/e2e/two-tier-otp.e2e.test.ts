/**
 * OTP across two banks through the `tally` command line: a central bank and two intermediaries,
 * each its own process and database, and a wallet at each bank. Alice withdraws coins at bank A;
 * the banks publish their OTP classes and keys through the central bank; each wallet's sync gives
 * its trusted app the other bank's publication (checked there to the root). Offline, Alice pays Bob
 * of bank B, whose trusted app takes A's coins; Bob deposits them at B, which presents them to A;
 * once A accepted and the reserves moved, Bob's account is credited. Every audit balances.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { cliOf, killChildren } from '../cli/e2e-process.ts';
import { startTwoTierProcesses, type TwoTierProcesses } from './two-tier-fixture.ts';

const PASSPHRASE = 'two tiers otp e2e';
let base = '';
let tiers: TwoTierProcesses | undefined;
after(async () => {
  await tiers?.stop();
  killChildren();
  if (base !== '') await rm(base, { recursive: true, force: true });
});

test('OTP across two banks through the CLI: coins of A paid offline to a wallet of B, deposited at B, settled through the central bank', { timeout: 300_000 }, async () => {
  base = await mkdtemp(join(tmpdir(), 'tally-two-tier-otp-'));
  tiers = await startTwoTierProcesses({ base, passphrase: PASSPHRASE });
  const { bankA, bankB, cb } = tiers;
  const atA = bankA.at;
  const atB = bankB.at;
  const cliA = cliOf({ ...tiers.env, TALLY_HOME: join(base, 'home-a') });
  const cliB = cliOf({ ...tiers.env, TALLY_HOME: join(base, 'home-b') });

  await cliA.ok('operator', 'oem', ...atA);
  await cliB.ok('operator', 'oem', ...atB);
  await cliA.ok('wallet', 'create', 'alice', '--scheme', 'otp', '--node', bankA.node.url);
  await cliB.ok('wallet', 'create', 'bob', '--scheme', 'otp', '--node', bankB.node.url);
  await cliA.ok('operator', 'mint', 'alice', '50.00', ...atA);
  // 17.00 as coins bank A signs blindly: 10 + 5 + 2.
  const withdrawn = await cliA.ok('wallet', 'deposit', 'alice', '17.00');
  assert.deepEqual([withdrawn['offline'], withdrawn['coins']], ['17.00', 3]);

  // Each bank publishes its classes at its sync and keeps the other's at the next; the wallets'
  // syncs then give them to their trusted apps.
  for (let round = 0; round < 2; round++) for (const at of [atA, atB]) await cliA.ok('node', 'reserve', ...at);
  await cliA.ok('sync', 'alice');
  await cliB.ok('sync', 'bob');

  // Offline: Bob (bank B) asks 7.00; Alice (bank A) pays it in two of A's coins (5 + 2).
  await bankA.stop();
  const asked = await cliB.listen('bob', '7.00');
  const paid = await cliA.ok('pay', 'alice', '--connect', `127.0.0.1:${asked.port}`, '--expect', '7.00');
  assert.equal(await asked.exit, 0);
  assert.deepEqual([paid['amount'], paid['coins'], paid['offline']], ['7.00', 2, '10.00']);
  assert.equal(asked.lines[asked.lines.length - 1]?.['offline'], '7.00');
  await bankA.restart();

  // Bob deposits A's coins at B: presented to A, nothing credited yet.
  const reserves0 = await cliA.ok('cb', 'intermediaries', ...cb.at);
  const back = await cliB.ok('wallet', 'withdraw', 'bob', '7.00');
  assert.deepEqual([back['credited'], back['presented'], back['doubleSpent'], back['refused']], ['0.00', 2, 0, 0]);
  assert.equal((await cliB.ok('wallet', 'balance', 'bob'))['online'], '0.00');

  // The banks sync: A accepts, the central bank moves 7.00 from A's reserve to B's, B credits Bob.
  await tiers.audit();
  assert.equal((await cliB.ok('wallet', 'balance', 'bob'))['online'], '7.00');
  const reserves = await cliA.ok('cb', 'intermediaries', ...cb.at);
  const reserveOf = (list: Record<string, unknown>, keyId: string) => ((list['intermediaries'] as Record<string, unknown>[]).find((i) => i['keyId'] === keyId)?.['reserve'] as string) ?? '';
  const minor = (decimal: string) => BigInt(decimal.replace('.', ''));
  assert.equal(minor(reserveOf(reserves, bankA.keyId)), minor(reserveOf(reserves0, bankA.keyId)) - 700n);
  assert.equal(minor(reserveOf(reserves, bankB.keyId)), minor(reserveOf(reserves0, bankB.keyId)) + 700n);
});
