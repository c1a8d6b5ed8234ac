/**
 * Exchange keys: a key the bank signed is taken inside its window; one signed by someone else, one
 * altered after signing (another public key, another category, a longer window), one expired or not
 * yet valid, or any key when the payer has no trusted time, is refused.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeCbor, encodeCbor } from '../../core/cbor.ts';
import { isTallyError } from '../../core/errors.ts';
import { signerFromSecret } from '../../core/crypto/suite.ts';
import { nobleEd25519 } from '../../core/crypto/noble-ed25519.ts';
import { nobleProvider } from '../../core/crypto/noble.ts';
import { checkExchangeKey, exchangeKeyCodec, exchangeKeyId, issueExchangeKey, type ExchangeKey } from './exchange-key.ts';

const bank = signerFromSecret(nobleEd25519, new Uint8Array(32).fill(7));
const mallory = signerFromSecret(nobleEd25519, new Uint8Array(32).fill(9));
const t0 = Date.UTC(2026, 11, 1);
const DAY = 86_400_000;
const body = { publicKey: new Uint8Array(32).fill(5), category: 'grocery', notBefore: t0, notAfter: t0 + 30 * DAY };

const refused = (reason: string) => (e: unknown) => isTallyError(e, 'OTP_EXCHANGE_KEY_INVALID') && e.details.reason === reason;
const forged = (e: unknown) => isTallyError(e, 'SIGNATURE_INVALID');

test('a key the bank signed, inside its window, is taken; it survives the wire', () => {
  const key = issueExchangeKey(bank, body);
  const back: ExchangeKey = exchangeKeyCodec.decode(decodeCbor(encodeCbor(key)));
  assert.deepEqual(checkExchangeKey(nobleProvider, bank.publicKey, back, t0 + DAY), body);
  assert.equal(exchangeKeyId(body.publicKey).length, 16);
  assert.notDeepEqual(exchangeKeyId(body.publicKey), exchangeKeyId(new Uint8Array(32).fill(6)));
});

test('a key not signed by the bank, or changed after signing, is refused', () => {
  const key = issueExchangeKey(bank, body);
  assert.throws(() => checkExchangeKey(nobleProvider, bank.publicKey, issueExchangeKey(mallory, body), t0 + DAY), forged);
  for (const change of [{ publicKey: new Uint8Array(32).fill(6) }, { category: 'casino' }, { category: null }, { notAfter: t0 + 300 * DAY }]) {
    assert.throws(() => checkExchangeKey(nobleProvider, bank.publicKey, { ...key, body: { ...key.body, ...change } }, t0 + DAY), forged, JSON.stringify(Object.keys(change)));
  }
  const flipped = Uint8Array.from(key.signature);
  flipped[10] = (flipped[10] as number) ^ 1;
  assert.throws(() => checkExchangeKey(nobleProvider, bank.publicKey, { ...key, signature: flipped }, t0 + DAY), forged);
});

test('past its end, or without a trusted time, a key is refused; one issued after the payer last synced is taken', () => {
  const key = issueExchangeKey(bank, body);
  // The payer's trusted time lags the real time: a key newer than it is no sign of a forgery.
  assert.equal(checkExchangeKey(nobleProvider, bank.publicKey, key, t0 - DAY).category, 'grocery');
  assert.throws(() => checkExchangeKey(nobleProvider, bank.publicKey, key, t0 + 30 * DAY + 1), refused('expired'));
  assert.throws(() => checkExchangeKey(nobleProvider, bank.publicKey, key, null), refused('no-time'));
});

test('the bank refuses to sign an empty, reversed or too long window, and a malformed key', () => {
  assert.throws(() => issueExchangeKey(bank, { ...body, notAfter: t0 }), RangeError);
  assert.throws(() => issueExchangeKey(bank, { ...body, notAfter: t0 + 401 * DAY }), RangeError);
  assert.throws(() => issueExchangeKey(bank, { ...body, publicKey: new Uint8Array(31) }), (e: unknown) => isTallyError(e, 'DECODE_FAILED'));
  assert.throws(() => issueExchangeKey(bank, { ...body, category: 'Not OK' }), (e: unknown) => isTallyError(e, 'DECODE_FAILED'));
});
