/**
 * chain-tee across two intermediaries, every party its own process: a central bank and two banks
 * started with `tally node start` (bank A with its embedded anvil, which deploys the contracts; bank
 * B with `--eth-rpc` on A's chain and `--chain-contract` naming A's deployment), A admitting B on
 * chain, a wallet of each made with `tally wallet create --scheme chain`. A mints to alice out of its
 * reserve, alice deposits and pays bob offline over TCP + Noise (bob's TEE checks alice's chain to
 * the root through A's certificate), both sync through their own banks, and the money has moved on
 * chain with no reserve movement: every bank's audit and the central bank's balance.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { killChildren, type Json } from '../cli/e2e-process.ts';
import { startTwoTierProcesses } from './two-tier-fixture.ts';

const dirs: string[] = [];
after(async () => {
  killChildren();
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

async function getJson(url: string, init: RequestInit = {}): Promise<Json> {
  const res = await fetch(url, init);
  const body = (await res.json()) as Json;
  assert.ok(res.ok, `${init.method ?? 'GET'} ${url}: ${res.status} ${JSON.stringify(body)}`);
  return body;
}

/** Gives `address` ETH on the dev chain (anvil's own RPC), as a holder on a public chain would fund itself. */
async function fundGas(rpcUrl: string, address: string): Promise<void> {
  const res = await fetch(rpcUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'anvil_setBalance', params: [address, '0x8ac7230489e80000'] }) });
  assert.equal(res.status, 200);
}

test('chain-tee across two banks as processes: one deployment, an offline payment from a customer of A to one of B, settled on chain, every audit balanced', { timeout: 300_000 }, async () => {
  const base = await mkdtemp(join(tmpdir(), 'tally-two-tier-chain-'));
  dirs.push(base);
  let rpcUrl = '';
  let contract = '';
  const system = await startTwoTierProcesses({
    base,
    passphrase: 'two tier chain e2e',
    reserves: { a: '500.00', b: '500.00' },
    async bankBArgs(bankA) {
      const info = await getJson(`${bankA.node.url}/v1/info`);
      rpcUrl = String((info['chain'] as Json)['rpcUrl']);
      contract = String(((info['schemes'] as Json)['chain'] as Json)['contract']);
      return ['--eth-rpc', rpcUrl, '--chain-contract', contract];
    },
  });
  const { cli, bankA, bankB } = system;
  try {
    const infoB = await getJson(`${bankB.node.url}/v1/info`);
    assert.equal(((infoB['schemes'] as Json)['chain'] as Json)['contract'], contract, "B settles on A's deployment");
    await fundGas(rpcUrl, String((infoB['chain'] as Json)['bankAddress']));
    // A, the deployment's governor, admits B's chain address against B's signed record.
    const own = await getJson(`${bankB.node.url}/v1/chain/bank`);
    assert.equal(own['admitted'], false);
    const tokenA = (await readFile(join(bankA.dir, 'identity', 'operator-token'), 'utf8')).trim();
    await getJson(`${bankA.node.url}/v1/chain/operator/intermediaries`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${tokenA}`, 'idempotency-key': `admit-${Date.now()}` },
      body: JSON.stringify({ keyId: bankB.keyId, record: own['record'] }),
    });
    assert.equal((await getJson(`${bankB.node.url}/v1/chain/bank`))['admitted'], true);

    await cli.ok('operator', 'oem', ...bankA.at);
    await cli.ok('operator', 'oem', ...bankB.at);
    const alice = await cli.ok('wallet', 'create', 'alice', '--scheme', 'chain', '--node', bankA.node.url);
    const bob = await cli.ok('wallet', 'create', 'bob', '--scheme', 'chain', '--node', bankB.node.url);
    // B's node is not on its own dev chain: its customers bring their own gas.
    await fundGas(rpcUrl, String(bob['onChainAccount']));
    assert.notEqual(alice['onChainAccount'], bob['onChainAccount']);
    await cli.ok('operator', 'mint', 'alice', '50.00', ...bankA.at);
    assert.equal((await cli.ok('wallet', 'deposit', 'alice', '30.00'))['offline'], '30.00');

    // Offline, alice (bank A) pays bob (bank B).
    const toBob = await cli.listen('bob', '20.00');
    const paid = await cli.ok('pay', 'alice', '--connect', `127.0.0.1:${toBob.port}`, '--expect', '20.00');
    assert.equal(await toBob.exit, 0);
    assert.deepEqual([paid['amount'], paid['credited'], paid['offline']], ['20.00', true, '10.00']);

    // Each syncs through its own bank, on the one contract.
    const bobSync = await cli.ok('sync', 'bob');
    assert.deepEqual([bobSync['offline'], bobSync['onChain']], ['20.00', '20.00']);
    const aliceSync = await cli.ok('sync', 'alice');
    assert.deepEqual([aliceSync['offline'], aliceSync['onChain']], ['10.00', '10.00']);

    // No claim and no reserve movement: the tokens moved on chain.
    for (const b of [bankA, bankB]) assert.equal((await cli.ok('node', 'reserve', ...b.at))['reserve'], '500.00');
    await system.audit();
    const auditA = await cli.ok('audit', ...bankA.at);
    const chainA = (auditA['schemes'] as { scheme: string; details: Json }[]).find((s) => s.scheme === 'chain');
    assert.deepEqual([chainA?.details['mintedHere'], chainA?.details['supply']], ['50.00', '50.00']);
  } finally {
    await system.stop();
  }
});
