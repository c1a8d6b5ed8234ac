import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { startAnvil, type Anvil } from '../issuer/chain/anvil.ts';
import { canListProcesses, chainProcessesOf } from '../issuer/chain/test-fixtures.ts';
import { BIN, killChildren, track } from './e2e-process.ts';

const PASSPHRASE = 'node start chain test';

/** Runs `tally node start ARGS --json` until it listens (answering its events) or ends (answering how). */
function nodeStart(dataDir: string, args: readonly string[], env: Record<string, string> = {}) {
  const child = spawn(process.execPath, [BIN, 'node', 'start', '--port', '0', '--data', dataDir, ...args, '--json'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, TALLY_ETH_RPC: '', ...env, TALLY_NODE_PASSPHRASE: PASSPHRASE },
  });
  track(child);
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((done) => child.on('exit', (code) => done(code)));
  const outcome = new Promise<{ listening: Record<string, unknown> } | { code: number | null; stderr: string }>((done) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    createInterface({ input: child.stdout }).on('line', (line) => {
      const event = JSON.parse(line) as Record<string, unknown>;
      if (event['event'] === 'listening') {
        clearTimeout(timer);
        done({ listening: event });
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      done({ code, stderr });
    });
  });
  return { outcome, stop: () => (child.kill('SIGINT'), exited) };
}

/** The lines of stderr that are not structured log lines. */
const messages = (stderr: string) => stderr.split('\n').filter((line) => line !== '' && !line.startsWith('{'));

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((ready) => server.listen(0, '127.0.0.1', ready));
  const port = (server.address() as AddressInfo).port;
  await new Promise((closed) => server.close(closed));
  return port;
}

describe('tally node start and the chain', () => {
  let base = '';
  let other: Anvil;
  let procfs = false;
  before(async () => {
    base = await mkdtemp(join(tmpdir(), 'tally-cli-chain-'));
    procfs = await canListProcesses();
    other = await startAnvil({ dataDir: join(base, 'other') });
  });
  after(async () => {
    killChildren();
    await other.stop();
    await rm(base, { recursive: true, force: true });
  });

  it('--eth-rpc uses that endpoint (before $TALLY_ETH_RPC) and starts no anvil; the listening event and /v1/info name the chain', async () => {
    const dataDir = join(base, 'external');
    const unreachable = `http://127.0.0.1:${await closedPort()}`;
    // The bank's key is made at the first start; on a chain the node does not run, nobody gives it
    // gas: a scheme that deploys contracts at start stops it with one line naming the address.
    const first = await nodeStart(dataDir, ['--eth-rpc', other.rpcUrl], { TALLY_ETH_RPC: unreachable }).outcome;
    assert.ok('code' in first, 'the first start should stop for want of gas');
    const noGas = /has not enough ETH for gas; send it some \[CHAIN_NO_GAS\]/;
    assert.match(messages(first.stderr).join('\n'), noGas, first.stderr);
    const bank = /account (0x[0-9a-fA-F]{40}) has not enough ETH/.exec(first.stderr)?.[1] as string;
    // The operator funds it (here with the dev chain's own call), and the next start deploys and listens.
    await fetch(other.rpcUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'anvil_setBalance', params: [bank, '0x3635c9adc5dea00000'] }) });
    const node = nodeStart(dataDir, ['--eth-rpc', other.rpcUrl], { TALLY_ETH_RPC: unreachable });
    const outcome = await node.outcome;
    assert.ok('listening' in outcome, `the node did not start: ${JSON.stringify(outcome)}`);
    const chain = outcome.listening['chain'] as { rpcUrl: string; chainId: number; embedded: boolean; bankAddress: string };
    assert.deepEqual({ ...chain, bankAddress: '' }, { rpcUrl: other.rpcUrl, chainId: 31337, embedded: false, bankAddress: '' });
    assert.equal(chain.bankAddress.toLowerCase(), bank.toLowerCase());
    const info = (await (await fetch(`${String(outcome.listening['url'])}/v1/info`)).json()) as { chain: unknown };
    assert.deepEqual(info.chain, chain);
    assert.equal(await stat(join(dataDir, 'chain')).then(() => true, () => false), false, 'no chain folder');
    if (procfs) assert.deepEqual(await chainProcessesOf(dataDir), [], 'no anvil of its own');
    assert.equal(await node.stop(), 0);
    assert.equal(other.exit, null, 'the other node runs on');
  });

  it('an endpoint that does not answer ends the start at once with one line; $TALLY_ETH_RPC is read when there is no --eth-rpc', async () => {
    const dataDir = join(base, 'unreachable');
    const port = await closedPort();
    for (const [args, env] of [[['--eth-rpc', `http://127.0.0.1:${port}`], {}], [[], { TALLY_ETH_RPC: `http://127.0.0.1:${port}` }]] as const) {
      const started = Date.now();
      const outcome = await nodeStart(dataDir, args, env).outcome;
      assert.ok('code' in outcome, 'it did not start');
      assert.equal(outcome.code, 1, outcome.stderr);
      const lines = messages(outcome.stderr);
      assert.equal(lines.length, 1, outcome.stderr);
      // The second run finds the data folder free again: the first let go of it.
      assert.equal(lines[0], `tally: cannot reach the Ethereum JSON-RPC endpoint http://127.0.0.1:${port} (connection refused): is the node running, and is the URL right? [CHAIN_UNREACHABLE]`);
      assert.ok(Date.now() - started < 45_000, `took ${Date.now() - started} ms`);
    }
  });

  it('refuses an --eth-rpc that is not an http(s) URL as bad usage', async () => {
    const outcome = await nodeStart(join(base, 'usage'), ['--eth-rpc', 'ws://127.0.0.1:8546']).outcome;
    assert.ok('code' in outcome);
    assert.equal(outcome.code, 2, outcome.stderr);
    assert.match(outcome.stderr, /^tally node start: --eth-rpc: expected an http:\/\/ or https:\/\/ URL, got "ws:\/\/127\.0\.0\.1:8546"\n/);
  });

  it('refuses a --chain-contract that is not an address as bad usage', async () => {
    const outcome = await nodeStart(join(base, 'usage-contract'), ['--chain-contract', '0x1234']).outcome;
    assert.ok('code' in outcome);
    assert.equal(outcome.code, 2, outcome.stderr);
    assert.match(outcome.stderr, /^tally node start: --chain-contract: expected an address \(0x and 40 hex digits\), got "0x1234"\n/);
  });
});
