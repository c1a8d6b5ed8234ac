/**
 * The wallet store: a step commits whole with its history line or not at all (also when its process
 * is killed mid-step), settled entries are archived and still answer replay checks, a damaged row or
 * file is an error naming the field, and a wallet.json folder is migrated once with a backup.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import Database from 'better-sqlite3';
import { after, test } from 'node:test';
import { isTallyError } from '../../core/errors.ts';
import { openWalletStore, STORE_FILES, WalletStore, type LegacyWallet } from './index.ts';
import { BLOB, collectStep, hexOf, inboxEntry, legacyWallet, sentEntry, storeInit, testSteps } from './test-fixtures.ts';

const TSX_LOADER = import.meta.resolve('tsx');
const CHILD = new URL('./crash-child.ts', import.meta.url).pathname;
const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tally-store-'));
  dirs.push(dir);
  return dir;
}

async function newStore(): Promise<{ dir: string; path: string; store: WalletStore }> {
  const dir = await tempDir();
  const path = join(dir, 'wallet.db');
  return { dir, path, store: WalletStore.create(path, storeInit(), { steps: testSteps }) };
}

test('a step commits its state change and its history line together', async () => {
  const { path, store } = await newStore();
  store.step((tx) => tx.putPending(collectStep(1)));
  store.step((tx) => {
    tx.removePending(collectStep(1).id);
    tx.putInbox(inboxEntry(1, 'collected'));
    tx.history({ at: 1, kind: 'collect', amount: '1.00' });
  });
  store.close();
  const again = WalletStore.open(path);
  assert.deepEqual(again.pending(), []);
  assert.equal(again.inboxByDigest(inboxEntry(1).digest)?.state, 'collected');
  assert.deepEqual(again.history(), [{ at: 1, kind: 'collect', amount: '1.00' }]);
  assert.deepEqual(again.header(), storeInit().header);
  again.close();
});

test('a step that throws leaves nothing behind', async () => {
  const { store } = await newStore();
  assert.throws(() =>
    store.step((tx) => {
      tx.putInbox(inboxEntry(1));
      tx.history({ at: 1, kind: 'accept' });
      throw new Error('cut');
    }),
  /cut/);
  assert.deepEqual(store.inbox(), []);
  assert.deepEqual(store.history(), []);
  store.close();
});

test('a malformed entry is refused before it is written, naming the field', async () => {
  const { store } = await newStore();
  const bad = { ...inboxEntry(1), sender: 'zz' };
  assert.throws(() => store.step((tx) => tx.putInbox(bad)), (e) => isTallyError(e, 'DECODE_FAILED') && e.details.path === 'inbox entry.sender');
  assert.throws(() => store.step((tx) => tx.putPending({ kind: 'pay', id: hexOf(1, 16), amount: '-1', receiver: BLOB })), (e) => isTallyError(e, 'DECODE_FAILED') && e.details.path === 'step.amount');
  assert.throws(() => store.step((tx) => tx.setCrl('not base64url!')), (e) => isTallyError(e, 'DECODE_FAILED') && e.details.path === 'crl');
  assert.deepEqual(store.inbox(), []);
  store.close();
});

test('a damaged row is a STATE_CORRUPT error naming the row and field, not a crash later', async () => {
  const { path, store } = await newStore();
  store.step((tx) => tx.putInbox(inboxEntry(1)));
  store.close();
  const raw = new Database(path);
  raw.prepare('UPDATE inbox SET body = ?').run(JSON.stringify({ ...inboxEntry(1), amount: 12 }));
  raw.prepare("UPDATE meta SET value = '{\"name\":\"x\"}' WHERE key = 'header'").run();
  raw.close();
  assert.throws(() => WalletStore.open(path), (e) => isTallyError(e, 'STATE_CORRUPT') && /header/.test(e.message) && /header\.scheme/.test(e.message));
  const fix = new Database(path);
  fix.prepare('UPDATE meta SET value = ? WHERE key = ?').run(JSON.stringify(storeInit().header), 'header');
  fix.close();
  const again = WalletStore.open(path);
  assert.throws(() => again.inbox(), (e) => isTallyError(e, 'STATE_CORRUPT') && /inbox entry\.amount: expected a decimal integer/.test(e.message));
  again.close();
});

test('a file that is not a wallet store is refused', async () => {
  const dir = await tempDir();
  const path = join(dir, 'wallet.db');
  await writeFile(path, 'not a database at all, just some text that is long enough to look like a header'.repeat(20), { mode: 0o600 });
  assert.throws(() => WalletStore.open(path), (e) => isTallyError(e, 'STATE_CORRUPT'));
  assert.throws(() => WalletStore.open(join(dir, 'none.db')), (e) => isTallyError(e, 'WALLET_NOT_FOUND'));
  assert.throws(() => WalletStore.create(path, storeInit()), (e) => isTallyError(e, 'WALLET_EXISTS'));
});

test('the store file and its WAL are private (0600)', async () => {
  const { dir, store } = await newStore();
  store.step((tx) => tx.putInbox(inboxEntry(1)));
  for (const name of await readdir(dir)) {
    if (name.startsWith('wallet.db')) assert.equal((await stat(join(dir, name))).mode & 0o077, 0, name);
  }
  store.close();
});

test('prune archives settled entries; archived ones still answer the replay and paid-request checks', async () => {
  const { store } = await newStore();
  store.step((tx) => {
    tx.putInbox(inboxEntry(1, 'collected'));
    tx.putInbox(inboxEntry(2, 'accepted'));
    tx.putInbox(inboxEntry(3, 'refused'));
    tx.putSent({ ...sentEntry(1), request: 'ab' });
    tx.putSent(sentEntry(2));
    tx.settleSent([sentEntry(1).digest]);
  });
  assert.deepEqual(store.prune({ before: Number.MAX_SAFE_INTEGER }), { inbox: 2, sent: 1 });
  assert.deepEqual(store.inbox().map((e) => e.index), ['2']);
  assert.deepEqual(store.sent().map((e) => e.index), ['2']);
  assert.equal(store.inboxBySender(inboxEntry(1).sender, '1')?.state, 'collected');
  assert.equal(store.sentByRequest('ab')?.digest, sentEntry(1).digest);
  const counts = store.counts();
  assert.equal(counts.inboxArchived, 2);
  assert.equal(counts.sentArchived, 1);
  // Dropping deletes outright; an entry newer than `before` stays.
  store.step((tx) => tx.putInbox(inboxEntry(4, 'claimed')));
  assert.deepEqual(store.prune({ before: inboxEntry(4).at, drop: true }), { inbox: 0, sent: 0 });
  assert.deepEqual(store.prune({ before: Number.MAX_SAFE_INTEGER, drop: true }), { inbox: 1, sent: 0 });
  assert.equal(store.inboxBySender(inboxEntry(4).sender, '4'), undefined);
  store.close();
});

test('the replay key (sender, index) is unique', async () => {
  const { store } = await newStore();
  store.step((tx) => tx.putInbox(inboxEntry(1)));
  assert.throws(() => store.step((tx) => tx.putInbox({ ...inboxEntry(1), digest: hexOf(99, 32) })), /UNIQUE/);
  assert.equal(store.inbox().length, 1);
  store.close();
});

function runChild(mode: 'mid' | 'loop', path: string): { done: Promise<NodeJS.Signals | null>; ready: Promise<void>; kill: () => void } {
  const child = spawn(process.execPath, ['--import', TSX_LOADER, CHILD, mode, path], { stdio: ['ignore', 'pipe', 'inherit'] });
  const ready = new Promise<void>((resolve) => {
    createInterface({ input: child.stdout }).once('line', () => resolve());
  });
  const done = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, signal) => resolve(signal)));
  return { done, ready, kill: () => child.kill('SIGKILL') };
}

test('a process killed in the middle of a step leaves the step absent', async () => {
  const { path, store } = await newStore();
  store.step((tx) => {
    tx.putInbox(inboxEntry(0));
    tx.putSent(sentEntry(0));
    tx.history({ at: 1, kind: 'step', detail: '0' });
  });
  store.close();
  const child = runChild('mid', path);
  assert.equal(await child.done, 'SIGKILL');
  const again = WalletStore.open(path);
  const counts = again.counts();
  assert.deepEqual([counts.inbox, counts.sent, counts.history], [1, 1, 1]);
  again.close();
});

test('a process killed at random while committing steps leaves whole steps only', async () => {
  for (let round = 0; round < 4; round++) {
    const { path, store } = await newStore();
    store.close();
    const child = runChild('loop', path);
    await child.ready;
    await new Promise((r) => setTimeout(r, 40 + round * 60));
    child.kill();
    assert.equal(await child.done, 'SIGKILL');
    const again = WalletStore.open(path);
    const counts = again.counts();
    assert.ok(counts.inbox > 0, `round ${round}: some steps committed`);
    assert.equal(counts.sent, counts.inbox, `round ${round}: sent and inbox go together`);
    assert.equal(counts.history, counts.inbox, `round ${round}: every step has its history line`);
    assert.deepEqual(again.history().map((h) => h.detail), Array.from({ length: counts.inbox }, (_, i) => String(i)));
    again.close();
  }
});

async function writeLegacy(dir: string, data: LegacyWallet | Record<string, unknown>, history = ''): Promise<void> {
  await writeFile(join(dir, STORE_FILES.legacy), `${JSON.stringify(data)}\n`, { mode: 0o600 });
  if (history !== '') await writeFile(join(dir, STORE_FILES.legacyHistory), history, { mode: 0o600 });
}

const sealUser = async (data: LegacyWallet) => {
  const { secret: _secret, ...user } = data.user;
  const sealedUser = { ...user, sealed: 'c2VhbGVk' };
  return { slot: { user: sealedUser, device: data.device }, user: sealedUser };
};

test('a wallet.json folder is migrated once: entries, history, backup without the key in the clear', async () => {
  const dir = await tempDir();
  const old = legacyWallet(3);
  old.pending.push(collectStep(7));
  await writeLegacy(dir, old, `${JSON.stringify({ at: 5, kind: 'created' })}\nnot json\n`);
  const store = await openWalletStore(dir, { migrate: sealUser });
  assert.equal(store.inbox().length, 3);
  assert.equal(store.sent().length, 3);
  assert.deepEqual(store.pending(), [collectStep(7)]);
  const history = store.history();
  assert.deepEqual(history[0], { at: 5, kind: 'created' });
  assert.equal(history[1]?.kind, 'unreadable');
  assert.equal(history[2]?.kind, 'store-migrated');
  assert.equal((store.slot({ expected: 'any', decode: (v) => v }) as { user: { sealed: string } }).user.sealed, 'c2VhbGVk');
  store.close();
  const files = (await readdir(dir)).sort();
  assert.ok(!files.includes(STORE_FILES.legacy) && !files.includes(STORE_FILES.legacyHistory), files.join(','));
  assert.ok(files.includes(STORE_FILES.backup) && files.includes(STORE_FILES.historyBackup), files.join(','));
  const backup = await readFile(join(dir, STORE_FILES.backup), 'utf8');
  assert.ok(!backup.includes(old.user.secret ?? 'x'), 'the backup holds no key in the clear');
  for (const name of files) assert.ok(!(await readFile(join(dir, name))).includes(Buffer.from(old.user.secret ?? 'x')), `${name} holds no key in the clear`);
  // Opened again: no second migration.
  const again = await openWalletStore(dir);
  assert.equal(again.history().filter((h) => h.kind === 'store-migrated').length, 1);
  again.close();
});

test('a migration cut short is done again; one finished before its backup completes the backup', async () => {
  const dir = await tempDir();
  await writeLegacy(dir, legacyWallet(2));
  await writeFile(join(dir, STORE_FILES.migrating), 'half a store', { mode: 0o600 });
  const store = await openWalletStore(dir, { migrate: sealUser });
  assert.equal(store.inbox().length, 2);
  store.close();
  // The store is in place but the old file came back (a crash between the rename and the backup).
  await writeLegacy(dir, legacyWallet(2));
  const again = await openWalletStore(dir);
  assert.equal(again.inbox().length, 2);
  again.close();
  assert.ok(!(await readdir(dir)).includes(STORE_FILES.legacy));
  assert.ok(!(await readFile(join(dir, STORE_FILES.backup), 'utf8')).includes(hexOf(5, 32)));
});

test('a malformed wallet.json is refused naming the field; nothing is migrated', async () => {
  const dir = await tempDir();
  const old = legacyWallet(2) as unknown as Record<string, unknown> & { inbox: Record<string, unknown>[] };
  old.inbox[1] = { ...old.inbox[1], state: 'stolen' };
  await writeLegacy(dir, old);
  await assert.rejects(openWalletStore(dir, { migrate: sealUser }), (e) => isTallyError(e, 'STATE_CORRUPT') && /wallet\.inbox\[1\]\.state/.test(e.message));
  assert.ok(!(await readdir(dir)).includes(STORE_FILES.store));
  await writeFile(join(dir, STORE_FILES.legacy), '{"format":1', { mode: 0o600 });
  await assert.rejects(openWalletStore(dir, { migrate: sealUser }), (e) => isTallyError(e, 'STATE_CORRUPT') && /not JSON/.test(e.message));
  await assert.rejects(openWalletStore(await tempDir()), (e) => isTallyError(e, 'WALLET_NOT_FOUND'));
});

test('a wallet.json folder is not migrated without the scheme saying what its slot becomes', async () => {
  const dir = await tempDir();
  await writeLegacy(dir, legacyWallet(1));
  await assert.rejects(openWalletStore(dir), (e) => isTallyError(e, 'WALLET_UNSUPPORTED'));
  assert.ok((await readdir(dir)).includes(STORE_FILES.legacy));
});
