/**
 * For tests that looked into (or edited) a wallet's files: the store of a wallet folder read as the
 * wallet.json it replaces (received and sent payments archived or not), edited the same way, turned
 * back into a wallet.json folder of an earlier version, and its bytes on disk.
 */
import Database from 'better-sqlite3';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { WalletData } from '../wallet-data.ts';
import { STORE_FILES } from './open.ts';
import { WalletStore } from './store.ts';

/** A wallet as wallet.json laid it out; `slot` is the scheme's record. */
export type WalletFile = WalletData<{ kind: string; id: string; [field: string]: unknown }, Record<string, unknown>>;

function column(db: Database.Database, sql: string): unknown[] {
  return (db.prepare(sql).pluck().all() as string[]).map((body) => JSON.parse(body) as unknown);
}

/** Reads the store of the wallet folder `dir` as a wallet.json (a read-only connection: the wallet may be open). */
export function readWalletFile(dir: string): WalletFile {
  const db = new Database(join(dir, STORE_FILES.store), { readonly: true, fileMustExist: true });
  try {
    const meta = (key: string): unknown => JSON.parse(db.prepare('SELECT value FROM meta WHERE key = ?').pluck().get(key) as string);
    const header = meta('header') as Pick<WalletFile, 'name' | 'scheme' | 'node' | 'currency' | 'createdAt'>;
    const slot = meta('slot') as { user: WalletFile['user']; device: WalletFile['device']; scheme?: Record<string, unknown> };
    return {
      format: 1,
      ...header,
      user: slot.user,
      device: slot.device,
      ...(slot.scheme === undefined ? {} : { slot: slot.scheme }),
      certificates: meta('certificates') as WalletFile['certificates'],
      crl: meta('crl') as string | null,
      inbox: column(db, 'SELECT body FROM (SELECT at, digest, body FROM inbox UNION ALL SELECT at, digest, body FROM inbox_archive) ORDER BY at, digest') as WalletFile['inbox'],
      sent: column(db, 'SELECT body FROM (SELECT at, digest, body FROM sent UNION ALL SELECT at, digest, body FROM sent_archive) ORDER BY at, digest') as WalletFile['sent'],
      pending: column(db, 'SELECT body FROM pending ORDER BY seq') as WalletFile['pending'],
      retired: column(db, 'SELECT body FROM retired ORDER BY seq') as NonNullable<WalletFile['retired']>,
    };
  } finally {
    db.close();
  }
}

/** The history lines of the store of `dir`, oldest first, as they are stored. */
export function readWalletHistory(dir: string): unknown[] {
  const db = new Database(join(dir, STORE_FILES.store), { readonly: true, fileMustExist: true });
  try {
    return column(db, 'SELECT body FROM history ORDER BY seq');
  } finally {
    db.close();
  }
}

/**
 * Edits the store of `dir` (the wallet must not be open): `edit` changes a wallet.json view, and the
 * header, account, device, slot, steps and entries are written back through the store.
 */
export function editWalletFile(dir: string, edit: (data: WalletFile) => void): void {
  const data = readWalletFile(dir);
  edit(data);
  const store = WalletStore.open(join(dir, STORE_FILES.store));
  try {
    const steps = store.pending();
    store.step((tx) => {
      for (const step of steps) tx.removePending(step.id);
      for (const step of data.pending) tx.putPending(step);
      for (const entry of data.inbox) tx.putInbox(entry);
      for (const entry of data.sent) tx.putSent(entry);
      tx.setSlot({ user: data.user, device: data.device, ...(data.slot === undefined ? {} : { scheme: data.slot }) });
    });
  } finally {
    store.close();
  }
  const db = new Database(join(dir, STORE_FILES.store), { fileMustExist: true });
  try {
    const header = { name: data.name, scheme: data.scheme, node: data.node, currency: data.currency, createdAt: data.createdAt };
    db.prepare("UPDATE meta SET value = ? WHERE key = 'header'").run(JSON.stringify(header));
  } finally {
    db.close();
  }
}

/** Turns the wallet folder `dir` into the wallet.json folder of an earlier version (`data`, or its store's content, and its history). */
export async function toLegacyFolder(dir: string, data: WalletFile = readWalletFile(dir)): Promise<void> {
  const history = readWalletHistory(dir);
  await writeFile(join(dir, STORE_FILES.legacy), `${JSON.stringify(data, null, 1)}\n`, { mode: 0o600 });
  await writeFile(join(dir, STORE_FILES.legacyHistory), history.map((e) => `${JSON.stringify(e)}\n`).join(''), { mode: 0o600 });
  for (const suffix of ['', '-wal', '-shm']) await rm(join(dir, `${STORE_FILES.store}${suffix}`), { force: true });
}

/** Every file of the folder `dir` that holds the wallet's data (wallet.db, its WAL, a wallet.json and its backup), as latin1 text, for a search of what is on disk. */
export async function walletBytesOnDisk(dir: string): Promise<string> {
  const names = [STORE_FILES.store, `${STORE_FILES.store}-wal`, STORE_FILES.legacy, STORE_FILES.backup];
  const parts = await Promise.all(names.map((n) => readFile(join(dir, n)).then((b) => b.toString('latin1'), () => '')));
  return parts.join('\n');
}
