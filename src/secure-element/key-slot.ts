/**
 * The host's key slot: a secret of the device's holder (the wallet's account key) sealed by the
 * secure element host under a key derived from the device master secret, as the trusted apps'
 * states are. The wallet keeps only the sealed box on disk and asks the secure element process
 * to open it while a command needs the key; a box is bound to its device and its label, so a box
 * copied from another wallet, or sealed under another label, does not open. Pure: no I/O.
 */
import { decodeCbor, encodeCbor } from '../core/cbor.ts';
import { bytes, literal, record, text } from '../core/codec.ts';
import { aeadOpen, aeadSeal, hkdf } from '../core/crypto/hash.ts';
import { isTallyError, TallyError } from '../core/errors.ts';
import { MASTER_SECRET_BYTES } from './sealing.ts';

/** Largest secret a slot holds (a secret key or a seed). */
export const SLOT_SECRET_BYTES_MAX = 64;
/** Largest sealed box accepted: the secret, its label and the AEAD's nonce and tag. */
export const SLOT_BOX_BYTES_MAX = 256;
/** A slot's label: what the secret is for. */
export const SLOT_LABEL = /^[a-z][a-z0-9-]{0,31}$/;

const slotLabel = text({ min: 1, max: 32, pattern: SLOT_LABEL, describe: 'a key slot label' });
const slotPlain = record({ format: literal(1), label: slotLabel, secret: bytes({ min: 1, max: SLOT_SECRET_BYTES_MAX }) });

function slotKey(master: Uint8Array, label: string): Uint8Array {
  if (master.length !== MASTER_SECRET_BYTES) throw new RangeError(`master secret: expected ${MASTER_SECRET_BYTES} bytes, got ${master.length}`);
  const root = hkdf({ ikm: master, info: 'tally/se/key-slot-root/v1', length: 32 });
  return hkdf({ ikm: root, info: `tally/se/key-slot/v1/${label}`, length: 32 });
}

function associatedData(label: string): Uint8Array {
  return encodeCbor(['tally/se/key-slot/v1', label]);
}

/**
 * Checks a seal request before it crosses to the secure element process (whose frame decoder would
 * only drop a frame it cannot read).
 * @throws TallyError DECODE_FAILED for a bad label or a secret of the wrong size
 */
export function checkSealRequest(label: string, secret: Uint8Array): void {
  slotPlain.decode({ format: 1, label, secret }, 'slot');
}

/**
 * Checks an open request likewise.
 * @throws TallyError DECODE_FAILED for a bad label; STATE_CORRUPT for an oversized box
 */
export function checkOpenRequest(label: string, box: Uint8Array): void {
  slotLabel.decode(label, 'label');
  if (box.length > SLOT_BOX_BYTES_MAX) {
    throw new TallyError('STATE_CORRUPT', `the sealed ${label} key is ${box.length} bytes, over the ${SLOT_BOX_BYTES_MAX} a key slot holds`, { reason: 'size' });
  }
}

/**
 * Seals `secret` under the device's key slot `label`.
 * @throws DecodeError for a bad label or a secret of the wrong size
 */
export function sealSlot(master: Uint8Array, label: string, secret: Uint8Array): Uint8Array {
  const plain = slotPlain.decode({ format: 1, label, secret }, 'slot');
  return aeadSeal(slotKey(master, plain.label), encodeCbor(plain), associatedData(plain.label));
}

/**
 * Opens a box that sealSlot made on this device under `label`.
 * @throws TallyError STATE_CORRUPT when the box is not this device's, not this label's, altered or malformed
 */
export function openSlot(master: Uint8Array, label: string, box: Uint8Array): Uint8Array {
  checkOpenRequest(label, box);
  try {
    const plain = slotPlain.decode(decodeCbor(aeadOpen(slotKey(master, label), box, associatedData(label)), { maxBytes: SLOT_BOX_BYTES_MAX }), 'slot');
    if (plain.label !== label) throw new TallyError('STATE_CORRUPT', `the sealed key is for ${plain.label}, not ${label}`, { reason: 'label' });
    return plain.secret;
  } catch (e) {
    if (isTallyError(e, 'STATE_CORRUPT')) throw e;
    const reason = isTallyError(e) ? e.code : 'undecodable';
    throw new TallyError('STATE_CORRUPT', `the sealed ${label} key does not open on this secure element (${reason}): it was sealed by another device, altered or damaged`, { reason }, { cause: e });
  }
}
