/**
 * Test support for the schemes' known-answer vectors (test-vectors/, docs/test-vectors.md): reads a
 * file, and checks its keys and signed records from the bare steps: each key's secret is SHA-256
 * of its label and its key id SHA-256 of the CBOR of `{ suite, key }` (node:crypto); each signed
 * record's bytes are the CBOR of `[tag, record]`; each signature verifies through node:crypto
 * (Ed25519, P-256) or over the Keccak-256 of the signed bytes (secp256k1, Ethereum's way, which
 * node:crypto cannot hash), signs again to the same bytes (every suite here is deterministic), and
 * is refused over a changed byte. A scheme's own test then runs its protocol code over the same values.
 */
import assert from 'node:assert/strict';
import { createHash, createPublicKey, ECDH, verify as nodeVerify } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { concatBytes, fromHex, toBase64url, toHex } from '../core/bytes.ts';
import { isTallyError } from '../core/errors.ts';
import { decodeCbor, encodeCbor } from '../core/cbor.ts';
import { record, text, type Codec } from '../core/codec.ts';
import { keccak256 } from '../core/crypto/hash.ts';
import { nobleProvider } from '../core/crypto/noble.ts';
import { signedBytes } from '../core/crypto/record.ts';
import { suiteFor, type PublicKey } from '../core/crypto/suite.ts';
import { keyId } from '../pki/key-id.ts';
import type { SignedRecordJson } from '../pki/vectors.ts';

/** The repository's root. */
export const ROOT = new URL('../../', import.meta.url);

/** Lowercase hex of at most `maxBytes` bytes. */
export const hex = (maxBytes: number): Codec<string> => text({ max: 2 * maxBytes, pattern: /^([0-9a-f]{2})*$/, describe: `lowercase hex of at most ${maxBytes} bytes` });
/** A line of prose or a name. */
export const words = text({ min: 1, max: 1024 });
/** A `tally1` token. */
export const token = text({ min: 7, max: 65536, pattern: /^tally1[A-Za-z0-9_-]+$/, describe: "a tally1 token" });

/** Reads a vector file and decodes it with `codec` (unknown fields refused). */
export function readVectors<T>(path: string, codec: Codec<T>): T {
  return codec.decode(JSON.parse(readFileSync(new URL(path, ROOT), 'utf8')), path);
}

/** A copy of `bytes` with one bit flipped at `at`. */
export function flipped(bytes: Uint8Array, at = 0): Uint8Array {
  const out = Uint8Array.from(bytes);
  out[at] = (out[at] as number) ^ 1;
  return out;
}

/** SHA-256 through node:crypto. */
export const sha256Hex = (data: Uint8Array | string): string => createHash('sha256').update(data).digest('hex');

export const keyCodec = record({ label: words, suite: words, secretKey: hex(32), publicKey: hex(33), keyId: hex(32) });
export type KeyJson = ReturnType<typeof keyCodec.decode>;
export const keysCodec: Codec<Record<string, KeyJson>> = {
  expected: 'an object of keys by name',
  decode: (input, path = 'keys') => {
    if (typeof input !== 'object' || input === null || Array.isArray(input)) throw new TypeError(`${path}: expected an object`);
    return Object.fromEntries(Object.entries(input).map(([name, value]) => [name, keyCodec.decode(value, `${path}.${name}`)]));
  },
};
export const signedRecordCodec = record({ name: words, tag: words, signer: words, record: hex(65536), signedBytes: hex(65536), signature: hex(128), message: hex(65536) });
export const certificateRecordCodec = record({ name: words, tag: words, signer: words, record: hex(2048), signedBytes: hex(2048), signature: hex(128), message: hex(2048), subjectKeyId: hex(32) });

/** The public key a file's key names. */
export function publicKeyOf(key: KeyJson): PublicKey {
  return { suite: key.suite as PublicKey['suite'], key: fromHex(key.publicKey) };
}

/** Checks every key from its label: its secret, its public key, its key id. */
export function checkKeys(keys: Record<string, KeyJson>): void {
  for (const [name, key] of Object.entries(keys)) {
    assert.equal(sha256Hex(key.label), key.secretKey, `${name}: secretKey is SHA-256 of its label`);
    const suite = suiteFor(nobleProvider, key.suite);
    assert.equal(toHex(suite.publicKey(fromHex(key.secretKey))), key.publicKey, `${name}: publicKey`);
    assert.equal(toHex(keyId(publicKeyOf(key))), key.keyId, `${name}: keyId`);
    assert.equal(sha256Hex(encodeCbor({ suite: key.suite, key: fromHex(key.publicKey) })), key.keyId, `${name}: keyId from the bare CBOR`);
  }
}

const ED25519_SPKI_PREFIX = fromHex('302a300506032b6570032100');

/** Verifies a signature from the bare algorithm, outside the project's suites. */
export function bareVerify(key: KeyJson, signature: Uint8Array, message: Uint8Array): boolean {
  const raw = fromHex(key.publicKey);
  switch (key.suite) {
    case 'ed25519':
      return nodeVerify(null, message, createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, raw]), format: 'der', type: 'spki' }), signature);
    case 'p256': {
      const point = ECDH.convertKey(raw, 'prime256v1', undefined, undefined, 'uncompressed') as Buffer;
      const jwk = { kty: 'EC', crv: 'P-256', x: toBase64url(point.subarray(1, 33)), y: toBase64url(point.subarray(33)) };
      return nodeVerify('sha256', message, { key: createPublicKey({ key: jwk, format: 'jwk' }), dsaEncoding: 'ieee-p1363' }, signature);
    }
    case 'secp256k1': {
      // r ‖ s ‖ v with v = 27 + recovery bit (Ethereum), over Keccak-256 of the message.
      if (signature.length !== 65) return false;
      const digest = keccak256(message);
      if (!secp256k1.verify(signature.subarray(0, 64), digest, raw, { prehash: false, lowS: true })) return false;
      const recovered = secp256k1.Signature.fromBytes(signature.subarray(0, 64), 'compact').addRecoveryBit((signature[64] as number) - 27).recoverPublicKey(digest);
      return toHex(recovered.toBytes(true)) === key.publicKey;
    }
    default:
      throw new Error(`no bare check for suite ${key.suite}`);
  }
}

/** Checks one signed record: its bytes, its signature both ways, its determinism, its refusal of a changed byte. */
export function checkSignedRecord(v: SignedRecordJson, keys: Record<string, KeyJson>): void {
  const key = keys[v.signer];
  assert.ok(key !== undefined, `${v.name}: signer ${v.signer} is in the file's keys`);
  const recordBytes = fromHex(v.record);
  const decoded = decodeCbor(recordBytes);
  assert.equal(toHex(encodeCbor(decoded)), v.record, `${v.name}: the record is deterministic CBOR`);
  assert.equal(toHex(signedBytes(v.tag, decoded)), v.signedBytes, `${v.name}: signedBytes = CBOR of [tag, record]`);
  assert.equal(toHex(encodeCbor([v.tag, decoded])), v.signedBytes);
  const signed = fromHex(v.signedBytes);
  const signature = fromHex(v.signature);
  const suite = suiteFor(nobleProvider, key.suite);
  assert.equal(suite.verify(fromHex(key.publicKey), signature, signed), true, `${v.name}: the signature verifies`);
  assert.equal(bareVerify(key, signature, signed), true, `${v.name}: the signature verifies from the bare algorithm`);
  assert.equal(toHex(suite.sign(fromHex(key.secretKey), signed)), v.signature, `${v.name}: signing again gives the same signature`);
  assert.equal(suite.verify(fromHex(key.publicKey), flipped(signature, 7), signed), false, `${v.name}: a changed signature is refused`);
  assert.equal(bareVerify(key, signature, flipped(signed, signed.length - 1)), false, `${v.name}: a changed signed byte is refused`);
  const message = fromHex(v.message);
  assert.equal(toHex(encodeCbor(decodeCbor(message))), v.message, `${v.name}: the message is deterministic CBOR`);
  assert.ok(toHex(message).includes(v.signature), `${v.name}: the message carries the signature`);
  assert.throws(() => decodeCbor(longHeader(message)), (e: unknown) => isTallyError(e, 'CBOR_MALFORMED') || isTallyError(e, 'CBOR_NONCANONICAL'), `${v.name}: the same message with its header in a longer form is refused`);
}

/** The same CBOR with its first item's header (a map or array of fewer than 24 entries) in the one-byte-length form, which deterministic CBOR forbids. */
export function longHeader(encoded: Uint8Array): Uint8Array {
  const first = encoded[0] as number;
  const major = first & 0xe0;
  const count = first & 0x1f;
  assert.ok((major === 0xa0 || major === 0x80) && count < 24, 'a short map or array');
  return concatBytes(new Uint8Array([major | 24, count]), encoded.subarray(1));
}

/** Checks that a folder holds exactly the generated files (and those `extra` allows), each byte for byte. */
export function checkGenerated(folder: string, files: ReadonlyMap<string, string>, extra: (name: string) => boolean = () => false): void {
  for (const [path, text] of files) {
    assert.ok(path.startsWith(`${folder}/`), `${path} is under ${folder}/`);
    assert.equal(readFileSync(new URL(path, ROOT), 'utf8'), text, `${path} differs from the generator's output: npm run vectors`);
  }
  for (const name of readdirSync(new URL(`${folder}/`, ROOT))) {
    const path = `${folder}/${name}`;
    assert.ok(files.has(path) || extra(name), `${path} is not written by the generator`);
  }
}
