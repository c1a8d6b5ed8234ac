/**
 * chain-tee end to end through the `tally` command line, every party its own process: an issuer
 * node with its embedded anvil, three wallets (alice, bob, carol), each command a fresh `tally`
 * process whose secure element is another child process. The bank mints to alice's on-chain
 * account; she deposits into her offline account; with the node and the chain stopped she pays bob
 * over TCP + Noise, bob (no deposit) pays carol, and a cloned copy of alice's wallet folder spends
 * her counter again. Online again (the chain reloaded from its state file) everyone syncs: the fork
 * freezes alice on chain and in her TEE, carol is honoured up to what alice held and her TEE gives
 * back the rest; carol withdraws, bob closes his account. The audit ends it, the chain's part too.
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

const NODE = { passphrase: 'chain e2e' };

test('chain-tee through the CLI: mint and deposit on chain, offline payments with the chain down, a cloned wallet’s fork caught on chain, withdrawal, closing, audit balanced', { timeout: 300_000 }, async () => {
  const root = await mkdtemp(join(tmpdir(), 'tally-chain-e2e-'));
  dirs.push(root);
  const home = join(root, 'home');
  const dataDir = join(root, 'node');
  const nodeOptions = { ...NODE, args: await nodeDatabaseArgs() };
  let node = await startNode(dataDir, 0, nodeOptions);
  const env: Record<string, string | undefined> = { ...process.env, TALLY_HOME: home, TALLY_NODE: node.url };
  env['TALLY_OPERATOR_TOKEN'] = (await readFile(join(dataDir, 'identity', 'operator-token'), 'utf8')).trim();
  const { ok, refused, listen } = cliOf(env);

  await ok('operator', 'oem');
  const created = await Promise.all(['alice', 'bob', 'carol'].map((name) => ok('wallet', 'create', name, '--scheme', 'chain')));
  assert.deepEqual(created.map((w) => w['scheme']), ['chain', 'chain', 'chain']);
  const minted = await ok('operator', 'mint', 'alice', '100.00');
  assert.equal(minted['to'], created[0]?.['onChainAccount']);
  const deposit = await ok('wallet', 'deposit', 'alice', '60.00');
  assert.equal(deposit['offline'], '60.00');
  await refused('CHAIN_REVERTED', ['wallet', 'deposit', 'alice', '41.00']);
  const before = await ok('wallet', 'balance', 'alice');
  assert.deepEqual([before['offline'], before['onChainAccount'], before['walletTokens']], ['60.00', '60.00', '40.00']);
  await Promise.all(['bob', 'carol'].map((name) => ok('sync', name)));

  // Offline: the node, and the chain with it, stopped.
  await node.stop();
  const toBob = await listen('bob', '25.00');
  const paid = await ok('pay', 'alice', '--connect', `127.0.0.1:${toBob.port}`, '--expect', '25.00');
  assert.equal(await toBob.exit, 0);
  assert.deepEqual([paid['amount'], paid['credited'], paid['offline']], ['25.00', true, '35.00']);
  const greedy = await listen('bob', '9.00');
  await refused('PAYMENT_INVALID', ['pay', 'alice', '--connect', `127.0.0.1:${greedy.port}`, '--expect', '5.00']);
  assert.equal(await greedy.exit, 1);
  // bob never deposited: he pays carol from what alice paid him.
  const toCarol = await listen('carol', '10.00');
  const respent = await ok('pay', 'bob', '--connect', `127.0.0.1:${toCarol.port}`);
  assert.equal(await toCarol.exit, 0);
  assert.equal(respent['offline'], '15.00');
  // A copy of alice's wallet folder spends her next counter again: 5.00 to bob from alice, 35.00 to carol from the copy.
  await cp(join(home, 'wallets', 'alice'), join(home, 'wallets', 'alice-clone'), { recursive: true });
  const again = await listen('bob', '5.00');
  await ok('pay', 'alice', '--connect', `127.0.0.1:${again.port}`);
  assert.equal(await again.exit, 0);
  const forked = await listen('carol', '35.00');
  await ok('pay', 'alice-clone', '--connect', `127.0.0.1:${forked.port}`);
  assert.equal(await forked.exit, 0);

  // Online again: the chain comes back from its state file with the contracts and balances.
  node = await startNode(dataDir, node.port, nodeOptions);
  const bobSync = await ok('sync', 'bob');
  assert.equal(bobSync['onChain'], '20.00', 'bob: 25.00 + 5.00 from alice, 10.00 to carol (applied once his receipt is)');
  const carolSync = await ok('sync', 'carol');
  assert.equal(carolSync['charged'], '5.00', 'alice held 30.00 for the second branch of 35.00');
  assert.deepEqual([carolSync['offline'], carolSync['onChain']], ['40.00', '40.00']);
  const aliceSync = await ok('sync', 'alice');
  assert.equal(aliceSync['status'], 'frozen');
  const frozen = listen('bob', '1.00');
  const bobListening = await frozen;
  await refused('SE_REJECTED', ['pay', 'alice', '--connect', `127.0.0.1:${bobListening.port}`]);
  await bobListening.exit;

  // carol withdraws to her on-chain account; bob closes his offline account to his.
  const out = await ok('wallet', 'withdraw', 'carol', '12.50');
  assert.equal(((out['sync'] as Json)['offline']), '27.50');
  assert.equal((await ok('wallet', 'balance', 'carol'))['walletTokens'], '12.50');
  const closed = await ok('wallet', 'close', 'bob');
  assert.equal(closed['amount'], '20.00');
  assert.equal((await ok('wallet', 'balance', 'bob'))['walletTokens'], '20.00');

  const audit = await ok('audit');
  assert.equal(audit['balanced'], true, JSON.stringify(audit['schemes']));
  const chainPart = (audit['schemes'] as { scheme: string; balanced: boolean; details: Json }[]).find((s) => s.scheme === 'chain');
  assert.equal(chainPart?.balanced, true);
  assert.equal(chainPart?.details['supply'], '100.00');
  assert.equal(await node.stop(), 0);
});
