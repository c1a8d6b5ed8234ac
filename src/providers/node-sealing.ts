/**
 * The sealing primitives of a secure element host computed by node:crypto (OpenSSL): SHA-256 and
 * ChaCha20-Poly1305 in native code (about three times noble's speed on a sealed head), randomness
 * from OpenSSL's generator (randomFillSync). HKDF stays noble's: hkdfSync is no faster for the
 * few keys a host derives. Node-only; injected by the Node hosts, whose sealed bytes stay those of
 * the @noble default.
 *
 * XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha §2.3) is HChaCha20 of the key and the nonce's first
 * 16 bytes (noble's `hchacha`, as OpenSSL offers no XChaCha), then the IETF ChaCha20-Poly1305 of
 * RFC 8439 under that subkey with the 12-byte nonce 0x00000000 ‖ nonce[16..24]. The tests hold it
 * against noble's xchacha20poly1305 byte for byte.
 */
import { createCipheriv, createDecipheriv, createHash, randomFillSync } from 'node:crypto';
import { hchacha } from '@noble/ciphers/chacha.js';
import { AEAD_KEY_BYTES, hkdf } from '../core/crypto/hash.ts';
import { TallyError } from '../core/errors.ts';
import type { SealingPrimitives } from '../secure-element/sealing-primitives.ts';

const NONCE_BYTES = 24;
const TAG_BYTES = 16;

/** A plain Uint8Array over a Buffer's bytes (a Buffer's slice shares memory where a Uint8Array's copies). */
function plain(buffer: Buffer): Uint8Array {
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
}

// Words in the host's byte order: hchacha turns them to little-endian itself.
const SIGMA = new Uint32Array(new TextEncoder().encode('expand 32-byte k').buffer);

/** HChaCha20(key, nonce[0..16]): the subkey of XChaCha20. */
function subkey(key: Uint8Array, nonce: Uint8Array): Uint8Array {
  const k = new Uint32Array(8);
  new Uint8Array(k.buffer).set(key);
  const n = new Uint32Array(4);
  new Uint8Array(n.buffer).set(nonce.subarray(0, 16));
  const out = new Uint32Array(8);
  hchacha(SIGMA, k, n, out);
  k.fill(0);
  return new Uint8Array(out.buffer);
}

/** The IETF nonce under the subkey: four zero bytes, then the last 8 bytes of the XChaCha nonce. */
function ietfNonce(nonce: Uint8Array): Uint8Array {
  const iv = new Uint8Array(12);
  iv.set(nonce.subarray(16, NONCE_BYTES), 4);
  return iv;
}

function checkKey(key: Uint8Array): void {
  if (key.length !== AEAD_KEY_BYTES) throw new RangeError(`aead key: expected ${AEAD_KEY_BYTES} bytes, got ${key.length}`);
}

function randomBytes(length: number): Uint8Array {
  if (!Number.isSafeInteger(length) || length < 0) throw new RangeError(`random bytes: expected a length >= 0, got ${length}`);
  return randomFillSync(new Uint8Array(length));
}

function aeadSeal(key: Uint8Array, plaintext: Uint8Array, associatedData: Uint8Array): Uint8Array {
  checkKey(key);
  const nonce = randomBytes(NONCE_BYTES);
  const sub = subkey(key, nonce);
  try {
    const cipher = createCipheriv('chacha20-poly1305', sub, ietfNonce(nonce), { authTagLength: TAG_BYTES });
    cipher.setAAD(associatedData, { plaintextLength: plaintext.length });
    const box = new Uint8Array(NONCE_BYTES + plaintext.length + TAG_BYTES);
    box.set(nonce);
    const body = cipher.update(plaintext);
    const rest = cipher.final();
    box.set(body, NONCE_BYTES);
    box.set(rest, NONCE_BYTES + body.length);
    box.set(cipher.getAuthTag(), NONCE_BYTES + plaintext.length);
    return box;
  } finally {
    sub.fill(0);
  }
}

function aeadOpen(key: Uint8Array, box: Uint8Array, associatedData: Uint8Array): Uint8Array {
  checkKey(key);
  if (box.length < NONCE_BYTES + TAG_BYTES) throw new TallyError('AEAD_FAILED', 'sealed box is too short', {});
  const nonce = box.subarray(0, NONCE_BYTES);
  const body = box.subarray(NONCE_BYTES, box.length - TAG_BYTES);
  const sub = subkey(key, nonce);
  try {
    const decipher = createDecipheriv('chacha20-poly1305', sub, ietfNonce(nonce), { authTagLength: TAG_BYTES });
    decipher.setAuthTag(box.subarray(box.length - TAG_BYTES));
    decipher.setAAD(associatedData, { plaintextLength: body.length });
    const head = decipher.update(body);
    const rest = decipher.final();
    return rest.length === 0 ? plain(head) : plain(Buffer.concat([head, rest]));
  } catch (e) {
    throw new TallyError('AEAD_FAILED', 'sealed box failed authentication (wrong key, tampered or other context)', {}, { cause: e });
  } finally {
    sub.fill(0);
  }
}

function sha256(data: Uint8Array): Uint8Array {
  return plain(createHash('sha256').update(data).digest());
}

/** The sealing primitives through node:crypto. */
export const nodeSealing: SealingPrimitives = { name: 'node', sha256, hkdf, randomBytes, aeadSeal, aeadOpen };
