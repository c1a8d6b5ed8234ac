/**
 * Wallet steps through the `tally` command line, each command its own process: a refused step
 * ends (recorded and reported with the node's code) instead of staying pending; two processes on
 * one wallet never both run its secure element; a damaged history line is named and skipped; claim
 * reports what the node credited; a DOT-M redemption the node refuses says so. Ends with the
 * node's audit balanced.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import Database from 'better-sqlite3';
import { cp, readFile, writeFile } from 'node:fs/promises';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { toBase64url } from '../core/bytes.ts';
import { encodeCbor } from '../core/cbor.ts';
import { editWalletFile, readWalletFile, type WalletFile } from '../wallet/store/test-wallet-file.ts';
import { BIN, dropNodeDatabases, killChildren, nodeDatabaseArgs, startNode, track, type Json, type NodeProcess } from '../cli/e2e-process.ts';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

let root: string;
let home: string;
let node: NodeProcess;
let env: Record<string, string | undefined>;

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'tally-steps-e2e-'));
  home = join(root, 'home');
  const dataDir = join(root, 'node');
  node = await startNode(dataDir, 0, { passphrase: 'steps e2e', args: ['--schemes', 'ops,dotm', ...(await nodeDatabaseArgs())] });
  env = { ...process.env, TALLY_HOME: home, TALLY_NODE: node.url, TALLY_PASSWORD: 'steps horse', TALLY_WALLET_PASSPHRASE: 'steps passphrase', TALLY_OPERATOR_TOKEN: (await readFile(join(dataDir, 'identity', 'operator-token'), 'utf8')).trim() };
  await ok('operator', 'oem');
});

after(async () => {
  if (node !== undefined) await node.stop();
  killChildren();
  await dropNodeDatabases();
  await rm(root, { recursive: true, force: true });
});

function run(args: string[]): Promise<Run> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
    track(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('exit', (code) => done({ code, stdout, stderr }));
  });
}

function lastJson(r: Run): Json {
  return JSON.parse(r.stdout.trim().split('\n').pop() as string) as Json;
}

async function ok(...args: string[]): Promise<Json> {
  const r = await run([...args, '--json']);
  assert.equal(r.code, 0, `tally ${args.join(' ')} failed: ${r.stderr}${r.stdout}`);
  return lastJson(r);
}

async function text(...args: string[]): Promise<string> {
  const r = await run(args);
  assert.equal(r.code, 0, `tally ${args.join(' ')} failed: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

async function refused(code: string, ...args: string[]): Promise<Json> {
  const r = await run([...args, '--json']);
  assert.equal(r.code, 1, `tally ${args.join(' ')} should fail with ${code}: ${r.stdout}${r.stderr}`);
  const error = (lastJson(r) as { error: Json }).error;
  assert.equal(error['code'], code, JSON.stringify(error));
  return error;
}

/** Edits a wallet's store (wallet.db) as an edit of its wallet.json would have. */
function editWallet(name: string, edit: (data: WalletFile) => void): void {
  editWalletFile(join(home, 'wallets', name), edit);
}

test('OPS: a deposit the node refuses ends there (INSUFFICIENT_FUNDS, in the history) and the next deposit works', { timeout: 120_000 }, async () => {
  await ok('wallet', 'create', 'alice', '--scheme', 'ops');
  await ok('operator', 'mint', 'alice', '30.00');
  const error = await refused('NODE_REFUSED', 'wallet', 'deposit', 'alice', '50.00');
  assert.equal((error['details'] as Json)['code'], 'INSUFFICIENT_FUNDS');
  const balance = await ok('wallet', 'balance', 'alice');
  assert.equal(balance['pendingSteps'], 0, 'no stale pending step');
  assert.equal(balance['online'], '30.00');
  assert.equal((await ok('wallet', 'deposit', 'alice', '20.00'))['offline'], '20.00');
  const events = (await ok('wallet', 'history', 'alice'))['events'] as { kind: string; detail?: string }[];
  const refusal = events.find((e) => e.kind === 'deposit-refused');
  assert.match(refusal?.detail ?? '', /INSUFFICIENT_FUNDS/);
});

test('OPS: a forged withdraw the node refuses is ended and reported with its code; a real one then works', { timeout: 120_000 }, async () => {
  // A withdraw step whose confirmation the device never signed, as if the wallet's store had been edited.
  const forged = toBase64url(encodeCbor({ amount: 500n, i: 2n, j: 0n, collectSeq: 0n, signature: new Uint8Array(64).fill(7) }));
  editWallet('alice', (data) => {
    data.pending.push({ kind: 'withdraw', id: '0123456789abcdef0123456789abcdef', amount: '500', confirmation: forged });
  });
  const balance = await ok('wallet', 'balance', 'alice');
  assert.equal(balance['pendingSteps'], 0, 'the refused withdraw is no longer pending');
  assert.deepEqual((balance['ended'] as Json[]).map((x) => [x['kind'], x['code']]), [['withdraw', 'SIGNATURE_INVALID']]);
  assert.equal(balance['online'], '10.00', 'nothing was credited');
  assert.match(await text('wallet', 'balance', 'alice'), /^(?!.*unfinished)/s);
  assert.equal((await ok('wallet', 'withdraw', 'alice', '1.00'))['online'], '11.00');
  const events = (await ok('wallet', 'history', 'alice'))['events'] as { kind: string; detail?: string }[];
  assert.match(events.find((e) => e.kind === 'withdraw-refused')?.detail ?? '', /SIGNATURE_INVALID/);
});

test('concurrent `tally pay` on one wallet with a stale lock: one pays, the others are WALLET_BUSY, the secure element stays usable', { timeout: 240_000 }, async () => {
  await ok('wallet', 'create', 'bob', '--scheme', 'ops');
  let paidCents = 0;
  let busy = 0;
  for (let round = 0; round < 3; round++) {
    // A lock left behind by a process that is gone: every payer sees it as stale at once.
    const dead = spawn(process.execPath, ['-e', '0'], { stdio: 'ignore' });
    await new Promise((done) => dead.on('exit', done));
    await writeFile(join(home, 'wallets', 'alice', 'lock'), String(dead.pid));
    const requests: string[] = [];
    for (let k = 0; k < 4; k++) requests.push(String((await ok('request', 'bob', '0.10'))['token']));
    const results = await Promise.all(requests.map((r) => run(['pay', 'alice', r, '--json'])));
    const codes = results.map((r) => (r.code === 0 ? 'paid' : String(((lastJson(r) as { error?: Json }).error ?? {})['code'])));
    // Two processes on one secure element would show here as ROLLBACK_DETECTED or SE_UNAVAILABLE.
    assert.deepEqual(codes.filter((c) => c !== 'paid' && c !== 'WALLET_BUSY'), [], `round ${round}: ${JSON.stringify(results)}`);
    assert.ok(codes.includes('paid'), `round ${round}: ${codes.join(', ')}`);
    busy += codes.filter((c) => c === 'WALLET_BUSY').length;
    paidCents += 10 * codes.filter((c) => c === 'paid').length;
  }
  assert.ok(busy > 0, 'the payers did overlap');
  // The SE was run by one process at a time: it opens, holds what it should, and pays again.
  const balance = await ok('wallet', 'balance', 'alice');
  assert.equal(BigInt(String(balance['offline']).replace('.', '')), 1_900n - BigInt(paidCents));
  await ok('pay', 'alice', String((await ok('request', 'bob', '0.50'))['token']));
});

test('a damaged history line is named and skipped; the other events are shown', { timeout: 60_000 }, async () => {
  // Lines damaged inside wallet.db (as a disk or an editor could leave them), then a good one.
  const db = new Database(join(home, 'wallets', 'alice', 'wallet.db'));
  const lines = db.prepare('SELECT COUNT(*) FROM history').pluck().get() as number;
  for (const body of ['{"at": 1, "kind": "depo', 'null', JSON.stringify({ at: Date.now(), kind: 'note' })]) db.prepare('INSERT INTO history (at, body) VALUES (?, ?)').run(1, body);
  db.close();
  const read = await ok('wallet', 'history', 'alice');
  assert.equal((read['events'] as unknown[]).length, lines + 1);
  assert.deepEqual((read['damaged'] as Json[]).map((d) => d['line']), [lines + 1, lines + 2]);
  const shown = await text('wallet', 'history', 'alice');
  assert.match(shown, new RegExp(`history line ${lines + 1} of .*wallet\\.db is damaged`));
  assert.match(shown, /created/);
});

test('claim prints what the node credited, not what the wallet file says', { timeout: 120_000 }, async () => {
  await ok('wallet', 'create', 'carol', '--scheme', 'ops', '--no-secure-element');
  const payment = String((await ok('pay', 'alice', String((await ok('request', 'carol', '2.00'))['token'])))['token']);
  await ok('accept', 'carol', payment);
  editWallet('carol', (data) => {
    (data.inbox[0] as { amount: string }).amount = '99999';
  });
  const claimed = await ok('claim', 'carol');
  assert.equal((claimed['claimed'] as Json[])[0]?.['amount'], '2.00');
  assert.equal(claimed['online'], '2.00');
  const events = (await ok('wallet', 'history', 'carol'))['events'] as { kind: string; amount?: string }[];
  assert.equal(events.find((e) => e.kind === 'claim')?.amount, '2.00');
});

test('DOT-M: a refused deposit leaves no pending step; a redemption refused as a double spend says so', { timeout: 240_000 }, async () => {
  await ok('wallet', 'create', 'dave', '--scheme', 'dotm');
  await ok('operator', 'mint', 'dave', '10.00');
  const error = await refused('NODE_REFUSED', 'wallet', 'deposit', 'dave', '50.00');
  assert.equal((error['details'] as Json)['code'], 'INSUFFICIENT_FUNDS');
  assert.equal((await ok('wallet', 'balance', 'dave'))['pendingSteps'], 0);
  assert.equal((await ok('wallet', 'deposit', 'dave', '6.00'))['offline'], '6.00');
  // A copy of the whole wallet redeems the same block first; the original's redemption is a double spend.
  await cp(join(home, 'wallets', 'dave'), join(home, 'wallets', 'dave-copy'), { recursive: true });
  const first = await ok('wallet', 'withdraw', 'dave-copy', '6.00');
  assert.equal(first['outcome'], 'credited');
  const second = await run(['wallet', 'withdraw', 'dave', '6.00']);
  assert.equal(second.code, 0, second.stderr);
  assert.match(second.stdout, /refused/);
  assert.match(second.stdout, /\[[A-Z_]+\]/);
  assert.doesNotMatch(second.stdout, /unreachable/);
  const online = await ok('wallet', 'balance', 'dave');
  assert.equal(online['online'], '10.00', 'credited once');
});

test('a secure element in ROLLBACK_DETECTED after a local accident: `wallet recover` retires it and starts an empty one; no money is created', { timeout: 180_000 }, async () => {
  const dir = join(home, 'wallets', 'bob');
  await ok('operator', 'mint', 'bob', '5.00');
  await ok('wallet', 'deposit', 'bob', '4.00');
  await refused('WALLET_UNSUPPORTED', 'wallet', 'recover', 'bob'); // its SE runs: nothing to recover
  const before = await ok('audit');
  // The accident: an older copy of the sealed state put back (the counter kept).
  await cp(join(dir, 'se'), join(root, 'bob-se-old'), { recursive: true });
  await ok('pay', 'bob', String((await ok('request', 'carol', '1.00'))['token']));
  await rm(join(dir, 'se'), { recursive: true });
  await cp(join(root, 'bob-se-old'), join(dir, 'se'), { recursive: true });
  const broken = await refused('ROLLBACK_DETECTED', 'wallet', 'balance', 'bob');
  assert.match(String(broken['message']), /tally wallet recover bob/);
  const oldDevice = readWalletFile(dir).device as { keyId: string };
  const recovered = await ok('wallet', 'recover', 'bob');
  assert.equal(recovered['retired'], oldDevice.keyId);
  assert.notEqual(recovered['device'], oldDevice.keyId);
  // The old secure element is kept, not deleted.
  assert.ok((await readFile(join(dir, 'retired', oldDevice.keyId, 'counter'))).length > 0);
  const balance = await ok('wallet', 'balance', 'bob');
  assert.equal(balance['offline'], '0.00', 'the new secure element starts empty');
  assert.equal(balance['online'], '1.00', 'nothing was credited');
  const after = await ok('audit');
  assert.equal(after['balanced'], true);
  assert.deepEqual(after['currencies'], before['currencies'], 'no money moved or was created');
  // The new device works: a deposit, and a payment.
  assert.equal((await ok('wallet', 'deposit', 'bob', '1.00'))['offline'], '1.00');
  await ok('pay', 'bob', String((await ok('request', 'carol', '0.25'))['token']));
  const events = (await ok('wallet', 'history', 'bob'))['events'] as { kind: string }[];
  assert.ok(events.some((e) => e.kind === 'device-retired'));
});

test('DOT-M: a secure element in ROLLBACK_DETECTED is retired by `wallet recover`; the new one starts empty and works', { timeout: 240_000 }, async () => {
  await ok('wallet', 'create', 'erin', '--scheme', 'dotm');
  await ok('operator', 'mint', 'erin', '10.00');
  const dir = join(home, 'wallets', 'erin');
  assert.equal((await ok('wallet', 'deposit', 'erin', '3.00'))['offline'], '3.00');
  await cp(join(dir, 'se'), join(root, 'erin-se-old'), { recursive: true });
  assert.equal((await ok('wallet', 'deposit', 'erin', '1.00'))['offline'], '4.00');
  await rm(join(dir, 'se'), { recursive: true });
  await cp(join(root, 'erin-se-old'), join(dir, 'se'), { recursive: true });
  const broken = await refused('ROLLBACK_DETECTED', 'wallet', 'balance', 'erin');
  assert.match(String(broken['message']), /tally wallet recover erin/);
  const before = await ok('audit');
  const recovered = await ok('wallet', 'recover', 'erin');
  assert.ok((await readFile(join(dir, 'retired', String(recovered['retired']), 'counter'))).length > 0, 'the old secure element is kept');
  const balance = await ok('wallet', 'balance', 'erin');
  assert.equal(balance['offline'], '0.00');
  assert.equal(balance['online'], '6.00');
  assert.deepEqual((await ok('audit'))['currencies'], before['currencies'], 'no money moved or was created');
  assert.equal((await ok('wallet', 'deposit', 'erin', '1.00'))['offline'], '1.00');
});

test('the ledger still adds up: issued = online + offline float', { timeout: 60_000 }, async () => {
  const audit = await ok('audit');
  assert.equal(audit['balanced'], true);
  for (const c of audit['currencies'] as { totalIssued: string; totalOnline: string; totalOfflineFloat: string }[]) {
    const minor = (s: string) => BigInt(s.replace('.', ''));
    assert.equal(minor(c.totalOnline) + minor(c.totalOfflineFloat), minor(c.totalIssued));
  }
});
