/**
 * The registry is the one place a scheme is added: the toy scheme (a folder of its own, not in the
 * production list) is mounted here by adding it to the list, and the node serves its routes, the CLI
 * creates its wallets, loads them and pays with them, and refuses what it does not offer.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { isTallyError } from '../core/errors.ts';
import { DEFAULT_CURRENCY, startNode, type RunningNode } from '../cli/node-start.ts';
import { seedPgliteCluster } from '../issuer/db/test-pglite-cluster.ts';
import type { VerbIo } from '../cli/plugin.ts';
import { buildVerbs } from '../cli/verbs/index.ts';
import { SCHEMES, type Scheme } from './index.ts';
import { toy } from './toy/index.ts';

const quiet = { log: () => undefined };
const io: VerbIo = { env: {}, progress: () => undefined, announce: () => undefined };

describe('the registry', () => {
  test('lists ops, dotm, otp and chain, each named once, with a paper and capabilities; the toy scheme is not in it', () => {
    assert.deepEqual(SCHEMES.map((s) => s.name), ['ops', 'dotm', 'otp', 'chain', 'opera']);
    for (const scheme of SCHEMES) {
      assert.ok(scheme.paper.title.length > 0 && scheme.capabilities.length > 0, scheme.name);
      assert.ok(scheme.wallet.trustedApps.every((app) => app.scheme === scheme.name), `${scheme.name}: its trusted apps run it`);
    }
    assert.ok(!SCHEMES.includes(toy));
  });

  test("each scheme's node part carries the scheme's name", async () => {
    for (const scheme of SCHEMES) assert.equal((await scheme.node()).name, scheme.name);
  });
});

describe('a scheme added by one line: the toy purse', () => {
  const schemes: readonly Scheme[] = [...SCHEMES, toy];
  const verbs = buildVerbs(schemes);
  let root: string;
  let node: RunningNode;
  const run = async (words: string, ...args: string[]) => {
    const verb = verbs[words];
    assert.ok(verb !== undefined, words);
    return verb.run([...args, '--home', join(root, 'home'), '--json'], io);
  };

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'tally-registry-'));
    await seedPgliteCluster(join(root, 'node'));
    node = await startNode({ port: 0, host: '127.0.0.1', dataDir: join(root, 'node'), env: { TALLY_NODE_PASSPHRASE: 'registry test' }, currency: DEFAULT_CURRENCY, logger: quiet, print: () => undefined, schemes });
  });
  after(async () => {
    await node.stop();
    await rm(root, { recursive: true, force: true });
  });

  test('`tally schemes` lists it with its verbs and capabilities', async () => {
    const listed = (await run('schemes')).json['schemes'] as { name: string; verbs: string[]; capabilities: { name: string }[] }[];
    assert.deepEqual(listed.map((s) => s.name), ['ops', 'dotm', 'otp', 'chain', 'opera', 'toy']);
    const entry = listed.find((s) => s.name === 'toy');
    assert.deepEqual(entry?.capabilities.map((c) => c.name), ['token-payments', 'deposit']);
    assert.ok(entry?.verbs.includes('wallet deposit') && entry.verbs.includes('pay') && !entry.verbs.includes('wallet withdraw') && !entry.verbs.includes('collect'), entry?.verbs.join(', '));
  });

  test('the node serves its routes; the CLI creates, loads and pays with its wallets; what it does not offer is WALLET_UNSUPPORTED; the audit balances', async () => {
    const refused = await fetch(`${node.url}/v1/toy/loads`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"amount":"1.00"}' });
    assert.equal(refused.status, 401, 'its route is mounted under /v1/toy/ and asks for a signed caller');

    const created = await run('wallet create', 'ann', '--scheme', 'toy', '--node', node.url);
    assert.equal(created.json['scheme'], 'toy');
    await run('operator mint', 'ann', '10.00', '--node', node.url, '--token', node.operatorToken);
    const loaded = await run('wallet deposit', 'ann', '4.00');
    assert.equal(loaded.json['offline'], '4.00');
    const paid = await run('pay', 'ann', `1.50@${'ab'.repeat(32)}`);
    assert.equal(paid.json['amount'], '1.50');
    assert.match(String(paid.json['receipt']), /^[A-Za-z0-9_-]+$/);
    const balance = await run('wallet balance', 'ann');
    assert.equal(balance.json['offline'], '2.50');
    assert.equal(balance.json['online'], '6.00');

    for (const [words, ...args] of [['wallet withdraw', 'ann', '1.00'], ['collect', 'ann'], ['pay', 'ann', '--connect', '127.0.0.1:9'], ['wallet recover', 'ann']] as const) {
      await assert.rejects(run(words, ...args), (e: unknown) => isTallyError(e, 'WALLET_UNSUPPORTED') && /toy wallet/.test(e.message) && /wallet deposit/.test(e.message), words);
    }
    // A flag of another scheme is refused for this one, before anything runs.
    await assert.rejects(run('wallet deposit', 'ann', '1.00', '--blocks', '2'), /--blocks is for dotm wallets/);

    const audit = (await run('audit', '--node', node.url, '--token', node.operatorToken)).json as { balanced: boolean; currencies: { totalOfflineFloat: string }[] };
    assert.equal(audit.balanced, true);
    assert.equal(audit.currencies[0]?.totalOfflineFloat, '4.00', 'what was loaded is in the toy float (spent receipts stay offline)');
  });
});
