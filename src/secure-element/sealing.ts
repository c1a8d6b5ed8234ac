/**
 * Sealing of trusted-app state. Keys come from the device master secret by HKDF, as DOT-M §3.1.2
 * derives the storage root key `srk = KDF(tmk, "storage_root")`; the master secret itself never
 * leaves the host that plays the secure element. Pure: no I/O.
 */
import { decodeCbor, encodeCbor } from '../core/cbor.ts';
import { array, bigint, boolean, bytes, decodeFailure, describeValue, literal, record, text, uint, type Codec } from '../core/codec.ts';
import { concatBytes } from '../core/bytes.ts';
import { signerFromSecret, suiteFor, type CryptoProvider, type Signer, type SuiteName } from '../core/crypto/suite.ts';
import { isTallyError, TallyError } from '../core/errors.ts';
import { nobleSealing, type SealingPrimitives } from './sealing-primitives.ts';

/** Length of a device master secret (DOT-M's `tmk`). */
export const MASTER_SECRET_BYTES = 32;
/** Outputs kept for retries; the oldest is dropped beyond this. */
export const OUTBOX_ENTRIES_MAX = 32;
/** Largest sealed state accepted, in bytes. */
export const SEALED_STATE_BYTES_MAX = 4 * 1024 * 1024;
/** Length of a request id that names one command invocation. */
export const REQUEST_ID_BYTES = 16;

/** An output kept so it can be fetched again after a crash (the outbox of ARCHITECTURE.md). */
export interface OutboxEntry {
  readonly requestId: Uint8Array;
  readonly command: string;
  readonly output: Uint8Array;
}

/** Most records in one generation of an app's records file before it is compacted into a new one. */
export const RECORDS_PER_GENERATION_MAX = 256;
/** Largest records file read, in bytes. */
export const RECORDS_FILE_BYTES_MAX = 64 * 1024 * 1024;

/**
 * Where the head's records are: the generation names the records file; `count` records of it are
 * committed, and `digest` chains their sealed bytes in order (see `chainRecord`).
 */
export interface RecordsRef {
  readonly generation: bigint;
  readonly count: number;
  readonly digest: Uint8Array;
}

/**
 * What the head file seals. Format 1 (before records) held the whole state and the outbox; it is
 * still opened, and the next commit writes format 2. Format 2 holds the state without its logs
 * (each log as an empty list) and the reference to the records file that holds the logs and the
 * outbox. The version is kept equal to the monotonic counter.
 */
export type Envelope =
  | { readonly format: 1; readonly app: string; readonly version: bigint; readonly state: Uint8Array; readonly outbox: readonly OutboxEntry[] }
  | { readonly format: 2; readonly app: string; readonly version: bigint; readonly state: Uint8Array; readonly records: RecordsRef };

const outboxEntryCodec = record({ requestId: bytes({ length: REQUEST_ID_BYTES }), command: text({ max: 64 }), output: bytes({ max: 1024 * 1024 }) });
const versionCodec = bigint({ min: 0n, max: 2n ** 64n - 1n });

const envelopeCodec: Codec<Envelope> = taggedUnionByFormat();

function taggedUnionByFormat(): Codec<Envelope> {
  const v1 = record({
    format: literal(1),
    app: text({ min: 1, max: 128 }),
    version: versionCodec,
    state: bytes({ max: SEALED_STATE_BYTES_MAX }),
    outbox: array(outboxEntryCodec, { max: OUTBOX_ENTRIES_MAX }),
  });
  const v2 = record({
    format: literal(2),
    app: text({ min: 1, max: 128 }),
    version: versionCodec,
    state: bytes({ max: SEALED_STATE_BYTES_MAX }),
    records: record({ generation: versionCodec, count: uint({ max: RECORDS_PER_GENERATION_MAX }), digest: bytes({ length: 32 }) }),
  });
  return {
    expected: 'a sealed envelope of format 1 or 2',
    decode(input, path = 'envelope') {
      const format = typeof input === 'object' && input !== null && 'format' in input ? (input as { format: unknown }).format : undefined;
      return format === 1 ? v1.decode(input, path) : v2.decode(input, path);
    },
  };
}

/**
 * One sealed record of an app's records file. A `snapshot` record starts every generation and holds
 * each log whole and the outbox; every later record is one commit: its version, how many entries
 * it dropped from the front of each log (a sync clears the oldest), the entries it appended to each
 * log, and its output (one outbox entry). Entries stay undecoded here: the host decodes them with
 * the app's log codecs.
 */
export interface StateRecord {
  readonly snapshot: boolean;
  readonly version: bigint;
  readonly dropped: Readonly<Record<string, number>>;
  readonly logs: Readonly<Record<string, readonly unknown[]>>;
  readonly outbox: readonly OutboxEntry[];
}

/** Most logs one app declares. */
export const LOGS_PER_APP_MAX = 16;
/** Most entries one log holds (an app's own bound is usually far lower). */
export const LOG_ENTRIES_MAX = 1 << 20;

const anyList: Codec<unknown[]> = {
  expected: 'a list',
  decode(input, path = 'value') {
    if (!Array.isArray(input)) return decodeFailure(path, 'a list', describeValue(input));
    if (input.length > LOG_ENTRIES_MAX) return decodeFailure(path, `at most ${LOG_ENTRIES_MAX} entries`, `${input.length}`);
    return input as unknown[];
  },
};

const logsCodec: Codec<Record<string, unknown[]>> = {
  expected: 'a record of lists',
  decode(input, path = 'value') {
    if (typeof input !== 'object' || input === null || Array.isArray(input) || input instanceof Uint8Array) {
      return decodeFailure(path, 'a record of lists', describeValue(input));
    }
    const entries = Object.entries(input);
    if (entries.length > LOGS_PER_APP_MAX) return decodeFailure(path, `at most ${LOGS_PER_APP_MAX} logs`, `${entries.length}`);
    const out: Record<string, unknown[]> = {};
    for (const [name, list] of entries) out[name] = anyList.decode(list, `${path}.${name}`);
    return out;
  },
};

const droppedCodec: Codec<Record<string, number>> = {
  expected: 'a record of counts',
  decode(input, path = 'value') {
    if (typeof input !== 'object' || input === null || Array.isArray(input) || input instanceof Uint8Array) {
      return decodeFailure(path, 'a record of counts', describeValue(input));
    }
    const entries = Object.entries(input);
    if (entries.length > LOGS_PER_APP_MAX) return decodeFailure(path, `at most ${LOGS_PER_APP_MAX} logs`, `${entries.length}`);
    const count = uint({ max: LOG_ENTRIES_MAX });
    return Object.fromEntries(entries.map(([name, n]) => [name, count.decode(n, `${path}.${name}`)]));
  },
};

const stateRecordCodec: Codec<StateRecord> = record({
  snapshot: boolean,
  version: versionCodec,
  dropped: droppedCodec,
  logs: logsCodec,
  outbox: array(outboxEntryCodec, { max: OUTBOX_ENTRIES_MAX }),
});

/** Keys derived from one master secret. */
export interface DeviceKeys {
  readonly deviceId: Uint8Array;
  /** What the keys seal, hash and draw randomness with. */
  readonly sealing: SealingPrimitives;
  /** The AEAD key for one app's sealed state. */
  stateKey(app: string): Uint8Array;
  /** The associated data of one app's sealed head (the same for every commit). */
  headAssociatedData(app: string): Uint8Array;
  /** A signer under a label, deterministic for the same master secret. */
  signer(app: string, label: string, suite: SuiteName): Signer;
}

/**
 * Derives the device's keys: `srk` from the master secret, then per-app state keys; signing keys and
 * the device id under their own labels. `sealing` computes them (noble by default; every
 * implementation gives the same bytes).
 * @throws RangeError for a master secret of the wrong length
 */
export function deriveDeviceKeys(master: Uint8Array, provider: CryptoProvider, sealing: SealingPrimitives = nobleSealing): DeviceKeys {
  if (master.length !== MASTER_SECRET_BYTES) throw new RangeError(`master secret: expected ${MASTER_SECRET_BYTES} bytes, got ${master.length}`);
  const { hkdf } = sealing;
  const srk = hkdf({ ikm: master, info: 'tally/se/storage-root/v1', length: 32 });
  const identityRoot = hkdf({ ikm: master, info: 'tally/se/identity-root/v1', length: 32 });
  const deviceId = hkdf({ ikm: identityRoot, info: 'tally/se/device-id/v1', length: 16 });
  const signers = new Map<string, Signer>();
  // Derived once per app: every commit seals twice (the record and the head) under the same key.
  const stateKeys = new Map<string, Uint8Array>();
  const headData = new Map<string, Uint8Array>();
  return {
    deviceId,
    sealing,
    headAssociatedData(app) {
      let data = headData.get(app);
      if (data === undefined) {
        data = associatedData(app, deviceId);
        headData.set(app, data);
      }
      return data;
    },
    stateKey(app) {
      let key = stateKeys.get(app);
      if (key === undefined) {
        key = hkdf({ ikm: srk, info: `tally/se/state/v1/${app}`, length: 32 });
        stateKeys.set(app, key);
      }
      return key;
    },
    signer(app, label, suite) {
      const id = `${app}\u0000${label}\u0000${suite}`;
      let signer = signers.get(id);
      if (signer === undefined) {
        const seed = hkdf({ ikm: identityRoot, info: `tally/se/key/v1/${suite}/${app}/${label}`, length: 48 });
        const s = suiteFor(provider, suite);
        signer = signerFromSecret(s, s.secretKeyFromSeed(seed));
        signers.set(id, signer);
      }
      return signer;
    },
  };
}

function associatedData(app: string, deviceId: Uint8Array): Uint8Array {
  return encodeCbor(['tally/se/sealed-state/v1', app, deviceId]);
}

/** Seals an envelope for this device and app. */
export function sealEnvelope(keys: DeviceKeys, envelope: Envelope): Uint8Array {
  return keys.sealing.aeadSeal(keys.stateKey(envelope.app), encodeCbor(envelope), keys.headAssociatedData(envelope.app));
}

/**
 * Opens a sealed envelope of `app` on this device.
 * @throws TallyError STATE_CORRUPT when the box fails authentication or does not decode
 */
export function openEnvelope(keys: DeviceKeys, app: string, sealed: Uint8Array): Envelope {
  try {
    const plain = keys.sealing.aeadOpen(keys.stateKey(app), sealed, keys.headAssociatedData(app));
    const envelope = envelopeCodec.decode(decodeCbor(plain, { maxBytes: SEALED_STATE_BYTES_MAX }), 'envelope');
    if (envelope.app !== app) throw new TallyError('STATE_CORRUPT', `sealed state belongs to ${envelope.app}`, { reason: 'app' });
    return envelope;
  } catch (e) {
    if (isTallyError(e, 'STATE_CORRUPT')) throw e;
    const reason = isTallyError(e) ? e.code : 'undecodable';
    throw new TallyError('STATE_CORRUPT', `sealed state of ${app} cannot be opened (${reason}): wrong device, tampered or damaged`, { reason }, { cause: e });
  }
}

function recordAssociatedData(app: string, deviceId: Uint8Array, generation: bigint, seq: number): Uint8Array {
  return encodeCbor(['tally/se/record/v1', app, deviceId, generation, seq]);
}

/** Seals record number `seq` (from 0) of generation `generation` of `app`'s records file, given as the CBOR of a `StateRecord`. */
export function sealRecord(keys: DeviceKeys, app: string, generation: bigint, seq: number, plain: Uint8Array): Uint8Array {
  return keys.sealing.aeadSeal(keys.stateKey(app), plain, recordAssociatedData(app, keys.deviceId, generation, seq));
}

/**
 * Opens record number `seq` of generation `generation` of `app`'s records file.
 * @throws TallyError STATE_CORRUPT when the box fails authentication (another device, app,
 * generation or place in the file; tampered) or does not decode
 */
export function openRecord(keys: DeviceKeys, app: string, generation: bigint, seq: number, sealed: Uint8Array): StateRecord {
  try {
    const plain = keys.sealing.aeadOpen(keys.stateKey(app), sealed, recordAssociatedData(app, keys.deviceId, generation, seq));
    return stateRecordCodec.decode(decodeCbor(plain, { maxBytes: SEALED_STATE_BYTES_MAX }), `record ${seq}`);
  } catch (e) {
    const reason = isTallyError(e) ? e.code : 'undecodable';
    throw new TallyError('STATE_CORRUPT', `record ${seq} of ${app}'s records file cannot be opened (${reason}): wrong device, tampered, reordered or damaged`, { reason: `record ${seq}: ${reason}` }, { cause: e });
  }
}

/** The chain digest of a generation before its first record (SHA-256 from `sealing`, noble by default). */
export function chainStart(app: string, generation: bigint, sealing: SealingPrimitives = nobleSealing): Uint8Array {
  return sealing.sha256(encodeCbor(['tally/se/records-chain/v1', app, generation]));
}

/** The chain digest after one more sealed record: it commits to every record before, in order. */
export function chainRecord(digest: Uint8Array, sealed: Uint8Array, sealing: SealingPrimitives = nobleSealing): Uint8Array {
  return sealing.sha256(concatBytes(digest, sealing.sha256(sealed)));
}

/** Frames sealed records for the records file: a 4-byte big-endian length before each. */
export function frameRecords(sealed: readonly Uint8Array[]): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const box of sealed) {
    const head = new Uint8Array(4);
    new DataView(head.buffer).setUint32(0, box.length);
    parts.push(head, box);
  }
  return concatBytes(...parts);
}

/**
 * Splits the first `count` framed records off a records file; answers them and the byte length
 * they take (anything after is an append whose commit never finished), or null when the file holds
 * fewer than `count` whole records (an older copy restored, or the file truncated).
 */
export function unframeRecords(file: Uint8Array, count: number): { records: Uint8Array[]; bytes: number } | null {
  const records: Uint8Array[] = [];
  let at = 0;
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength);
  while (records.length < count) {
    const length = at + 4 <= file.length ? view.getUint32(at) : -1;
    if (length < 0 || at + 4 + length > file.length || length > SEALED_STATE_BYTES_MAX) return null;
    records.push(file.subarray(at + 4, at + 4 + length));
    at += 4 + length;
  }
  return { records, bytes: at };
}
