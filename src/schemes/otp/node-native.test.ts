/**
 * The node's native X25519 and RSA-PSS verification answer as the pure code a trusted app runs:
 * the RFC 7748 vector, random keys, low-order points; blindly signed coins, and every way of
 * breaking their signature.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { x25519 } from '@noble/curves/ed25519.js';
import { fromHex, toHex } from '../../core/bytes.ts';
import { generateKeyPair, setupBaseR, setupBaseS } from '../../core/crypto/hpke.ts';
import { blind, finalize, verify, type RsaPublicKey } from './blind-rsa.ts';
import { nativePssVerify, nativeX25519 } from './node-native.ts';
import { blindSign, generateRsaKey, rsaPublicKeyOf } from './node-rsa.ts';

const random = (n: number) => new Uint8Array(randomBytes(n));

test('native X25519: the RFC 7748 vector, and the same secret as noble for random keys', () => {
  // RFC 7748 §6.1: Alice's private key with Bob's public key.
  const alice = fromHex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a');
  const bob = fromHex('de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f');
  assert.equal(toHex(nativeX25519(alice, bob)), '4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742');
  for (let i = 0; i < 100; i++) {
    const sk = random(32);
    const pk = i % 2 === 0 ? x25519.scalarMultBase(random(32)) : random(32); // random u-coordinates too
    assert.equal(toHex(nativeX25519(sk, pk)), toHex(x25519.scalarMult(sk, pk)), `pair ${i}`);
    // The public key as a view into a larger buffer (the coin's bytes): the same secret.
    const padded = random(45);
    padded.set(pk, 7);
    assert.equal(toHex(nativeX25519(sk, padded.subarray(7, 39))), toHex(x25519.scalarMult(sk, pk)), `pair ${i} as a view`);
  }
  assert.throws(() => nativeX25519(random(32), random(31)), /32 bytes/);
  assert.throws(() => nativeX25519(random(31), random(32)), /32 bytes/);
});

test('native X25519 refuses low-order points, and HPKE with it refuses them as KEY_INVALID', () => {
  const sk = random(32);
  for (const point of [new Uint8Array(32), Uint8Array.from([1, ...new Uint8Array(31)])]) {
    assert.throws(() => nativeX25519(sk, point));
    assert.throws(() => setupBaseR({ recipientPrivateKey: sk, enc: point, scalarMult: nativeX25519 }), /KEY_INVALID|low-order/i);
  }
});

test('HPKE opened with the native X25519 and a given public key opens what the pure code opens, and nothing else', () => {
  const recipient = generateKeyPair();
  const info = random(16);
  const sender = setupBaseS({ recipientPublicKey: recipient.publicKey, info });
  const box = sender.seal(new Uint8Array([1, 2, 3]), new Uint8Array([9]));
  const pure = setupBaseR({ recipientPrivateKey: recipient.privateKey, enc: sender.enc, info }).open(box, new Uint8Array([9]));
  const fast = setupBaseR({ recipientPrivateKey: recipient.privateKey, recipientPublicKey: recipient.publicKey, enc: sender.enc, info, scalarMult: nativeX25519 }).open(box, new Uint8Array([9]));
  assert.deepEqual(fast, pure);
  // A public key that is not the recipient's derives another secret: the box does not open.
  const other = generateKeyPair();
  assert.throws(() => setupBaseR({ recipientPrivateKey: recipient.privateKey, recipientPublicKey: other.publicKey, enc: sender.enc, info, scalarMult: nativeX25519 }).open(box, new Uint8Array([9])), /AEAD_FAILED|authentication/);
  assert.throws(() => setupBaseR({ recipientPrivateKey: recipient.privateKey, recipientPublicKey: new Uint8Array(31), enc: sender.enc, info }), /32 bytes/);
});

test('native RSA-PSS verification agrees with the pure one: valid coins, and every way of breaking them', () => {
  const key = generateRsaKey();
  const publicKey = rsaPublicKeyOf(key);
  const both = (k: RsaPublicKey, message: Uint8Array, signature: Uint8Array): boolean => {
    const pure = verify(k, message, signature);
    assert.equal(nativePssVerify(k, message, signature), pure, `native and pure disagree on ${toHex(signature.subarray(0, 8))}…`);
    return pure;
  };
  for (let i = 0; i < 8; i++) {
    const prepared = random(32 + i * 7);
    const blinded = blind(publicKey, prepared, random);
    const signature = finalize(publicKey, prepared, blindSign(key, blinded.blindedMessage, publicKey), blinded.inverse);
    assert.equal(both(publicKey, prepared, signature), true);
    const flipped = Uint8Array.from(signature);
    flipped[i * 11] = (flipped[i * 11] as number) ^ 0x01;
    assert.equal(both(publicKey, prepared, flipped), false);
    const other = Uint8Array.from(prepared);
    other[0] = (other[0] as number) ^ 0x80;
    assert.equal(both(publicKey, other, signature), false);
    assert.equal(both(publicKey, prepared, signature.subarray(1)), false, 'one byte short');
    assert.equal(both(publicKey, prepared, new Uint8Array(signature.length).fill(0xff)), false, 'at or above the modulus');
    assert.equal(both(publicKey, prepared, random(signature.length)), false, 'random');
    assert.equal(both(rsaPublicKeyOf(generateRsaKeyOnce()), prepared, signature), false, 'another key');
  }
});

let spare: ReturnType<typeof generateRsaKey> | undefined;
function generateRsaKeyOnce(): ReturnType<typeof generateRsaKey> {
  spare ??= generateRsaKey();
  return spare;
}
