import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { utf8 } from '../../core/bytes.ts';
import { nobleEd25519, nobleProvider } from '../../core/crypto/noble.ts';
import { signerFromSecret } from '../../core/crypto/suite.ts';
import { isTallyError } from '../../core/errors.ts';
import { AUTH_HEADERS, checkRequestAuth, readRequestAuth, REQUEST_WINDOW_MS, signRequest } from './request-auth.ts';

const signer = signerFromSecret(nobleEd25519, new Uint8Array(32).fill(1));
const other = signerFromSecret(nobleEd25519, new Uint8Array(32).fill(2));
const now = 1_800_000_000_000;
const body = '{"amount":"5.00"}';

function signed(overrides: { body?: string; nonce?: Uint8Array } = {}) {
  return signRequest({ signer, keyId: 'user:abc', method: 'post', path: '/v1/transfers', body: overrides.body ?? body, timestamp: now, nonce: overrides.nonce });
}

function check(headers: Record<string, string>, changes: Partial<{ method: string; path: string; body: string; now: number; key: typeof signer }> = {}) {
  const auth = readRequestAuth((name) => headers[name]);
  assert.ok(auth !== null);
  return checkRequestAuth({
    provider: nobleProvider,
    publicKey: (changes.key ?? signer).publicKey,
    auth,
    method: changes.method ?? 'POST',
    path: changes.path ?? '/v1/transfers',
    body: utf8(changes.body ?? body),
    now: changes.now ?? now,
  });
}

describe('signed requests', () => {
  test('a signed request verifies; method case does not matter', () => {
    assert.equal(check(signed()), null);
  });

  test('a changed body, method, path or key, or a forged signature, fails', () => {
    assert.equal(check(signed(), { body: '{"amount":"500.00"}' }), 'SIGNATURE_INVALID');
    assert.equal(check(signed(), { method: 'PUT' }), 'SIGNATURE_INVALID');
    assert.equal(check(signed(), { path: '/v1/transfers?x=1' }), 'SIGNATURE_INVALID');
    assert.equal(check(signed(), { key: other }), 'SIGNATURE_INVALID');
    const headers = signed();
    const forged = { ...headers, [AUTH_HEADERS.key]: 'user:abd' };
    assert.equal(check(forged), 'SIGNATURE_INVALID');
    const flipped = signRequest({ signer: other, keyId: 'user:abc', method: 'POST', path: '/v1/transfers', body, timestamp: now });
    assert.equal(check(flipped), 'SIGNATURE_INVALID');
  });

  test('a timestamp outside the window fails; inside it passes', () => {
    assert.equal(check(signed(), { now: now + REQUEST_WINDOW_MS + 1 }), 'TIMESTAMP_OUT_OF_WINDOW');
    assert.equal(check(signed(), { now: now - REQUEST_WINDOW_MS - 1 }), 'TIMESTAMP_OUT_OF_WINDOW');
    assert.equal(check(signed(), { now: now + REQUEST_WINDOW_MS }), null);
  });

  test('a different nonce gives a different signature over the same request', () => {
    const a = signed({ nonce: new Uint8Array(16).fill(1) });
    const b = signed({ nonce: new Uint8Array(16).fill(2) });
    assert.notEqual(a[AUTH_HEADERS.signature], b[AUTH_HEADERS.signature]);
    const swapped = { ...a, [AUTH_HEADERS.nonce]: b[AUTH_HEADERS.nonce]! };
    assert.equal(check(swapped), 'SIGNATURE_INVALID');
  });

  test('no auth headers reads as null; malformed ones are refused with the header named', () => {
    assert.equal(readRequestAuth(() => undefined), null);
    const headers = signed();
    const cases: Array<[string, string]> = [
      [AUTH_HEADERS.timestamp, 'yesterday'],
      [AUTH_HEADERS.nonce, 'AAAA'],
      [AUTH_HEADERS.signature, '!!!'],
      [AUTH_HEADERS.key, 'User Key'],
    ];
    for (const [name, value] of cases) {
      assert.throws(() => readRequestAuth((h) => ({ ...headers, [name]: value })[h]), (e) => isTallyError(e, 'DECODE_FAILED'));
    }
    const { [AUTH_HEADERS.nonce]: _dropped, ...missing } = headers;
    assert.throws(() => readRequestAuth((h) => missing[h]), (e) => isTallyError(e, 'DECODE_FAILED') && e.details.path === 'headers.nonce');
  });
});
