/**
 * The wallet SDK against a real node over HTTP (PGlite): each wallet's secure element is an
 * isolated process, killed at every crash point of Deposit, Pay and Collect. After the kill the
 * wallet is opened again and finishes the written-down step: it completes exactly once, and the
 * ledger and the secure elements still add up. Also: the wallet lock, a damaged wallet file, and
 * the factory step refused for an unenrolled home.
 */
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { mkdtemp, readdir, readFile, rm, writeFile, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { isTallyError } from '../../core/errors.ts';
import { CRASH_POINTS } from '../../secure-element/secure-element.ts';
import { DEFAULT_CURRENCY, startNode, type RunningNode } from '../../cli/node-start.ts';
import { seedPgliteCluster } from '../../issuer/db/test-pglite-cluster.ts';
import { enrollOem } from '../../wallet/factory.ts';
import { walletDir, walletPaths } from '../../wallet/home.ts';
import { NodeClient } from '../../wallet/node-client.ts';
import { auditAnswer } from '../../wallet/node-answers.ts';
import { STORE_FILES } from '../../wallet/store/open.ts';
import { headerCodec, seReportCodec } from '../../wallet/store/records.ts';
import { editWalletFile, readWalletFile, toLegacyFolder } from '../../wallet/store/test-wallet-file.ts';
import { fromBase64url, toBase64url, toHex } from '../../core/bytes.ts';
import { signerFromSecret } from '../../core/crypto/suite.ts';
import { keyId } from '../../pki/key-id.ts';
import { nodeProvider } from '../../providers/node-crypto.ts';
import { openSlot } from '../../secure-element/key-slot.ts';
import { Wallet } from './wallet.ts';
import { ops } from './index.ts';

let root: string;
let home: string;
let node: RunningNode;
let client: NodeClient;
let mints = 0;
/** Added to the node's clock; a test moves it and puts it back. */
let clockOffsetMs = 0;

before(async () => {
  // A wallet without a secure element seals its account key under this passphrase.
  process.env['TALLY_WALLET_PASSPHRASE'] = 'wallet test passphrase';
  root = await mkdtemp(join(tmpdir(), 'tally-wallet-'));
  home = join(root, 'home');
  await seedPgliteCluster(join(root, 'node'));
  node = await startNode({ port: 0, host: '127.0.0.1', dataDir: join(root, 'node'), env: { TALLY_NODE_PASSPHRASE: 'wallet test' }, schemes: [ops], currency: DEFAULT_CURRENCY, logger: { log: () => undefined }, print: () => undefined, now: () => Date.now() + clockOffsetMs });
  client = new NodeClient(node.url);
  await enrollOem(home, client, node.operatorToken, ops.wallet.trustedApps);
});

const opened = new Set<Wallet>();
after(async () => {
  for (const w of opened) await w.close().catch(() => undefined);
  await node.stop();
  await rm(root, { recursive: true, force: true });
});

async function mint(wallet: Wallet, amount: string): Promise<void> {
  await client.operator(node.operatorToken, 'POST', '/v1/operator/mint', { body: { account: wallet.snapshot().user.account, amount }, idempotencyKey: `test-mint-${++mints}-${Date.now()}` });
}

async function audit(): Promise<{ balanced: boolean; currencies: { totalIssued: string; totalOnline: string; totalOfflineFloat: string }[] }> {
  return (await client.operator(node.operatorToken, 'GET', '/v1/audit', { answer: auditAnswer })).body;
}

/** An amount of the audit (a decimal string in major units, two decimals here) in minor units. */
function minorOf(decimal: string): bigint {
  assert.match(decimal, /^-?[0-9]+\.[0-9]{2}$/);
  return BigInt(decimal.replace('.', ''));
}

async function offline(wallet: Wallet): Promise<bigint> {
  return (await (await wallet.se()).call('status', {})).balance;
}

async function float(): Promise<bigint> {
  return minorOf((await audit()).currencies[0]?.totalOfflineFloat ?? '0.00');
}

/**
 * Σ what this test's secure elements hold + the value of its payments made and not yet collected
 * = what this test added to the float (`base`: the float when the test began; tests share a node).
 */
async function checkConservation(base: bigint, wallets: readonly Wallet[], inFlight: bigint): Promise<void> {
  const a = await audit();
  assert.equal(a.balanced, true);
  let held = 0n;
  for (const w of wallets) if (w.hasSecureElement) held += await offline(w);
  assert.equal(minorOf(a.currencies[0]?.totalOfflineFloat ?? '-1') - base, held + inFlight, 'float = Σ SE balances + payments in flight');
}

async function reopen(w: Wallet): Promise<Wallet> {
  await w.close();
  opened.delete(w);
  const again = await Wallet.open(home, w.name);
  opened.add(again);
  return again;
}

let walletCount = 0;
async function create(secureElement = true): Promise<Wallet> {
  const w = await Wallet.create({ home, name: `w${++walletCount}`, node: node.url, secureElement });
  opened.add(w);
  return w;
}

describe('a secure element killed mid-step, then the wallet opened again', () => {
  for (const point of CRASH_POINTS) {
    test(`Deposit, Pay and Collect each complete exactly once after a kill at ${point}`, { timeout: 120_000 }, async () => {
      const base = await float();
      let payer = await create();
      let payee = await create();
      await mint(payer, '50.00');

      // Deposit: the node has confirmed, the SE dies while applying it.
      await (await payer.se()).armCrash(point);
      await assert.rejects(payer.deposit('20.00'), (e: unknown) => isTallyError(e, 'SE_CRASHED'));
      assert.equal(payer.snapshot().pending.length, 1);
      payer = await reopen(payer);
      assert.deepEqual((await payer.resume()).finished, ['deposit']);
      assert.equal(await offline(payer), 2_000n);
      assert.equal((await payer.onlineBalance()).balance, '30.00');
      await checkConservation(base, [payer, payee], 0n);

      // Pay: the SE dies while committing the payment.
      const { request } = await payee.request('7.00');
      await (await payer.se()).armCrash(point);
      await assert.rejects(payer.payRequest(request), (e: unknown) => isTallyError(e, 'SE_CRASHED'));
      payer = await reopen(payer);
      assert.deepEqual((await payer.resume()).finished, ['pay']);
      const sent = payer.snapshot().sent;
      assert.equal(sent.length, 1, 'one payment, made once');
      assert.equal(await offline(payer), 1_300n);
      await checkConservation(base, [payer, payee], 700n);

      // Collect: the payee's SE dies while taking the payment in.
      const payment = sent[0];
      assert.ok(payment !== undefined);
      await payee.acceptPayment((await import('./messages.ts')).decodePayment(Buffer.from(payment.payment, 'base64url')));
      await (await payee.se()).armCrash(point);
      await assert.rejects(payee.collect(), (e: unknown) => isTallyError(e, 'SE_CRASHED'));
      payee = await reopen(payee);
      assert.deepEqual((await payee.resume()).finished, ['collect']);
      assert.equal(await offline(payee), 700n);
      assert.deepEqual(payee.snapshot().inbox.map((e) => e.state), ['collected']);
      const again = await payee.collect();
      assert.equal(again.collected.length, 0, 'nothing left to collect');
      assert.equal(await offline(payee), 700n);
      await checkConservation(base, [payer, payee], 0n);
    });
  }
});

test('a payment from a device certified after the payee TA\'s trusted time waits, goes in after a sync, and is never refused for ever', { timeout: 60_000 }, async () => {
  const base = await float();
  // The payee is certified while the node's clock is 50 s behind: its TA's trusted time is that old
  // (a device certificate starts a minute before the node's time, so the payer's starts later still).
  clockOffsetMs = -50_000;
  let payee: Wallet;
  try {
    payee = await create();
  } finally {
    clockOffsetMs = 0;
  }
  const payer = await create();
  await mint(payer, '10.00');
  await payer.deposit('10.00');
  const { request } = await payee.request('4.00');
  const { payment } = await payer.payRequest(request);
  await payee.acceptPayment(payment);
  // The payer's certificate starts after the payee TA's time: the TA cannot take it yet.
  const first = await payee.collect();
  assert.equal(first.collected.length, 0);
  assert.equal(first.refused.length, 0, 'not refused: nothing is wrong with the payment');
  assert.equal(first.waiting.length, 1);
  assert.match(first.waiting[0]?.waiting ?? '', /CERT_NOT_YET_VALID/);
  assert.deepEqual(payee.snapshot().inbox.map((e) => e.state), ['accepted']);
  assert.equal((await payee.collect()).waiting.length, 1, 'a second collect before a sync waits again');
  // The sync's ack moves the TA's trusted time; the payment goes in.
  const synced = await payee.sync();
  assert.deepEqual(synced.retried, { collected: 1, refused: 0, waiting: 0 });
  assert.deepEqual(payee.snapshot().inbox.map((e) => e.state), ['collected']);
  assert.equal(await offline(payee), 400n);
  await payer.sync();
  await payee.sync();
  await checkConservation(base, [payer, payee], 0n);
});

test('a withdraw cut off from the node stays written down and is finished once the node answers', { timeout: 60_000 }, async () => {
  const base = await float();
  const w = await create();
  await mint(w, '10.00');
  await w.deposit('10.00');
  // Point the wallet at a port nobody listens on for the withdraw: the TA signs, the node is not told.
  const name = w.name;
  await w.close();
  opened.delete(w);
  const dir = walletDir(home, name);
  editWalletFile(dir, (data) => {
    data.node = 'http://127.0.0.1:9';
  });
  let cut = await Wallet.open(home, name);
  opened.add(cut);
  await assert.rejects(cut.withdraw('4.00'), (e: unknown) => isTallyError(e, 'NODE_UNREACHABLE'));
  assert.equal(await offline(cut), 600n);
  assert.equal(cut.snapshot().pending[0]?.kind, 'withdraw');
  const waiting = (await cut.resume()).waiting;
  assert.equal(waiting[0]?.kind, 'withdraw');
  await cut.close();
  opened.delete(cut);
  editWalletFile(dir, (data) => {
    data.node = node.url;
  });
  cut = await Wallet.open(home, name);
  opened.add(cut);
  assert.deepEqual((await cut.resume()).finished, ['withdraw']);
  assert.equal((await cut.onlineBalance()).balance, '4.00');
  assert.deepEqual((await cut.resume()).finished, [], 'finished once');
  assert.equal((await cut.onlineBalance()).balance, '4.00');
  await checkConservation(base, [cut], 0n);
});

test('one process at a time: a second open of the same wallet is WALLET_BUSY; a lock left by a dead process is taken over', async () => {
  const w = await create(false);
  await assert.rejects(Wallet.open(home, w.name), (e: unknown) => isTallyError(e, 'WALLET_BUSY'));
  await w.close();
  opened.delete(w);
  const paths = walletPaths(walletDir(home, w.name));
  await writeFile(paths.lock, '999999999');
  const again = await Wallet.open(home, w.name);
  await again.close();
});

test('a damaged or exposed wallet file is refused with STATE_CORRUPT and left as it is', async () => {
  const w = await create(false);
  const name = w.name;
  await w.close();
  opened.delete(w);
  const paths = walletPaths(walletDir(home, name));
  // The store exposed: refused with the chmod that fixes it.
  await chmod(paths.store, 0o644);
  await assert.rejects(Wallet.open(home, name), (e: unknown) => isTallyError(e, 'STATE_CORRUPT') && /chmod/.test(e.message));
  await chmod(paths.store, 0o600);
  // The store damaged: refused, and left as it is.
  const damaged = new TextEncoder().encode('not a wallet store, but something else entirely'.repeat(100));
  await writeFile(paths.store, damaged);
  await assert.rejects(Wallet.open(home, name), (e: unknown) => isTallyError(e, 'STATE_CORRUPT'));
  assert.deepEqual(new Uint8Array(await readFile(paths.store)), damaged);
  // A wallet.json of an earlier version, damaged or exposed: refused before anything is migrated.
  await rm(paths.store);
  await writeFile(paths.legacy, '{"format": 1, "scheme": "ops"', { mode: 0o600 });
  await assert.rejects(Wallet.open(home, name), (e: unknown) => isTallyError(e, 'STATE_CORRUPT'));
  await writeFile(paths.legacy, '{"format": 2}');
  await assert.rejects(Wallet.open(home, name), (e: unknown) => isTallyError(e, 'STATE_CORRUPT'));
  await chmod(paths.legacy, 0o644);
  await assert.rejects(Wallet.open(home, name), (e: unknown) => isTallyError(e, 'STATE_CORRUPT') && /chmod/.test(e.message));
  assert.equal(await readFile(paths.legacy, 'utf8'), '{"format": 2}');
});

test('a wallet with a secure element needs an OEM enrolled at its node; without one nothing is created', async () => {
  const bare = join(root, 'bare-home');
  await assert.rejects(Wallet.create({ home: bare, name: 'x', node: node.url, secureElement: true }), (e: unknown) => isTallyError(e, 'WALLET_UNSUPPORTED') && /tally operator oem/.test(e.message));
  await assert.rejects(Wallet.open(bare, 'x'), (e: unknown) => isTallyError(e, 'WALLET_NOT_FOUND'));
  await assert.rejects(Wallet.create({ home: bare, name: '../evil', node: node.url, secureElement: false }), (e: unknown) => isTallyError(e, 'DECODE_FAILED'));
  await assert.rejects(enrollOem(bare, client, 'not the token', ops.wallet.trustedApps), (e: unknown) => isTallyError(e, 'NODE_REFUSED') && e.details.status === 401);
});

describe('the account key at rest', () => {
  /** The bytes of every file under `dir`. */
  async function filesUnder(dir: string): Promise<Buffer[]> {
    const found: Buffer[] = [];
    for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
      if (entry.isFile()) found.push(await readFile(join(entry.parentPath, entry.name)));
    }
    return found;
  }
  /** True when some file holds `secret` raw, in hex or in base64url. */
  async function exposed(dir: string, secret: Uint8Array): Promise<boolean> {
    const forms = [Buffer.from(secret), Buffer.from(toHex(secret)), Buffer.from(toBase64url(secret))];
    return (await filesUnder(dir)).some((bytes) => forms.some((form) => bytes.includes(form)));
  }
  /** The account secret, opened as the SE host opens it (the test plays the host). */
  async function heldSecret(name: string): Promise<Uint8Array> {
    const paths = walletPaths(walletDir(home, name));
    const held = readWalletFile(paths.dir).user.held;
    assert.ok(held?.kind === 'se', 'held by the secure element');
    return openSlot(await readFile(join(paths.se, 'master.key')), 'account', fromBase64url(held.box));
  }
  const passphrase = (value: string | undefined) => ({ env: { TALLY_WALLET_PASSPHRASE: value }, isTTY: false });

  test('a wallet with a secure element: the key is sealed by the SE host, in no file in the clear, and signs', async () => {
    const w = await Wallet.create({ home, name: 'keyed', node: node.url, secureElement: true });
    opened.add(w);
    assert.equal(w.snapshot().user.secret, undefined);
    await mint(w, '1.00');
    assert.equal((await w.onlineBalance()).balance, '1.00', 'the node took a call signed with the key');
    const account = w.snapshot().user.keyId;
    await w.close();
    opened.delete(w);
    const secret = await heldSecret('keyed');
    assert.equal(toHex(keyId(signerFromSecret(nodeProvider.suites.ed25519, secret).publicKey)), account);
    assert.equal(await exposed(walletDir(home, 'keyed'), secret), false, 'the key is in no file of the wallet in the clear');
  });

  test('a box swapped in from another wallet does not open: STATE_CORRUPT, nothing signed', async () => {
    for (const name of ['swap-a', 'swap-b']) await (await Wallet.create({ home, name, node: node.url, secureElement: true })).close();
    const theirs = readWalletFile(walletDir(home, 'swap-b')).user.held;
    editWalletFile(walletDir(home, 'swap-a'), (data) => {
      if (theirs !== undefined) data.user.held = theirs;
    });
    const w = await Wallet.open(home, 'swap-a');
    try {
      await assert.rejects(w.onlineBalance(), (e) => isTallyError(e, 'STATE_CORRUPT') && /another device/.test(e.message));
    } finally {
      await w.close();
    }
  });

  test('without a secure element: the key is sealed under the wallet passphrase; none given, nothing is created; a wrong one is refused', async () => {
    await assert.rejects(Wallet.create({ home, name: 'nopass', node: node.url, secureElement: false, passphrase: passphrase(undefined) }), (e) => isTallyError(e, 'PASSWORD_MISSING'));
    await assert.rejects(Wallet.open(home, 'nopass'), (e) => isTallyError(e, 'WALLET_NOT_FOUND'));
    await assert.rejects(Wallet.create({ home, name: 'nopass', node: node.url, secureElement: false, passphrase: passphrase('short') }), (e) => isTallyError(e, 'PASSWORD_MISSING') && /at least 8/.test(e.message));
    const w = await Wallet.create({ home, name: 'phrased', node: node.url, secureElement: false, passphrase: passphrase('a wallet passphrase') });
    await w.close();
    const held = readWalletFile(walletDir(home, 'phrased')).user.held;
    assert.equal(held?.kind, 'passphrase');
    const saved = process.env['TALLY_WALLET_PASSPHRASE'];
    try {
      process.env['TALLY_WALLET_PASSPHRASE'] = 'not the passphrase';
      const wrong = await Wallet.open(home, 'phrased');
      await assert.rejects(wrong.onlineBalance(), (e) => isTallyError(e, 'PASSWORD_WRONG'));
      await wrong.close();
      process.env['TALLY_WALLET_PASSPHRASE'] = 'a wallet passphrase';
      const right = await Wallet.open(home, 'phrased');
      assert.equal((await right.onlineBalance()).balance, '0.00');
      await right.close();
    } finally {
      if (saved === undefined) delete process.env['TALLY_WALLET_PASSPHRASE'];
      else process.env['TALLY_WALLET_PASSPHRASE'] = saved;
    }
  });

  test('a wallet.json of an earlier version with the key in the clear moves into the store with the key sealed by its SE', async () => {
    await (await Wallet.create({ home, name: 'legacy', node: node.url, secureElement: true })).close();
    const dir = walletDir(home, 'legacy');
    const secret = await heldSecret('legacy');
    const data = readWalletFile(dir);
    const { held: _held, ...user } = data.user;
    await toLegacyFolder(dir, { ...data, user: { ...user, secret: toHex(secret) } });
    assert.equal(await exposed(dir, secret), true, 'the old layout had it in the clear');
    const w = await Wallet.open(home, 'legacy');
    try {
      assert.equal(w.snapshot().user.secret, undefined);
      assert.equal((await w.onlineBalance()).balance, '0.00', 'the sealed key signs');
      assert.ok((await w.history()).events.some((e) => e.kind === 'account-sealed'));
    } finally {
      await w.close();
    }
    assert.deepEqual(await heldSecret('legacy'), secret);
    assert.equal(await exposed(dir, secret), false, 'neither the store nor the backup of wallet.json holds it in the clear');
  });
});

describe('the balance without a secure element start', () => {
  /** Runs `edit` on the wallet's store (the wallet closed). */
  function editStore(name: string, edit: (db: Database.Database) => void): void {
    const db = new Database(join(walletDir(home, name), STORE_FILES.store), { fileMustExist: true });
    try {
      edit(db);
    } finally {
      db.close();
    }
  }
  const reportOf = (name: string): unknown => {
    let value: unknown;
    editStore(name, (db) => {
      value = db.prepare("SELECT value FROM meta WHERE key = 'se-report'").pluck().get();
    });
    return value;
  };

  test('after a session the SE\'s report is recorded and balance shows it; a start removes it; a session cut short leaves none', { timeout: 60_000 }, async () => {
    const base = await float();
    let w = await create();
    await mint(w, '30.00');
    await w.deposit('20.00');
    w = await reopen(w);
    const quiet = await w.balance();
    assert.equal(quiet.offline, '20.00');
    assert.equal(quiet.holdingLimit !== undefined, true);
    assert.equal(typeof quiet.offlineAsOf, 'string');
    assert.equal(quiet.online, '10.00', 'the node answered (the account key was opened for it, from the SE)');

    // The SE starts: the record goes before its first command. A deposit, then the SE dies.
    await w.se();
    assert.equal(reportOf(w.name), undefined, 'no record while the SE may change');
    await w.deposit('5.00');
    await (await w.se()).kill();
    w = await reopen(w);
    assert.equal(reportOf(w.name), undefined, 'a session cut short records nothing');
    const asked = await w.balance();
    assert.equal(asked.offline, '25.00');
    assert.equal(asked.offlineAsOf, undefined, 'no record: the SE was asked');
    w = await reopen(w);
    const recorded = await w.balance();
    assert.equal(recorded.offline, '25.00');
    assert.equal(typeof recorded.offlineAsOf, 'string');
    await checkConservation(base, [w], 0n);
  });

  /** A new wallet with `deposit` in its SE and 10.00 minted, closed (so its SE's report is recorded); its name. */
  async function closedAfterDeposit(deposit: string): Promise<string> {
    const w = await create();
    await mint(w, '10.00');
    await w.deposit(deposit);
    await w.close();
    opened.delete(w);
    return w.name;
  }

  test('a record of another device, or a damaged one, is not shown: the SE is asked', { timeout: 60_000 }, async () => {
    const name = await closedAfterDeposit('3.00');
    const original = reportOf(name);
    assert.equal(typeof original, 'string');
    const record = seReportCodec.decode(JSON.parse(original as string));
    const forged = { ...record, device: 'ab'.repeat(32), report: JSON.stringify({ balance: '99900', holdingLimit: '30000', offlinePaymentsMax: 50, unsyncedPayments: 0 }) };
    for (const value of [JSON.stringify(forged), JSON.stringify({ ...record, report: '{"balance":"-1"}' })]) {
      editStore(name, (db) => db.prepare("UPDATE meta SET value = ? WHERE key = 'se-report'").run(value));
      const w = await Wallet.open(home, name);
      opened.add(w);
      const b = await w.balance();
      assert.equal(b.offline, '3.00');
      assert.equal(b.offlineAsOf, undefined, 'the SE was asked');
      await w.close();
      opened.delete(w);
    }
  });

  test('with the node down, balance opens no account key and starts no SE', { timeout: 60_000 }, async () => {
    const name = await closedAfterDeposit('4.00');
    // Port 1 on the loopback refuses connections.
    editStore(name, (db) => {
      const header = headerCodec.decode(JSON.parse(db.prepare("SELECT value FROM meta WHERE key = 'header'").pluck().get() as string));
      db.prepare("UPDATE meta SET value = ? WHERE key = 'header'").run(JSON.stringify({ ...header, node: 'http://127.0.0.1:1' }));
    });
    const w = await Wallet.open(home, name);
    opened.add(w);
    const b = await w.balance();
    assert.equal(b.online, null);
    assert.match(b.onlineError ?? '', /cannot reach the issuer node at http:\/\/127\.0\.0\.1:1 \(connect ECONNREFUSED/);
    assert.equal(b.offline, '4.00');
    assert.equal(typeof b.offlineAsOf, 'string');
    assert.equal(w.secureElementRunning, false);
  });
});
