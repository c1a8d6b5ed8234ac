/**
 * One coin's transfer: sealed to the payee TA's exchange key, opened only by it, acknowledged by
 * a MAC only it can make. A copy sent to another payee, an altered box, a box relabelled for
 * another key or class, and an ACK from anyone else or for another box are refused.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeCbor, encodeCbor } from '../../core/cbor.ts';
import { randomBytes } from '../../core/crypto/hash.ts';
import { isTallyError } from '../../core/errors.ts';
import type { CarriedCoin } from './messages.ts';
import { exchangeKeyId } from './exchange-key.ts';
import { generateKeyPair } from '../../core/crypto/hpke.ts';
import { buildProgram } from './program.ts';
import { ackCodec, ackMatches, openCoin, sealCoin, sealedCoinCodec, type SealedCoin } from './transfer.ts';

function coin(): CarriedCoin {
  return { coin: { serial: randomBytes(32), classId: new Uint8Array(16).fill(3), prefix: randomBytes(32), signature: randomBytes(256), program: buildProgram(1) }, tags: [] };
}

const bob = generateKeyPair();
const carol = generateKeyPair();
const failed = (e: unknown) => isTallyError(e, 'AEAD_FAILED');

test('sealed to the payee key, opened by it, acknowledged: the ACK matches only its box', () => {
  const c = coin();
  const { sealed, ackSecret } = sealCoin(c, bob.publicKey);
  const wire = sealedCoinCodec.decode(decodeCbor(encodeCbor(sealed)));
  const { carried: received, ack } = openCoin(wire, bob.privateKey, bob.publicKey);
  assert.deepEqual(received, c);
  assert.equal(ackMatches(sealed, ackSecret, ackCodec.decode(decodeCbor(encodeCbor(ack)))), true);
  assert.deepEqual(sealed.keyId, exchangeKeyId(bob.publicKey));
  const again = sealCoin(c, bob.publicKey);
  assert.notDeepEqual(again.sealed.ciphertext, sealed.ciphertext, 'a fresh ephemeral key each time');
  assert.equal(ackMatches(again.sealed, again.ackSecret, ack), false, "an ACK of one box does not acknowledge another of the same coin");
});

test('a copy sent to another payee opens for no one but the key it was sealed to', () => {
  const { sealed } = sealCoin(coin(), bob.publicKey);
  assert.throws(() => openCoin(sealed, carol.privateKey, carol.publicKey), failed);
  const relabelled: SealedCoin = { ...sealed, keyId: exchangeKeyId(carol.publicKey) };
  assert.throws(() => openCoin(relabelled, carol.privateKey, carol.publicKey), failed);
});

test('an altered box is refused: ciphertext, enc, class, key id', () => {
  const { sealed } = sealCoin(coin(), bob.publicKey);
  const flip = (b: Uint8Array, at: number) => {
    const c = Uint8Array.from(b);
    c[at] = (c[at] as number) ^ 1;
    return c;
  };
  assert.throws(() => openCoin({ ...sealed, ciphertext: flip(sealed.ciphertext, 5) }, bob.privateKey, bob.publicKey), failed);
  assert.throws(() => openCoin({ ...sealed, ciphertext: sealed.ciphertext.subarray(0, sealed.ciphertext.length - 1) }, bob.privateKey, bob.publicKey), failed);
  assert.throws(() => openCoin({ ...sealed, enc: flip(sealed.enc, 0) }, bob.privateKey, bob.publicKey), (e: unknown) => failed(e) || isTallyError(e, 'KEY_INVALID'));
  assert.throws(() => openCoin({ ...sealed, classId: flip(sealed.classId, 0) }, bob.privateKey, bob.publicKey), failed);
  assert.throws(() => openCoin({ ...sealed, keyId: flip(sealed.keyId, 0) }, bob.privateKey, bob.publicKey), failed);
});

test('an ACK made without the exchange key, or for another box, is not taken', () => {
  const first = sealCoin(coin(), bob.publicKey);
  const second = sealCoin(coin(), bob.publicKey);
  const { ack } = openCoin(first.sealed, bob.privateKey, bob.publicKey);
  assert.equal(ackMatches(first.sealed, first.ackSecret, { digest: ack.digest, mac: randomBytes(32) }), false, 'a guessed MAC');
  assert.equal(ackMatches(second.sealed, second.ackSecret, ack), false, "the first box's ACK for the second");
  const flipped = Uint8Array.from(ack.mac);
  flipped[0] = (flipped[0] as number) ^ 1;
  assert.equal(ackMatches(first.sealed, first.ackSecret, { ...ack, mac: flipped }), false);
  assert.equal(ackMatches(first.sealed, randomBytes(32), ack), false, 'under another secret');
});
