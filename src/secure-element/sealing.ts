/**
 * Sealing of trusted-app state. Keys come from the device master secret by HKDF, as DOT-M §3.1.2
 * derives the storage root key `srk = KDF(tmk, "storage_root")`; the master secret itself never
 * leaves the host that plays the secure element. Pure: no I/O.
 */
import { decodeCbor, encodeCbor } from '../core/cbor.ts';
import { array, bigint, bytes, literal, record, text, type Codec } from '../core/codec.ts';
import { aeadOpen, aeadSeal, hkdf } from '../core/crypto/hash.ts';
import { signerFromSecret, suiteFor, type CryptoProvider, type Signer, type SuiteName } from '../core/crypto/suite.ts';
import { isTallyError, TallyError } from '../core/errors.ts';

/** Length of a device master secret (DOT-M's `tmk`). */
export const MASTER_SECRET_BYTES = 32;
/** Outputs kept for retries; the oldest is dropped beyond this. */
export const OUTBOX_ENTRIES_MAX = 32;
/** Largest sealed state accepted, in bytes. */
export const SEALED_STATE_BYTES_MAX = 4 * 1024 * 1024;
/** Length of a request id that names one command invocation. */
export const REQUEST_ID_BYTES = 16;

/** An output kept in the sealed state so it can be fetched again after a crash. */
export interface OutboxEntry {
  readonly requestId: Uint8Array;
  readonly command: string;
  readonly output: Uint8Array;
}

/** What is sealed: the app's state with its version (kept equal to the monotonic counter). */
export interface Envelope {
  readonly format: 1;
  readonly app: string;
  readonly version: bigint;
  readonly state: Uint8Array;
  readonly outbox: readonly OutboxEntry[];
}

const envelopeCodec: Codec<Envelope> = record({
  format: literal(1),
  app: text({ min: 1, max: 128 }),
  version: bigint({ min: 0n, max: 2n ** 64n - 1n }),
  state: bytes({ max: SEALED_STATE_BYTES_MAX }),
  outbox: array(record({ requestId: bytes({ length: REQUEST_ID_BYTES }), command: text({ max: 64 }), output: bytes({ max: 1024 * 1024 }) }), {
    max: OUTBOX_ENTRIES_MAX,
  }),
});

/** Keys derived from one master secret. */
export interface DeviceKeys {
  readonly deviceId: Uint8Array;
  /** The AEAD key for one app's sealed state. */
  stateKey(app: string): Uint8Array;
  /** A signer under a label, deterministic for the same master secret. */
  signer(app: string, label: string, suite: SuiteName): Signer;
}

/**
 * Derives the device's keys: `srk` from the master secret, then per-app state keys; signing keys and
 * the device id under their own labels.
 * @throws RangeError for a master secret of the wrong length
 */
export function deriveDeviceKeys(master: Uint8Array, provider: CryptoProvider): DeviceKeys {
  if (master.length !== MASTER_SECRET_BYTES) throw new RangeError(`master secret: expected ${MASTER_SECRET_BYTES} bytes, got ${master.length}`);
  const srk = hkdf({ ikm: master, info: 'tally/se/storage-root/v1', length: 32 });
  const identityRoot = hkdf({ ikm: master, info: 'tally/se/identity-root/v1', length: 32 });
  const deviceId = hkdf({ ikm: identityRoot, info: 'tally/se/device-id/v1', length: 16 });
  const signers = new Map<string, Signer>();
  return {
    deviceId,
    stateKey: (app) => hkdf({ ikm: srk, info: `tally/se/state/v1/${app}`, length: 32 }),
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
  return aeadSeal(keys.stateKey(envelope.app), encodeCbor(envelope), associatedData(envelope.app, keys.deviceId));
}

/**
 * Opens a sealed envelope of `app` on this device.
 * @throws TallyError STATE_CORRUPT when the box fails authentication or does not decode
 */
export function openEnvelope(keys: DeviceKeys, app: string, sealed: Uint8Array): Envelope {
  try {
    const plain = aeadOpen(keys.stateKey(app), sealed, associatedData(app, keys.deviceId));
    const envelope = envelopeCodec.decode(decodeCbor(plain, { maxBytes: SEALED_STATE_BYTES_MAX }), 'envelope');
    if (envelope.app !== app) throw new TallyError('STATE_CORRUPT', `sealed state belongs to ${envelope.app}`, { reason: 'app' });
    return envelope;
  } catch (e) {
    if (isTallyError(e, 'STATE_CORRUPT')) throw e;
    const reason = isTallyError(e) ? e.code : 'undecodable';
    throw new TallyError('STATE_CORRUPT', `sealed state of ${app} cannot be opened (${reason}): wrong device, tampered or damaged`, { reason }, { cause: e });
  }
}
