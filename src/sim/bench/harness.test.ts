/**
 * The one harness: every report starts with a `Machine:` line, a ratio below 1 gives the noise
 * warning (and only then), the metering provider counts by phase and replays what it recorded,
 * and what a bench started is stopped when its run ends, even when it fails.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { nodeProvider } from '../../providers/node-crypto.ts';
import { runBench } from './harness.ts';
import { machineLine, noiseWarnings, thisMachine } from './machine.ts';
import { CryptoMeter } from './meter.ts';
import type { BenchPlugin } from './plugin.ts';

const quiet = { env: {}, progress: () => undefined };

function fakeBench(ratios: number[], seen: { dir?: string; parameters?: unknown } = {}): BenchPlugin<{ n: number }, { n: number }> {
  return {
    name: 'fake',
    paper: 'Paper',
    reproduces: 'Table 9',
    parameters: { quick: { n: 1 }, full: { n: 2 } },
    async run(harness, parameters) {
      seen.dir = await harness.tempDir('fake');
      seen.parameters = parameters;
      return { report: parameters, text: '| a | b |', ratios: ratios.map((value, k) => ({ what: `ratio ${k}`, value })) };
    },
  };
}

test('every report starts with the Machine line and names the paper; --quick picks the quick parameters', async () => {
  const seen: { dir?: string; parameters?: unknown } = {};
  const out = await runBench(fakeBench([1.5, 3], seen), { quick: true, ...quiet });
  const lines = out.text.split('\n');
  assert.match(lines[0] ?? '', /^Machine: .+, \d+ cores, \d+ GiB, Node v\d+/);
  assert.equal(lines[1], 'Paper: Table 9 (--quick)');
  assert.ok(out.text.includes('| a | b |'));
  assert.deepEqual(seen.parameters, { n: 1 });
  assert.deepEqual(out.warnings, []);
  assert.equal(out.json.machine.node, process.version);
  assert.deepEqual(out.json.report, { n: 1 });
  // The temporary folder is gone once the run ended.
  assert.ok(seen.dir !== undefined && !existsSync(seen.dir));

  const full = await runBench(fakeBench([2], seen), { quick: false, ...quiet });
  assert.deepEqual(seen.parameters, { n: 2 });
  assert.equal(full.text.split('\n')[1], 'Paper: Table 9');
});

test('a ratio below 1 gives the noise warning, in the text and the JSON; 1 and above do not', async () => {
  const out = await runBench(fakeBench([1, 0.8, 4]), { quick: true, ...quiet });
  assert.equal(out.warnings.length, 1);
  assert.match(out.warnings[0] ?? '', /WARNING: 1 ratio\(s\) below 1 \(ratio 1 = 0\.80x\).*too noisy/);
  assert.ok(out.text.endsWith(out.warnings[0] ?? 'missing'));
  assert.deepEqual(out.json.warnings, out.warnings);
  assert.deepEqual(noiseWarnings([{ what: 'x', value: 1 }, { what: 'y', value: Number.NaN }]), []);
});

test('a failing bench still has what it started stopped', async () => {
  let dir: string | undefined;
  const failing: BenchPlugin<null, null> = {
    name: 'failing',
    paper: 'Paper',
    reproduces: 'nothing',
    parameters: { quick: null, full: null },
    async run(harness) {
      dir = await harness.tempDir('failing');
      throw new Error('boom');
    },
  };
  await assert.rejects(runBench(failing, { quick: true, ...quiet }), /boom/);
  assert.ok(dir !== undefined && !existsSync(dir));
});

test('the Machine line says the CPU, the cores and the Node version', () => {
  const m = thisMachine();
  const line = machineLine(m);
  assert.ok(line.startsWith(`Machine: ${m.cpu}, ${m.cores} cores`));
  assert.ok(line.includes(`Node ${process.version}`));
});

test('the metering provider counts by phase only while armed, and replays what it recorded', async () => {
  const meter = new CryptoMeter(nodeProvider, ['one', 'two'] as const);
  const suite = meter.provider.suites.ed25519;
  const secretKey = suite.generateSecretKey();
  const publicKey = suite.publicKey(secretKey);
  const message = new Uint8Array([1, 2, 3]);
  suite.sign(secretKey, message);
  meter.arm();
  const signature = suite.sign(secretKey, message);
  meter.enter('two');
  assert.equal(suite.verify(publicKey, signature, message), true);
  assert.equal(suite.verify(publicKey, signature, message), true);
  const { counts, replay } = meter.disarm();
  suite.verify(publicKey, signature, message);
  assert.deepEqual(counts, { signs: 1, verifies: 2, byPhase: { one: { signs: 1, verifies: 0 }, two: { signs: 0, verifies: 2 } } });
  assert.deepEqual(replay.counts, { signs: 1, verifies: 2 });
  assert.equal(replay.messageBytes, 9);
  const latency = replay.latency(5);
  assert.equal(latency.samples, 5);
  assert.ok(latency.p50Ms > 0);

  // measure() counts what its function does, and a recorded verification that no longer holds fails the replay.
  const forged = Uint8Array.from(signature);
  forged[0] = (forged[0] ?? 0) ^ 1;
  const measured = await meter.measure(() => suite.verify(publicKey, forged, message));
  assert.deepEqual(measured.counts.byPhase.one, { signs: 0, verifies: 1 });
  assert.throws(() => measured.replay.once(), /failed to verify on replay/);
});

test('harness.chain() starts an embedded anvil with the bank funded, and the run\'s end stops it', async () => {
  let rpcUrl = '';
  const chainBench: BenchPlugin<null, { chainId: number; bankWei: string }> = {
    name: 'chain-service',
    paper: 'Tally',
    reproduces: 'nothing',
    parameters: { quick: null, full: null },
    async run(harness) {
      const chain = await harness.chain();
      rpcUrl = chain.rpcUrl;
      assert.equal(chain.embedded, true);
      const bankWei = await chain.publicClient.getBalance({ address: chain.bankAddress });
      assert.ok(bankWei > 0n, 'the bank has gas');
      return { report: { chainId: chain.chainId, bankWei: bankWei.toString() }, text: '', ratios: [] };
    },
  };
  const out = await runBench(chainBench, { quick: true, ...quiet });
  assert.equal((out.json.report as { chainId: number }).chainId, 31337);
  // Stopped: the endpoint no longer answers.
  await assert.rejects(fetch(rpcUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_chainId', params: [] }) }));
});
