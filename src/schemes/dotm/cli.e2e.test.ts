/**
 * DOT-M end to end through the `tally` command line, every party its own process: an issuer node
 * deployed with SM2/SM3 keys (so the central bank's signature on every block, the certificates and
 * the secure elements' usk and wsk are SM2),
 * three DOT-M wallets (alice, bob, carol), each command a fresh `tally` process whose secure element
 * is another child process. The nine steps run over TCP + Noise with the node stopped; the password,
 * the payer's intention and the block chain of a re-spend are exercised; online data updating, a
 * withdrawal, a cloned wallet's double spend detected and attributed, and the audit with the
 * conservation of money: float:dotm = what the secure elements hold.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cp, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, test } from 'node:test';
import { readWalletFile } from '../../wallet/store/test-wallet-file.ts';
import { BIN, dropNodeDatabases, killChildren, nodeDatabaseArgs, startNode, track, type Json } from '../../cli/e2e-process.ts';

const dirs: string[] = [];
after(async () => {
  killChildren();
  await dropNodeDatabases();
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

// The deployment's choice of suite: SM2 with SM3, the suite the paper's prototype used (§4.1).
const NODE = { passphrase: 'dotm e2e', args: ['--suite', 'sm2', '--schemes', 'dotm'] };

test('DOT-M through the CLI: nine steps over TCP + Noise offline, refusals, re-spend, sync, withdraw, a clone caught, audit balanced', { timeout: 300_000 }, async () => {
  const root = await mkdtemp(join(tmpdir(), 'tally-dotm-e2e-'));
  dirs.push(root);
  const home = join(root, 'home');
  const dataDir = join(root, 'node');
  const nodeOptions = { ...NODE, args: [...NODE.args, ...(await nodeDatabaseArgs())] };
  let node = await startNode(dataDir, 0, nodeOptions);
  const env: Record<string, string | undefined> = { ...process.env, TALLY_HOME: home, TALLY_NODE: node.url, TALLY_PASSWORD: 'right horse', TALLY_OPERATOR_TOKEN: '' };
  env['TALLY_OPERATOR_TOKEN'] = (await readFile(join(dataDir, 'identity', 'operator-token'), 'utf8')).trim();

  const run = (args: string[], extra: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> =>
    new Promise((done) => {
      const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...env, ...extra } });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      child.on('exit', (code) => done({ code, stdout, stderr }));
    });
  const lastJson = (stdout: string): Json => JSON.parse(stdout.trim().split('\n').pop() as string) as Json;
  const ok = async (...args: string[]): Promise<Json> => {
    const r = await run([...args, '--json']);
    assert.equal(r.code, 0, `tally ${args.join(' ')} failed: ${r.stderr}${r.stdout}`);
    return lastJson(r.stdout);
  };
  /** Expects exit 1 with `code` (and, for a secure element's refusal, its reason). */
  const refused = async (code: string, reason: string | null, args: string[], extra: Record<string, string> = {}): Promise<Json> => {
    const r = await run([...args, '--json'], extra);
    assert.equal(r.code, 1, `tally ${args.join(' ')} should fail with ${code}: ${r.stdout}${r.stderr}`);
    const error = (lastJson(r.stdout) as { error: Json }).error;
    assert.equal(error['code'], code, JSON.stringify(error));
    if (reason !== null) assert.equal((error['details'] as Json)['reason'], reason, JSON.stringify(error));
    assert.match(r.stderr, new RegExp(`^tally: .+ \\[${code}\\]\\n$`), 'one clear error line');
    return error;
  };
  const listen = async (name: string, amount: string) => {
    const child = spawn(process.execPath, [BIN, 'receive', name, amount, '--listen', '0', '--timeout', '20', '--json'], { stdio: ['ignore', 'pipe', 'pipe'], env });
    track(child);
    const exit = new Promise<number | null>((done) => child.on('exit', (code) => done(code)));
    const lines: Json[] = [];
    const port = await new Promise<number>((ready) => {
      createInterface({ input: child.stdout }).on('line', (line) => {
        const event = JSON.parse(line) as Json;
        lines.push(event);
        if (event['event'] === 'listening') ready(Number(event['port']));
      });
    });
    return { port, lines, exit };
  };
  const offline = async (name: string) => (await ok('wallet', 'balance', name))['offline'] as string;

  // Registration: the factory step, three wallets (usk and wsk made in each SE, pwd set).
  await ok('operator', 'oem');
  const alice = await ok('wallet', 'create', 'alice', '--scheme', 'dotm');
  assert.equal(alice['scheme'], 'dotm');
  const aliceSlot = readWalletFile(join(home, 'wallets', 'alice')).slot ?? {};
  const aliceData = { slot: { suite: String(aliceSlot['suite']), ucert: String(aliceSlot['ucert']), wcert: String(aliceSlot['wcert']) } };
  assert.equal(aliceData.slot.suite, 'sm2', 'the SE keys follow the deployment');
  const { decodeCertificate } = await import('../../pki/certificate.ts');
  const { fromBase64url } = await import('../../core/bytes.ts');
  assert.equal(decodeCertificate(fromBase64url(aliceData.slot.ucert)).body.subject.suite, 'sm2');
  assert.equal(decodeCertificate(fromBase64url(aliceData.slot.wcert)).body.subject.suite, 'sm2');
  await ok('wallet', 'create', 'bob', '--scheme', 'dotm');
  await ok('wallet', 'create', 'carol', '--scheme', 'dotm');
  await refused('PASSWORD_MISSING', null, ['wallet', 'create', 'dave', '--scheme', 'dotm'], { TALLY_PASSWORD: '' });

  // Account synchronization: 60.00 of alice's 100.00 as three blocks signed by the central bank.
  await ok('operator', 'mint', 'alice', '100.00');
  const deposit = await ok('wallet', 'deposit', 'alice', '60.00', '--blocks', '3');
  assert.equal(deposit['offline'], '60.00');
  const listed = await ok('wallet', 'balance', 'alice');
  assert.equal((listed['blocks'] as Json[]).length, 3);
  assert.equal(listed['online'], '40.00');

  // Offline from here: the node is stopped.
  await node.stop();

  // The nine steps over TCP + Noise: bob asks 25.00, alice pays it.
  const first = await listen('bob', '25.00');
  const paid = await ok('pay', 'alice', '--connect', `127.0.0.1:${first.port}`, '--expect', '25.00');
  assert.equal(paid['status'], 'completed');
  assert.equal(await first.exit, 0);
  assert.equal(first.lines[first.lines.length - 1]?.['status'], 'completed');
  assert.equal(await offline('alice'), '35.00');
  assert.equal(await offline('bob'), '25.00');

  // A wrong password: refused inside alice's SE, one try gone, nothing paid; bob's receive fails.
  const wrong = await listen('bob', '1.00');
  await refused('SE_REJECTED', 'WRONG_PASSWORD', ['pay', 'alice', '--connect', `127.0.0.1:${wrong.port}`], { TALLY_PASSWORD: 'wrong horse' });
  assert.equal(await wrong.exit, 1);
  const afterWrong = await ok('wallet', 'balance', 'alice');
  assert.equal(afterWrong['passwordTriesLeft'], 4);
  assert.equal(afterWrong['offline'], '35.00');
  // Not what the payer meant: bob asks 9.00, alice expects 5.00 (step 2.3).
  const greedy = await listen('bob', '9.00');
  await refused('SE_REJECTED', 'AMOUNT_MISMATCH', ['pay', 'alice', '--connect', `127.0.0.1:${greedy.port}`, '--expect', '5.00']);
  assert.equal(await greedy.exit, 1);
  assert.equal(await offline('alice'), '35.00');
  assert.equal(await offline('bob'), '25.00');
  // More than alice holds.
  const big = await listen('bob', '50.00');
  await refused('SE_REJECTED', 'INSUFFICIENT_FUNDS', ['pay', 'alice', '--connect', `127.0.0.1:${big.port}`]);
  assert.equal(await big.exit, 1);
  // The token verbs are OPS's: a DOT-M transaction needs both devices at once.
  await refused('WALLET_UNSUPPORTED', null, ['request', 'bob', '1.00']);

  // Re-spend: bob pays carol 10.00 out of the block he received (its chain grows to two records).
  const second = await listen('carol', '10.00');
  const respent = await ok('pay', 'bob', '--connect', `127.0.0.1:${second.port}`, '--expect', '10.00');
  assert.equal(respent['records'], 1, 'the block bob pays with carries alice → bob');
  assert.equal(await second.exit, 0);
  assert.equal(await offline('carol'), '10.00');

  // A clone of alice's wallet (folder, sealed state and file counter copied) spends the same blocks.
  await cp(join(home, 'wallets', 'alice'), join(home, 'wallets', 'alice-clone'), { recursive: true });
  const toBob = await listen('bob', '30.00');
  await ok('pay', 'alice', '--connect', `127.0.0.1:${toBob.port}`);
  assert.equal(await toBob.exit, 0);
  const toCarol = await listen('carol', '30.00');
  await ok('pay', 'alice-clone', '--connect', `127.0.0.1:${toCarol.port}`);
  assert.equal(await toCarol.exit, 0);

  // Online data updating: everyone syncs; the fork is found and alice is named.
  node = await startNode(dataDir, node.port, nodeOptions);
  const syncs = [await ok('sync', 'alice'), await ok('sync', 'bob'), await ok('sync', 'carol')];
  const findings = syncs.flatMap((s) => s['findings'] as Json[]);
  assert.ok(findings.length >= 1, `the double spend is found: ${JSON.stringify(syncs)}`);
  assert.ok(JSON.stringify(findings).includes(String(alice['user'])), `alice's user key is named: ${JSON.stringify(findings)}`);
  // alice is revoked: bob, synced, refuses the clone's next payment.
  await ok('sync', 'bob');
  const late = await listen('bob', '1.00');
  const lateError = await run(['pay', 'alice-clone', '--connect', `127.0.0.1:${late.port}`, '--json']);
  assert.equal(lateError.code, 1);
  assert.match(lateError.stdout + lateError.stderr, /CERT_REVOKED/);
  assert.equal(await late.exit, 1);

  // Withdraw: carol gives 10.00 of blocks up; the node credits her account.
  const withdrawn = await ok('wallet', 'withdraw', 'carol', '10.00');
  assert.equal(withdrawn['credited'], true);
  assert.equal(withdrawn['online'], '10.00');

  // The audit, and conservation: float:dotm = what the three honest SEs hold + what the node refused
  // to credit (none here) − what the clone created (it paid 30.00 it did not have).
  const audit = await ok('audit');
  assert.equal(audit['balanced'], true);
  const eur = (audit['currencies'] as { totalIssued: string; totalOnline: string; totalOfflineFloat: string }[])[0];
  assert.ok(eur !== undefined);
  const minorOf = (decimal: string) => BigInt(decimal.replace('.', ''));
  assert.equal(minorOf(eur.totalOnline) + minorOf(eur.totalOfflineFloat), minorOf(eur.totalIssued));
  const held = await Promise.all(['alice', 'bob', 'carol'].map(async (n) => Math.round(Number(await offline(n)) * 100)));
  const float = Number(minorOf(eur.totalOfflineFloat));
  assert.equal(held.reduce((a, b) => a + b, 0) - 3000, float, 'the float is what the honest SEs hold, less the 30.00 the clone created');
  // The exposure check sees value created offline and pins all of it on alice's wallet, which settlement
  // named. It counts what honest holders can claim and the float cannot cover: the part of the 30.00 that
  // alice's own (now revoked) secure element still shows at the over-spent block is not among it.
  const dotm = (audit['exposure'] as { scheme: string; difference: string; attributed: string; unexplained: string; exposed: { device: string; amount: string; fraud: boolean }[] }[]).find((e) => e.scheme === 'dotm');
  assert.ok(dotm !== undefined);
  const shortfall = -minorOf(dotm.difference);
  assert.ok(shortfall > 0n && shortfall <= 3000n, `a shortfall of at most the 30.00 created: ${dotm.difference}`);
  assert.deepEqual([minorOf(dotm.attributed), dotm.unexplained], [shortfall, '0.00']);
  assert.deepEqual(dotm.exposed.map((h) => [minorOf(h.amount), h.fraud]), [[shortfall, true]]);
  assert.equal(await node.stop(), 0);
});
