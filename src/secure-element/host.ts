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
import { isTallyError, TallyError } from '../core/errors.ts';
import type { MonotonicCounter } from './counter.ts';
import {
  logChange,
  openRecords,
  prepareAppend,
  prepareSnapshot,
  recordStore,
  RECORDS_COMPACT_BYTES,
  type Opened,
  type RecordsAt,
  type RecordStore,
} from './host-records.ts';
import { logsOf, makeEnv, splitState } from './host-state.ts';
import type { CallOptions, CrashPoint, SecureElement } from './secure-element.ts';
import { deriveDeviceKeys, MASTER_SECRET_BYTES, OUTBOX_ENTRIES_MAX, openEnvelope, RECORDS_PER_GENERATION_MAX, REQUEST_ID_BYTES, type DeviceKeys, type OutboxEntry } from './sealing.ts';
import type { SealingPrimitives } from './sealing-primitives.ts';
import type { SecureStorage } from './storage.ts';
import { findCommand, type CommandTable, type InputOf, type OutputOf, type TrustedApp } from './trusted-app.ts';

/**
 * Runs `second` while `first` is in flight and waits for both to settle (a failure is thrown only
 * then, so that nothing the storage holds open is closed under a write still running).
 */
async function bothDone(first: Promise<unknown>, second: () => Promise<unknown>): Promise<void> {
  const firstFailure = first.then(
    () => null,
    (error: unknown) => ({ error }),
  );
  let failure: { error: unknown } | null = null;
  try {
    await second();
  } catch (error) {
    failure = { error };
  }
  failure = (await firstFailure) ?? failure;
  if (failure !== null) throw failure.error;
}

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
  /** What the host seals, hashes and draws randomness with (default: noble; a Node host passes node:crypto's). */
  sealing?: SealingPrimitives | undefined;
  /** Suite of keys the app derives when it names none (default ed25519). */
  suite?: SuiteName | undefined;
  /** Called at each crash point of a commit; a test makes it throw (or kill the process). */
  onCrashPoint?: ((point: CrashPoint) => void) | undefined;
}

const requestIdCodec = bytes({ length: REQUEST_ID_BYTES });

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
    const keys = deriveDeviceKeys(master, options.provider, options.sealing);
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
    const keys = deriveDeviceKeys(master, options.provider, options.sealing);
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
    await this.options.storage.close?.();
    await this.options.counter.close();
  }

  private async runOne(name: string, inputBytes: Uint8Array, requestIdIn: Uint8Array | undefined): Promise<Uint8Array> {
    if (this.broken !== null) {
      throw new TallyError('SE_UNAVAILABLE', `secure element is ${this.broken}; open it again`, { reason: this.broken });
    }
    const { app } = this.options;
    const spec = findCommand(app, name);
    const input = spec.input.decode(decodeCbor(inputBytes), `${name}.input`);
    const requestId = requestIdIn === undefined ? this.keys.sealing.randomBytes(REQUEST_ID_BYTES) : requestIdCodec.decode(requestIdIn, 'requestId');

    const kept = this.outbox.find((entry) => equalBytes(entry.requestId, requestId));
    if (kept !== undefined) {
      if (kept.command !== name) {
        throw new TallyError('SE_REJECTED', `request id was used for ${kept.command}, not ${name}`, { command: name, reason: 'REQUEST_ID_REUSED' });
      }
      return kept.output;
    }

    const result = await spec.run(this.state, input, makeEnv(this.options, this.keys));
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
    const change = logChange(app, this.logNames, this.state, result.state);
    const records = this.records;
    let committed: { state: S; records: RecordsAt };
    let stale: bigint | null = null;
    if (records !== null && change !== null && records.count < RECORDS_PER_GENERATION_MAX && records.bytes < RECORDS_COMPACT_BYTES) {
      // The usual commit: one record appended, and the small head.
      const prepared = prepareAppend(app, this.keys, this.state, { records, version, core, edits: change, entry });
      await this.commit(version, () => bothDone(this.store.write(app.name, records.generation, records.bytes, prepared.framed), () => this.writeHead(prepared.sealedHead)));
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
      // What the storage keeps open goes with the failed commit; the next open starts afresh.
      await storage.close?.().catch(() => undefined);
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

