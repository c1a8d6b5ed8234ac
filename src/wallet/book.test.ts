/**
 * The wallet shell's book over the store: a wallet.json folder of an earlier version opens migrated
 * with its received and sent payments, history and unfinished steps; a process killed at random
 * while it runs steps as the shell does never keeps a step's change without its history line (or
 * the reverse); and a step the scheme does not know is refused before anything is migrated.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, test } from 'node:test';
import { isTallyError } from '../core/errors.ts';
import { legacyWallet, payStepOf, TEST_FORMAT } from './book-fixtures.ts';
import { openFolderOf } from './folder.ts';
import { STORE_FILES } from './store/open.ts';
import { collectStep, inboxEntry } from './store/test-fixtures.ts';

const TSX_LOADER = import.meta.resolve('tsx');
const CHILD = new URL('./book-crash-child.ts', import.meta.url).pathname;
const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

/** A home with wallet `alice` as a wallet.json folder of an earlier version. */
async function legacyHome(data: object, history = ''): Promise<{ home: string; dir: string }> {
  const home = await mkdtemp(join(tmpdir(), 'tally-book-'));
  dirs.push(home);
  const dir = join(home, 'wallets', 'alice');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await writeFile(join(dir, STORE_FILES.legacy), JSON.stringify(data), { mode: 0o600 });
  if (history !== '') await writeFile(join(dir, STORE_FILES.legacyHistory), history, { mode: 0o600 });
  return { home, dir };
}

test('a wallet.json folder opens migrated: its payments, history and unfinished steps kept, the old files as backups', async () => {
  const old = legacyWallet(3);
  old.inbox.push(inboxEntry(3, 'accepted'));
  const pay = payStepOf(9).step;
  old.pending.push(collectStep(3), pay);
  const { home, dir } = await legacyHome(old, `${JSON.stringify({ at: 5, kind: 'created' })}\n${JSON.stringify({ at: 6, kind: 'accept', amount: '1.00' })}\n`);
  const { book, unlock } = await openFolderOf(home, 'alice', 'purse', TEST_FORMAT);
  try {
    assert.deepEqual(book.state.pending, [collectStep(3), pay], 'the unfinished steps, in order');
    assert.deepEqual(book.state.user, old.user);
    assert.deepEqual(book.state.device, old.device);
    const data = book.snapshot();
    assert.deepEqual(data.inbox, old.inbox);
    assert.deepEqual(data.sent, old.sent);
    assert.deepEqual(book.acceptedInbox(), [inboxEntry(3, 'accepted')]);
    assert.equal(book.inboxBySender(old.inbox[1]?.sender ?? '', '1')?.digest, old.inbox[1]?.digest, 'the replay check sees the old payments');
    assert.equal(book.sentByDigest(old.sent[2]?.digest ?? '')?.index, '2');
    const { events } = book.history();
    assert.deepEqual(events.slice(0, 2), [{ at: 5, kind: 'created' }, { at: 6, kind: 'accept', amount: '1.00' }]);
    assert.equal(events[2]?.kind, 'store-migrated');
  } finally {
    book.close();
    await unlock();
  }
  const files = await readdir(dir);
  assert.ok(files.includes(STORE_FILES.store) && files.includes(STORE_FILES.backup) && files.includes(STORE_FILES.historyBackup), files.join(','));
  assert.ok(!files.includes(STORE_FILES.legacy) && !files.includes(STORE_FILES.legacyHistory), files.join(','));
  // Opened again: the same wallet, migrated once.
  const again = await openFolderOf(home, 'alice', 'purse', TEST_FORMAT);
  try {
    assert.equal(again.book.history().events.filter((e) => e.kind === 'store-migrated').length, 1);
    assert.equal(again.book.state.pending.length, 2);
  } finally {
    again.book.close();
    await again.unlock();
  }
});

test('a wallet.json with a step its scheme does not know is refused; nothing is migrated', async () => {
  const old = legacyWallet(1);
  old.pending.push({ kind: 'teleport', id: '00'.repeat(16) });
  const { home, dir } = await legacyHome(old);
  await assert.rejects(openFolderOf(home, 'alice', 'purse', TEST_FORMAT), (e) => isTallyError(e, 'STATE_CORRUPT') && /teleport/.test(e.message));
  assert.deepEqual((await readdir(dir)).filter((f) => f.startsWith('wallet')), [STORE_FILES.legacy]);
  await assert.rejects(openFolderOf(home, 'alice', 'other', TEST_FORMAT), (e) => isTallyError(e, 'WALLET_UNSUPPORTED'));
});

test('a process killed at random while running steps keeps each step whole: its change and its history line together', { timeout: 120_000 }, async () => {
  for (let round = 0; round < 4; round++) {
    const { home } = await legacyHome(legacyWallet(0));
    const child = spawn(process.execPath, ['--import', TSX_LOADER, CHILD, home], { stdio: ['ignore', 'pipe', 'inherit'] });
    const done = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, signal) => resolve(signal)));
    await new Promise<void>((resolve) => createInterface({ input: child.stdout }).once('line', () => resolve()));
    await new Promise((r) => setTimeout(r, 40 + round * 70));
    child.kill('SIGKILL');
    assert.equal(await done, 'SIGKILL');
    const { book, unlock } = await openFolderOf(home, 'alice', 'purse', TEST_FORMAT);
    try {
      const sent = book.snapshot().sent;
      const lines = book.history().events.filter((e) => e.kind === 'pay').map((e) => e.detail);
      assert.ok(sent.length > 0, `round ${round}: some steps ran`);
      assert.deepEqual(lines, sent.map((_, n) => `step ${n}`), `round ${round}: every payment kept has its history line, and no line is without its payment`);
      assert.deepEqual(sent.map((e) => e.index), sent.map((_, n) => String(n)));
      // At most the step cut short is still written down, and it is the next one.
      assert.ok(book.state.pending.length <= 1, `round ${round}: ${book.state.pending.length} steps pending`);
      for (const step of book.state.pending) assert.equal(step.id, payStepOf(sent.length).step.id);
    } finally {
      book.close();
      await unlock();
    }
  }
});
