/** The store's tables, the statements a store runs on them, and the writes of a step. */
import type Database from 'better-sqlite3';
import type { HistoryEvent, InboxEntry, RetiredEntry, SentEntry, SeReport } from './records.ts';

/** The tables (see docs/wallet-store.md). */
export const SCHEMA = `
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
CREATE TABLE pending (id TEXT PRIMARY KEY, seq INTEGER NOT NULL, body TEXT NOT NULL) STRICT;
CREATE TABLE inbox (digest TEXT PRIMARY KEY, sender TEXT NOT NULL, idx TEXT NOT NULL, state TEXT NOT NULL, at INTEGER NOT NULL, body TEXT NOT NULL) STRICT;
CREATE UNIQUE INDEX inbox_sender_idx ON inbox (sender, idx);
CREATE INDEX inbox_state ON inbox (state);
CREATE TABLE inbox_archive (digest TEXT PRIMARY KEY, sender TEXT NOT NULL, idx TEXT NOT NULL, state TEXT NOT NULL, at INTEGER NOT NULL, body TEXT NOT NULL) STRICT;
CREATE UNIQUE INDEX inbox_archive_sender_idx ON inbox_archive (sender, idx);
CREATE TABLE sent (digest TEXT PRIMARY KEY, request TEXT, settled INTEGER NOT NULL DEFAULT 0, at INTEGER NOT NULL, body TEXT NOT NULL) STRICT;
CREATE INDEX sent_request ON sent (request) WHERE request IS NOT NULL;
CREATE TABLE sent_archive (digest TEXT PRIMARY KEY, request TEXT, at INTEGER NOT NULL, body TEXT NOT NULL) STRICT;
CREATE INDEX sent_archive_request ON sent_archive (request) WHERE request IS NOT NULL;
CREATE TABLE retired (device TEXT PRIMARY KEY, seq INTEGER NOT NULL, body TEXT NOT NULL) STRICT;
CREATE TABLE history (seq INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, body TEXT NOT NULL) STRICT;
`;

/** The prepared statements of one connection. */
export function statements(db: Database.Database) {
  return {
    pendingPut: db.prepare('INSERT INTO pending (id, seq, body) VALUES (@id, COALESCE((SELECT seq FROM pending WHERE id = @id), (SELECT COALESCE(MAX(seq), 0) + 1 FROM pending)), @body) ON CONFLICT (id) DO UPDATE SET body = excluded.body'),
    pendingRemove: db.prepare('DELETE FROM pending WHERE id = ?'),
    pendingAll: db.prepare('SELECT body FROM pending ORDER BY seq').pluck(),
    inboxPut: db.prepare('INSERT INTO inbox (digest, sender, idx, state, at, body) VALUES (@digest, @sender, @index, @state, @at, @body) ON CONFLICT (digest) DO UPDATE SET state = excluded.state, body = excluded.body'),
    inboxByState: db.prepare('SELECT body FROM inbox WHERE state = ? ORDER BY at, digest').pluck(),
    inboxAll: db.prepare('SELECT body FROM inbox ORDER BY at, digest').pluck(),
    inboxDigest: db.prepare('SELECT body FROM inbox WHERE digest = ? UNION ALL SELECT body FROM inbox_archive WHERE digest = ? LIMIT 1').pluck(),
    inboxSender: db.prepare('SELECT body FROM inbox WHERE sender = ? AND idx = ? UNION ALL SELECT body FROM inbox_archive WHERE sender = ? AND idx = ? LIMIT 1').pluck(),
    sentPut: db.prepare('INSERT INTO sent (digest, request, at, body) VALUES (@digest, @request, @at, @body) ON CONFLICT (digest) DO UPDATE SET request = excluded.request, body = excluded.body'),
    sentSettle: db.prepare('UPDATE sent SET settled = 1 WHERE digest = ?'),
    sentDigest: db.prepare('SELECT body FROM sent WHERE digest = ? UNION ALL SELECT body FROM sent_archive WHERE digest = ? LIMIT 1').pluck(),
    sentRequest: db.prepare('SELECT body FROM sent WHERE request = ? UNION ALL SELECT body FROM sent_archive WHERE request = ? LIMIT 1').pluck(),
    sentAll: db.prepare('SELECT body FROM sent ORDER BY at, digest').pluck(),
    retiredPut: db.prepare('INSERT INTO retired (device, seq, body) VALUES (@device, (SELECT COALESCE(MAX(seq), 0) + 1 FROM retired), @body) ON CONFLICT (device) DO UPDATE SET body = excluded.body'),
    retiredAll: db.prepare('SELECT body FROM retired ORDER BY seq').pluck(),
    historyAdd: db.prepare('INSERT INTO history (at, body) VALUES (?, ?)'),
    historyRows: db.prepare('SELECT seq, body FROM (SELECT seq, body FROM history ORDER BY seq DESC LIMIT ?) ORDER BY seq'),
    historyLast: db.prepare('SELECT body FROM (SELECT seq, body FROM history ORDER BY seq DESC LIMIT ?) ORDER BY seq').pluck(),
    meta: db.prepare('SELECT value FROM meta WHERE key = ?').pluck(),
    setMeta: db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value'),
    dropMeta: db.prepare('DELETE FROM meta WHERE key = ?'),
  };
}

/** The writes of one step; all of them commit together or none does. */
export interface StoreTx {
  /** Writes a step down (new or changed): its kind, id and the fields of its scheme. */
  putPending<T extends { readonly kind: string; readonly id: string }>(step: T): void;
  /** Removes a finished step. */
  removePending(id: string): void;
  /** Adds or replaces a received payment (by digest). */
  putInbox(entry: InboxEntry): void;
  /** Adds or replaces a sent payment (by digest). */
  putSent(entry: SentEntry): void;
  /** Marks sent payments as settled by the node (the sync report named them). */
  settleSent(digests: readonly string[]): void;
  /** Adds or replaces a retired secure element. */
  putRetired(entry: RetiredEntry): void;
  /** Replaces the revocation list. */
  setCrl(crl: string | null): void;
  /** Replaces the other intermediaries the wallet holds (two tiers; base64url of their encoded set, see src/wallet/peers.ts). */
  setPeers(peers: string): void;
  /** Replaces what the secure element last reported of itself, or removes it (null). */
  setSeReport(report: SeReport | null): void;
  /** Replaces the scheme's slot (JSON). */
  setSlot(slot: unknown): void;
  /** Appends a history line. */
  history(event: HistoryEvent): void;
}

/** How many rows each list holds (hot and archived). */
export interface StoreCounts {
  pending: number;
  inbox: number;
  inboxArchived: number;
  sent: number;
  sentArchived: number;
  retired: number;
  history: number;
}

