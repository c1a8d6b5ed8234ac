/**
 * DOT-M across two banks through the `tally` command line, every party its own process: a central
 * bank and two intermediaries (src/e2e/two-tier-fixture.ts), a DOT-M wallet at each bank. Alice's
 * bank A issues her blocks under its own key; her wallet pays Bob's, a customer of bank B, over TCP
 * + Noise with both banks stopped; Bob withdraws at B, which presents his copy to A; A judges it, the
 * central bank moves the reserves and B credits Bob. Every audit and the system's balance.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { cliOf, killChildren, type Json } from '../cli/e2e-process.ts';
import { startTwoTierProcesses, type TwoTierProcesses } from './two-tier-fixture.ts';

const PASSPHRASE = 'two tier dotm e2e';
let base: string;
let tiers: TwoTierProcesses | undefined;

after(async () => {
  await tiers?.stop();
  killChildren();
  if (base !== undefined) await rm(base, { recursive: true, force: true });
});

test('DOT-M across two banks through the CLI: A issues, A\'s wallet pays B\'s offline, B presents, A accepts, the reserves move, every audit balanced', { timeout: 300_000 }, async () => {
  base = await mkdtemp(join(tmpdir(), 'tally-two-tier-dotm-'));
  tiers = await startTwoTierProcesses({ base, passphrase: PASSPHRASE });
  const { cli, bankA, bankB, cb } = tiers;
  const customers = (home: string) => cliOf({ ...tiers?.env, TALLY_HOME: join(base, home), TALLY_PASSWORD: 'right horse' });
  const atA = customers('home-a');
  const atB = customers('home-b');
  await atA.ok('operator', 'oem', ...bankA.at);
  await atB.ok('operator', 'oem', ...bankB.at);
  await atA.ok('wallet', 'create', 'alice', '--scheme', 'dotm', '--node', bankA.node.url);
  await atB.ok('wallet', 'create', 'bob', '--scheme', 'dotm', '--node', bankB.node.url);
  await atA.ok('operator', 'mint', 'alice', '50.00', ...bankA.at);
  const deposit = await atA.ok('wallet', 'deposit', 'alice', '30.00', '--blocks', '2');
  assert.equal(deposit['offline'], '30.00');
  // Each wallet takes the other banks' intermediaries from its own bank.
  await atA.ok('sync', 'alice');
  await atB.ok('sync', 'bob');
  const reserveOf = async (keyId: string): Promise<string> => ((await cli.ok('cb', 'intermediaries', ...cb.at))['intermediaries'] as Json[]).find((i) => i['keyId'] === keyId)?.['reserve'] as string;
  const reserveA = await reserveOf(bankA.keyId);
  const reserveB = await reserveOf(bankB.keyId);

  // Offline: both banks stopped.
  await bankA.stop();
  await bankB.stop();
  const receiving = await atB.listen('bob', '12.00');
  const paid = await atA.ok('pay', 'alice', '--connect', `127.0.0.1:${receiving.port}`, '--expect', '12.00');
  assert.equal(paid['status'], 'completed');
  assert.equal(await receiving.exit, 0);
  await bankA.restart();
  await bankB.restart();

  // Bob withdraws at B: his copy of A's block is presented to A, and credited once A accepted.
  await atA.ok('sync', 'alice');
  const withdrawn = await atB.ok('wallet', 'withdraw', 'bob', '12.00');
  assert.equal(withdrawn['outcome'], 'claimed', JSON.stringify(withdrawn));
  assert.equal((withdrawn['claims'] as string[]).length, 1);
  assert.equal(withdrawn['online'], '0.00', 'not credited before A accepts');
  await tiers.audit();
  assert.equal((await atB.ok('wallet', 'balance', 'bob'))['online'], '12.00');
  assert.equal(await reserveOf(bankA.keyId), (Number(reserveA) - 12).toFixed(2));
  assert.equal(await reserveOf(bankB.keyId), (Number(reserveB) + 12).toFixed(2));
  // Alice withdraws her change at home.
  await atA.ok('wallet', 'withdraw', 'alice', '18.00');
  assert.equal((await atA.ok('wallet', 'balance', 'alice'))['online'], '38.00');
  await tiers.audit();
});
