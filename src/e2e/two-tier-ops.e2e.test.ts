/**
 * OPS across two banks through the CLI: three processes (a central bank, banks A and B), each with
 * its own folder and database. A wallet at A pays, offline, a wallet at B without a secure element
 * (which claims: presented, waiting, then credited once settled) and a wallet at B with one (which
 * collects: its sync presents the collect). Each wallet takes the other bank from its own bank at
 * its sync. Every audit and the system's audit balance at the end.
 */
import assert from 'node:assert/strict';
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { killChildren, type Json } from '../cli/e2e-process.ts';
import { startTwoTierProcesses, type TwoTierProcesses } from './two-tier-fixture.ts';

let base = '';
let tiers: TwoTierProcesses | undefined;
after(async () => {
  await tiers?.stop();
  killChildren();
  if (base !== '') await rm(base, { recursive: true, force: true });
});

test('OPS wallets at two banks pay offline through the CLI: a claim waits then is credited, a collect is presented by the sync, a claim waits while bank A is stopped, a copied device caught at A and refused offline at B, every audit balanced', { timeout: 300_000 }, async () => {
  base = await mkdtemp(join(tmpdir(), 'tally-two-tier-ops-'));
  tiers = await startTwoTierProcesses({ base, passphrase: 'two tier ops e2e' });
  const { cli, bankA, bankB } = tiers;
  const homeA = ['--home', join(base, 'home-a')];
  const homeB = ['--home', join(base, 'home-b')];
  await cli.ok('operator', 'oem', ...bankA.at, ...homeA);
  await cli.ok('operator', 'oem', ...bankB.at, ...homeB);
  await cli.ok('wallet', 'create', 'alice', '--node', bankA.node.url, ...homeA);
  await cli.ok('wallet', 'create', 'dave', '--node', bankB.node.url, ...homeB);
  const env = { ...tiers.env, TALLY_WALLET_PASSPHRASE: 'bob passphrase' };
  const { cliOf } = await import('../cli/e2e-process.ts');
  const bobCli = cliOf(env);
  await bobCli.ok('wallet', 'create', 'bob', '--scheme', 'ops', '--no-secure-element', '--node', bankB.node.url, ...homeB);
  await cli.ok('operator', 'mint', 'alice', '50.00', ...bankA.at, ...homeA);
  assert.equal((await cli.ok('wallet', 'deposit', 'alice', '30.00', ...homeA))['offline'], '30.00');
  // Each bank publishes its list of revoked devices at its sync; the other keeps it at its next.
  await tiers.audit(2);

  // Each wallet takes the other bank from its own at its sync.
  const aliceSync = await cli.ok('sync', 'alice', ...homeA);
  assert.equal((aliceSync['peers'] as Json)['peers'], 1, JSON.stringify(aliceSync));
  const bobSync = await bobCli.ok('sync', 'bob', ...homeB);
  assert.deepEqual(bobSync['peers'], { peers: 1, crls: 1 });
  const daveSync = await cli.ok('sync', 'dave', ...homeB);
  assert.equal((daveSync['peers'] as Json)['crls'], 1, JSON.stringify(daveSync));

  // Alice pays Bob (no secure element) by token; Bob accepts offline and claims: presented, waiting.
  const toBob = String((await bobCli.ok('request', 'bob', '4.00', ...homeB))['token']);
  const paidBob = String((await cli.ok('pay', 'alice', toBob, ...homeA))['token']);
  assert.equal((await bobCli.ok('accept', 'bob', paidBob, ...homeB))['amount'], '4.00');
  const first = await bobCli.ok('claim', 'bob', ...homeB);
  assert.deepEqual(first['claimed'], []);
  const presented = first['presented'] as Json[];
  assert.equal(presented.length, 1, JSON.stringify(first));
  assert.equal(presented[0]?.['amount'], '4.00');
  assert.equal((presented[0]?.['claim'] as Json)['payerBank'], bankA.keyId);
  assert.equal(first['currency'], 'EUR');
  const text = await bobCli.run(['claim', 'bob', ...homeB]);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /Waiting: 4\.00 EUR from [0-9a-f]{64} \(payment 1\), a device of bank [0-9a-f]{64}: claim [0-9a-f]{64} is (pending|presented)/);

  // Alice pays Dave (a secure element) by token; Dave collects offline; his sync presents the collect.
  const toDave = String((await cli.ok('request', 'dave', '6.00', ...homeB))['token']);
  const paidDave = String((await cli.ok('pay', 'alice', toDave, ...homeA))['token']);
  await cli.ok('accept', 'dave', paidDave, ...homeB);
  assert.equal((await cli.ok('collect', 'dave', ...homeB))['offline'], '6.00');
  const presentedSync = await cli.ok('sync', 'dave', ...homeB);
  const foreign = presentedSync['foreign'] as Json[];
  assert.equal(foreign.length, 1, JSON.stringify(presentedSync));
  assert.equal(foreign[0]?.['amount'], '6.00');

  // The banks sync: A accepts both claims, the reserves move, B credits Bob and its offline float.
  await tiers.audit(3);
  const settled = await bobCli.ok('claim', 'bob', ...homeB);
  assert.equal((settled['claimed'] as Json[]).length, 1, JSON.stringify(settled));
  assert.equal(settled['online'], '4.00');
  await cli.ok('sync', 'alice', ...homeA);
  await tiers.audit(3);

  // Bank A stopped while B presents: Bob's claim waits at the central bank, then is credited once A is back.
  await bankA.stop();
  const toBob2 = String((await bobCli.ok('request', 'bob', '2.00', ...homeB))['token']);
  const paidBob2 = String((await cli.ok('pay', 'alice', toBob2, ...homeA))['token']);
  assert.equal((await bobCli.ok('accept', 'bob', paidBob2, ...homeB))['amount'], '2.00');
  const waiting = await bobCli.ok('claim', 'bob', ...homeB);
  assert.equal((waiting['presented'] as Json[]).length, 1, JSON.stringify(waiting));
  for (let round = 0; round < 2; round++) await cli.ok('node', 'reserve', ...bankB.at);
  const stillWaiting = await bobCli.ok('claim', 'bob', ...homeB);
  assert.deepEqual([(stillWaiting['claimed'] as Json[]).length, (stillWaiting['presented'] as Json[]).length], [0, 1], JSON.stringify(stillWaiting));
  assert.equal(((stillWaiting['presented'] as Json[])[0]?.['claim'] as Json)['status'], 'presented');
  await bankA.restart();
  await tiers.audit(3);
  const late = await bobCli.ok('claim', 'bob', ...homeB);
  assert.equal((late['claimed'] as Json[]).length, 1, JSON.stringify(late));
  assert.equal(late['online'], '6.00');

  // A copy of alice's wallet folder, secure element and all, pays Carol at A and Bob at B under one
  // index: A credits Carol, catches the copy at B's claim, names and revokes the device; once the
  // lists have travelled, Bob's wallet refuses the device offline.
  await bobCli.ok('wallet', 'create', 'carol', '--scheme', 'ops', '--no-secure-element', '--node', bankA.node.url, ...homeA);
  await cp(join(base, 'home-a', 'wallets', 'alice'), join(base, 'home-a', 'wallets', 'alice-copy'), { recursive: true });
  const toCarol = String((await bobCli.ok('request', 'carol', '5.00', ...homeA))['token']);
  const paidCarol = await cli.ok('pay', 'alice', toCarol, ...homeA);
  await bobCli.ok('accept', 'carol', String(paidCarol['token']), ...homeA);
  const toBob3 = String((await bobCli.ok('request', 'bob', '5.00', ...homeB))['token']);
  const paidCopy = await cli.ok('pay', 'alice-copy', toBob3, ...homeA);
  assert.equal(JSON.stringify(paidCopy['index']), JSON.stringify(paidCarol['index']), 'the copy signs the same index again');
  await bobCli.ok('accept', 'bob', String(paidCopy['token']), ...homeB);
  assert.equal(((await bobCli.ok('claim', 'carol', ...homeA))['claimed'] as Json[]).length, 1);
  assert.equal(((await bobCli.ok('claim', 'bob', ...homeB))['presented'] as Json[]).length, 1);
  await tiers.audit(3);
  const refused = await bobCli.ok('claim', 'bob', ...homeB);
  assert.equal((refused['refused'] as Json[]).length, 1, JSON.stringify(refused));
  assert.match(JSON.stringify(refused['refused']), /DOUBLE_SPEND/);
  assert.equal(refused['online'], '6.00', 'nothing credited for the copy');
  await tiers.audit(2);
  await bobCli.ok('sync', 'bob', ...homeB);
  const toBob4 = String((await bobCli.ok('request', 'bob', '1.00', ...homeB))['token']);
  const paidLate = String((await cli.ok('pay', 'alice-copy', toBob4, ...homeA))['token']);
  await bobCli.refused('CERT_REVOKED', ['accept', 'bob', paidLate, ...homeB]);
  await tiers.audit(1);
});
