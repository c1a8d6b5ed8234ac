import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Address } from 'viem';
import { currency } from '../../core/amount.ts';
import { nodeProvider } from '../../providers/node-crypto.ts';
import { closeTestTemplates, testBackends, type TestDatabase } from '../db/test-databases.ts';
import { createIssuerApp } from '../http/app.ts';
import { requireChain } from '../http/context.ts';
import type { SchemeModule } from '../http/scheme-module.ts';
import { openNode, type OpenNode } from '../services.ts';
import { CHAIN_DIR } from './anvil.ts';
import { boxContract, boxValue, canListProcesses, chainProcessesOf, deployBox, PASSPHRASE } from './test-fixtures.ts';

const pglite = testBackends().find((backend) => backend.kind === 'pglite');

/** A scheme that settles on the chain: it deploys Box at its first start and shows where it is. */
function chainScheme(): SchemeModule & { deployedAt: () => Address | undefined; sawChainAtPrepare: () => boolean } {
  let box: Address | undefined;
  let sawChain = false;
  return {
    name: 'test-chain',
    usesChain: true,
    async prepare(services) {
      sawChain = services.chain !== undefined;
      box ??= await deployBox(requireChain(services, 'test-chain'));
    },
    info(services) {
      return { box: box ?? null, bank: requireChain(services, 'test-chain').bankAddress };
    },
    register() {},
    deployedAt: () => box,
    sawChainAtPrepare: () => sawChain,
  };
}

/** A scheme without a chain, showing something of itself. */
const plainScheme: SchemeModule = {
  name: 'test-plain',
  info: async () => ({ kind: 'plain', version: 1 }),
  register() {},
};

interface Running {
  node: OpenNode;
  database: TestDatabase;
  dataDir: string;
  info(): Promise<Record<string, unknown>>;
  close(): Promise<void>;
}

describe('a node and its chain', () => {
  let base = '';
  let n = 0;
  let procfs = false;
  const running: Running[] = [];
  before(async () => {
    base = await mkdtemp(join(tmpdir(), 'tally-node-chain-'));
    procfs = await canListProcesses();
    boxContract();
  });
  after(async () => {
    for (const node of running) await node.close();
    await closeTestTemplates();
    await rm(base, { recursive: true, force: true });
  });

  async function start(schemes: readonly SchemeModule[], dataDir = join(base, `data-${++n}`)): Promise<Running> {
    if (pglite === undefined) throw new Error('no PGlite test backend');
    const database = await pglite.open();
    const node = await openNode({ dataDir, db: database.db, provider: nodeProvider, currency: currency('EUR', 2), env: { TALLY_NODE_PASSPHRASE: PASSPHRASE }, schemes });
    const app = createIssuerApp(node.services, schemes);
    let closed = false;
    const handle: Running = {
      node,
      database,
      dataDir,
      info: async () => (await (await app.request('/v1/info')).json()) as Record<string, unknown>,
      async close() {
        if (closed) return;
        closed = true;
        await node.close();
        await database.dispose();
      },
    };
    running.push(handle);
    return handle;
  }

  it('opens the chain before the schemes prepare, shows it and what the scheme shows in /v1/info, and stops it with the node', async () => {
    const scheme = chainScheme();
    const node = await start([scheme, plainScheme]);
    assert.equal(scheme.sawChainAtPrepare(), true);
    const chain = node.node.services.chain;
    assert.ok(chain !== undefined);
    const box = scheme.deployedAt();
    assert.ok(box !== undefined);
    const info = await node.info();
    assert.deepEqual(info['chain'], { rpcUrl: chain.rpcUrl, chainId: 31337, embedded: true, bankAddress: chain.bankAddress });
    assert.deepEqual(info['schemes'], { 'test-chain': { box, bank: chain.bankAddress }, 'test-plain': { kind: 'plain', version: 1 } });
    if (procfs) assert.ok((await chainProcessesOf(node.dataDir)).length > 0, 'its anvil runs');
    await node.close();
    if (procfs) assert.deepEqual(await chainProcessesOf(node.dataDir), [], 'closing the node stopped its anvil');
    await assert.rejects(fetch(chain.rpcUrl));
    // The next start finds the contract the first one deployed.
    const again = await start([scheme], node.dataDir);
    const reopened = again.node.services.chain;
    assert.ok(reopened !== undefined);
    assert.equal(scheme.deployedAt(), box);
    assert.equal(await boxValue(reopened, box), 0n);
    await again.close();
  });

  it('starts no chain for schemes that do not use one', async () => {
    const node = await start([plainScheme]);
    assert.equal(node.node.services.chain, undefined);
    const info = await node.info();
    assert.equal('chain' in info, false);
    assert.deepEqual(info['schemes'], { 'test-plain': { kind: 'plain', version: 1 } });
    assert.equal(await stat(join(node.dataDir, CHAIN_DIR)).then(() => true, () => false), false, 'no chain folder');
    if (procfs) assert.deepEqual(await chainProcessesOf(node.dataDir), [], 'no anvil');
    const none = await start([]);
    assert.deepEqual((await none.info())['schemes'], {});
    await Promise.all([node.close(), none.close()]);
  });

  it('runs two nodes of two data folders side by side, each with its own chain', async () => {
    const [left, right] = await Promise.all([start([chainScheme()]), start([chainScheme()])]);
    const [a, b] = [left.node.services.chain, right.node.services.chain];
    assert.ok(a !== undefined && b !== undefined);
    assert.notEqual(a.rpcUrl, b.rpcUrl);
    assert.notEqual(a.bankAddress, b.bankAddress);
    assert.deepEqual([(await left.info())['chain'], (await right.info())['chain']].map((chain) => (chain as { embedded: boolean }).embedded), [true, true]);
    await Promise.all([left.close(), right.close()]);
    if (procfs) assert.deepEqual([...(await chainProcessesOf(left.dataDir)), ...(await chainProcessesOf(right.dataDir))], []);
  });
});
