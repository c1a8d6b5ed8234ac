import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rename, rm, stat, truncate } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { isTallyError } from '../../core/errors.ts';
import { nodeProvider } from '../../providers/node-crypto.ts';
import { ANVIL_CHAIN_ID, ANVIL_STATE_INTERVAL_S, anvilFiles, freePort, startAnvil, type AnvilExit } from './anvil.ts';
import { openChainService, type ChainService } from './service.ts';
import { anvilPidOf, boxContract, boxValue, canListProcesses, chainProcessesOf, deployBox, PASSPHRASE, setBox, withIdentity } from './test-fixtures.ts';

const CHILD = fileURLToPath(new URL('./test-anvil-child.ts', import.meta.url));

let base = '';
let n = 0;
const fresh = () => join(base, `data-${++n}`);
const open: ChainService[] = [];

async function rpc(url: string, method: string, params: unknown[] = []): Promise<unknown> {
  const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }) });
  return ((await response.json()) as { result: unknown }).result;
}

async function chainOf(dataDir: string, log?: (line: string) => void): Promise<ChainService> {
  const { service } = await openChainService({ dataDir, passphrase: PASSPHRASE, provider: nodeProvider, log });
  open.push(service);
  return service;
}

/** Waits until no process of `dataDir`'s chain is left, at most `ms`; answers those left. */
async function gone(dataDir: string, ms = 10_000): Promise<number[]> {
  const deadline = Date.now() + ms;
  for (;;) {
    const left = await chainProcessesOf(dataDir);
    if (left.length === 0 || Date.now() > deadline) return left;
    await new Promise((wait) => setTimeout(wait, 100));
  }
}

describe('the embedded anvil', { skip: process.platform === 'win32' ? 'the watcher and the process checks are POSIX' : false }, () => {
  let procfs = false;
  before(async () => {
    base = await mkdtemp(join(tmpdir(), 'tally-anvil-'));
    procfs = await canListProcesses();
    boxContract();
  });
  after(async () => {
    for (const service of open) await service.close();
    await rm(base, { recursive: true, force: true });
  });

  it('starts on 127.0.0.1 on a port of its own with the fixed chain id, answers, and stops leaving no process', async () => {
    const dataDir = fresh();
    const exits: AnvilExit[] = [];
    const anvil = await startAnvil({ dataDir, onExit: (exit) => exits.push(exit) });
    assert.match(anvil.rpcUrl, /^http:\/\/127\.0\.0\.1:[0-9]+$/);
    assert.notEqual(anvil.port, 8545, 'a free port, not anvil’s default');
    assert.equal(await rpc(anvil.rpcUrl, 'eth_chainId'), `0x${ANVIL_CHAIN_ID.toString(16)}`);
    assert.equal(await rpc(anvil.rpcUrl, 'anvil_getAutomine'), true, 'it mines each transaction as it comes');
    if (procfs) assert.ok((await chainProcessesOf(dataDir)).includes(anvil.pid), 'anvil runs, its command line naming the state file');
    assert.equal(anvil.exit, null);
    await anvil.stop();
    assert.deepEqual(anvil.exit, { code: 0, signal: null, requested: true });
    assert.deepEqual(exits, [anvil.exit]);
    if (procfs) assert.deepEqual(await gone(dataDir), [], 'neither anvil nor its watcher is left');
    await assert.rejects(fetch(anvil.rpcUrl), 'nothing listens on its port any more');
    const files = anvilFiles(dataDir);
    assert.ok((await stat(files.state)).size > 0, 'the state was dumped on exit');
    assert.match(await readFile(files.log, 'utf8'), new RegExp(`Listening on 127\\.0\\.0\\.1:${anvil.port}`));
    assert.equal((await stat(files.dir)).mode & 0o777, 0o700);
  });

  it('takes another port when the one it picked is taken, even by another anvil answering there', async () => {
    const dataDir = fresh();
    const taken = await startAnvil({ dataDir: fresh() });
    const picked: number[] = [];
    const anvil = await startAnvil({
      dataDir,
      pickPort: async () => {
        const port = picked.length === 0 ? taken.port : await freePort();
        picked.push(port);
        return port;
      },
    });
    assert.equal(picked[0], taken.port);
    assert.ok(picked.length >= 2, 'it tried again');
    assert.equal(anvil.port, picked.at(-1));
    assert.notEqual(anvil.rpcUrl, taken.rpcUrl);
    // Its own chain, not the other one's: a block mined here is not mined there.
    await rpc(anvil.rpcUrl, 'evm_mine');
    assert.equal(await rpc(anvil.rpcUrl, 'eth_blockNumber'), '0x1');
    assert.equal(await rpc(taken.rpcUrl, 'eth_blockNumber'), '0x0');
    assert.match(await readFile(anvilFiles(dataDir).log, 'utf8'), /Address already in use/);
    await Promise.all([anvil.stop(), taken.stop()]);
  });

  it('is killed when it does not end within its bound after SIGTERM', async (t) => {
    if (!procfs) return t.skip('needs /proc');
    const dataDir = fresh();
    const anvil = await startAnvil({ dataDir, stopTimeoutMs: 500 });
    // A stopped process takes no signal but SIGKILL: SIGTERM stays pending.
    process.kill(anvil.pid, 'SIGSTOP');
    const started = Date.now();
    await anvil.stop();
    assert.ok(Date.now() - started >= 450, 'it waited its bound first');
    assert.deepEqual(anvil.exit, { code: null, signal: 'SIGKILL', requested: true });
    assert.deepEqual(await gone(dataDir), []);
  });

  it('keeps a contract and its storage across a stop and a start', async () => {
    const dataDir = fresh();
    await withIdentity(dataDir);
    const first = await chainOf(dataDir);
    const box = await deployBox(first);
    await setBox(first, box, 42n);
    const mined = await first.publicClient.getBlockNumber();
    await first.close();
    const second = await chainOf(dataDir);
    assert.notEqual(second.rpcUrl, first.rpcUrl, 'another port, the same chain');
    assert.equal(await boxValue(second, box), 42n);
    assert.ok((await second.publicClient.getBlockNumber()) >= mined, 'the blocks are kept too');
    await setBox(second, box, 43n);
    await second.close();
    const third = await chainOf(dataDir);
    assert.equal(await boxValue(third, box), 43n);
    assert.ok((await stat(anvilFiles(dataDir).backup)).size > 0, 'a copy of the state a start loaded is kept');
    await third.close();
  });

  it(`a SIGKILLed anvil, started again, keeps what was mined more than ${ANVIL_STATE_INTERVAL_S} s before`, async (t) => {
    if (!procfs) return t.skip('needs /proc to find the anvil');
    const dataDir = fresh();
    await withIdentity(dataDir);
    const lines: string[] = [];
    const first = await chainOf(dataDir, (line) => lines.push(line));
    const box = await deployBox(first);
    await setBox(first, box, 7n);
    // Past the next periodic dump, with room for a loaded machine.
    await new Promise((wait) => setTimeout(wait, ANVIL_STATE_INTERVAL_S * 1000 + 1500));
    const pid = await anvilPidOf(dataDir);
    assert.ok(pid !== undefined, 'the anvil is found');
    process.kill(pid, 'SIGKILL');
    assert.deepEqual(await gone(dataDir), [], 'the watcher ends with its anvil');
    assert.ok(lines.some((line) => /the embedded anvil ended by itself \(SIGKILL\)/.test(line)), lines.join('\n'));
    await first.close();
    const second = await chainOf(dataDir);
    assert.equal(await boxValue(second, box), 7n);
    await second.close();
  });

  it('runs one chain per data folder side by side, each on its own port', async () => {
    const [a, b] = [fresh(), fresh()];
    await Promise.all([withIdentity(a), withIdentity(b)]);
    const [left, right] = await Promise.all([chainOf(a), chainOf(b)]);
    assert.notEqual(left.rpcUrl, right.rpcUrl);
    assert.notEqual(left.bankAddress, right.bankAddress, 'each node has its own bank key');
    const [boxA, boxB] = await Promise.all([deployBox(left), deployBox(right)]);
    await Promise.all([setBox(left, boxA, 1n), setBox(right, boxB, 2n)]);
    assert.equal(await boxValue(left, boxA), 1n);
    assert.equal(await boxValue(right, boxB), 2n);
    assert.equal(await right.publicClient.getCode({ address: boxA }), undefined, 'the other chain does not have it');
    await Promise.all([left.close(), right.close()]);
    if (procfs) assert.deepEqual([...(await gone(a)), ...(await gone(b))], []);
  });

  it('ends with the process that started it, even one killed outright, and dumps its chain first', async (t) => {
    if (!procfs) return t.skip('needs /proc');
    const dataDir = fresh();
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD, dataDir], { stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = new Promise((done) => child.once('exit', done));
    try {
      const started = await new Promise<{ pid: number; rpcUrl: string }>((ready, fail) => {
        createInterface({ input: child.stdout }).once('line', (line) => ready(JSON.parse(line) as { pid: number; rpcUrl: string }));
        child.once('exit', (code) => fail(new Error(`the child exited with ${code}`)));
      });
      for (let i = 0; i < 3; i++) await rpc(started.rpcUrl, 'evm_mine');
      assert.equal(await rpc(started.rpcUrl, 'eth_blockNumber'), '0x3');
      child.kill('SIGKILL');
      await exited;
      assert.deepEqual(await gone(dataDir), [], 'no anvil outlives the process that started it');
    } finally {
      child.kill('SIGKILL');
    }
    // The watcher asked anvil to end (SIGTERM), so even the last blocks were dumped.
    const again = await startAnvil({ dataDir });
    assert.equal(await rpc(again.rpcUrl, 'eth_blockNumber'), '0x3');
    await again.stop();
  });

  it('refuses a torn state file in one line naming the copy from the last start, and starts from that copy once moved in place', async () => {
    const dataDir = fresh();
    const files = anvilFiles(dataDir);
    const first = await startAnvil({ dataDir });
    await rpc(first.rpcUrl, 'evm_mine');
    await first.stop();
    const second = await startAnvil({ dataDir });
    await rpc(second.rpcUrl, 'evm_mine');
    await second.stop();
    // As a dump cut short leaves it.
    await truncate(files.state, Math.floor((await stat(files.state)).size / 2));
    await assert.rejects(startAnvil({ dataDir }), (e: unknown) => {
      assert.ok(isTallyError(e, 'STATE_CORRUPT'), String(e));
      assert.ok(e.message.includes(files.state) && e.message.includes(files.backup), e.message);
      assert.doesNotMatch(e.message, /\n/);
      return true;
    });
    if (procfs) assert.deepEqual(await gone(dataDir), []);
    await rename(files.backup, files.state);
    const restored = await startAnvil({ dataDir });
    assert.equal(await rpc(restored.rpcUrl, 'eth_blockNumber'), '0x1', 'the chain as the second start loaded it');
    await restored.stop();
  });
});
