import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { equalBytes } from '../core/bytes.ts';
import { nobleProvider } from '../core/crypto/noble.ts';
import { signedBytes } from '../core/crypto/record.ts';
import { SignatureMemo } from '../core/crypto/signature-memo.ts';
import { isTallyError, type ErrorCode } from '../core/errors.ts';
import { CERTIFICATE_BYTES_MAX, CERTIFICATE_DOMAIN_TAG, certificateBodyWire, decodeCertificate, encodeCertificate, type Certificate } from './certificate.ts';
import { CertificateCache, certificateSignedBytes } from './certificate-cache.ts';
import { verifyChain } from './chain.ts';
import { keyId, rememberKeyId } from './key-id.ts';
import { RevocationStore, issueRevocationList } from './revocation.ts';
import { certify, hierarchy, DAY, NOW, T0 } from './test-fixtures.ts';

const code = (c: ErrorCode) => (e: unknown) => isTallyError(e, c);

function flipBit(bytes: Uint8Array, index: number): Uint8Array {
  const out = bytes.slice();
  out[index] = (out[index] as number) ^ 1;
  return out;
}

describe('CertificateCache', () => {
  const h = hierarchy('ed25519', 'cache');

  it('answers what decodeCertificate answers, the same frozen object for the same bytes, decoded from its own copy', () => {
    const cache = new CertificateCache();
    const bytes = encodeCertificate(h.userCert);
    const first = cache.decode(bytes);
    assert.deepEqual(first, decodeCertificate(bytes));
    assert.equal(cache.decode(bytes.slice()), first);
    assert.equal(cache.size, 1);
    assert.ok(Object.isFrozen(first) && Object.isFrozen(first.body) && Object.isFrozen(first.body.subject) && Object.isFrozen(first.body.extensions));
    assert.throws(() => {
      (first.body as { role: string }).role = 'root';
    }, TypeError);
    // Writing into the bytes it was given changes nothing it keeps.
    const serial = first.body.serial.slice();
    bytes.fill(0);
    assert.ok(equalBytes(first.body.serial, serial));
    assert.deepEqual(cache.decode(encodeCertificate(h.userCert)), decodeCertificate(encodeCertificate(h.userCert)));
  });

  it('keeps its certificates\' signed bytes and key ids, equal to those computed afresh, and hands out copies of the ids', () => {
    const cache = new CertificateCache();
    const cached = cache.decode(encodeCertificate(h.deviceCert));
    const expected = signedBytes(CERTIFICATE_DOMAIN_TAG, certificateBodyWire(h.deviceCert.body));
    assert.ok(equalBytes(certificateSignedBytes(cached), expected));
    assert.ok(equalBytes(certificateSignedBytes(h.deviceCert), expected));
    const id = keyId(cached.body.subject);
    assert.ok(equalBytes(id, keyId(h.device.publicKey)));
    id.fill(0);
    assert.ok(equalBytes(keyId(cached.body.subject), keyId(h.device.publicKey)));
    // Only a frozen key's id is remembered.
    assert.throws(() => rememberKeyId({ suite: 'ed25519', key: h.device.publicKey.key }), TypeError);
  });

  it('refuses what decodeCertificate refuses, with its error, and keeps nothing of it', () => {
    const cache = new CertificateCache();
    const bytes = encodeCertificate(h.userCert);
    for (const bad of [bytes.subarray(0, bytes.length - 1), new Uint8Array([...bytes, 0]), new Uint8Array(0)]) {
      assert.throws(() => cache.decode(bad), code('CERT_MALFORMED'));
    }
    assert.throws(() => cache.decode(new Uint8Array(CERTIFICATE_BYTES_MAX + 1)), code('TOO_LARGE'));
    assert.throws(() => cache.decode('not bytes' as unknown as Uint8Array), TypeError);
    assert.equal(cache.size, 0);
  });

  it('keeps at most its bound, and what is used often', () => {
    const cache = new CertificateCache(4);
    const often = encodeCertificate(h.userCert);
    for (let i = 0; i < 20; i++) {
      cache.decode(encodeCertificate(certify({ issuer: h.intermediary, issuerRole: 'intermediary', role: 'user', subject: h.user })));
      const again = cache.decode(often);
      assert.deepEqual(again, decodeCertificate(often));
      assert.ok(cache.size <= 4, `holds ${cache.size}`);
    }
    assert.throws(() => new CertificateCache(1), RangeError);
  });

  it('a cached certificate is judged again on every chain check: a forged copy, another time, a revocation', () => {
    const cache = new CertificateCache();
    const memo = new SignatureMemo();
    const root = cache.adopt(h.rootCert);
    const intermediary = cache.adopt(h.intermediaryCert);
    const short = certify({ issuer: h.intermediary, issuerRole: 'intermediary', role: 'user', subject: h.user, notAfter: T0 + 20 * DAY });
    const leaf = cache.decode(encodeCertificate(short));
    const store = new RevocationStore({ provider: nobleProvider });
    const check = (certificate: Certificate, now = NOW) =>
      verifyChain({ provider: nobleProvider, chain: [certificate, intermediary], trustAnchors: [root], now, leafRoles: ['user'], revocations: store, verifiedSignatures: memo });
    assert.equal(check(leaf).role, 'user');
    assert.equal(check(cache.decode(encodeCertificate(short))).role, 'user');
    // The same signature over a body with one bit changed: other bytes, another entry, refused.
    const encoded = encodeCertificate(short);
    const serialAt = Buffer.from(encoded).indexOf(Buffer.from(short.body.serial));
    assert.ok(serialAt > 0);
    const forged = cache.decode(flipBit(encoded, serialAt));
    assert.ok(equalBytes(forged.signature, short.signature) && !equalBytes(forged.body.serial, short.body.serial));
    assert.throws(() => check(forged), code('CERT_SIGNATURE_INVALID'));
    // Past its window at a later time, though it passed before.
    assert.throws(() => check(leaf, T0 + 30 * DAY), code('CERT_EXPIRED'));
    // Revoked after it passed.
    store.accept(issueRevocationList({ issuer: h.intermediary, version: 1, issuedAt: NOW, revoked: [short.body.serial] }), h.intermediary.publicKey);
    assert.throws(() => check(leaf), code('CERT_REVOKED'));
  });
});
