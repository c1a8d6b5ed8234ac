/**
 * `bench chain` at its quick size, so the benchmark cannot break unnoticed: every run's uploads
 * were built by real trusted apps and settled by the contract on a real anvil, the gas and times
 * are real figures in a sane range, each operation stands above its floor, the floor counts what
 * the commands really sign and verify, the money is conserved, and the report has every table.
 * And the pieces it is made of: the compact signatures against viem's, the statistics, the line
 * counter, the figure, the environment's settings.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseSignature, signatureToCompactSignature, type Hex } from 'viem';
import { randomBytes } from '../../core/crypto/hash.ts';
import { nodeProvider } from '../../providers/node-crypto.ts';
import { runBench } from '../../sim/bench/harness.ts';
import { compactSignature, hexOf, toUploadItem } from './bench-chain.ts';
import { figure3Svg } from './bench-figure.ts';
import { FLOOR_COMMANDS } from './bench-floor.ts';
import { CHAIN_CALLS, TA_COMMANDS } from './bench-lifecycle.ts';
import { codeLines } from './bench-loc.ts';
import { OPERATIONS, summary, type ChainBenchReport } from './bench-report.ts';
import { chainBench, withEnvironment } from './bench.ts';
import { buildAck, buildTxOff } from './tx-off.ts';
import { PAYMENT_KIND } from './typed-data.ts';

/** What each command signs (s) and verifies (v), from its code: the floor must count exactly these. */
const METERED: Readonly<Record<(typeof FLOOR_COMMANDS)[number], [number, number]>> = {
  open: [0, 0],
  deposit: [0, 1], // the node's receipt
  transfer: [2, 0], // σ_att, σ_1
  receive: [1, 5], // σ_2; σ_att, σ_1 and the three certificates of the enclave's chain
  pay: [0, 1], // σ_2
  onchainUpdate: [1, 0], // the upload
  finalize: [0, 1],
  'finalize (payee)': [0, 1],
  withdraw: [2, 0],
  logout: [2, 0],
  'finalize (closed)': [0, 1],
  clean: [0, 0],
};

test('bench chain --quick: Table II on anvil, Figure 3 between isolated TAs over their floors, Table I, money conserved', { timeout: 120_000 }, async () => {
  const started = performance.now();
  const out = await runBench(chainBench, { quick: true, env: {}, progress: () => undefined });
  const report = out.json.report as ChainBenchReport;
  const runs = chainBench.parameters.quick.runs;
  assert.equal(report.runs, runs);
  assert.match(out.text.split('\n')[0] ?? '', /^Machine: /);
  assert.equal(out.text.split('\n')[1], `${chainBench.paper}: ${chainBench.reproduces} (--quick)`);
  assert.match(report.chain.node, /anvil/);

  // Table II: every function, real gas, the uploads' gas growing by one payment's worth each.
  assert.deepEqual(report.table2.map((r) => r.name), ['deploy OfflineAccounts', 'deploy TallyToken', ...CHAIN_CALLS]);
  for (const r of report.table2) {
    assert.ok(r.gas.min > 21_000 && r.gas.max < 10_000_000, `${r.name}: ${r.gas.min}–${r.gas.max} gas`);
    assert.ok(r.ms.min > 0 && r.ms.max < 10_000 && r.callMs.min > 0, `${r.name}: ${r.ms.min}–${r.ms.max} ms`);
  }
  const gas = (name: string) => report.table2.find((r) => r.name === name)?.gas as ChainBenchReport['table2'][number]['gas'];
  for (const name of ['reconcile 1', 'reconcile 3', 'reconcile 5', 'deposit (first of an account)', 'deposit (next)', 'withdrawal', 'closing', 'freeze']) {
    assert.ok(gas(name).max - gas(name).min < 0.01 * gas(name).median, `${name}: the same work costs the same gas (${gas(name).min}–${gas(name).max})`);
  }
  assert.ok(gas('reconcile 1').median < gas('reconcile 3').median && gas('reconcile 3').median < gas('reconcile 5').median);
  assert.ok(gas('reconcile 1 (first upload: binds)').median > gas('reconcile 1').median, 'binding the account costs more than a steady upload');
  assert.ok(report.gasPerExtraPayment.ours > 20_000 && report.gasPerExtraPayment.ours < 100_000, `${report.gasPerExtraPayment.ours} gas per payment`);
  assert.equal(report.gasPerExtraPayment.paper, 43_948);
  assert.ok(gas('deploy OfflineAccounts').median > gas('deploy TallyToken').median);

  // Figure 3: each operation timed in every run, above its floor, and the floor made of what the commands really do.
  assert.deepEqual(report.figure3.map((r) => r.operation), [...OPERATIONS]);
  for (const r of report.figure3) {
    assert.equal(r.samples.length, runs);
    assert.ok(r.samples.every((s) => s > 0 && s < 10_000), `${r.operation}: ${r.samples.join(', ')} ms`);
    assert.ok(r.floorMs > 0 && r.floorWithCommitsMs > r.floorMs);
    assert.ok(r.ms.median > r.floorMs, `${r.operation}: ${r.ms.median} ms, under its floor of ${r.floorMs}`);
  }
  for (const command of FLOOR_COMMANDS) {
    const floor = report.floor.commands[command];
    assert.deepEqual([floor.metered.signs, floor.metered.verifies], METERED[command], command);
    assert.ok(floor.totalMs >= floor.meteredMs && (floor.meteredMs > 0) === floor.metered.signs + floor.metered.verifies > 0, command);
  }
  assert.ok(Object.values(report.floor.primitiveMs).every((ms) => ms > 0 && ms < 100));
  assert.deepEqual(Object.keys(report.commands), [...TA_COMMANDS]);
  assert.ok(Object.values(report.commands).every((s) => s.n === runs && s.min > 0));
  assert.ok(report.commit.sealedBytes > 500 && report.commit.latency.p50Ms > 0);

  // The money: what stays on chain is the payee's, and its TA holds the same.
  const c = report.conservation;
  assert.equal(c.payeeTa, c.payeeChain);
  assert.equal(c.held, c.payeeChain);
  assert.equal(c.withdrawn, c.paidOut);
  assert.ok(BigInt(c.held) > 0n && BigInt(c.withdrawn) > 0n);

  // Table I, counted in the tree.
  const lines = Object.fromEntries(report.loc.rows.map((r) => [r.component.split(' ')[0], r.lines]));
  assert.ok((lines['contracts'] ?? 0) > 300 && (lines['protocol:'] ?? 0) > 500 && (lines['dependent'] ?? 0) > 1000, JSON.stringify(lines));
  assert.deepEqual(Object.keys(report.loc.contracts).sort(), ['contracts/ChainTeeRecords.sol', 'contracts/OfflineAccounts.sol', 'contracts/TallyToken.sol']);

  for (const shown of ['| reconcile 3 | 551,844 |', '| P3 | 50 |', '| receive |', 'Table I', 'online contract, Solidity: 215', 'Gas per payment beyond the first']) assert.ok(out.text.includes(shown), `the report shows ${shown}`);
  assert.equal(report.svgPath, undefined, 'a quick run writes no figure');
  // `npm run bench -- chain --json` prints the report with JSON.stringify: no bigint may be left in it.
  assert.doesNotThrow(() => JSON.stringify(out.json));
  assert.ok(performance.now() - started < 90_000, 'the quick pass stays quick');
});

test('compact signatures: r and yParity‖s as viem makes them; a wrong length, v or a high s refused', () => {
  const secp = nodeProvider.suites.secp256k1;
  const key = secp.generateSecretKey();
  for (let i = 0; i < 16; i++) {
    const sig = secp.sign(key, randomBytes(66));
    const theirs = signatureToCompactSignature(parseSignature(hexOf(sig)));
    assert.deepEqual(compactSignature(sig), { r: theirs.r, vs: theirs.yParityAndS });
  }
  const sig = secp.sign(key, randomBytes(66));
  assert.throws(() => compactSignature(sig.subarray(0, 64)), RangeError);
  const badV = Uint8Array.from(sig);
  badV[64] = 1;
  assert.throws(() => compactSignature(badV), RangeError);
  const highS = Uint8Array.from(sig);
  highS[32] = 0xff;
  assert.throws(() => compactSignature(highS), /not low/);
});

test('an upload item carries the payment, the state balance and the three signatures in the contract\'s layout', () => {
  const secp = nodeProvider.suites.secp256k1;
  const signer = () => {
    const secretKey = secp.generateSecretKey();
    return { publicKey: { suite: 'secp256k1' as const, key: secp.publicKey(secretKey) }, sign: (m: Uint8Array) => secp.sign(secretKey, m) };
  };
  const domain = { chainId: 31337n, contract: randomBytes(20) };
  const payee = signer();
  const txOff = buildTxOff(domain, { enclave: signer(), account: signer(), certificate: new Uint8Array(0) }, { payee: randomBytes(20), amount: 7n, counter: 3n, tGen: 1_800_000_000n, kind: PAYMENT_KIND.payment, balance: 9n });
  const ack = buildAck(domain, payee, txOff.payment, true);
  const item = toUploadItem({ txOff, ack });
  assert.equal(item.payer, hexOf(txOff.payment.payer));
  assert.deepEqual([item.amount, item.counter, item.tGen, item.kind, item.stateBalance, item.ack], [7n, 3n, 1_800_000_000n, 0, 9n, 1]);
  assert.equal(item.payerR, hexOf(txOff.signature.subarray(0, 32)));
  assert.equal(item.ackR, hexOf(ack.signature.subarray(0, 32)));
  const bare = toUploadItem({ txOff });
  assert.equal(bare.ack, 0);
  assert.equal(bare.ackR, `0x${'00'.repeat(32)}` as Hex);
  assert.equal(toUploadItem({ txOff, ack: { ...ack, ok: false } }).ack, 2);
});

test('summary: mean, sample sd, median of an even and an odd count; none refused', () => {
  const s = summary([2, 4, 4, 4, 5, 5, 7, 9]);
  assert.deepEqual([s.n, s.mean, s.median, s.min, s.max], [8, 5, 4.5, 2, 9]);
  assert.ok(Math.abs(s.sd - Math.sqrt(32 / 7)) < 1e-12);
  assert.equal(summary([3, 1, 2]).median, 2);
  assert.equal(summary([3]).sd, 0);
  assert.throws(() => summary([]), RangeError);
});

test('codeLines counts lines with code, not comments, blank lines or a // inside a string', async () => {
  const ts = (await import('typescript')).default;
  const text = "// one\nconst x = 1; // two\n/* three\n four */\n\nconst s = 'http://x';\n/// natspec\nfunction f() {\n}\n";
  assert.equal(codeLines(ts, text), 4);
  assert.equal(codeLines(ts, 'contract C {\n  /// @notice n\n  uint256 public x; // y\n}\n'), 3);
});

test('the figure: an SVG with the five operations, the paper\'s dashed lines and its P1 band', () => {
  const rows = OPERATIONS.map((operation, i) => ({ operation, ms: summary([i + 1, i + 2]), samples: [i + 1, i + 2], paperMs: 10, floorMs: 0.5, floorWithCommitsMs: 1 }));
  const svg = figure3Svg(rows, { title: 't', subtitle: 's' });
  assert.ok(svg.startsWith('<svg') && svg.trimEnd().endsWith('</svg>'));
  for (const shown of ['P1 open', 'P5 logout', 'stroke-dasharray', 'fill-opacity']) assert.ok(svg.includes(shown), shown);
  assert.ok(!svg.includes('exchange'), 'the whole exchange is left to the tables');
});

test('bench chain parameters: quick and full, and what the environment overrides', () => {
  assert.deepEqual([chainBench.parameters.full.runs, chainBench.parameters.full.svgPath], [50, 'chain-figure3.svg']);
  assert.equal(chainBench.parameters.quick.svgPath, undefined);
  const set = withEnvironment(chainBench.parameters.full, { TALLY_CHAIN_RUNS: '7', TALLY_CHAIN_SVG: 'none' });
  assert.deepEqual([set.runs, set.svgPath], [7, undefined]);
  for (const bad of ['0', '-1', '2.5', 'many', '1001']) assert.throws(() => withEnvironment(chainBench.parameters.quick, { TALLY_CHAIN_RUNS: bad }), RangeError, bad);
});
