/**
 * Escrow tags: a coin paid on by three TAs carries three chained tags only the escrow key opens;
 * two copies paid from one TA to two payees part at that TA's hop, and the node names that TA.
 * A tag cut from another coin or hop, reordered, or sealed to another key does not check.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { randomBytes } from '../../core/crypto/hash.ts';
import { isTallyError } from '../../core/errors.ts';
import { signerFromSecret } from '../../core/crypto/suite.ts';
import { nobleEd25519, nobleProvider } from '../../core/crypto/noble.ts';
import { appendTag, attribute, forkHop, openTag, type SealedTag } from './escrow.ts';
import { generateKeyPair } from '../../core/crypto/hpke.ts';

const escrow = generateKeyPair();
const [alice, bob, carol, dave] = [1, 2, 3, 4].map((n) => signerFromSecret(nobleEd25519, new Uint8Array(32).fill(n))) as [ReturnType<typeof signerFromSecret>, ReturnType<typeof signerFromSecret>, ReturnType<typeof signerFromSecret>, ReturnType<typeof signerFromSecret>];
const payee = () => randomBytes(16);
const serial = randomBytes(32);

function pay(tags: readonly SealedTag[], device = alice): SealedTag[] {
  return appendTag({ serial, tags, payee: payee(), device, escrowPublicKey: escrow.publicKey });
}

test('each transfer adds a chained tag naming the paying TA, which only the escrow key opens', () => {
  const tags = pay(pay(pay([], alice), bob), carol);
  assert.equal(tags.length, 3);
  assert.deepEqual([1, 2, 3].map((hop) => openTag(nobleProvider, escrow.privateKey, serial, tags, hop).device.key), [alice, bob, carol].map((s) => s.publicKey.key));
  const other = generateKeyPair();
  assert.throws(() => openTag(nobleProvider, other.privateKey, serial, tags, 1), (e: unknown) => isTallyError(e, 'AEAD_FAILED'));
});

test('a coin paid twice by one TA: the copies part at its hop, and the node names it', () => {
  const shared = pay(pay([], alice), bob); // bob holds the coin after two transfers
  const toCarol = pay(pay(shared, bob), carol); // bob pays carol, carol pays on
  const toDave = pay(shared, bob); // bob's clone pays dave with the same coin
  assert.equal(forkHop(toCarol, toDave), 3);
  const found = attribute(nobleProvider, escrow.privateKey, serial, toCarol, toDave);
  assert.deepEqual(found, { hop: 3, device: bob.publicKey });
  assert.equal(attribute(nobleProvider, escrow.privateKey, serial, toCarol, toCarol), null, 'the same copy twice names no one');
  assert.equal(forkHop(shared, toCarol), null, 'one chain a prefix of the other');
});

test('a tag moved to another coin, another hop, or out of order does not check', () => {
  const tags = pay(pay([], alice), bob);
  assert.throws(() => openTag(nobleProvider, escrow.privateKey, randomBytes(32), tags, 1), (e: unknown) => isTallyError(e, 'AEAD_FAILED'), 'another serial');
  const swapped = [tags[1] as SealedTag, tags[0] as SealedTag];
  assert.throws(() => openTag(nobleProvider, escrow.privateKey, serial, swapped, 1), (e: unknown) => isTallyError(e, 'AEAD_FAILED'), 'hop 2 read as hop 1');
  const other = pay(pay([], dave), carol);
  const spliced = [tags[0] as SealedTag, other[1] as SealedTag];
  assert.throws(() => openTag(nobleProvider, escrow.privateKey, serial, spliced, 2), (e: unknown) => isTallyError(e, 'AEAD_FAILED') || isTallyError(e, 'SIGNATURE_INVALID'), 'a tag of another chain');
  const rechained = pay([pay([], carol)[0] as SealedTag], bob); // bob's tag chained to a tag the coin does not carry
  assert.throws(() => openTag(nobleProvider, escrow.privateKey, serial, [tags[0] as SealedTag, rechained[1] as SealedTag], 2), (e: unknown) => isTallyError(e, 'SIGNATURE_INVALID'));
});
