import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { concatBytes, utf8 } from '../core/bytes.ts';
import { sha256 } from '../core/crypto/hash.ts';
import { nobleProvider } from '../core/crypto/noble.ts';
import { SUITE_NAMES } from '../core/crypto/suite.ts';
import { isTallyError, type ErrorCode } from '../core/errors.ts';
import { nodeProvider } from '../providers/node-crypto.ts';
import {
  attestDevice,
  decodeAttestation,
  encodeAttestation,
  verifyAttestation,
  ATTESTATION_BYTES_MAX,
  type OemAttestation,
  type VerifyAttestationOptions,
} from './attestation.ts';
import { verifyChain } from './chain.ts';
import { issueRevocationList } from './revocation.ts';
import { certify, hierarchy, signer, DAY, NOW } from './test-fixtures.ts';

const MEASUREMENT = sha256(utf8('ops trusted app 1.0.0'));
const OTHER_MEASUREMENT = sha256(utf8('ops trusted app 0.9.0 (withdrawn)'));

/** Predicate: an ATTESTATION_INVALID, optionally caused by a certificate error of `cause`. */
function refused(reason: RegExp, cause?: ErrorCode) {
  return (e: unknown) => {
    assert.ok(isTallyError(e, 'ATTESTATION_INVALID'), String(e));
    assert.match(e.details.reason, reason);
    if (cause !== undefined) assert.ok(isTallyError(e.cause, cause), String(e.cause));
    return true;
  };
}

function setup(suite: (typeof SUITE_NAMES)[number] = 'ed25519') {
  const h = hierarchy(suite, 'attest');
  const se = signer('attest/se', suite);
  const attestation = attestDevice(h.oem, { sePublicKey: se.publicKey, model: 'Pixel 9 Titan M2', taMeasurement: MEASUREMENT });
  const options: VerifyAttestationOptions = {
    provider: nobleProvider,
    attestation,
    oemCertificate: h.oemCert,
    trustAnchors: [h.rootCert],
    sePublicKey: se.publicKey,
    allowedMeasurements: [OTHER_MEASUREMENT, MEASUREMENT],
    now: NOW,
  };
  return { h, se, attestation, options };
}

describe('OEM attestation', () => {
  for (const suite of SUITE_NAMES) {
    it(`passes a valid attestation (${suite})`, () => {
      const { se, options } = setup(suite);
      const verified = verifyAttestation(options);
      assert.deepEqual(verified.sePublicKey, se.publicKey);
      assert.equal(verified.model, 'Pixel 9 Titan M2');
      assert.deepEqual(verified.taMeasurement, MEASUREMENT);
      assert.equal(verified.oem.role, 'oem');
      assert.equal(verifyAttestation({ ...options, provider: nodeProvider }).model, 'Pixel 9 Titan M2');
    });
  }

  it('round-trips through bytes, and the root may travel in the chain', () => {
    const { h, attestation, options } = setup();
    const decoded = decodeAttestation(encodeAttestation(attestation));
    assert.deepEqual(decoded, attestation);
    assert.equal(verifyAttestation({ ...options, attestation: decoded, chain: [h.rootCert] }).model, 'Pixel 9 Titan M2');
  });

  it('feeds an intermediary what it needs to certify the secure element', () => {
    const { h, se, options } = setup();
    const verified = verifyAttestation(options);
    const deviceCert = certify({
      issuer: h.intermediary,
      issuerRole: 'intermediary',
      role: 'device',
      subject: se,
      extensions: { deviceModel: verified.model, taMeasurement: verified.taMeasurement },
    });
    const chain = verifyChain({ provider: nobleProvider, chain: [deviceCert, h.intermediaryCert], trustAnchors: [h.rootCert], now: NOW });
    assert.deepEqual(chain.extensions.taMeasurement, MEASUREMENT);
  });

  it('refuses an attestation signed by another OEM key', () => {
    const { se, options } = setup();
    const impostor = attestDevice(signer('attest/impostor-oem'), { sePublicKey: se.publicKey, model: 'Pixel 9 Titan M2', taMeasurement: MEASUREMENT });
    assert.throws(() => verifyAttestation({ ...options, attestation: impostor }), refused(/signature/));
  });

  it('refuses a measurement not on the allow list', () => {
    const { options } = setup();
    assert.throws(() => verifyAttestation({ ...options, allowedMeasurements: [OTHER_MEASUREMENT] }), refused(/measurement/));
    assert.throws(() => verifyAttestation({ ...options, allowedMeasurements: [] }), refused(/measurement/));
  });

  it('refuses a swapped secure-element key', () => {
    const { attestation, options } = setup();
    const other = signer('attest/other-se');
    // The attestation is genuine, but for another key than the one presented.
    assert.throws(() => verifyAttestation({ ...options, sePublicKey: other.publicKey }), refused(/not the key presented/));
    // The key inside the attestation was replaced: the OEM signature no longer covers it.
    const swapped: OemAttestation = { ...attestation, body: { ...attestation.body, sePublicKey: other.publicKey } };
    assert.throws(() => verifyAttestation({ ...options, attestation: swapped, sePublicKey: other.publicKey }), refused(/signature/));
  });

  it('refuses a changed model or measurement', () => {
    const { attestation, options } = setup();
    const model: OemAttestation = { ...attestation, body: { ...attestation.body, model: 'Cheap Clone' } };
    assert.throws(() => verifyAttestation({ ...options, attestation: model }), refused(/signature/));
    const measured: OemAttestation = { ...attestation, body: { ...attestation.body, taMeasurement: OTHER_MEASUREMENT } };
    assert.throws(() => verifyAttestation({ ...options, attestation: measured }), refused(/signature/));
  });

  it('refuses an OEM certificate that does not chain to the root', () => {
    const { se, options } = setup();
    const rogue = hierarchy('ed25519', 'rogue-bank');
    const rogueAttestation = attestDevice(rogue.oem, { sePublicKey: se.publicKey, model: 'X', taMeasurement: MEASUREMENT });
    assert.throws(
      () => verifyAttestation({ ...options, attestation: rogueAttestation, oemCertificate: rogue.oemCert }),
      refused(/OEM certificate/, 'CERT_UNKNOWN_ISSUER'),
    );
    assert.throws(() => verifyAttestation({ ...options, oemCertificate: rogue.oemCert, chain: [rogue.rootCert] }), refused(/OEM certificate/, 'CERT_UNKNOWN_ISSUER'));
  });

  it('refuses a key that is not an OEM, an expired OEM and a revoked OEM', () => {
    const { h, se, options } = setup();
    // An intermediary's key signing attestations is not an OEM.
    const byBank = attestDevice(h.intermediary, { sePublicKey: se.publicKey, model: 'X', taMeasurement: MEASUREMENT });
    assert.throws(() => verifyAttestation({ ...options, attestation: byBank, oemCertificate: h.intermediaryCert }), refused(/OEM certificate/, 'CERT_ROLE_FORBIDDEN'));
    assert.throws(() => verifyAttestation({ ...options, now: NOW + 400 * DAY }), refused(/OEM certificate/, 'CERT_EXPIRED'));
    const rootList = issueRevocationList({ issuer: h.root, version: 1, issuedAt: NOW, revoked: [h.oemCert.body.serial] });
    assert.throws(() => verifyAttestation({ ...options, revocations: [rootList] }), refused(/OEM certificate/, 'CERT_REVOKED'));
  });

  it('refuses a secure-element key of a suite that is not allowed', () => {
    const h = hierarchy('ed25519', 'attest');
    const se = signer('attest/se-k1', 'secp256k1');
    const attestation = attestDevice(h.oem, { sePublicKey: se.publicKey, model: 'X', taMeasurement: MEASUREMENT });
    const options = { ...setup().options, attestation, sePublicKey: se.publicKey };
    assert.equal(verifyAttestation(options).model, 'X');
    assert.throws(() => verifyAttestation({ ...options, allowedSuites: ['ed25519', 'p256'] }), refused(/suite/));
  });

  it('refuses malformed bytes and out-of-bounds fields', () => {
    const { h, se, attestation } = setup();
    const encoded = encodeAttestation(attestation);
    assert.throws(() => decodeAttestation(concatBytes(encoded, new Uint8Array([0]))), refused(/malformed/));
    assert.throws(() => decodeAttestation(encoded.subarray(2)), refused(/malformed/));
    assert.throws(() => decodeAttestation(new Uint8Array(ATTESTATION_BYTES_MAX + 1)), (e: unknown) => isTallyError(e, 'TOO_LARGE'));
    assert.throws(() => attestDevice(h.oem, { sePublicKey: se.publicKey, model: '', taMeasurement: MEASUREMENT }), refused(/model/));
    assert.throws(() => attestDevice(h.oem, { sePublicKey: se.publicKey, model: 'X', taMeasurement: new Uint8Array(31) }), refused(/taMeasurement/));
  });
});
