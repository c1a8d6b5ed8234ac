/**
 * The node:crypto sealing primitives give the bytes of the @noble ones: XChaCha20-Poly1305 boxes
 * equal to noble's xchacha20poly1305 under the same key and nonce (so a state sealed by either opens
 * with the other), the same SHA-256 and HKDF; and a box altered in any way, opened with another key
 * or other associated data, or cut short, fails with AEAD_FAILED as noble's does.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { randomBytes } from '../core/crypto/hash.ts';
import { isTallyError } from '../core/errors.ts';
import { nobleSealing, type SealingPrimitives } from '../secure-element/sealing-primitives.ts';
import { nodeSealing } from './node-sealing.ts';

const NONCE_BYTES = 24;
const TAG_BYTES = 16;

/** Plaintext lengths around ChaCha20's 64-byte blocks and Poly1305's 16-byte blocks, and empty. */
const LENGTHS = [0, 1, 15, 16, 17, 63, 64, 65, 127, 128, 129, 1000, 1674, 4096, 40_000];

function isAeadFailure(e: unknown): boolean {
  return isTallyError(e, 'AEAD_FAILED');
}

test('a node:crypto box is the noble box under the same key and nonce, for every length and associated data', () => {
  for (const [k, length] of LENGTHS.entries()) {
    for (const adLength of [0, 1, 16, 33, 300]) {
      const key = randomBytes(32);
      const ad = randomBytes(adLength);
      const plaintext = randomBytes(length);
      const box = nodeSealing.aeadSeal(key, plaintext, ad);
      assert.equal(box.length, NONCE_BYTES + length + TAG_BYTES);
      const nonce = box.subarray(0, NONCE_BYTES);
      const expected = xchacha20poly1305(key, nonce, ad).encrypt(plaintext);
      assert.deepEqual(box.subarray(NONCE_BYTES), expected, `length ${length}, associated data ${adLength} (case ${k})`);
      // Each opens the other's box.
      assert.deepEqual(nobleSealing.aeadOpen(key, box, ad), plaintext);
      const nobleBox = nobleSealing.aeadSeal(key, plaintext, ad);
      assert.deepEqual(nodeSealing.aeadOpen(key, nobleBox, ad), plaintext);
      assert.deepEqual(nodeSealing.aeadOpen(key, box, ad), plaintext);
    }
  }
});

test('a node:crypto box matches noble for many random keys, nonces, associated data and plaintexts', () => {
  for (let i = 0; i < 300; i++) {
    const key = randomBytes(32);
    const ad = randomBytes(i % 70);
    const plaintext = randomBytes((i * 37) % 2500);
    const box = nodeSealing.aeadSeal(key, plaintext, ad);
    assert.deepEqual(box.subarray(NONCE_BYTES), xchacha20poly1305(key, box.subarray(0, NONCE_BYTES), ad).encrypt(plaintext), `case ${i}`);
    const nobleBox = nobleSealing.aeadSeal(key, plaintext, ad);
    assert.deepEqual(nodeSealing.aeadOpen(key, nobleBox, ad), plaintext, `case ${i}`);
  }
});

test('the XChaCha20-Poly1305 test vector of draft-irtf-cfrg-xchacha-03 §A.3.1', () => {
  const hex = (s: string) => new Uint8Array(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
  const plaintext = new TextEncoder().encode(
    "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.",
  );
  const ad = hex('50515253c0c1c2c3c4c5c6c7');
  const key = hex('808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f');
  const nonce = hex('404142434445464748494a4b4c4d4e4f5051525354555657');
  const ciphertext = hex(`bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb
    731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b452
    2f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9
    21f9664c97637da9768812f615c68b13b52e`);
  const tag = hex('c0875924c1c7987947deafd8780acf49');
  const box = new Uint8Array([...nonce, ...ciphertext, ...tag]);
  assert.deepEqual(nodeSealing.aeadOpen(key, box, ad), plaintext);
  assert.deepEqual(nobleSealing.aeadOpen(key, box, ad), plaintext);
});

for (const sealing of [nodeSealing, nobleSealing] as SealingPrimitives[]) {
  test(`${sealing.name}: a tampered box, another key or associated data, a truncated box: AEAD_FAILED`, () => {
    const key = randomBytes(32);
    const ad = randomBytes(40);
    for (const length of [0, 1, 100, 1674]) {
      const plaintext = randomBytes(length);
      const box = sealing.aeadSeal(key, plaintext, ad);
      // Every byte of nonce, ciphertext and tag matters: flip one bit of each in turn (all of a short box).
      const step = Math.max(1, Math.floor(box.length / 97));
      for (let at = 0; at < box.length; at += step) {
        for (const bit of [0x01, 0x80]) {
          const tampered = box.slice();
          tampered[at] = (tampered[at] as number) ^ bit;
          assert.throws(() => sealing.aeadOpen(key, tampered, ad), isAeadFailure, `byte ${at} of ${box.length}, bit ${bit}`);
        }
      }
      const otherKey = key.slice();
      otherKey[31] = (otherKey[31] as number) ^ 1;
      assert.throws(() => sealing.aeadOpen(otherKey, box, ad), isAeadFailure, 'another key');
      assert.throws(() => sealing.aeadOpen(randomBytes(32), box, ad), isAeadFailure, 'a random key');
      const otherAd = ad.slice();
      otherAd[0] = (otherAd[0] as number) ^ 1;
      assert.throws(() => sealing.aeadOpen(key, box, otherAd), isAeadFailure, 'other associated data');
      assert.throws(() => sealing.aeadOpen(key, box, ad.subarray(1)), isAeadFailure, 'shorter associated data');
      assert.throws(() => sealing.aeadOpen(key, box, new Uint8Array(0)), isAeadFailure, 'no associated data');
      for (const cut of [1, TAG_BYTES, box.length - NONCE_BYTES - TAG_BYTES + 1, box.length]) {
        if (cut > box.length) continue;
        assert.throws(() => sealing.aeadOpen(key, box.subarray(0, box.length - cut), ad), isAeadFailure, `cut by ${cut}`);
      }
      const longer = new Uint8Array([...box, 0]);
      assert.throws(() => sealing.aeadOpen(key, longer, ad), isAeadFailure, 'a byte appended');
      assert.deepEqual(sealing.aeadOpen(key, box, ad), plaintext, 'the box itself still opens');
    }
  });

  test(`${sealing.name}: a key of the wrong length is a RangeError`, () => {
    const box = sealing.aeadSeal(randomBytes(32), randomBytes(10), new Uint8Array(0));
    for (const length of [0, 16, 31, 33]) {
      assert.throws(() => sealing.aeadSeal(randomBytes(length), randomBytes(10), new Uint8Array(0)), RangeError);
      assert.throws(() => sealing.aeadOpen(randomBytes(length), box, new Uint8Array(0)), RangeError);
    }
  });
}

test('two boxes of the same plaintext differ (fresh nonces)', () => {
  const key = randomBytes(32);
  const plaintext = randomBytes(64);
  const boxes = new Set<string>();
  for (let i = 0; i < 200; i++) boxes.add(Buffer.from(nodeSealing.aeadSeal(key, plaintext, new Uint8Array(0))).toString('hex'));
  assert.equal(boxes.size, 200);
});

test('SHA-256 and HKDF are those of noble', () => {
  for (const length of LENGTHS) {
    const data = randomBytes(length);
    assert.deepEqual(nodeSealing.sha256(data), nobleSealing.sha256(data), `sha256 of ${length} bytes`);
    assert.ok(!Buffer.isBuffer(nodeSealing.sha256(data)), 'a plain Uint8Array, not a Buffer');
  }
  const known = nodeSealing.sha256(new TextEncoder().encode('abc'));
  assert.equal(Buffer.from(known).toString('hex'), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  for (let i = 0; i < 50; i++) {
    const options = { ikm: randomBytes(32), salt: i % 2 === 0 ? undefined : randomBytes(i), info: `tally/test/${i}`, length: 1 + i * 3 };
    assert.deepEqual(nodeSealing.hkdf(options), nobleSealing.hkdf(options));
  }
});

test('random bytes: the lengths asked for, never the same bytes twice, large draws too', () => {
  const seen = new Set<string>();
  for (let i = 0; i < 2000; i++) {
    const length = [16, 24, 32, 4][i % 4] as number;
    const bytes = nodeSealing.randomBytes(length);
    assert.equal(bytes.length, length);
    assert.ok(!Buffer.isBuffer(bytes));
    if (length >= 16) {
      const hex = Buffer.from(bytes).toString('hex');
      assert.ok(!seen.has(hex), 'a repeated draw');
      seen.add(hex);
    }
  }
  assert.equal(nodeSealing.randomBytes(0).length, 0);
  const large = nodeSealing.randomBytes(10_000);
  assert.equal(large.length, 10_000);
  assert.ok(large.some((b) => b !== 0));
  // A draw is its own memory: changing it changes no later draw.
  const a = nodeSealing.randomBytes(32);
  a.fill(0);
  assert.ok(nodeSealing.randomBytes(32).some((b) => b !== 0));
  assert.throws(() => nodeSealing.randomBytes(-1), RangeError);
});
