/**
 * OPERA across two banks through the `tally` command line, every party its own process: a central
 * bank and two intermediaries (src/e2e/two-tier-fixture.ts), an OPERA wallet at each bank (its ODW
 * credentialed after a TPM quote, swtpm). Bank A mints to alice from its reserve and charges tokens
 * into her ODW; the banks publish their OPERA parameters through the central bank and each wallet's
 * sync gives the other bank's to its ODW. With bank A stopped, alice pays bob of bank B offline;
 * a copy of bob's wallet folder is made. Bob deposits at B while A is still down: B presents A's
 * tokens as claims, which wait; the copy's deposit of the same tokens is refused at B on the spot.
 * A is started again, the claims are settled, the reserves move, B credits bob. Every audit balances.
 */
import assert from 'node:assert/strict';
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { cliOf, killChildren, type Json } from '../cli/e2e-process.ts';
import { swtpmGate } from '../secure-element/tpm-fixtures.ts';
import { startTwoTierProcesses, type TwoTierProcesses } from './two-tier-fixture.ts';

const skip = await swtpmGate();
const PASSPHRASE = 'two tier opera e2e';
let base = '';
let tiers: TwoTierProcesses | undefined;

after(async () => {
  await tiers?.stop();
  killChildren();
  if (base !== '') await rm(base, { recursive: true, force: true });
});

test("OPERA across two banks through the CLI: A's tokens paid offline to B's wallet, presented by B as claims while A is down, a copy's deposit refused, settled once A is back, the reserves moved, every audit balanced", { skip, timeout: 300_000 }, async () => {
  base = await mkdtemp(join(tmpdir(), 'tally-two-tier-opera-'));
  tiers = await startTwoTierProcesses({ base, passphrase: PASSPHRASE });
  const { cli, bankA, bankB, cb } = tiers;
  const homeA = join(base, 'home-a');
  const homeB = join(base, 'home-b');
  const atA = cliOf({ ...tiers.env, TALLY_HOME: homeA });
  const atB = cliOf({ ...tiers.env, TALLY_HOME: homeB });
  await atA.ok('operator', 'oem', ...bankA.at);
  await atB.ok('operator', 'oem', ...bankB.at);
  const alice = await atA.ok('wallet', 'create', 'alice', '--scheme', 'opera', '--node', bankA.node.url);
  const bob = await atB.ok('wallet', 'create', 'bob', '--scheme', 'opera', '--node', bankB.node.url);
  assert.deepEqual([alice['scheme'], bob['scheme']], ['opera', 'opera']);

  // Bank A mints 50.00 to alice from its reserve; 35.00 of it charged as tokens (20 + 10 + 5).
  await atA.ok('operator', 'mint', 'alice', '50.00', ...bankA.at);
  const charged = await atA.ok('wallet', 'deposit', 'alice', '35.00');
  assert.deepEqual([charged['offline'], charged['tokens']], ['35.00', 3]);
  assert.equal((await atA.ok('wallet', 'balance', 'alice'))['online'], '15.00');

  // Each bank publishes its issuer node and parameters at its sync and keeps the other's at the
  // next; the wallets' syncs give them to their ODWs.
  for (let round = 0; round < 2; round++) for (const b of [bankA, bankB]) await cli.ok('node', 'reserve', ...b.at);
  await atA.ok('sync', 'alice');
  await atB.ok('sync', 'bob');
  const reserveOf = async (keyId: string): Promise<bigint> => {
    const listed = (await cli.ok('cb', 'intermediaries', ...cb.at))['intermediaries'] as Json[];
    return BigInt(String(listed.find((i) => i['keyId'] === keyId)?.['reserve']).replace('.', ''));
  };
  const reserveA = await reserveOf(bankA.keyId);
  const reserveB = await reserveOf(bankB.keyId);

  // Offline, bank A stopped: bob asks 15.00, alice pays it in two of A's tokens (10 + 5).
  await bankA.stop();
  const asked = await atB.listen('bob', '15.00');
  const paid = await atA.ok('pay', 'alice', '--connect', `127.0.0.1:${asked.port}`, '--expect', '15.00');
  assert.equal(await asked.exit, 0);
  assert.deepEqual([paid['amount'], paid['tokens'], paid['offline']], ['15.00', 2, '20.00']);
  assert.equal(asked.lines.at(-1)?.['offline'], '15.00');
  // A copy of bob's wallet folder (its sealed state and file counter) holds the same two tokens.
  await cp(join(homeB, 'wallets', 'bob'), join(homeB, 'wallets', 'bob-copy'), { recursive: true });
  const copyHolds = await atB.ok('wallet', 'balance', 'bob-copy');
  assert.equal(copyHolds['offline'], '15.00', JSON.stringify(copyHolds));

  // Bob deposits at B while A is still down: B presents A's tokens as claims; nothing credited yet.
  const presented = await atB.ok('wallet', 'withdraw', 'bob', '15.00');
  assert.deepEqual([presented['credited'], presented['presented'], presented['doubleSpent'], presented['refused']], ['0.00', 2, 0, 0], JSON.stringify(presented));
  await cli.ok('node', 'reserve', ...bankB.at);
  assert.equal((await atB.ok('wallet', 'balance', 'bob'))['online'], '0.00');
  assert.equal(await reserveOf(bankB.keyId), reserveB, 'no reserve moves while A is down');
  // The copy's deposit of the same tokens: B recorded their serials, and refuses them on the spot.
  const copied = await atB.refused('DOUBLE_SPEND', ['wallet', 'withdraw', 'bob-copy', '15.00']);
  assert.equal((copied['details'] as Json)['coins'], 2, JSON.stringify(copied));
  const copyLeft = await atB.ok('wallet', 'balance', 'bob-copy');
  assert.deepEqual([copyLeft['online'], copyLeft['offline']], ['0.00', '0.00']);

  // A is back: the claims are judged at A, the central bank moves 15.00 from A's reserve to B's, B credits bob.
  await bankA.restart();
  await tiers.audit();
  assert.equal((await atB.ok('wallet', 'balance', 'bob'))['online'], '15.00');
  assert.equal(await reserveOf(bankA.keyId), reserveA - 1500n);
  assert.equal(await reserveOf(bankB.keyId), reserveB + 1500n);
  // Alice deposits her last tokens at home; the copy shares bob's account, credited once.
  const home = await atA.ok('wallet', 'withdraw', 'alice', 'all');
  assert.deepEqual([home['credited'], home['presented']], ['20.00', 0]);
  assert.equal((await atA.ok('wallet', 'balance', 'alice'))['online'], '35.00');
  assert.equal((await atB.ok('wallet', 'balance', 'bob-copy'))['online'], '15.00');
  const system = await tiers.audit();
  assert.equal(await reserveOf(bankB.keyId), reserveB + 1500n);
  assert.equal(system['issued'], system['reserves']);
});
