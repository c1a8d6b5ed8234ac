/**
 * The Node provider remembers the Ed25519 keys it found valid: a remembered key is the same bytes,
 * and a key that failed is never remembered, so it fails every time.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ed25519 } from '@noble/curves/ed25519.js';
import { randomBytes } from '../core/crypto/hash.ts';
import { createNodeProvider } from './node-crypto.ts';

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
