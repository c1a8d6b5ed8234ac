/**
 * The secure element host: runs a trusted app over sealed state with rollback protection.
 *
 * Commit protocol (ARCHITECTURE.md, "The trusted app model"): run the command on the state in
 * memory; on rejection write nothing; otherwise seal the new state with version + 1 into a temp file
 * (fsync), rename it over the old one, then increment the monotonic counter. On open,
 * `version == counter` is normal, `version == counter + 1` is a crash between rename and increment
 * (roll forward), anything else is a rollback and the host refuses to run.
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
  deriveDeviceKeys,
  MASTER_SECRET_BYTES,
  OUTBOX_ENTRIES_MAX,
  openEnvelope,
  REQUEST_ID_BYTES,
  SEALED_STATE_BYTES_MAX,
  sealEnvelope,
  type DeviceKeys,
  type Envelope,
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

/** A secure element host running in the caller's process. */
export class InProcessHost<S, C extends CommandTable<S>> implements SecureElement<C> {
  readonly deviceId: Uint8Array;
  readonly description: string;
  private envelope: Envelope;
  private state: S;
  private queue: Promise<unknown> = Promise.resolve();
  private broken: string | null = null;

  private constructor(
    private readonly options: HostOptions<S, C>,
    private readonly keys: DeviceKeys,
    envelope: Envelope,
  ) {
    this.deviceId = keys.deviceId;
    this.description = `in-process ${options.app.name} storage:${options.storage.location} counter:${options.counter.description}`;
    this.envelope = envelope;
    this.state = decodeState(options.app, envelope.state);
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
    const state = app.init(makeEnv(options, keys));
    const envelope: Envelope = { format: 1, app: app.name, version: base + 1n, state: encodeCbor(state), outbox: [] };
    await storage.writeTemp(app.name, sealEnvelope(keys, envelope));
    await storage.replace(app.name);
    const now = await counter.increment();
    assert(now === envelope.version, 'counter moved by exactly one during provisioning');
    return new InProcessHost(options, keys, envelope);
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
    if (envelope.version === value + 1n) {
      // A crash after the rename and before the increment: the new state is complete; finish the commit.
      const now = await counter.increment();
      assert(now === envelope.version, 'roll-forward moved the counter to the state version');
    } else if (envelope.version !== value) {
      throw new TallyError(
        'ROLLBACK_DETECTED',
        `sealed state of ${app.name} has version ${envelope.version} but the monotonic counter is at ${value}: an old or cloned state was restored; refusing to run`,
        { stateVersion: envelope.version.toString(), counter: value.toString() },
      );
    }
    return new InProcessHost(options, keys, envelope);
  }

  /** The version of the current state (equal to the counter). */
  get version(): bigint {
    return this.envelope.version;
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

    const kept = this.envelope.outbox.find((entry) => equalBytes(entry.requestId, requestId));
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
    const stateBytes = encodeCbor(result.state);
    const outbox = [...this.envelope.outbox, { requestId, command: name, output }].slice(-OUTBOX_ENTRIES_MAX);
    const next: Envelope = { format: 1, app: app.name, version: this.envelope.version + 1n, state: stateBytes, outbox };
    // Decoded and measured before it is sealed: a state the host could not open again is never committed.
    const decoded = decodeState(app, stateBytes);
    const sealedSize = stateBytes.length + outbox.reduce((n, e) => n + e.output.length + REQUEST_ID_BYTES + 64, 0) + 256;
    checkSize('sealed state', sealedSize, SEALED_STATE_BYTES_MAX, { label: `the state of ${app.name} after ${name}` });
    await this.commit(next);
    this.envelope = next;
    this.state = decoded;
    this.crashPoint('after-increment');
    return output;
  }

  private async commit(next: Envelope): Promise<void> {
    const { storage, counter, app } = this.options;
    // From here a failure leaves the disk in a state only open() can judge: stop serving.
    this.broken = 'committing';
    try {
      this.crashPoint('before-write');
      await storage.writeTemp(app.name, sealEnvelope(this.keys, next));
      this.crashPoint('after-write');
      await storage.replace(app.name);
      this.crashPoint('after-rename');
      const now = await counter.increment();
      if (now !== next.version) {
        throw new TallyError('ROLLBACK_DETECTED', `monotonic counter is at ${now} after committing version ${next.version}: it was moved by someone else`, {
          stateVersion: next.version.toString(),
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
