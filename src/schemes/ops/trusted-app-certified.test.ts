import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isTallyError } from '../../core/errors.ts';
import { decodeCertificate, encodeCertificate } from '../../pki/certificate.ts';
import { hierarchy } from '../../pki/test-fixtures.ts';
import { decodeHeldCertificate } from './trusted-app-certified.ts';

describe('decodeHeldCertificate', () => {
  it('answers what decoding the same bytes gives, whatever the caller later does to its array, and decodes other bytes anew', () => {
    const h = hierarchy('ed25519', 'held');
    const bytes = encodeCertificate(h.intermediaryCert);
    const first = decodeHeldCertificate(bytes);
    assert.deepEqual(first, decodeCertificate(bytes));
    assert.equal(decodeHeldCertificate(encodeCertificate(h.intermediaryCert)), first, 'remembered by content');
    // The caller's array changed after the fact: the entry stays the certificate that was decoded...
    const changed = bytes.slice();
    bytes.fill(0);
    assert.deepEqual(decodeHeldCertificate(changed), first);
    // ...and zeroed bytes are decoded (and refused), not taken for it.
    assert.throws(() => decodeHeldCertificate(bytes), (e) => isTallyError(e, 'CERT_MALFORMED'));
    assert.deepEqual(decodeHeldCertificate(encodeCertificate(h.rootCert)), h.rootCert);
  });
});
