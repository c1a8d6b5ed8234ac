import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { concatBytes, equalBytes } from '../core/bytes.ts';
import { encodeCbor } from '../core/cbor.ts';
import { AMOUNT_MINOR_MAX } from '../core/amount.ts';
import { SUITE_NAMES, SUITE_SIZES, type SuiteName } from '../core/crypto/suite.ts';
import { isTallyError } from '../core/errors.ts';
import {
  certificateBodyWire,
  decodeCertificate,
  encodeCertificate,
  isSelfIssued,
  issueCertificate,
  CERTIFICATE_BYTES_MAX,
  TIME_MS_MAX,
  type Certificate,
  type CertificateBody,
} from './certificate.ts';
import { DEVICE_MODEL_CHARS_MAX, NAME_CHARS_MAX, OFFLINE_PAYMENTS_MAX_LIMIT, SCHEME_CHARS_MAX, type CertificateExtensions } from './extensions.ts';
import { keyId } from './key-id.ts';
import { ROLES } from './roles.ts';
import { certify, hierarchy, signer, DAY, T0 } from './test-fixtures.ts';

const code = (c: Parameters<typeof isTallyError>[1]) => (e: unknown) => isTallyError(e, c);

function wireOf(certificate: Certificate): Record<string, unknown> {
  return { body: certificateBodyWire(certificate.body), signature: certificate.signature };
}

describe('certificate', () => {
  it('issues, encodes and decodes to the same bytes', () => {
    const { deviceCert, intermediary } = hierarchy();
    const encoded = encodeCertificate(deviceCert);
    const decoded = decodeCertificate(encoded);
    assert.deepEqual(decoded, deviceCert);
    assert.ok(equalBytes(encodeCertificate(decoded), encoded));
    assert.ok(equalBytes(decoded.body.issuer, keyId(intermediary.publicKey)));
    assert.equal(decoded.body.extensions.holdingLimit, 50_000n);
  });

  it('draws a 16-byte serial from the random source when none is given', () => {
    const root = signer('serial/root');
    const cert = issueCertificate({ issuer: root, issuerRole: 'root', role: 'root', subject: root.publicKey, notBefore: T0, notAfter: T0 + DAY, random: (n) => new Uint8Array(n).fill(7) });
    assert.deepEqual(cert.body.serial, new Uint8Array(16).fill(7));
    const fresh = issueCertificate({ issuer: root, issuerRole: 'root', role: 'root', subject: root.publicKey, notBefore: T0, notAfter: T0 + DAY });
    assert.equal(fresh.body.serial.length, 16);
    assert.ok(isSelfIssued(fresh));
  });

  it('decodes into fresh buffers: changing the input afterwards changes nothing', () => {
    const { deviceCert } = hierarchy();
    const encoded = encodeCertificate(deviceCert);
    const decoded = decodeCertificate(encoded);
    encoded.fill(0);
    assert.deepEqual(decoded, deviceCert);
  });

  it('refuses to issue what the role table forbids', () => {
    const { root, intermediary, device, user } = hierarchy();
    assert.throws(() => certify({ issuer: intermediary, issuerRole: 'intermediary', role: 'intermediary', subject: device }), code('CERT_ROLE_FORBIDDEN'));
    assert.throws(() => certify({ issuer: user, issuerRole: 'user', role: 'device', subject: device }), code('CERT_ROLE_FORBIDDEN'));
    assert.throws(() => certify({ issuer: root, issuerRole: 'root', role: 'device', subject: device }), code('CERT_ROLE_FORBIDDEN'));
    // A root certificate is self-signed: a root may not certify another key as root.
    assert.throws(() => certify({ issuer: root, issuerRole: 'root', role: 'root', subject: intermediary }), code('CERT_ROLE_FORBIDDEN'));
    assert.throws(() => certify({ issuer: intermediary, issuerRole: 'intermediary', role: 'root', subject: intermediary }), code('CERT_ROLE_FORBIDDEN'));
  });

  it('refuses to issue fields out of bounds', () => {
    const { root, intermediary } = hierarchy();
    const issue = (extensions: CertificateExtensions, window = { notBefore: T0, notAfter: T0 + DAY }) =>
      certify({ issuer: root, issuerRole: 'root', role: 'intermediary', subject: intermediary, extensions, ...window });
    assert.throws(() => issue({ name: 'x'.repeat(NAME_CHARS_MAX + 1) }), code('CERT_MALFORMED'));
    assert.throws(() => issue({ name: 'line\nbreak' }), code('CERT_MALFORMED'));
    assert.throws(() => issue({ name: 'lone \uD800' }), code('CERT_MALFORMED'));
    assert.throws(() => issue({ scheme: 'OPS' }), code('CERT_MALFORMED'));
    assert.throws(() => issue({ holdingLimit: 1n }), code('CERT_MALFORMED'), 'a holding limit names its currency');
    assert.throws(() => issue({ holdingLimit: -1n, currency: 'EUR' }), code('CERT_MALFORMED'));
    assert.throws(() => issue({ taMeasurement: new Uint8Array(31) }), code('CERT_MALFORMED'));
    assert.throws(() => issue({}, { notBefore: T0 + DAY, notAfter: T0 }), code('CERT_MALFORMED'));
    assert.throws(() => issue({}, { notBefore: T0, notAfter: TIME_MS_MAX + 1 }), code('CERT_MALFORMED'));
    assert.throws(() => issue({}, { notBefore: 0.5, notAfter: T0 }), code('CERT_MALFORMED'));
    assert.throws(() => issueCertificate({ issuer: root, issuerRole: 'root', role: 'oem', subject: intermediary.publicKey, notBefore: T0, notAfter: T0, serial: new Uint8Array(15) }), RangeError);
  });

  it('fits a certificate with every extension at its bound under CERTIFICATE_BYTES_MAX', () => {
    // Worst case: 3-byte UTF-8 characters, a 33-byte key, a 65-byte secp256k1 signature.
    const issuer = signer('max/intermediary', 'secp256k1');
    const subject = signer('max/device', 'p256');
    const cert = issueCertificate({
      issuer,
      issuerRole: 'intermediary',
      role: 'device',
      subject: subject.publicKey,
      notBefore: TIME_MS_MAX,
      notAfter: TIME_MS_MAX,
      serial: new Uint8Array(16).fill(255),
      extensions: {
        name: '€'.repeat(NAME_CHARS_MAX),
        scheme: 'a'.repeat(SCHEME_CHARS_MAX),
        deviceModel: '€'.repeat(DEVICE_MODEL_CHARS_MAX),
        taMeasurement: new Uint8Array(32).fill(255),
        holdingLimit: AMOUNT_MINOR_MAX,
        currency: 'ABCDEFGHIJKL',
        offlinePaymentsMax: OFFLINE_PAYMENTS_MAX_LIMIT,
        owner: new Uint8Array(32).fill(255),
      },
    });
    const size = encodeCertificate(cert).length;
    assert.ok(size <= CERTIFICATE_BYTES_MAX, `${size} bytes`);
    assert.deepEqual(decodeCertificate(encodeCertificate(cert)), cert);
  });

  it('refuses oversized bytes with TOO_LARGE', () => {
    assert.throws(() => decodeCertificate(new Uint8Array(CERTIFICATE_BYTES_MAX + 1)), code('TOO_LARGE'));
  });

  it('refuses trailing garbage, truncation and non-canonical CBOR with CERT_MALFORMED', () => {
    const encoded = encodeCertificate(hierarchy().deviceCert);
    assert.throws(() => decodeCertificate(concatBytes(encoded, new Uint8Array([0]))), code('CERT_MALFORMED'));
    assert.throws(() => decodeCertificate(concatBytes(encoded, encoded)), code('CERT_MALFORMED'));
    assert.throws(() => decodeCertificate(encoded.subarray(0, encoded.length - 1)), code('CERT_MALFORMED'));
    assert.throws(() => decodeCertificate(new Uint8Array()), code('CERT_MALFORMED'));
    assert.throws(() => decodeCertificate(new Uint8Array([0xff, 0xff])), code('CERT_MALFORMED'));
    // Map header in long form (0xb8 0x02 instead of 0xa2): same value, not the deterministic bytes.
    assert.equal(encoded[0], 0xa2);
    assert.throws(() => decodeCertificate(concatBytes(new Uint8Array([0xb8, 0x02]), encoded.subarray(1))), code('CERT_MALFORMED'));
  });

  it('refuses unknown fields, a wrong version, a wrong key length and a bad signature length', () => {
    const cert = hierarchy().deviceCert;
    const wire = wireOf(cert);
    const body = certificateBodyWire(cert.body);
    const cases: unknown[] = [
      { ...wire, extra: 1 },
      { ...wire, body: { ...body, version: 2 } },
      { ...wire, body: { ...body, extensions: { unknownField: 'x' } } },
      { ...wire, body: { ...body, role: 'king' } },
      { ...wire, body: { ...body, subject: { suite: 'ed25519', key: new Uint8Array(33) } } },
      { ...wire, body: { ...body, subject: { suite: 'rsa', key: new Uint8Array(32) } } },
      { ...wire, body: { ...body, issuer: new Uint8Array(31) } },
      { ...wire, body: { ...body, serial: new Uint8Array(17) } },
      { ...wire, body: { ...body, notBefore: -1 } },
      { ...wire, signature: new Uint8Array(63) },
      { ...wire, signature: new Uint8Array(66) },
      [wire.body, wire.signature],
    ];
    for (const value of cases) {
      assert.throws(() => decodeCertificate(encodeCbor(value)), (e: unknown) => {
        assert.ok(isTallyError(e, 'CERT_MALFORMED'), String(e));
        assert.ok(isTallyError(e.cause, 'DECODE_FAILED'));
        return true;
      });
    }
  });

  it('gives a key a different id under another suite', () => {
    const key = signer('id/p256', 'p256').publicKey.key;
    assert.ok(!equalBytes(keyId({ suite: 'p256', key }), keyId({ suite: 'secp256k1', key })));
    assert.equal(keyId({ suite: 'p256', key }).length, 32);
  });

  it('round-trips any well-formed certificate (property)', () => {
    const printable = (max: number) =>
      fc.string({ unit: 'binary', minLength: 1, maxLength: max }).filter((s) => s.length <= max && /^[^\p{Cc}\p{Cs}]*$/u.test(s));
    const extensions: fc.Arbitrary<CertificateExtensions> = fc
      .record(
        {
          name: printable(NAME_CHARS_MAX),
          scheme: fc.stringMatching(/^[a-z][a-z0-9-]{0,31}$/),
          deviceModel: printable(DEVICE_MODEL_CHARS_MAX),
          taMeasurement: fc.uint8Array({ minLength: 32, maxLength: 32 }),
          holdingLimit: fc.bigInt({ min: 0n, max: AMOUNT_MINOR_MAX }),
          currency: fc.stringMatching(/^[A-Z][A-Z0-9]{2,11}$/),
          offlinePaymentsMax: fc.integer({ min: 0, max: OFFLINE_PAYMENTS_MAX_LIMIT }),
          owner: fc.uint8Array({ minLength: 32, maxLength: 32 }),
        },
        { requiredKeys: [] },
      )
      // fast-check builds null-prototype records; decoding gives plain ones.
      .map((x) => (x.holdingLimit !== undefined && x.currency === undefined ? { ...x, currency: 'EUR' } : { ...x }));
    const suite = fc.constantFrom<SuiteName>(...SUITE_NAMES);
    const certificate: fc.Arbitrary<Certificate> = fc
      .record({
        serial: fc.uint8Array({ minLength: 16, maxLength: 16 }),
        role: fc.constantFrom(...ROLES),
        suite,
        keySeed: fc.uint8Array({ minLength: 33, maxLength: 33 }),
        issuer: fc.uint8Array({ minLength: 32, maxLength: 32 }),
        times: fc.tuple(fc.integer({ min: 0, max: TIME_MS_MAX }), fc.integer({ min: 0, max: TIME_MS_MAX })),
        extensions,
        signatureSuite: suite,
        signatureSeed: fc.uint8Array({ minLength: 65, maxLength: 65 }),
      })
      .map((r) => {
        const body: CertificateBody = {
          version: 1,
          serial: r.serial,
          role: r.role,
          subject: { suite: r.suite, key: r.keySeed.slice(0, SUITE_SIZES[r.suite].publicKey) },
          issuer: r.issuer,
          notBefore: Math.min(...r.times),
          notAfter: Math.max(...r.times),
          extensions: r.extensions,
        };
        return { body, signature: r.signatureSeed.slice(0, SUITE_SIZES[r.signatureSuite].signature) };
      });
    fc.assert(
      fc.property(certificate, (cert) => {
        const encoded = encodeCertificate(cert);
        const decoded = decodeCertificate(encoded);
        assert.deepEqual(decoded, cert);
        assert.ok(equalBytes(encodeCertificate(decoded), encoded));
      }),
      { numRuns: 300 },
    );
  });
});
