/**
 * The host's append-only records (see host.ts for the commit protocol): what a commit appends (one
 * sealed record with the entries the command added to the app's logs and its output) or the
 * snapshot that starts a generation, the head that names them, and the reading of a generation
 * back on open, checked record by record against the chain its head commits to.
 */
import { equalBytes } from '../core/bytes.ts';
import { decodeCbor, encodeCbor } from '../core/cbor.ts';
import { checkSize, TallyError } from '../core/errors.ts';
import type { HostOptions } from './host.ts';
import { decodeCore, decodeEntries, decodeState, logOf } from './host-state.ts';
import {
  chainRecord,
  chainStart,
  frameRecords,
  OUTBOX_ENTRIES_MAX,
  openRecord,
  RECORDS_FILE_BYTES_MAX,
  SEALED_STATE_BYTES_MAX,
  sealEnvelope,
  sealRecord,
  unframeRecords,
  type DeviceKeys,
  type Envelope,
  type OutboxEntry,
  type RecordsRef,
  type StateRecord,
} from './sealing.ts';
import type { SecureStorage } from './storage.ts';
import type { CommandTable, TrustedApp } from './trusted-app.ts';

/** Where the committed records of the current generation end. */
export interface RecordsAt extends RecordsRef {
  /** Bytes of the records file they take (the next record is written there). */
  readonly bytes: number;
}

/** A command's effect on one log: entries dropped from its front, entries appended. */
export interface LogEdit {
  readonly dropped: number;
  readonly appended: readonly unknown[];
}

/** A command's effect on the app's logs, or null when it removed or changed entries otherwise (then the host compacts). */
export type LogChange = ReadonlyMap<string, LogEdit> | null;

/** A records file larger than this is compacted at the next commit. */
export const RECORDS_COMPACT_BYTES = 16 * 1024 * 1024;

/** What open() or provision() found. */
export interface Opened<S> {
  readonly version: bigint;
  readonly records: RecordsAt | null;
  readonly outbox: OutboxEntry[];
  readonly state: S;
}

/** A commit made ready: the framed record to write, the sealed head, and the state and records once it is done. */
export interface Prepared<S> {
  readonly framed: Uint8Array;
  readonly sealedHead: Uint8Array;
  readonly state: S;
  readonly records: RecordsAt;
}

function refOf(records: RecordsAt): RecordsRef {
  return { generation: records.generation, count: records.count, digest: records.digest };
}

/**
 * How `next` changed each log of the current state: the entries it dropped from the front and
 * those it appended (told apart by identity, as a command builds its new lists from the old
 * entries), or null when a log changed in any other way.
 */
export function logChange<S>(app: TrustedApp<S>, logNames: readonly string[], current: S, next: S): LogChange {
    const edits = new Map<string, LogEdit>();
    for (const name of logNames) {
      const before = logOf(app, current, name);
      const after = logOf(app, next, name);
      if (after === before) continue;
      let dropped = 0;
      if (before.length > 0 && (after.length === 0 || after[0] !== before[0])) {
        const at = after.length === 0 ? -1 : before.indexOf(after[0]);
        dropped = at < 0 ? before.length : at;
      }
      const kept = before.length - dropped;
      if (after.length < kept) return null;
      for (let k = 0; k < kept; k++) if (after[k] !== before[dropped + k]) return null;
      if (dropped > 0 || after.length > kept) edits.set(name, { dropped, appended: after.slice(kept) });
    }
    return edits;
  }

/** Seals the record and head of an ordinary commit, checking first that both open again. */
export function prepareAppend<S>(
  app: TrustedApp<S>,
  keys: DeviceKeys,
  current: S,
  at: { records: RecordsAt; version: bigint; core: Uint8Array; edits: ReadonlyMap<string, LogEdit>; entry: OutboxEntry },
): Prepared<S> {
  const { records, version, core, edits, entry } = at;
  const dropped: Record<string, number> = {};
  const logs: Record<string, readonly unknown[]> = {};
  for (const [name, edit] of edits) {
    if (edit.dropped > 0) dropped[name] = edit.dropped;
    if (edit.appended.length > 0) logs[name] = edit.appended;
  }
  const value: StateRecord = { snapshot: false, version, dropped, logs, outbox: [entry] };
  const plain = encodeCbor(value);
  // Decoded before it is sealed: entries the host could not open again are never committed.
  const decoded = decodeCbor(plain, { maxBytes: SEALED_STATE_BYTES_MAX }) as StateRecord;
  const state = decodeCore(app, core) as Record<string, unknown>;
  for (const name of Object.keys(app.logs ?? {})) {
    const before = logOf(app, current, name);
    const edit = edits.get(name);
    if (edit === undefined) {
      state[name] = before;
      continue;
    }
    const kept = edit.dropped === 0 ? before : before.slice(edit.dropped);
    const added = decoded.logs[name];
    state[name] = added === undefined ? kept : kept.concat(decodeEntries(app, name, added, kept.length));
  }
  const sealed = sealRecord(keys, app.name, records.generation, records.count, plain);
  const next: RecordsAt = { generation: records.generation, count: records.count + 1, digest: chainRecord(records.digest, sealed, keys.sealing), bytes: records.bytes + 4 + sealed.length };
  checkSize('records file', next.bytes, RECORDS_FILE_BYTES_MAX, { label: `the records of ${app.name}` });
  const head: Envelope = { format: 2, app: app.name, version, state: core, records: refOf(next) };
  checkSize('sealed state', core.length + 256, SEALED_STATE_BYTES_MAX, { label: `the state of ${app.name} after this command` });
  return { framed: frameRecords([sealed]), sealedHead: sealEnvelope(keys, head), state: state as S, records: next };
}

/** Seals a snapshot record that starts `generation` and the head that names it, checking first that both open again. */
export function prepareSnapshot<S, C extends CommandTable<S>>(
  options: HostOptions<S, C>,
  keys: DeviceKeys,
  at: { version: bigint; generation: bigint; logs: Record<string, readonly unknown[]>; outbox: readonly OutboxEntry[]; core: Uint8Array },
): Prepared<S> {
  const { app } = options;
  const value: StateRecord = { snapshot: true, version: at.version, dropped: {}, logs: at.logs, outbox: at.outbox };
  const plain = encodeCbor(value);
  checkSize('sealed state', plain.length + at.core.length + 256, SEALED_STATE_BYTES_MAX, { label: `the state of ${app.name}` });
  const decoded = decodeCbor(plain, { maxBytes: SEALED_STATE_BYTES_MAX }) as StateRecord;
  const state = decodeCore(app, at.core) as Record<string, unknown>;
  for (const name of Object.keys(app.logs ?? {})) state[name] = decodeEntries(app, name, decoded.logs[name] ?? [], 0);
  const sealed = sealRecord(keys, app.name, at.generation, 0, plain);
  const records: RecordsAt = { generation: at.generation, count: 1, digest: chainRecord(chainStart(app.name, at.generation, keys.sealing), sealed, keys.sealing), bytes: 4 + sealed.length };
  const head: Envelope = { format: 2, app: app.name, version: at.version, state: at.core, records: refOf(records) };
  return { framed: frameRecords([sealed]), sealedHead: sealEnvelope(keys, head), state: state as S, records };
}

/** Reads the records a head names, checks them against it, and rebuilds the state, outbox and logs. */
export async function openRecords<S, C extends CommandTable<S>>(options: HostOptions<S, C>, keys: DeviceKeys, envelope: Envelope, counter: bigint): Promise<Opened<S>> {
  const { app, storage } = options;
  if (envelope.format === 1) {
    return { version: envelope.version, records: null, outbox: [...envelope.outbox], state: decodeState(app, envelope.state) };
  }
  const ref = envelope.records;
  const rollback = (found: number) =>
    new TallyError(
      'ROLLBACK_DETECTED',
      `the records file of ${app.name} holds ${found} whole records where its sealed state (version ${envelope.version}) commits to ${ref.count}: an older or truncated copy was restored; refusing to run`,
      { stateVersion: envelope.version.toString(), counter: counter.toString() },
    );
  const corrupt = (reason: string, message: string) => new TallyError('STATE_CORRUPT', `the records of ${app.name} ${message}: tampered, reordered, spliced from another copy, or from another device; refusing to run`, { reason });
  const file = await recordStore(storage).read(app.name, ref.generation);
  if (file === null) throw corrupt('records missing', `(generation ${ref.generation}) are missing`);
  if (file.length > RECORDS_FILE_BYTES_MAX) throw corrupt('records too large', `take ${file.length} bytes, over ${RECORDS_FILE_BYTES_MAX}`);
  const framed = unframeRecords(file, ref.count);
  if (framed === null) throw rollback(countWhole(file));
  let digest = chainStart(app.name, ref.generation, keys.sealing);
  for (const sealed of framed.records) digest = chainRecord(digest, sealed, keys.sealing);
  if (!equalBytes(digest, ref.digest)) throw corrupt('records chain', 'do not match the chain their sealed state commits to');

  const raw: Record<string, unknown[]> = {};
  const logs = Object.keys(app.logs ?? {});
  for (const name of logs) raw[name] = [];
  let outbox: OutboxEntry[] = [];
  let version = -1n;
  for (const [seq, sealed] of framed.records.entries()) {
    const value = openRecord(keys, app.name, ref.generation, seq, sealed);
    if (value.snapshot !== (seq === 0) || (seq > 0 && value.version !== version + 1n)) throw corrupt('records order', `are out of order at record ${seq}`);
    version = value.version;
    for (const [name, n] of Object.entries(value.dropped)) {
      const from = raw[name];
      if (from === undefined || n > from.length) throw corrupt('records drop', `drop more of ${JSON.stringify(name)} than it holds`);
      raw[name] = from.slice(n);
    }
    for (const [name, entries] of Object.entries(value.logs)) {
      const into = raw[name];
      if (into === undefined) throw corrupt('unknown log', `hold a log ${JSON.stringify(name)} the app does not declare`);
      for (const e of entries) into.push(e);
    }
    outbox = [...outbox, ...value.outbox].slice(-OUTBOX_ENTRIES_MAX);
  }
  if (version !== envelope.version) throw corrupt('records version', `end at version ${version} but the sealed state is version ${envelope.version}`);
  const core = decodeCbor(envelope.state, { maxBytes: SEALED_STATE_BYTES_MAX });
  if (typeof core !== 'object' || core === null || Array.isArray(core)) throw corrupt('state', 'belong to a state that is not a record');
  const state = decodeState(app, encodeCbor({ ...(core as Record<string, unknown>), ...raw }));
  return { version: envelope.version, records: { ...ref, bytes: framed.bytes }, outbox, state };
}

function countWhole(file: Uint8Array): number {
  let n = 0;
  while (unframeRecords(file, n + 1) !== null) n++;
  return n;
}

/** A storage's records files, or, for a storage without them, each generation as one more sealed blob rewritten whole. */
export interface RecordStore {
  read(app: string, generation: bigint): Promise<Uint8Array | null>;
  write(app: string, generation: bigint, offset: number, data: Uint8Array): Promise<void>;
  remove(app: string, keep: bigint): Promise<void>;
}

/** The records of `storage`: its records files, or a sealed blob per generation. */
export function recordStore(storage: SecureStorage): RecordStore {
  const { readRecords, writeRecords, removeRecords } = storage;
  if (readRecords !== undefined && writeRecords !== undefined && removeRecords !== undefined) {
    return {
      read: (app, generation) => readRecords.call(storage, app, generation),
      write: (app, generation, offset, data) => writeRecords.call(storage, app, generation, offset, data),
      remove: (app, keep) => removeRecords.call(storage, app, keep),
    };
  }
  const blob = (app: string, generation: bigint) => `${app}.records-${generation}`;
  return {
    read: (app, generation) => storage.readState(blob(app, generation)),
    async write(app, generation, offset, data) {
      const old = (await storage.readState(blob(app, generation))) ?? new Uint8Array(0);
      const next = new Uint8Array(offset + data.length);
      next.set(old.subarray(0, Math.min(offset, old.length)));
      next.set(data, offset);
      await storage.writeTemp(blob(app, generation), next);
      await storage.replace(blob(app, generation));
    },
    // Without a listing, older generations stay: only a storage that lives as long as a test lacks these methods.
    remove: async () => {},
  };
}

