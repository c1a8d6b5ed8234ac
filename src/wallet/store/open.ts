/**
 * Opening a wallet folder's store, migrating a wallet.json folder (format 1) once: the file is read
 * and decoded whole, the store is built beside it as `wallet.db.migrating` in one transaction and
 * renamed into place, then wallet.json becomes `wallet.json.bak` (without the account key in the
 * clear when the scheme sealed it) and history.jsonl becomes `history.jsonl.bak`. A crash at any
 * point leaves either the old folder (migrated again on the next open) or a complete store.
 */
import { rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { utf8 } from '../../core/bytes.ts';
import { TallyError } from '../../core/errors.ts';
import { syncDirectory } from '../../secure-element/durable-file.ts';
import { corrupt, isFsError, readFileBounded, requirePrivateMode, writeFileAtomic } from '../../host/files.ts';
import { historyEventCodec, walletFileCodec, walletFileShape, type HistoryEvent, type LegacyWallet } from './records.ts';
import { STORE_FILE, WalletStore, type StoreOptions } from './store.ts';

/** Largest legacy wallet.json migrated (the old code refused past 16 MiB; a migration takes more). */
export const LEGACY_FILE_BYTES_MAX = 1024 * 1024 * 1024;
/** Largest legacy history.jsonl imported. */
export const LEGACY_HISTORY_BYTES_MAX = 1024 * 1024 * 1024;

/** Names of the files in a wallet folder that the store and its migration use. */
export const STORE_FILES = {
  store: STORE_FILE,
  legacy: 'wallet.json',
  legacyHistory: 'history.jsonl',
  backup: 'wallet.json.bak',
  historyBackup: 'history.jsonl.bak',
  migrating: `${STORE_FILE}.migrating`,
} as const;

/**
 * What the scheme's slot becomes, from the old file: the account, the device and any scheme keys.
 * It is also where an account key kept in the clear gets sealed (see account-key.ts): the returned
 * `user` replaces the old one in the backup.
 */
export type SlotMigration = (data: LegacyWallet) => Promise<{ slot: unknown; user: LegacyWallet['user']; /** Lines the migration adds to the history (after `store-migrated`). */ history?: readonly HistoryEvent[] | undefined }>;

/** Options of openWalletStore. */
export interface OpenOptions extends StoreOptions {
  /** Turns an old wallet.json into the scheme's slot; required to migrate a wallet.json folder. */
  readonly migrate?: SlotMigration | undefined;
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (e) {
    if (isFsError(e, 'ENOENT')) return false;
    throw e;
  }
}

/** Reads and decodes a legacy wallet.json. @throws TallyError STATE_CORRUPT naming the damaged field */
export async function readLegacyWallet(path: string): Promise<LegacyWallet | null> {
  const file = await readFileBounded(path, 'wallet file', LEGACY_FILE_BYTES_MAX);
  if (file === null) return null;
  requirePrivateMode(path, 'wallet file', file.mode);
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(file.data));
  } catch (e) {
    throw corrupt(`wallet file ${path} is not JSON; restore it from a backup`, 'json', e);
  }
  // An earlier version kept the scheme's slot under the scheme's own name.
  if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) {
    const fields: Record<string, unknown> = { ...parsed };
    const scheme = fields['scheme'];
    if (typeof scheme === 'string' && fields['slot'] === undefined && !Object.hasOwn(walletFileShape, scheme) && fields[scheme] !== null && typeof fields[scheme] === 'object') {
      fields['slot'] = fields[scheme];
      delete fields[scheme];
      parsed = fields;
    }
  }
  try {
    return walletFileCodec.decode(parsed, 'wallet');
  } catch (e) {
    throw corrupt(`wallet file ${path} is damaged: ${e instanceof Error ? e.message : String(e)}`, 'field', e);
  }
}

/** The lines of a legacy history.jsonl; a line that does not decode is kept as an `unreadable` line. */
async function readLegacyHistory(path: string): Promise<HistoryEvent[]> {
  const file = await readFileBounded(path, 'history file', LEGACY_HISTORY_BYTES_MAX);
  if (file === null) return [];
  const lines = new TextDecoder().decode(file.data).split('\n').filter((l) => l.length > 0);
  return lines.map((line, i) => {
    try {
      return historyEventCodec.decode(JSON.parse(line), `history[${i}]`);
    } catch (e) {
      return { at: 0, kind: 'unreadable', detail: `line ${i + 1} of the old history.jsonl could not be read: ${(e instanceof Error ? e.message : String(e)).slice(0, 200)}` };
    }
  });
}

/**
 * Moves wallet.json aside as its backup: renamed as it is, or, when it kept a key in the clear,
 * written as `data` with `user` in place of its account (the caller decoded the file already).
 */
async function finishBackup(dir: string, data: LegacyWallet | null, user: LegacyWallet['user'] | null): Promise<void> {
  const legacy = join(dir, STORE_FILES.legacy);
  if (await exists(legacy)) {
    if (data !== null && user !== null) {
      await writeFileAtomic(join(dir, STORE_FILES.backup), utf8(`${JSON.stringify({ ...data, user }, null, 1)}\n`));
      await rm(legacy);
    } else {
      await rename(legacy, join(dir, STORE_FILES.backup));
    }
  }
  await rename(join(dir, STORE_FILES.legacyHistory), join(dir, STORE_FILES.historyBackup)).catch((e: unknown) => {
    if (!isFsError(e, 'ENOENT')) throw e;
  });
}

/**
 * Opens the store of the wallet folder `dir`, migrating a wallet.json folder first.
 * @throws TallyError WALLET_NOT_FOUND when the folder has neither; STATE_CORRUPT for a damaged file
 *   (naming the field); WALLET_UNSUPPORTED when a wallet.json needs migrating and no `migrate` is given
 */
export async function openWalletStore(dir: string, options: OpenOptions = {}): Promise<WalletStore> {
  const storePath = join(dir, STORE_FILES.store);
  const legacyPath = join(dir, STORE_FILES.legacy);
  if (await exists(storePath)) {
    const store = WalletStore.open(storePath, options);
    // A crash after the rename but before the backup: finish it. The slot already holds the account.
    if (await exists(legacyPath)) {
      const data = await readLegacyWallet(legacyPath).catch(() => null);
      await finishBackup(dir, data, data?.user.secret === undefined ? null : (({ secret: _secret, ...rest }) => rest)(data.user));
    }
    return store;
  }
  const data = await readLegacyWallet(legacyPath);
  if (data === null) throw new TallyError('WALLET_NOT_FOUND', `no wallet in ${dir}`, { name: dir });
  if (options.migrate === undefined) {
    throw new TallyError('WALLET_UNSUPPORTED', `wallet ${data.name} is a wallet.json folder and this caller cannot migrate it`, { name: data.name, reason: 'migration' });
  }
  const { slot, user, history: added } = await options.migrate(data);
  const history = await readLegacyHistory(join(dir, STORE_FILES.legacyHistory));
  const temp = join(dir, STORE_FILES.migrating);
  await rm(temp, { force: true });
  await rm(`${temp}-wal`, { force: true });
  await rm(`${temp}-shm`, { force: true });
  const built = WalletStore.create(temp, {
    header: { name: data.name, scheme: data.scheme, node: data.node, currency: data.currency, createdAt: data.createdAt },
    certificates: data.certificates,
    crl: data.crl,
    slot,
  }, options);
  try {
    built.step((tx) => {
      for (const step of data.pending) tx.putPending(step);
      for (const entry of data.inbox) tx.putInbox(entry);
      for (const entry of data.sent) tx.putSent(entry);
      for (const entry of data.retired ?? []) tx.putRetired(entry);
      for (const event of history) tx.history(event);
      tx.history({ at: Date.now(), kind: 'store-migrated', detail: `wallet.json moved into ${STORE_FILES.store}; the old file is kept as ${STORE_FILES.backup}` });
      for (const event of added ?? []) tx.history(event);
    });
  } finally {
    built.close();
  }
  await rename(temp, storePath);
  // The rename is durable before the old file goes: a power cut cannot leave neither.
  await syncDirectory(dir);
  await finishBackup(dir, data, data.user.secret === undefined ? null : user);
  return WalletStore.open(storePath, options);
}
