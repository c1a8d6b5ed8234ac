/**
 * OPERA end to end through the `tally` command line, every party its own process: an issuer node
 * serving OPERA, three wallets (alice, bob, carol) whose ODWs got the OEM's anonymous credential
 * after a TPM quote of their build (swtpm), each command a fresh `tally` process whose secure
 * element is another child process. Tokens are charged into alice's ODW (`wallet deposit`), paid
 * over TCP + Noise with the node stopped (anonymous both ways), paid on to a third wallet, refused
 * at a wrong amount, paid with change (and refused when the payee cannot make it), deposited back
 * (`wallet withdraw`); a cloned wallet folder pays the same tokens twice, the second deposit is
 * refused, and the tokens' escrow tags name the cloned ODW, which the node revokes. The audit ends
 * it: money is conserved, and the float is what the ODWs hold.
 */
import assert from 'node:assert/strict';
import { cp, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { cliOf, dropNodeDatabases, killChildren, nodeDatabaseArgs, startNode, type Json } from '../../cli/e2e-process.ts';
import { swtpmGate } from '../../secure-element/tpm-fixtures.ts';

const skip = await swtpmGate();
const dirs: string[] = [];
after(async () => {
  killChildren();
  await dropNodeDatabases();
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

const NODE = { passphrase: 'opera e2e', args: ['--schemes', 'opera'] };

test('OPERA through the CLI: tokens charged, anonymous three-stage payments offline, re-spend, a wrong amount refused, change given, a clone caught at deposit and named by its escrow tags, audit balanced', { skip, timeout: 300_000 }, async () => {
  const root = await mkdtemp(join(tmpdir(), 'tally-opera-e2e-'));
  dirs.push(root);
  const home = join(root, 'home');
  const dataDir = join(root, 'node');
  const nodeOptions = { ...NODE, args: [...NODE.args, ...(await nodeDatabaseArgs())] };
  let node = await startNode(dataDir, 0, nodeOptions);
  const env: Record<string, string | undefined> = { ...process.env, TALLY_HOME: home, TALLY_NODE: node.url };
  env['TALLY_OPERATOR_TOKEN'] = (await readFile(join(dataDir, 'identity', 'operator-token'), 'utf8')).trim();
  const { ok, refused, listen } = cliOf(env);

  await ok('operator', 'oem');
  const created = await Promise.all(['alice', 'bob', 'carol'].map((name) => ok('wallet', 'create', name, '--scheme', 'opera')));
  assert.deepEqual(created.map((w) => w['scheme']), ['opera', 'opera', 'opera']);

  // 88.00 of alice's 100.00 as tokens: 50 + 20 + 10 + 5 + 2 + 1.
  await ok('operator', 'mint', 'alice', '100.00');
  const deposit = await ok('wallet', 'deposit', 'alice', '88.00');
  assert.deepEqual([deposit['offline'], deposit['tokens']], ['88.00', 6]);
  assert.equal((await ok('wallet', 'balance', 'alice'))['online'], '12.00');

  // Offline from here.
  await node.stop();

  // bob asks 25.00; alice pays it in two tokens (20 + 5).
  const first = await listen('bob', '25.00');
  const paid = await ok('pay', 'alice', '--connect', `127.0.0.1:${first.port}`, '--expect', '25.00');
  assert.deepEqual([paid['amount'], paid['tokens'], paid['plan']], ['25.00', 2, 'new']);
  assert.equal(await first.exit, 0);
  const payee = (l: { lines: Json[] }) => l.lines[l.lines.length - 1]?.['offline'];
  assert.deepEqual([paid['offline'], payee(first)], ['63.00', '25.00']);

  // Not what the payer meant: nothing moves.
  const greedy = await listen('bob', '9.00');
  await refused('PAYMENT_INVALID', ['pay', 'alice', '--connect', `127.0.0.1:${greedy.port}`, '--expect', '5.00']);
  assert.equal(await greedy.exit, 1);
  assert.equal((await ok('wallet', 'balance', 'alice'))['offline'], '63.00');

  // Re-spend: bob pays carol 5.00 with the token he received from alice.
  const second = await listen('carol', '5.00');
  const respent = await ok('pay', 'bob', '--connect', `127.0.0.1:${second.port}`);
  assert.equal(await second.exit, 0);
  assert.deepEqual([respent['offline'], payee(second)], ['20.00', '5.00']);

  // Change: bob's one 20.00 token for 3.00 needs 17.00 back, which carol's 5.00 cannot make: nothing moves.
  const noChange = await listen('carol', '3.00');
  await refused('OPERA_NO_CHANGE', ['pay', 'bob', '--connect', `127.0.0.1:${noChange.port}`]);
  assert.equal(await noChange.exit, 1);
  const [bobHolds, carolHolds] = await Promise.all([ok('wallet', 'balance', 'bob'), ok('wallet', 'balance', 'carol')]);
  assert.deepEqual([bobHolds['offline'], bobHolds['pending'], carolHolds['offline'], carolHolds['pending']], ['20.00', null, '5.00', null]);
  // For 15.00 carol gives her 5.00 token back as change.
  const withChange = await listen('carol', '15.00');
  const changed = await ok('pay', 'bob', '--connect', `127.0.0.1:${withChange.port}`);
  assert.equal(await withChange.exit, 0);
  assert.deepEqual([changed['amount'], changed['change'], changed['offline'], payee(withChange), withChange.lines.at(-1)?.['change']], ['15.00', '5.00', '5.00', '20.00', '5.00']);

  // A clone of alice's wallet folder (sealed state and file counter copied) pays the same 10.00 token again.
  await cp(join(home, 'wallets', 'alice'), join(home, 'wallets', 'alice-clone'), { recursive: true });
  const toBob = await listen('bob', '10.00');
  await ok('pay', 'alice', '--connect', `127.0.0.1:${toBob.port}`);
  assert.equal(await toBob.exit, 0);
  const toCarol = await listen('carol', '10.00');
  await ok('pay', 'alice-clone', '--connect', `127.0.0.1:${toCarol.port}`);
  assert.equal(await toCarol.exit, 0);

  // Online again: bob deposits what he holds; carol's copy of the 10.00 token is refused as spent before.
  node = await startNode(dataDir, node.port, nodeOptions);
  const bobBack = await ok('wallet', 'withdraw', 'bob', 'all');
  assert.deepEqual([bobBack['credited'], bobBack['doubleSpent']], ['15.00', 0]);
  const spent = await refused('DOUBLE_SPEND', ['wallet', 'withdraw', 'carol', '10.00']);
  assert.equal((spent['details'] as Json)['coins'], 1);
  const carolBack = await ok('wallet', 'withdraw', 'carol', '20.00');
  assert.deepEqual([carolBack['credited'], carolBack['doubleSpent']], ['20.00', 0]);
  // The escrow tags of the two copies part at the token's first hop, both signed by alice's ODW: the node names it and revokes it.
  const aliceDevice = (await ok('wallet', 'balance', 'alice'))['device'];
  const found = ((await ok('operator', 'opera-findings')) as { findings: Json[] }).findings;
  const named = found.filter((f) => f['kind'] === 'paid-twice');
  assert.deepEqual(named.map((f) => [f['device'], f['hop']]), [[aliceDevice, 1]], JSON.stringify(found));
  assert.equal(typeof named[0]?.['revocationVersion'], 'number');
  const revoked = await refused('NODE_REFUSED', ['wallet', 'withdraw', 'alice', 'all']);
  assert.equal((revoked['details'] as Json)['code'], 'CERT_REVOKED', JSON.stringify(revoked));
  const aliceLeft = await ok('wallet', 'balance', 'alice');
  assert.deepEqual([aliceLeft['offline'], aliceLeft['depositPending']], ['0.00', '53.00']);

  // The audit: conservation; the float is what the revoked ODW still holds (its clone's 53.00 copy, never credited, is not in it).
  const audit = await ok('audit');
  assert.equal(audit['balanced'], true);
  const eur = (audit['currencies'] as { totalIssued: string; totalOnline: string; totalOfflineFloat: string }[])[0];
  assert.ok(eur !== undefined);
  const minorOf = (decimal: string) => BigInt(decimal.replace('.', ''));
  assert.equal(minorOf(eur.totalOnline) + minorOf(eur.totalOfflineFloat), minorOf(eur.totalIssued));
  assert.equal(eur.totalOfflineFloat, '53.00');
  assert.equal(eur.totalOnline, '47.00');
  assert.equal(await node.stop(), 0);
});
