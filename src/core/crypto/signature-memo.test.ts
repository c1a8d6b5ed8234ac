import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { toHex, utf8 } from '../bytes.ts';
import { sha256 } from './hash.ts';
import { nobleProvider } from './noble.ts';
import { signatureEntry, SignatureMemo, verifyWithMemo } from './signature-memo.ts';
import { signerFromSecret } from './suite.ts';

const suite = nobleProvider.suites.ed25519;
const alice = signerFromSecret(suite, new Uint8Array(32).fill(1));
const bob = signerFromSecret(suite, new Uint8Array(32).fill(2));

describe('signature memo', () => {
  it('answers a check that passed before without verifying it again, and only that check', () => {
    let verified = 0;
    const counting = { ...nobleProvider, suites: { ...nobleProvider.suites, ed25519: { ...suite, verify: (k: Uint8Array, s: Uint8Array, m: Uint8Array) => (verified++, suite.verify(k, s, m)) } } };
    const memo = new SignatureMemo();
    const message = utf8('a payment');
    const signature = alice.sign(message);
    assert.equal(verifyWithMemo(counting, memo, alice.publicKey, message, signature), true);
    assert.equal(verifyWithMemo(counting, memo, alice.publicKey, message, signature), true);
    assert.equal(verified, 1);
    // Another key, message or signature is verified, and refused.
    const flipped = Uint8Array.from(signature);
    flipped[5] = (flipped[5] as number) ^ 1;
    assert.equal(verifyWithMemo(counting, memo, bob.publicKey, message, signature), false);
    assert.equal(verifyWithMemo(counting, memo, alice.publicKey, utf8('a paymenT'), signature), false);
    assert.equal(verifyWithMemo(counting, memo, alice.publicKey, message, flipped), false);
    assert.equal(verified, 4);
    // A failed check is not remembered: it fails again, verified each time.
    assert.equal(verifyWithMemo(counting, memo, alice.publicKey, message, flipped), false);
    assert.equal(verified, 5);
    assert.equal(memo.size, 1);
  });

  it('entries frame each field, so that bytes moved between key, message and signature make another entry', () => {
    const a = signatureEntry({ suite: 'ed25519', key: new Uint8Array([1, 2]) }, new Uint8Array([3]), new Uint8Array([4]));
    const b = signatureEntry({ suite: 'ed25519', key: new Uint8Array([1]) }, new Uint8Array([2, 3]), new Uint8Array([4]));
    const c = signatureEntry({ suite: 'p256', key: new Uint8Array([1, 2]) }, new Uint8Array([3]), new Uint8Array([4]));
    assert.equal(new Set([a, b, c]).size, 3);
  });

  it('an entry is SHA-256 over the suite, the key, the message and the signature, each after its length in 4 bytes big-endian, whatever buffer the bytes sit in', () => {
    const key = new Uint8Array(32).fill(7);
    const signature = new Uint8Array(64).fill(9);
    const backing = new Uint8Array(700).map((_v, k) => k & 0xff);
    const message = backing.subarray(100, 400);
    const framed = (bytes: Uint8Array) => [bytes.length >>> 24, (bytes.length >>> 16) & 0xff, (bytes.length >>> 8) & 0xff, bytes.length & 0xff, ...bytes];
    const expected = `sig:${toHex(sha256(new Uint8Array([...framed(utf8('ed25519')), ...framed(key), ...framed(message.slice()), ...framed(signature)])))}`;
    assert.equal(signatureEntry({ suite: 'ed25519', key }, message, signature), expected);
    assert.equal(signatureEntry({ suite: 'ed25519', key }, message.slice(), signature), expected);
  });

  it('keeps at most its bound, dropping the generation not used for longest; an entry used again is kept', () => {
    const memo = new SignatureMemo(4);
    memo.add('a').add('b'); // young: a b
    memo.add('c'); // old: a b, young: c
    memo.touch('a'); // old: b, young: c a
    memo.add('d'); // old: c a, young: d (b dropped)
    assert.deepEqual(['a', 'b', 'c', 'd'].map((e) => memo.has(e)), [true, false, true, true]);
    assert.ok(memo.size <= 4);
    for (let k = 0; k < 1000; k++) memo.add(`x${k}`);
    assert.ok(memo.size <= 4, `${memo.size} entries`);
    assert.ok(memo.has('x999') && !memo.has('a'));
    assert.throws(() => new SignatureMemo(1), RangeError);
  });
});
