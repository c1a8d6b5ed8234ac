/**
 * The secure element host: runs a trusted app over sealed state with rollback protection.
 *
 * Commit protocol (ARCHITECTURE.md, "The trusted app model"): run the command on the state in
 * memory; on rejection write nothing; otherwise append one sealed record to the records file (the
 * entries the command appended to the app's logs, and its output for retries) and seal the rest of
 * the state with version + 1 into a temp file, both made durable; rename the temp file over the old
 * head, then increment the monotonic counter. The head names its records file (a generation), how
 * many records of it are committed and a hash chain over them, so the records are covered by the
 * same counter: a shorter, reordered, spliced or foreign records file does not match the head. On
 * open, `version == counter` is normal, `version == counter + 1` is a crash between rename and
 * increment (roll forward), anything else is a rollback and the host refuses to run. Records past
 * the head's count are an append whose commit never finished, and are dropped.
 *
 * Compaction: a command that removes log entries (a prune after a sync), a full generation, or a
 * head of the older format 1 starts a new generation whose first record is a snapshot of every log
 * and of the outbox; the head that names it is the commit, and older generations are then removed.
 */
import { equalBytes } from '../core/bytes.ts';
import { decodeCbor, encodeCbor } from '../core/cbor.ts';
import { bytes } from '../core/codec.ts';
import { randomBytes } from '../core/crypto/hash.ts';
import type { CryptoProvider, SuiteName } from '../core/crypto/suite.ts';
import { assert } from '../core/assert.ts';
import { checkSize, isTallyError, TallyError } from '../core/errors.ts';
import type { MonotonicCounter } from './counter.ts';
import type { CallOptions, CrashPoint, SecureElement } from './secure-element.ts';
import {
  chainRecord,
  chainStart,
  deriveDeviceKeys,
  frameRecords,
  MASTER_SECRET_BYTES,
  OUTBOX_ENTRIES_MAX,
  openEnvelope,
  openRecord,
  RECORDS_FILE_BYTES_MAX,
  RECORDS_PER_GENERATION_MAX,
  REQUEST_ID_BYTES,
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
import { findCommand, type CommandTable, type InputOf, type OutputOf, type TrustedApp, type TrustedEnv } from './trusted-app.ts';

/** Thrown by a test's crash hook to simulate the process dying at a crash point. */
export class SimulatedCrash extends Error {
  readonly point: CrashPoint;
  constructor(point: CrashPoint) {
    super(`simulated crash at ${point}`);
    this.name = 'SimulatedCrash';
    this.point = point;
  }
}

/** How to build a host. */
export interface HostOptions<S, C extends CommandTable<S>> {
  app: TrustedApp<S, C>;
  storage: SecureStorage;
  counter: MonotonicCounter;
  provider: CryptoProvider;
  /** Suite of keys the app derives when it names none (default ed25519). */
  suite?: SuiteName | undefined;
  /** Called at each crash point of a commit; a test makes it throw (or kill the process). */
  onCrashPoint?: ((point: CrashPoint) => void) | undefined;
}

const requestIdCodec = bytes({ length: REQUEST_ID_BYTES });

/** Where the committed records of the current generation end. */
interface RecordsAt extends RecordsRef {
  /** Bytes of the records file they take (the next record is written there). */
  readonly bytes: number;
}

/** A command's effect on one log: entries dropped from its front, entries appended. */
interface LogEdit {
  readonly dropped: number;
  readonly appended: readonly unknown[];
}

/** A command's effect on the app's logs, or null when it removed or changed entries otherwise (then the host compacts). */
type LogChange = ReadonlyMap<string, LogEdit> | null;

/** A records file larger than this is compacted at the next commit. */
const RECORDS_COMPACT_BYTES = 16 * 1024 * 1024;

/** A secure element host running in the caller's process. */
export class InProcessHost<S, C extends CommandTable<S>> implements SecureElement<C> {
  readonly deviceId: Uint8Array;
  readonly description: string;
  private currentVersion: bigint;
  /** The committed records; null for a format-1 head, whose next commit starts generation 1. */
  private records: RecordsAt | null;
  private outbox: OutboxEntry[];
  private state: S;
  private readonly logNames: readonly string[];
  private readonly store: RecordStore;
  private queue: Promise<unknown> = Promise.resolve();
  private broken: string | null = null;

  private constructor(
    private readonly options: HostOptions<S, C>,
    private readonly keys: DeviceKeys,
    opened: Opened<S>,
  ) {
    this.deviceId = keys.deviceId;
    this.description = `in-process ${options.app.name} storage:${options.storage.location} counter:${options.counter.description}`;
    this.currentVersion = opened.version;
    this.records = opened.records;
    this.outbox = opened.outbox;
    this.state = opened.state;
    this.logNames = Object.keys(options.app.logs ?? {});
    this.store = recordStore(options.storage);
  }

  /**
   * Creates the device (master secret) if needed and installs the app with its first state.
   * @throws TallyError SE_ALREADY_PROVISIONED when the app already has state here
   */
  static async provision<S, C extends CommandTable<S>>(options: HostOptions<S, C>): Promise<InProcessHost<S, C>> {
    const { storage, app, counter } = options;
    if ((await storage.readState(app.name)) !== null) {
      throw new TallyError('SE_ALREADY_PROVISIONED', `${app.name} is already installed in ${storage.location}`, { path: storage.location });
    }
    let master = await storage.readMaster();
    if (master === null) {
      master = randomBytes(MASTER_SECRET_BYTES);
      await storage.createMaster(master);
    }
    const keys = deriveDeviceKeys(master, options.provider);
    const base = await counter.open();
    const first = app.init(makeEnv(options, keys));
    const version = base + 1n;
    const logs = logsOf(app, first);
    const split = splitState(app, first);
    const prepared = prepareSnapshot(options, keys, { version, generation: 1n, logs, outbox: [], core: split });
    const store = recordStore(storage);
    await store.write(app.name, 1n, 0, prepared.framed);
    await storage.writeTemp(app.name, prepared.sealedHead);
    await storage.replace(app.name);
    const now = await counter.increment();
    assert(now === version, 'counter moved by exactly one during provisioning');
    await store.remove(app.name, 1n);
    return new InProcessHost(options, keys, { version, records: prepared.records, outbox: [], state: prepared.state });
  }

  /**
   * Opens an installed app, rolling forward a commit cut between rename and increment.
   * @throws TallyError SE_NOT_PROVISIONED, STATE_CORRUPT, ROLLBACK_DETECTED, COUNTER_FAILED
   */
  static async open<S, C extends CommandTable<S>>(options: HostOptions<S, C>): Promise<InProcessHost<S, C>> {
    const { storage, app, counter } = options;
    const master = await storage.readMaster();
    if (master === null) {
      throw new TallyError('SE_NOT_PROVISIONED', `no secure element in ${storage.location}: provision it first`, { path: storage.location });
    }
    const keys = deriveDeviceKeys(master, options.provider);
    await storage.discardTemp(app.name);
    const sealed = await storage.readState(app.name);
    if (sealed === null) {
      throw new TallyError('STATE_CORRUPT', `${app.name} has no sealed state in ${storage.location}`, { reason: 'missing' });
    }
    const envelope = openEnvelope(keys, app.name, sealed);
    const value = await counter.open();
    if (envelope.version !== value && envelope.version !== value + 1n) {
      throw new TallyError(
        'ROLLBACK_DETECTED',
        `sealed state of ${app.name} has version ${envelope.version} but the monotonic counter is at ${value}: an old or cloned state was restored; refusing to run`,
        { stateVersion: envelope.version.toString(), counter: value.toString() },
      );
    }
    // Read (and judged) before the roll-forward: a head whose records do not match is never completed.
    const opened = await openRecords(options, keys, envelope, value);
    if (envelope.version === value + 1n) {
      // A crash after the rename and before the increment: the new state is complete; finish the commit.
      const now = await counter.increment();
      assert(now === envelope.version, 'roll-forward moved the counter to the state version');
    }
    if (opened.records !== null) await recordStore(storage).remove(app.name, opened.records.generation);
    return new InProcessHost(options, keys, opened);
  }

  /** The version of the current state (equal to the counter). */
  get version(): bigint {
    return this.currentVersion;
  }

  call<K extends keyof C & string>(name: K, input: InputOf<C[K]>, options?: CallOptions): Promise<OutputOf<C[K]>> {
    return this.callEncoded(name, encodeCbor(input), options?.requestId).then(
      (output) => findCommand(this.options.app, name).output.decode(decodeCbor(output), `${name}.output`) as OutputOf<C[K]>,
    );
  }

  /**
   * Runs a command whose input arrives as CBOR (from a frame) and answers the output's CBOR bytes.
   * Commands run one at a time.
   */
  callEncoded(name: string, input: Uint8Array, requestId?: Uint8Array): Promise<Uint8Array> {
    const run = this.queue.then(() => this.runOne(name, input, requestId));
    this.queue = run.catch(() => undefined);
    return run;
  }

  async close(): Promise<void> {
    await this.queue;
    this.broken ??= 'closed';
    await this.options.counter.close();
  }

  private async runOne(name: string, inputBytes: Uint8Array, requestIdIn: Uint8Array | undefined): Promise<Uint8Array> {
    if (this.broken !== null) {
      throw new TallyError('SE_UNAVAILABLE', `secure element is ${this.broken}; open it again`, { reason: this.broken });
    }
    const { app } = this.options;
    const spec = findCommand(app, name);
    const input = spec.input.decode(decodeCbor(inputBytes), `${name}.input`);
    const requestId = requestIdIn === undefined ? randomBytes(REQUEST_ID_BYTES) : requestIdCodec.decode(requestIdIn, 'requestId');

    const kept = this.outbox.find((entry) => equalBytes(entry.requestId, requestId));
    if (kept !== undefined) {
      if (kept.command !== name) {
        throw new TallyError('SE_REJECTED', `request id was used for ${kept.command}, not ${name}`, { command: name, reason: 'REQUEST_ID_REUSED' });
      }
      return kept.output;
    }

    const result = spec.run(this.state, input, makeEnv(this.options, this.keys));
    if (!result.ok) {
      // The trusted app's own sentence: the command it ran is in the details, not in the message.
      throw new TallyError('SE_REJECTED', result.rejection.message, {
        command: name,
        reason: result.rejection.code,
      });
    }
    const output = encodeCbor(result.output);
    if (spec.readOnly === true) {
      assert(result.state === this.state, `read-only command ${name} left the state unchanged`);
      return output;
    }
    const entry: OutboxEntry = { requestId, command: name, output };
    const outbox = [...this.outbox, entry].slice(-OUTBOX_ENTRIES_MAX);
    const version = this.currentVersion + 1n;
    const core = splitState(app, result.state);
    const change = this.logChange(result.state);
    const records = this.records;
    let committed: { state: S; records: RecordsAt };
    let stale: bigint | null = null;
    if (records !== null && change !== null && records.count < RECORDS_PER_GENERATION_MAX && records.bytes < RECORDS_COMPACT_BYTES) {
      // The usual commit: one record appended, and the small head.
      const prepared = this.prepareAppend(records, version, core, change, entry);
      await this.commit(version, () => Promise.all([this.store.write(app.name, records.generation, records.bytes, prepared.framed), this.writeHead(prepared.sealedHead)]));
      committed = prepared;
    } else {
      // A new generation: every log and the outbox in a snapshot record.
      const generation = (records?.generation ?? 0n) + 1n;
      const prepared = prepareSnapshot(this.options, this.keys, { version, generation, logs: logsOf(app, result.state), outbox, core });
      await this.commit(version, async () => {
        await this.store.write(app.name, generation, 0, prepared.framed);
        await this.writeHead(prepared.sealedHead);
      });
      committed = prepared;
      stale = generation;
    }
    this.currentVersion = version;
    this.records = committed.records;
    this.outbox = outbox;
    this.state = committed.state;
    if (stale !== null) {
      // The old generation is no longer named by any head; if this fails (or a crash comes first), open() removes it.
      await this.store.remove(app.name, stale).catch(() => undefined);
    }
    this.crashPoint('after-increment');
    return output;
  }

  /**
   * How `next` changed each log of the current state: the entries it dropped from the front and
   * those it appended (told apart by identity, as a command builds its new lists from the old
   * entries), or null when a log changed in any other way.
   */
  private logChange(next: S): LogChange {
    const edits = new Map<string, LogEdit>();
    for (const name of this.logNames) {
      const before = logOf(this.options.app, this.state, name);
      const after = logOf(this.options.app, next, name);
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
  private prepareAppend(records: RecordsAt, version: bigint, core: Uint8Array, edits: ReadonlyMap<string, LogEdit>, entry: OutboxEntry): { framed: Uint8Array; sealedHead: Uint8Array; state: S; records: RecordsAt } {
    const { app } = this.options;
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
    for (const name of this.logNames) {
      const before = logOf(app, this.state, name);
      const edit = edits.get(name);
      if (edit === undefined) {
        state[name] = before;
        continue;
      }
      const kept = edit.dropped === 0 ? before : before.slice(edit.dropped);
      const added = decoded.logs[name];
      state[name] = added === undefined ? kept : kept.concat(decodeEntries(app, name, added, kept.length));
    }
    const sealed = sealRecord(this.keys, app.name, records.generation, records.count, plain);
    const next: RecordsAt = { generation: records.generation, count: records.count + 1, digest: chainRecord(records.digest, sealed), bytes: records.bytes + 4 + sealed.length };
    checkSize('records file', next.bytes, RECORDS_FILE_BYTES_MAX, { label: `the records of ${app.name}` });
    const head: Envelope = { format: 2, app: app.name, version, state: core, records: refOf(next) };
    checkSize('sealed state', core.length + 256, SEALED_STATE_BYTES_MAX, { label: `the state of ${app.name} after this command` });
    return { framed: frameRecords([sealed]), sealedHead: sealEnvelope(this.keys, head), state: state as S, records: next };
  }

  private async writeHead(sealedHead: Uint8Array): Promise<void> {
    await this.options.storage.writeTemp(this.options.app.name, sealedHead);
  }

  private async commit(version: bigint, write: () => Promise<unknown>): Promise<void> {
    const { storage, counter, app } = this.options;
    // From here a failure leaves the disk in a state only open() can judge: stop serving.
    this.broken = 'committing';
    try {
      this.crashPoint('before-write');
      await write();
      this.crashPoint('after-write');
      await storage.replace(app.name);
      this.crashPoint('after-rename');
      const now = await counter.increment();
      if (now !== version) {
        throw new TallyError('ROLLBACK_DETECTED', `monotonic counter is at ${now} after committing version ${version}: it was moved by someone else`, {
          stateVersion: version.toString(),
          counter: now.toString(),
        });
      }
    } catch (e) {
      this.broken = e instanceof SimulatedCrash ? `crashed at ${e.point}` : `failed during commit (${isTallyError(e) ? e.code : 'I/O error'})`;
      throw e;
    }
    this.broken = null;
  }

  private crashPoint(point: CrashPoint): void {
    const hook = this.options.onCrashPoint;
    if (hook === undefined) return;
    try {
      hook(point);
    } catch (e) {
      this.broken = e instanceof SimulatedCrash ? `crashed at ${e.point}` : 'crashed';
      throw e;
    }
  }
}

/** What open() or provision() found. */
interface Opened<S> {
  readonly version: bigint;
  readonly records: RecordsAt | null;
  readonly outbox: OutboxEntry[];
  readonly state: S;
}

function refOf(records: RecordsAt): RecordsRef {
  return { generation: records.generation, count: records.count, digest: records.digest };
}

/** The state's bytes with each log as an empty list: what the head seals. */
function splitState<S>(app: TrustedApp<S>, state: S): Uint8Array {
  const logs = app.logs;
  if (logs === undefined) return encodeCbor(state);
  const core: Record<string, unknown> = { ...(state as Record<string, unknown>) };
  for (const name of Object.keys(logs)) core[name] = [];
  return encodeCbor(core);
}

/** Decodes a head's state (its logs empty) with the app's codec, answering a copy the host may fill in. */
function decodeCore<S>(app: TrustedApp<S>, core: Uint8Array): S {
  return { ...(decodeState(app, core) as Record<string, unknown>) } as S;
}

function logOf<S>(app: TrustedApp<S>, state: S, name: string): readonly unknown[] {
  const value = (state as Record<string, unknown>)[name];
  assert(Array.isArray(value), `log ${name} of ${app.name} is a list`);
  return value as readonly unknown[];
}

function logsOf<S>(app: TrustedApp<S>, state: S): Record<string, readonly unknown[]> {
  return Object.fromEntries(Object.keys(app.logs ?? {}).map((name) => [name, logOf(app, state, name)]));
}

/** Decodes log entries with the app's codec; `already` entries precede them in the log. */
function decodeEntries<S>(app: TrustedApp<S>, name: string, entries: readonly unknown[], already: number): unknown[] {
  const spec = app.logs?.[name];
  if (spec === undefined) throw new TallyError('STATE_CORRUPT', `records of ${app.name} hold a log ${JSON.stringify(name)} the app does not declare`, { reason: 'unknown log' });
  checkSize(`${app.name}.${name}`, already + entries.length, spec.max, { unit: 'entries', label: `the log ${name} of ${app.name}` });
  return entries.map((e, k) => spec.entry.decode(e, `${app.name}.state.${name}[${already + k}]`));
}

/** Seals a snapshot record that starts `generation` and the head that names it, checking first that both open again. */
function prepareSnapshot<S, C extends CommandTable<S>>(
  options: HostOptions<S, C>,
  keys: DeviceKeys,
  at: { version: bigint; generation: bigint; logs: Record<string, readonly unknown[]>; outbox: readonly OutboxEntry[]; core: Uint8Array },
): { framed: Uint8Array; sealedHead: Uint8Array; state: S; records: RecordsAt } {
  const { app } = options;
  const value: StateRecord = { snapshot: true, version: at.version, dropped: {}, logs: at.logs, outbox: at.outbox };
  const plain = encodeCbor(value);
  checkSize('sealed state', plain.length + at.core.length + 256, SEALED_STATE_BYTES_MAX, { label: `the state of ${app.name}` });
  const decoded = decodeCbor(plain, { maxBytes: SEALED_STATE_BYTES_MAX }) as StateRecord;
  const state = decodeCore(app, at.core) as Record<string, unknown>;
  for (const name of Object.keys(app.logs ?? {})) state[name] = decodeEntries(app, name, decoded.logs[name] ?? [], 0);
  const sealed = sealRecord(keys, app.name, at.generation, 0, plain);
  const records: RecordsAt = { generation: at.generation, count: 1, digest: chainRecord(chainStart(app.name, at.generation), sealed), bytes: 4 + sealed.length };
  const head: Envelope = { format: 2, app: app.name, version: at.version, state: at.core, records: refOf(records) };
  return { framed: frameRecords([sealed]), sealedHead: sealEnvelope(keys, head), state: state as S, records };
}

/** Reads the records a head names, checks them against it, and rebuilds the state, outbox and logs. */
async function openRecords<S, C extends CommandTable<S>>(options: HostOptions<S, C>, keys: DeviceKeys, envelope: Envelope, counter: bigint): Promise<Opened<S>> {
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
  let digest = chainStart(app.name, ref.generation);
  for (const sealed of framed.records) digest = chainRecord(digest, sealed);
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
interface RecordStore {
  read(app: string, generation: bigint): Promise<Uint8Array | null>;
  write(app: string, generation: bigint, offset: number, data: Uint8Array): Promise<void>;
  remove(app: string, keep: bigint): Promise<void>;
}

function recordStore(storage: SecureStorage): RecordStore {
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

function decodeState<S>(app: TrustedApp<S>, stateBytes: Uint8Array): S {
  return app.state.decode(decodeCbor(stateBytes), `${app.name}.state`);
}

function makeEnv<S, C extends CommandTable<S>>(options: HostOptions<S, C>, keys: DeviceKeys): TrustedEnv {
  const suite = options.suite ?? 'ed25519';
  return {
    provider: options.provider,
    deviceId: keys.deviceId,
    signer: (label, labelSuite) => keys.signer(options.app.name, label, labelSuite ?? suite),
    random: (length) => randomBytes(length),
  };
}
