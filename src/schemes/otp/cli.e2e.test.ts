/**
 * OTP end to end through the `tally` command line, every party its own process: an issuer node,
 * three OTP wallets (alice, bob, carol), each command a fresh `tally` process whose secure element
 * is another child process. Coins are withdrawn blindly into alice's SE (`wallet deposit`), paid
 * over TCP + Noise with the node stopped (anonymous both ways), paid on to a third wallet, paid with
 * change, deposited back (`wallet withdraw`); a cloned wallet folder pays the same coin twice and is
 * caught at the second deposit: the escrow tags name its device, which the node revokes. The audit
 * ends it: money is conserved, and the float is what the honest secure elements hold.
 */
import assert from 'node:assert/strict';
import { cp, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { cliOf, dropNodeDatabases, killChildren, nodeDatabaseArgs, startNode, type Json } from '../../cli/e2e-process.ts';

const dirs: string[] = [];
after(async () => {
  killChildren();
  await dropNodeDatabases();
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

const NODE = { passphrase: 'otp e2e', args: ['--schemes', 'otp'] };

test('OTP through the CLI: blind withdrawal, anonymous payments offline, re-spend, change, deposit, a clone caught by its escrow tags, audit balanced', { timeout: 300_000 }, async () => {
  const root = await mkdtemp(join(tmpdir(), 'tally-otp-e2e-'));
  dirs.push(root);
  const home = join(root, 'home');
  const dataDir = join(root, 'node');
  const nodeOptions = { ...NODE, args: [...NODE.args, ...(await nodeDatabaseArgs())] };
  let node = await startNode(dataDir, 0, nodeOptions);
  const env: Record<string, string | undefined> = { ...process.env, TALLY_HOME: home, TALLY_NODE: node.url };
  env['TALLY_OPERATOR_TOKEN'] = (await readFile(join(dataDir, 'identity', 'operator-token'), 'utf8')).trim();

  const { ok, refused, listen } = cliOf(env);

  await ok('operator', 'oem');
  const created = await Promise.all(['alice', 'bob', 'carol'].map((name) => ok('wallet', 'create', name, '--scheme', 'otp')));
  assert.deepEqual(created.map((w) => w['scheme']), ['otp', 'otp', 'otp']);

  // 88.00 of alice's 100.00 as coins the bank signed blindly: 50 + 20 + 10 + 5 + 2 + 1.
  await ok('operator', 'mint', 'alice', '100.00');
  const deposit = await ok('wallet', 'deposit', 'alice', '88.00');
  assert.deepEqual([deposit['offline'], deposit['coins']], ['88.00', 6]);
  assert.equal((await ok('wallet', 'balance', 'alice'))['online'], '12.00');
  // The operator gives bob's exchange keys a payee category (a coin whose program names one needs it).
  assert.deepEqual((await ok('operator', 'otp-category', 'bob', 'grocery'))['category'], 'grocery');
  // Exchange keys (to receive) and the bank's time, while online.
  const synced = await Promise.all(['alice', 'bob', 'carol'].map((name) => ok('sync', name)));
  assert.ok(synced.every((s) => Number(s['keys']) > 0), JSON.stringify(synced));

  // Offline from here.
  await node.stop();

  // bob asks 25.00; alice pays it in two coins (20 + 5).
  const first = await listen('bob', '25.00');
  const paid = await ok('pay', 'alice', '--connect', `127.0.0.1:${first.port}`, '--expect', '25.00');
  assert.deepEqual([paid['amount'], paid['coins'], paid['change']], ['25.00', 2, 0]);
  assert.equal(await first.exit, 0);
  // Each side's offline balance after the payment, as its command reports it.
  const payee = (l: { lines: Json[] }) => l.lines[l.lines.length - 1]?.['offline'];
  assert.deepEqual([paid['offline'], payee(first)], ['63.00', '25.00']);
  // Not what the payer meant: nothing moves (the balances after the next payment show it).
  const greedy = await listen('bob', '9.00');
  await refused('PAYMENT_INVALID', ['pay', 'alice', '--connect', `127.0.0.1:${greedy.port}`, '--expect', '5.00']);
  assert.equal(await greedy.exit, 1);

  // Change: bob asks 8.00; alice (50, 10, 2, 1) cannot pay it exactly: she pays 13.00 and bob gives 5.00 back.
  const third = await listen('bob', '8.00');
  const withChange = await ok('pay', 'alice', '--connect', `127.0.0.1:${third.port}`);
  assert.equal(await third.exit, 0);
  assert.deepEqual([withChange['coins'], withChange['change']], [3, 1]);
  assert.deepEqual([withChange['offline'], payee(third)], ['55.00', '33.00'], '63.00 - 8.00 and 25.00 + 8.00: the refused payment moved nothing');

  // Re-spend: bob pays carol 3.00 with coins he received from alice (2 + 1).
  const second = await listen('carol', '3.00');
  const respent = await ok('pay', 'bob', '--connect', `127.0.0.1:${second.port}`);
  assert.equal(await second.exit, 0);
  assert.deepEqual([respent['offline'], payee(second)], ['30.00', '3.00']);

  // A clone of alice's wallet folder (sealed state and file counter copied) pays the same 5.00 coin again.
  await cp(join(home, 'wallets', 'alice'), join(home, 'wallets', 'alice-clone'), { recursive: true });
  const toBob = await listen('bob', '5.00');
  await ok('pay', 'alice', '--connect', `127.0.0.1:${toBob.port}`);
  assert.equal(await toBob.exit, 0);
  const toCarol = await listen('carol', '5.00');
  await ok('pay', 'alice-clone', '--connect', `127.0.0.1:${toCarol.port}`);
  assert.equal(await toCarol.exit, 0);

  // Online again: bob deposits all he holds; carol's copy of the coin is refused as spent before.
  node = await startNode(dataDir, node.port, nodeOptions);
  const bobBack = await ok('wallet', 'withdraw', 'bob', '35.00');
  assert.deepEqual([bobBack['credited'], bobBack['doubleSpent']], ['35.00', 0]);
  const spent = await refused('DOUBLE_SPEND', ['wallet', 'withdraw', 'carol', '5.00']);
  assert.equal((spent['details'] as Json)['coins'], 1);
  const carolBack = await ok('wallet', 'withdraw', 'carol', '3.00');
  assert.deepEqual([carolBack['credited'], carolBack['doubleSpent']], ['3.00', 0]);
  // The escrow tags of the two copies name alice's device (the coin's third hop), and the node revoked it.
  const aliceDevice = (await ok('wallet', 'balance', 'alice'))['device'];
  const found = (await ok('operator', 'otp-findings')) as { findings: Json[] };
  assert.equal(found.findings.length, 1, JSON.stringify(found));
  assert.equal(found.findings[0]?.['device'], aliceDevice, JSON.stringify(found));
  const revoked = await refused('NODE_REFUSED', ['wallet', 'withdraw', 'alice', '50.00']);
  assert.equal((revoked['details'] as Json)['code'], 'CERT_REVOKED', JSON.stringify(revoked));

  // The audit: conservation, and the float is exactly what alice's SE still holds (the clone made 10.00 that no one was credited).
  const audit = await ok('audit');
  assert.equal(audit['balanced'], true);
  const eur = (audit['currencies'] as { totalIssued: string; totalOnline: string; totalOfflineFloat: string }[])[0];
  assert.ok(eur !== undefined);
  const minorOf = (decimal: string) => BigInt(decimal.replace('.', ''));
  assert.equal(minorOf(eur.totalOnline) + minorOf(eur.totalOfflineFloat), minorOf(eur.totalIssued));
  // alice's last coin went to the bank in a deposit it refused (her device is revoked): her SE keeps it unreceipted.
  const aliceLeft = await ok('wallet', 'balance', 'alice');
  assert.deepEqual([aliceLeft['offline'], aliceLeft['depositPending']], ['0.00', '50.00']);
  assert.equal(eur.totalOfflineFloat, '50.00');
  assert.equal(await node.stop(), 0);
});
