/**
 * The Node provider remembers the Ed25519 keys it found valid: a remembered key is the same bytes,
 * and a key that failed is never remembered, so it fails every time. Loading it gives core
 * node:crypto's SHA-256, which must hash exactly as noble's does; core refuses anything else.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ed25519 } from '@noble/curves/ed25519.js';
import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js';
import { randomBytes, sha256, sha256InUse, useSha256 } from '../core/crypto/hash.ts';
import { createPublicKey, sign, generateKeyPairSync } from 'node:crypto';
import { createNodeProvider, ed25519PublicKeyObject, nodeSha256 } from './node-crypto.ts';

/** A 32-byte string that is no point of the curve (noble's strict decode refuses it). */
function notAPoint(): Uint8Array {
  for (;;) {
    const candidate = randomBytes(32);
    try {
      ed25519.Point.fromBytes(candidate, false);
    } catch {
      return candidate;
    }
  }
}

test('an Ed25519 key found valid is remembered by its bytes; one found invalid is refused every time', () => {
  const suite = createNodeProvider().suites.ed25519;
  const valid = suite.publicKey(suite.generateSecretKey());
  const invalid = notAPoint();
  for (let round = 0; round < 3; round++) {
    assert.equal(suite.isValidPublicKey(valid), true);
    assert.equal(suite.isValidPublicKey(invalid), false, `round ${round}`);
  }
  // The caller's array changed after the check: the new bytes are judged on their own.
  const changed = valid.slice();
  assert.equal(suite.isValidPublicKey(changed), true);
  changed.set(invalid);
  assert.equal(suite.isValidPublicKey(changed), false);
  // Many valid keys (past the memo's bound) push the oldest out, and an invalid one still fails.
  for (let i = 0; i < 1100; i++) assert.equal(suite.isValidPublicKey(ed25519.getPublicKey(randomBytes(32))), true);
  assert.equal(suite.isValidPublicKey(invalid), false);
  assert.equal(suite.isValidPublicKey(valid), true);
  assert.equal(suite.isValidPublicKey(valid.subarray(1)), false);
});

test('an Ed25519 public key imported from its raw bytes is the key SPKI DER gives, views into larger buffers too', () => {
  const spkiPrefix = Buffer.from('302a300506032b6570032100', 'hex');
  const message = new TextEncoder().encode('a message');
  for (let i = 0; i < 20; i++) {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const raw = new Uint8Array(publicKey.export({ format: 'der', type: 'spki' }).subarray(spkiPrefix.length));
    // The same bytes in the middle of a larger buffer, with other bytes around them.
    const padded = randomBytes(raw.length + 17);
    padded.set(raw, 9);
    const view = padded.subarray(9, 9 + raw.length);
    const fromDer = createPublicKey({ key: Buffer.concat([spkiPrefix, raw]), format: 'der', type: 'spki' });
    for (const bytes of [raw, view]) {
      const key = ed25519PublicKeyObject(bytes);
      assert.equal(key.equals(fromDer), true, `key ${i}`);
      assert.equal(key.asymmetricKeyType, 'ed25519');
    }
    // Through the provider: its signatures verify, another key's and an altered message do not.
    const suite = createNodeProvider().suites.ed25519;
    const signature = new Uint8Array(sign(null, message, privateKey));
    assert.equal(suite.verify(view, signature, message), true);
    assert.equal(suite.verify(view, signature, new TextEncoder().encode('another message')), false);
    assert.equal(suite.verify(suite.publicKey(suite.generateSecretKey()), signature, message), false);
  }
  assert.throws(() => ed25519PublicKeyObject(new Uint8Array(31)));
});

test("core's SHA-256 is node:crypto's once the provider is loaded, digest for digest noble's, a plain Uint8Array", () => {
  // The provider is loaded (imported above): its digest is a copy, not a Buffer, at every length
  // around SHA-256's 64-byte blocks and its length padding, and for views into a larger buffer.
  const lengths = [0, 1, 3, 55, 56, 63, 64, 65, 119, 120, 128, 1000, 6000, 60_000];
  for (const length of lengths) {
    const whole = randomBytes(length + 7);
    for (const data of [whole.subarray(0, length), whole.subarray(7)]) {
      const digest = sha256(data);
      assert.equal(Object.getPrototypeOf(digest), Uint8Array.prototype, `length ${length}`);
      assert.deepEqual(digest, nobleSha256(data), `length ${length}`);
    }
  }
  assert.equal(sha256InUse(), nodeSha256, "loading the provider installed node:crypto's SHA-256");
});

test('useSha256 refuses an implementation that is not SHA-256 or does not return a plain Uint8Array, and keeps the one in place', () => {
  const before = sha256(new Uint8Array([1, 2, 3]));
  assert.throws(() => useSha256(() => new Uint8Array(32)), /must return the SHA-256 digest/);
  assert.throws(() => useSha256((data) => nobleSha256(data).subarray(0, 31)), /must return the SHA-256 digest/);
  assert.throws(() => useSha256((data) => Buffer.from(nobleSha256(data))), /must return the SHA-256 digest/);
  assert.throws(() => useSha256((data) => nobleSha256(concat(data, new Uint8Array([0])))), /must return the SHA-256 digest/);
  assert.deepEqual(sha256(new Uint8Array([1, 2, 3])), before);
  assert.deepEqual(before, nobleSha256(new Uint8Array([1, 2, 3])));
  assert.equal(sha256InUse(), nodeSha256);
});

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
