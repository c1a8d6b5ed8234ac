/**
 * The wallet store: one SQLite file (`wallet.db`, WAL, synchronous=FULL, mode 0600) holding what a
 * wallet keeps. A step's state change and its history line commit in one transaction, and a step
 * writes only the rows it touches, so its cost does not grow with the wallet's age. What the node
 * has settled (collected, claimed or refused payments; sent payments the node reported) moves to
 * archive tables on `prune`, or is dropped, so the lists a step reads stay short.
 */
import Database from 'better-sqlite3';
import { closeSync, openSync, statSync } from 'node:fs';
import { requirePrivateMode } from '../../host/files.ts';
import { TallyError } from '../../core/errors.ts';
import type { Codec } from '../../core/codec.ts';
import { certificatesCodec, CRL_CHARS_MAX, headerCodec, historyEventCodec, inboxEntryCodec, pendingStepCodec, retiredCodec, sentEntryCodec, seReportCodec } from './records.ts';
import type { HistoryEvent, InboxEntry, PendingStep, RetiredEntry, SentEntry, SeReport, StoreCertificates, StoreHeader } from './records.ts';
import { base64urlText, nullable } from '../../core/fields.ts';
import { SCHEMA, statements, type StoreCounts, type StoreTx } from './schema.ts';

export type { StoreCounts, StoreTx } from './schema.ts';

/** The store's schema version (SQLite's user_version). */
export const STORE_SCHEMA_VERSION = 1;
/** Largest scheme slot accepted (JSON characters). */
export const SLOT_CHARS_MAX = 256 * 1024;
/** Most history lines one read returns. */
export const HISTORY_READ_MAX = 100_000;
/** How long a statement waits for a lock held by another connection (there should be none: the wallet lock). */
const BUSY_TIMEOUT_MS = 5_000;

/** The name of the store file in a wallet folder. */
export const STORE_FILE = 'wallet.db';

/** How durable a commit is: FULL (the default) fsyncs the WAL at every commit. */
export type Synchronous = 'FULL' | 'NORMAL';

/** What a new wallet starts with. */
export interface StoreInit {
  readonly header: StoreHeader;
  readonly certificates: StoreCertificates;
  readonly crl: string | null;
  /** The scheme's own record (account, device, keys): JSON, opaque to the store. */
  readonly slot: unknown;
}

/** Options of open and create. */
export interface StoreOptions {
  readonly synchronous?: Synchronous | undefined;
  /** The scheme's codec of its journal steps, checked on every write and read besides the shell's own (kind, id, size). */
  readonly steps?: Codec<PendingStep> | undefined;
}



/** Inbox states the node has settled: nothing more will happen to such a payment. */
export const SETTLED_INBOX_STATES = ['collected', 'claimed', 'refused', 'retired'] as const;

function corrupt(path: string, what: string, cause: unknown): TallyError<'STATE_CORRUPT'> {
  const why = cause instanceof Error ? cause.message : String(cause);
  return new TallyError('STATE_CORRUPT', `wallet store ${path}: ${what} is damaged (${why}); restore the wallet folder from a backup`, { reason: what }, { cause });
}

function decodeJson<T>(path: string, what: string, codec: Codec<T>, textValue: string): T {
  let parsed: unknown;
  try {
    parsed = JSON.parse(textValue);
  } catch (e) {
    throw corrupt(path, what, e);
  }
  try {
    return codec.decode(parsed, what);
  } catch (e) {
    throw corrupt(path, what, e);
  }
}

function writeMeta(db: Database.Database, key: string, value: unknown): void {
  db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value').run(key, JSON.stringify(value));
}

function createPrivateFile(path: string): void {
  // SQLite gives the -wal and -shm files the mode of the database file.
  closeSync(openSync(path, 'a', 0o600));
}

/** A wallet's store. One process at a time (the wallet lock); every method is synchronous. */
export class WalletStore {
  readonly path: string;
  private readonly db: Database.Database;
  private readonly stmts;
  private headerCache: StoreHeader | null = null;

  private readonly steps: Codec<PendingStep>;

  private constructor(path: string, db: Database.Database, options: StoreOptions = {}) {
    this.path = path;
    this.db = db;
    const scheme = options.steps;
    this.steps = scheme === undefined ? pendingStepCodec : { expected: scheme.expected, decode: (value, at) => scheme.decode(pendingStepCodec.decode(value, at), at) };
    this.stmts = statements(db);
  }

  /**
   * Creates the store file at `path` with a wallet's first content (fails if it exists).
   * @throws TallyError WALLET_EXISTS when the file is there already; DECODE_FAILED for a bad header
   */
  static create(path: string, init: StoreInit, options: StoreOptions = {}): WalletStore {
    headerCodec.decode(init.header, 'header');
    certificatesCodec.decode(init.certificates, 'certificates');
    try {
      closeSync(openSync(path, 'wx', 0o600));
    } catch (e) {
      if (e instanceof Error && 'code' in e && e.code === 'EEXIST') throw new TallyError('WALLET_EXISTS', `a wallet store is already at ${path}`, { name: init.header.name });
      throw e;
    }
    const db = WalletStore.connect(path, options);
    db.transaction(() => {
      db.exec(SCHEMA);
      writeMeta(db, 'header', init.header);
      writeMeta(db, 'certificates', init.certificates);
      writeMeta(db, 'crl', init.crl);
      writeMeta(db, 'slot', init.slot);
      db.pragma(`user_version = ${STORE_SCHEMA_VERSION}`);
    })();
    return new WalletStore(path, db, options);
  }

  /**
   * Opens the store file at `path`.
   * @throws TallyError WALLET_NOT_FOUND when there is none; STATE_CORRUPT when it is not a wallet store
   */
  static open(path: string, options: StoreOptions = {}): WalletStore {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (e) {
      if (e instanceof Error && 'code' in e && e.code === 'ENOENT') throw new TallyError('WALLET_NOT_FOUND', `no wallet store at ${path}`, { name: path });
      throw e;
    }
    try {
      // The store holds the wallet's keys and payments: a file others can read is refused, as wallet.json was.
      requirePrivateMode(path, 'wallet store', statSync(path).mode);
    } finally {
      closeSync(fd);
    }
    let db: Database.Database;
    try {
      db = WalletStore.connect(path, options);
    } catch (e) {
      throw corrupt(path, 'the file', e);
    }
    const version = db.pragma('user_version', { simple: true });
    if (version !== STORE_SCHEMA_VERSION) {
      db.close();
      throw new TallyError('STATE_CORRUPT', `wallet store ${path} has schema version ${String(version)}; this version of Tally reads version ${STORE_SCHEMA_VERSION}`, { reason: 'schema version' });
    }
    const store = new WalletStore(path, db, options);
    store.header();
    return store;
  }

  /**
   * Opens the store file at `path` to read only, without the wallet lock (the history, the header):
   * WAL lets it read while the wallet's process writes.
   * @throws TallyError WALLET_NOT_FOUND, STATE_CORRUPT
   */
  static openReadOnly(path: string): WalletStore {
    let db: Database.Database;
    try {
      requirePrivateMode(path, 'wallet store', statSync(path).mode);
    } catch (e) {
      if (e instanceof Error && 'code' in e && e.code === 'ENOENT') throw new TallyError('WALLET_NOT_FOUND', `no wallet store at ${path}`, { name: path });
      throw e;
    }
    try {
      db = new Database(path, { readonly: true, fileMustExist: true, timeout: BUSY_TIMEOUT_MS });
    } catch (e) {
      throw corrupt(path, 'the file', e);
    }
    let version: unknown;
    try {
      version = db.pragma('user_version', { simple: true });
    } catch (e) {
      db.close();
      throw corrupt(path, 'the file', e);
    }
    if (version !== STORE_SCHEMA_VERSION) {
      db.close();
      throw new TallyError('STATE_CORRUPT', `wallet store ${path} has schema version ${String(version)}; this version of Tally reads version ${STORE_SCHEMA_VERSION}`, { reason: 'schema version' });
    }
    const store = new WalletStore(path, db);
    store.header();
    return store;
  }

  private static connect(path: string, options: StoreOptions): Database.Database {
    createPrivateFile(path);
    const db = new Database(path, { fileMustExist: true, timeout: BUSY_TIMEOUT_MS });
    try {
      db.pragma('journal_mode = WAL');
      // FULL: a commit is on disk before the step goes on (see docs/wallet-store.md for why not NORMAL).
      db.pragma(`synchronous = ${options.synchronous ?? 'FULL'}`);
      db.pragma('foreign_keys = ON');
      // A corrupt page is refused rather than read.
      db.pragma('cell_size_check = ON');
    } catch (e) {
      db.close();
      throw e;
    }
    return db;
  }

  /** Runs `fn`'s writes as one transaction: all of them are on disk when it returns, or none is. */
  step<T>(fn: (tx: StoreTx) => T): T {
    const tx = this.tx();
    return this.db.transaction(() => fn(tx)).immediate();
  }

  private tx(): StoreTx {
    const s = this.stmts;
    return {
      putPending: (step) => {
        this.steps.decode(step, 'step');
        s.pendingPut.run({ id: step.id, body: JSON.stringify(step) });
      },
      removePending: (id) => void s.pendingRemove.run(id),
      putInbox: (entry) => {
        inboxEntryCodec.decode(entry, 'inbox entry');
        s.inboxPut.run({ digest: entry.digest, sender: entry.sender, index: entry.index, state: entry.state, at: entry.at, body: JSON.stringify(entry) });
      },
      putSent: (entry) => {
        sentEntryCodec.decode(entry, 'sent entry');
        s.sentPut.run({ digest: entry.digest, request: entry.request ?? null, at: entry.at, body: JSON.stringify(entry) });
      },
      settleSent: (digests) => {
        for (const digest of digests) s.sentSettle.run(digest);
      },
      putRetired: (entry) => {
        retiredCodec.decode(entry, 'retired entry');
        s.retiredPut.run({ device: entry.device, body: JSON.stringify(entry) });
      },
      setCrl: (crl) => {
        nullable(base64urlText({ max: CRL_CHARS_MAX })).decode(crl, 'crl');
        s.setMeta.run('crl', JSON.stringify(crl));
      },
      setPeers: (peers) => {
        base64urlText({ max: CRL_CHARS_MAX }).decode(peers, 'peers');
        s.setMeta.run('peers', JSON.stringify(peers));
      },
      setSeReport: (report) => {
        if (report === null) s.dropMeta.run('se-report');
        else s.setMeta.run('se-report', JSON.stringify(seReportCodec.decode(report, 'secure element report')));
      },
      setSlot: (slot) => {
        const json = JSON.stringify(slot);
        if (json === undefined || json.length > SLOT_CHARS_MAX) throw new TallyError('TOO_LARGE', `the wallet's scheme slot is over ${SLOT_CHARS_MAX} characters`, { what: 'slot', size: json?.length ?? 0, max: SLOT_CHARS_MAX });
        s.setMeta.run('slot', json);
      },
      history: (event) => {
        historyEventCodec.decode(event, 'history event');
        s.historyAdd.run(event.at, JSON.stringify(event));
      },
    };
  }

  private metaValue<T>(key: string, codec: Codec<T>): T {
    const value = this.stmts.meta.get(key);
    if (typeof value !== 'string') throw corrupt(this.path, key, new Error('missing'));
    return decodeJson(this.path, key, codec, value);
  }

  /** The wallet's header (name, scheme, node, currency, creation time). @throws TallyError STATE_CORRUPT */
  header(): StoreHeader {
    this.headerCache ??= this.metaValue('header', headerCodec);
    return this.headerCache;
  }

  /** The trust anchors. @throws TallyError STATE_CORRUPT */
  certificates(): StoreCertificates {
    return this.metaValue('certificates', certificatesCodec);
  }

  /** The revocation list (base64url) or null. @throws TallyError STATE_CORRUPT */
  crl(): string | null {
    return this.metaValue('crl', nullable(base64urlText({ max: CRL_CHARS_MAX })));
  }

  /** The other intermediaries the wallet holds (base64url of their encoded set), or null when it holds none. @throws TallyError STATE_CORRUPT */
  peers(): string | null {
    return this.stmts.meta.get('peers') === undefined ? null : this.metaValue('peers', base64urlText({ max: CRL_CHARS_MAX }));
  }

  /** What the secure element last reported of itself, or null when there is no such record (never written, or removed when the SE started). @throws TallyError STATE_CORRUPT */
  seReport(): SeReport | null {
    return this.stmts.meta.get('se-report') === undefined ? null : this.metaValue('se-report', seReportCodec);
  }

  /** The scheme's slot, decoded by the scheme's own codec. @throws TallyError STATE_CORRUPT */
  slot<T>(codec: Codec<T>): T {
    return this.metaValue('slot', codec);
  }

  /** Unfinished steps, oldest first. */
  pending(): PendingStep[] {
    return this.rows(this.stmts.pendingAll.all() as string[], 'pending step', this.steps);
  }

  /** Received payments not yet archived, oldest first; only those in `state` when given. */
  inbox(state?: InboxEntry['state']): InboxEntry[] {
    const rows = (state === undefined ? this.stmts.inboxAll.all() : this.stmts.inboxByState.all(state)) as string[];
    return this.rows(rows, 'inbox entry', inboxEntryCodec);
  }

  /** The received payment with this digest, archived or not. */
  inboxByDigest(digest: string): InboxEntry | undefined {
    return this.row(this.stmts.inboxDigest.get(digest, digest), 'inbox entry', inboxEntryCodec);
  }

  /** The received payment from `sender` with counter `index`, archived or not (a replay check). */
  inboxBySender(sender: string, index: string): InboxEntry | undefined {
    return this.row(this.stmts.inboxSender.get(sender, index, sender, index), 'inbox entry', inboxEntryCodec);
  }

  /** Sent payments not yet archived, oldest first. */
  sent(): SentEntry[] {
    return this.rows(this.stmts.sentAll.all() as string[], 'sent entry', sentEntryCodec);
  }

  /** The sent payment with this digest, archived or not. */
  sentByDigest(digest: string): SentEntry | undefined {
    return this.row(this.stmts.sentDigest.get(digest, digest), 'sent entry', sentEntryCodec);
  }

  /** The sent payment that paid request `nonce`, archived or not. */
  sentByRequest(nonce: string): SentEntry | undefined {
    return this.row(this.stmts.sentRequest.get(nonce, nonce), 'sent entry', sentEntryCodec);
  }

  /** Retired secure elements, oldest first. */
  retired(): RetiredEntry[] {
    return this.rows(this.stmts.retiredAll.all() as string[], 'retired entry', retiredCodec);
  }

  /** The last `limit` history lines, oldest first. */
  history(limit = HISTORY_READ_MAX): HistoryEvent[] {
    return this.rows(this.stmts.historyLast.all(Math.min(Math.max(0, limit), HISTORY_READ_MAX)) as string[], 'history line', historyEventCodec);
  }

  /**
   * The last `limit` history lines, oldest first, and the lines that could not be read (by their
   * line number, 1 for the first line ever written): a damaged line is named and skipped, not fatal.
   */
  historyRead(limit = HISTORY_READ_MAX): { events: HistoryEvent[]; damaged: { line: number; reason: string }[] } {
    const events: HistoryEvent[] = [];
    const damaged: { line: number; reason: string }[] = [];
    const rows = this.stmts.historyRows.all(Math.min(Math.max(0, limit), HISTORY_READ_MAX)) as { seq: number; body: string }[];
    for (const { seq, body } of rows) {
      try {
        events.push(historyEventCodec.decode(JSON.parse(body), 'history line'));
      } catch (e) {
        damaged.push({ line: seq, reason: e instanceof SyntaxError ? 'not JSON' : `not an event (${(e instanceof Error ? e.message : String(e)).slice(0, 200)})` });
      }
    }
    return { events, damaged };
  }

  /** How many rows each list holds. */
  counts(): StoreCounts {
    const count = (table: string, where = ''): number => this.db.prepare(`SELECT COUNT(*) FROM ${table} ${where}`).pluck().get() as number;
    return {
      pending: count('pending'),
      inbox: count('inbox'),
      inboxArchived: count('inbox_archive'),
      sent: count('sent'),
      sentArchived: count('sent_archive'),
      retired: count('retired'),
      history: count('history'),
    };
  }

  /**
   * Moves what the node has settled out of the lists a step reads: received payments in a settled
   * state and sent payments the node reported, older than `before` (ms). Archived rows still answer
   * the replay and paid-request checks; with `drop` they are deleted instead (the history keeps a
   * line for each). One transaction.
   */
  prune(options: { before: number; drop?: boolean | undefined }): { inbox: number; sent: number } {
    const settled = SETTLED_INBOX_STATES.map((s) => `'${s}'`).join(', ');
    return this.db.transaction(() => {
      if (options.drop !== true) {
        this.db.prepare(`INSERT OR REPLACE INTO inbox_archive SELECT digest, sender, idx, state, at, body FROM inbox WHERE state IN (${settled}) AND at < ?`).run(options.before);
        this.db.prepare('INSERT OR REPLACE INTO sent_archive SELECT digest, request, at, body FROM sent WHERE settled = 1 AND at < ?').run(options.before);
      }
      const inbox = this.db.prepare(`DELETE FROM inbox WHERE state IN (${settled}) AND at < ?`).run(options.before).changes;
      const sent = this.db.prepare('DELETE FROM sent WHERE settled = 1 AND at < ?').run(options.before).changes;
      return { inbox, sent };
    }).immediate();
  }

  /** Closes the file (checkpointing the WAL). */
  close(): void {
    if (this.db.open) this.db.close();
  }

  private rows<T>(values: readonly string[], what: string, codec: Codec<T>): T[] {
    return values.map((v) => decodeJson(this.path, what, codec, v));
  }

  private row<T>(value: unknown, what: string, codec: Codec<T>): T | undefined {
    return typeof value === 'string' ? decodeJson(this.path, what, codec, value) : undefined;
  }
}
