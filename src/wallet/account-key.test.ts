/**
 * The account key at rest: sealed under a passphrase it opens to the same key; a wrong passphrase is
 * a clear PASSWORD_WRONG; a tampered or swapped sealed key is refused; the record holds no key bytes.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { fromBase64url, toBase64url, toHex } from '../core/bytes.ts';
import { randomBytes } from '../core/crypto/hash.ts';
import { decodeCbor, encodeCbor } from '../core/cbor.ts';
import { isTallyError } from '../core/errors.ts';
import { nobleEd25519 } from '../core/crypto/noble.ts';
import { nodeProvider } from '../providers/node-crypto.ts';
import { openSlot, sealSlot } from '../secure-element/key-slot.ts';
import { holdAccountKey, openAccountKey, openHeldAccountKey, sealAccountKey, sealedAccountKeyCodec, sealLegacySecret, walletPassphrase, WALLET_PASSPHRASE_ENV, type KeySlot } from './account-key.ts';

const kdf = { N: 2 ** 14, r: 8, p: 1 };

test('a sealed account key opens to the same key and holds no key bytes', async () => {
  const secret = randomBytes(32);
  const sealed = await sealAccountKey(nobleEd25519, secret, 'correct horse', { kdf });
  const text = JSON.stringify(sealed);
  assert.ok(!text.includes(toHex(secret)) && !text.includes(toBase64url(secret)), 'no secret in the record');
  assert.ok(!Buffer.from(fromBase64url(sealed.file)).includes(Buffer.from(secret)), 'no secret in the sealed file');
  const signer = await openAccountKey(JSON.parse(text), 'correct horse', nodeProvider, 'alice');
  assert.deepEqual(signer.publicKey.key, nobleEd25519.publicKey(secret));
});

test('a wrong passphrase is PASSWORD_WRONG naming the wallet and the variable', async () => {
  const sealed = await sealAccountKey(nobleEd25519, randomBytes(32), 'correct horse', { kdf });
  await assert.rejects(openAccountKey(sealed, 'wrong horse', nodeProvider, 'alice'), (e) => isTallyError(e, 'PASSWORD_WRONG') && /wallet alice/.test(e.message) && e.message.includes(WALLET_PASSPHRASE_ENV));
});

test('a tampered sealed key is refused, not opened', async () => {
  const sealed = await sealAccountKey(nobleEd25519, randomBytes(32), 'correct horse', { kdf });
  const file = decodeCbor(fromBase64url(sealed.file)) as { box: Uint8Array; publicKey: Uint8Array };
  const box = file.box.slice();
  box[5] = (box[5] ?? 0) ^ 1;
  await assert.rejects(openAccountKey({ ...sealed, file: toBase64url(encodeCbor({ ...file, box })) }, 'correct horse', nodeProvider, 'alice'), (e) => isTallyError(e, 'STATE_CORRUPT') && /altered/.test(e.message));
  // The public key is in the AEAD's associated data: changing it is refused too.
  const publicKey = nobleEd25519.publicKey(randomBytes(32));
  await assert.rejects(openAccountKey({ ...sealed, file: toBase64url(encodeCbor({ ...file, publicKey })) }, 'correct horse', nodeProvider, 'alice'), (e) => isTallyError(e, 'STATE_CORRUPT'));
  const truncated = toBase64url(fromBase64url(sealed.file).slice(0, 40));
  await assert.rejects(openAccountKey({ ...sealed, file: truncated }, 'correct horse', nodeProvider, 'alice'), (e) => isTallyError(e, 'STATE_CORRUPT'));
});

test('a sealed key swapped for another one (same passphrase) is refused', async () => {
  const mine = await sealAccountKey(nobleEd25519, randomBytes(32), 'correct horse', { kdf });
  const theirs = await sealAccountKey(nobleEd25519, randomBytes(32), 'correct horse', { kdf });
  await assert.rejects(openAccountKey({ ...mine, file: theirs.file }, 'correct horse', nodeProvider, 'alice'), (e) => isTallyError(e, 'STATE_CORRUPT') && /another key/.test(e.message));
});

test('a malformed record is DECODE_FAILED naming the field', async () => {
  const sealed = await sealAccountKey(nobleEd25519, randomBytes(32), 'correct horse', { kdf });
  await assert.rejects(openAccountKey({ ...sealed, keyId: 'xyz' }, 'correct horse', nodeProvider, 'alice'), (e) => isTallyError(e, 'DECODE_FAILED') && e.details.path === 'accountKey.keyId');
  await assert.rejects(openAccountKey({ kind: 'clear', secret: 'aa' }, 'x', nodeProvider, 'alice'), (e) => isTallyError(e, 'DECODE_FAILED') && e.details.path === 'accountKey.kind');
});

test('a legacy hex secret is sealed to the same key', async () => {
  const secret = randomBytes(32);
  const sealed = await sealLegacySecret(nobleEd25519, toHex(secret), 'correct horse', { kdf });
  const signer = await openAccountKey(sealed, 'correct horse', nodeProvider, 'alice');
  assert.deepEqual(signer.publicKey.key, nobleEd25519.publicKey(secret));
  await assert.rejects(sealLegacySecret(nobleEd25519, 'zz', 'x', { kdf }), (e) => isTallyError(e, 'DECODE_FAILED') && e.details.path === 'user.secret');
});

test('the passphrase comes from TALLY_WALLET_PASSPHRASE without a terminal, from a prompt with one', async () => {
  assert.equal(await walletPassphrase({ env: { [WALLET_PASSPHRASE_ENV]: 'from env!' }, isTTY: false }, { wallet: 'a' }), 'from env!');
  await assert.rejects(walletPassphrase({ env: {}, isTTY: false }, { wallet: 'a' }), (e) => isTallyError(e, 'PASSWORD_MISSING') && e.message.includes(WALLET_PASSPHRASE_ENV));
  const answers = ['typed words', 'typed words'];
  assert.equal(await walletPassphrase({ env: {}, isTTY: true, ask: async () => answers.shift() ?? '' }, { wallet: 'a', confirm: true }), 'typed words');
  const differ = ['typed words', 'other words'];
  await assert.rejects(walletPassphrase({ env: {}, isTTY: true, ask: async () => differ.shift() ?? '' }, { wallet: 'a', confirm: true }), (e) => isTallyError(e, 'PASSWORD_MISMATCH'));
  await assert.rejects(walletPassphrase({ env: { [WALLET_PASSPHRASE_ENV]: 'short' }, isTTY: false }, { wallet: 'a', confirm: true }), (e) => isTallyError(e, 'PASSWORD_MISSING') && /at least 8/.test(e.message));
});

describe('an account key held by the secure element host', () => {
  // A key slot over one master secret, as the SE process serves it (key-slot.ts).
  const slotOf = (master: Uint8Array): KeySlot => ({
    sealSecret: async (label, secret) => sealSlot(master, label, secret),
    openSecret: async (label, box) => openSlot(master, label, box),
  });
  const device = slotOf(randomBytes(32));

  test('opens on its device to the same key; the record holds no key bytes', async () => {
    const secret = randomBytes(32);
    const held = await holdAccountKey(device, nobleEd25519, secret);
    const text = JSON.stringify(held);
    assert.ok(!text.includes(toHex(secret)) && !text.includes(toBase64url(secret)), 'no secret in the record');
    assert.ok(!Buffer.from(fromBase64url(held.box)).includes(Buffer.from(secret)), 'no secret in the box');
    const decoded = sealedAccountKeyCodec.decode(JSON.parse(text), 'accountKey');
    assert.ok(decoded.kind === 'se');
    const { signer, secret: opened } = await openHeldAccountKey(decoded, device, nodeProvider, 'alice');
    assert.deepEqual(signer.publicKey.key, nobleEd25519.publicKey(secret));
    assert.deepEqual(opened, secret);
  });

  test('another device, a swapped box or an altered one is refused', async () => {
    const held = await holdAccountKey(device, nobleEd25519, randomBytes(32));
    await assert.rejects(openHeldAccountKey(held, slotOf(randomBytes(32)), nodeProvider, 'alice'), (e) => isTallyError(e, 'STATE_CORRUPT') && /another device/.test(e.message));
    const theirs = await holdAccountKey(device, nobleEd25519, randomBytes(32));
    await assert.rejects(openHeldAccountKey({ ...held, box: theirs.box }, device, nodeProvider, 'alice'), (e) => isTallyError(e, 'STATE_CORRUPT') && /another key/.test(e.message));
    const altered = fromBase64url(held.box);
    altered[30] = (altered[30] ?? 0) ^ 1;
    await assert.rejects(openHeldAccountKey({ ...held, box: toBase64url(altered) }, device, nodeProvider, 'alice'), (e) => isTallyError(e, 'STATE_CORRUPT'));
    // A passphrase cannot open what the secure element holds.
    await assert.rejects(openAccountKey(held, 'correct horse', nodeProvider, 'alice'), (e) => isTallyError(e, 'STATE_CORRUPT') && /secure element/.test(e.message));
  });
});
