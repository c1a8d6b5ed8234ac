import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { equalBytes } from '../core/bytes.ts';
import { nobleProvider } from '../core/crypto/noble.ts';
import { SUITE_NAMES } from '../core/crypto/suite.ts';
import { isTallyError, type ErrorCode } from '../core/errors.ts';
import { nodeProvider } from '../providers/node-crypto.ts';
import { decodeCertificate, encodeCertificate, type Certificate } from './certificate.ts';
import { verifyChain, CHAIN_LENGTH_MAX, type VerifyChainOptions } from './chain.ts';
import { keyId } from './key-id.ts';
import { issueRevocationList, RevocationStore } from './revocation.ts';
import { certify, hierarchy, rootCertificate, signer, DAY, NOW, T0 } from './test-fixtures.ts';

const code = (c: ErrorCode) => (e: unknown) => isTallyError(e, c);
const provider = nobleProvider;

function verify(chain: readonly Certificate[], anchors: readonly Certificate[], extra: Partial<VerifyChainOptions> = {}) {
  return verifyChain({ provider, chain, trustAnchors: anchors, now: NOW, ...extra });
}

function flipBit(bytes: Uint8Array, index: number, bit = 0): Uint8Array {
  const out = bytes.slice();
  out[index] = (out[index] as number) ^ (1 << bit);
  return out;
}

function indexOfBytes(haystack: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

describe('verifyChain: valid chains', () => {
  for (const suite of SUITE_NAMES) {
    it(`passes root → intermediary → device with ${suite} keys`, () => {
      const h = hierarchy(suite);
      const verified = verify([h.deviceCert, h.intermediaryCert], [h.rootCert]);
      assert.equal(verified.role, 'device');
      assert.deepEqual(verified.subject, h.device.publicKey);
      assert.ok(equalBytes(verified.subjectKeyId, keyId(h.device.publicKey)));
      assert.equal(verified.extensions.holdingLimit, 50_000n);
      assert.equal(verified.anchor, h.rootCert);
      assert.equal(verified.path.length, 3);
      // The root may also travel at the end of the chain.
      assert.equal(verify([h.deviceCert, h.intermediaryCert, h.rootCert], [h.rootCert]).role, 'device');
    });
  }

  it('passes a device key of each suite under an ed25519 intermediary', () => {
    const h = hierarchy('ed25519');
    for (const suite of SUITE_NAMES) {
      const device = signer(`mixed/${suite}`, suite);
      const cert = certify({ issuer: h.intermediary, issuerRole: 'intermediary', role: 'device', subject: device });
      assert.deepEqual(verify([cert, h.intermediaryCert], [h.rootCert]).subject, device.publicKey);
    }
  });

  it('verifies the same with node:crypto as with noble, and across signers', () => {
    const h = hierarchy('p256');
    assert.equal(verifyChain({ provider: nodeProvider, chain: [h.deviceCert, h.intermediaryCert], trustAnchors: [h.rootCert], now: NOW }).role, 'device');
    const nodeRoot = signer('node/root', 'ed25519', nodeProvider);
    const nodeIntermediary = signer('node/intermediary', 'p256', nodeProvider);
    const rootCert = rootCertificate(nodeRoot);
    const interCert = certify({ issuer: nodeRoot, issuerRole: 'root', role: 'intermediary', subject: nodeIntermediary });
    const leaf = certify({ issuer: nodeIntermediary, issuerRole: 'intermediary', role: 'user', subject: h.user });
    assert.equal(verify([leaf, interCert], [rootCert]).role, 'user');
  });

  it('passes the window edges (both inclusive) and a decoded chain', () => {
    const h = hierarchy();
    const cert = certify({ issuer: h.intermediary, issuerRole: 'intermediary', role: 'device', subject: h.device, notBefore: NOW - DAY, notAfter: NOW + DAY });
    const chain = [cert, h.intermediaryCert].map((c) => decodeCertificate(encodeCertificate(c)));
    assert.equal(verify(chain, [h.rootCert], { now: NOW - DAY }).role, 'device');
    assert.equal(verify(chain, [h.rootCert], { now: NOW + DAY }).role, 'device');
  });

  it('picks the anchor that checks out when a root key has two certificates', () => {
    const h = hierarchy();
    const expiredRoot = rootCertificate(h.root, { notBefore: T0 - 10 * DAY, notAfter: T0 - DAY });
    assert.equal(verify([h.deviceCert, h.intermediaryCert], [expiredRoot, h.rootCert]).anchor, h.rootCert);
    assert.throws(() => verify([h.deviceCert, h.intermediaryCert], [expiredRoot]), code('CERT_EXPIRED'));
  });
});

describe('verifyChain: each failure has its own code', () => {
  const h = hierarchy();
  const chain = [h.deviceCert, h.intermediaryCert];
  const anchors = [h.rootCert];

  it('CERT_ROLE_FORBIDDEN: a user certifying a device', () => {
    // issueCertificate trusts the issuerRole it is told; the verifier checks the real role.
    const rogue = certify({ issuer: h.user, issuerRole: 'intermediary', role: 'device', subject: signer('rogue/device') });
    assert.throws(() => verify([rogue, h.userCert, h.intermediaryCert], anchors), code('CERT_ROLE_FORBIDDEN'));
  });

  it('CERT_ROLE_FORBIDDEN: an intermediary certifying an intermediary', () => {
    const sub = signer('rogue/sub-intermediary');
    const subCert = certify({ issuer: h.intermediary, issuerRole: 'root', role: 'intermediary', subject: sub });
    const leaf = certify({ issuer: sub, issuerRole: 'intermediary', role: 'device', subject: signer('rogue/device2') });
    assert.throws(() => verify([leaf, subCert, h.intermediaryCert], anchors), code('CERT_ROLE_FORBIDDEN'));
    assert.throws(() => verify([subCert, h.intermediaryCert], anchors), code('CERT_ROLE_FORBIDDEN'));
  });

  it('CERT_ROLE_FORBIDDEN: an OEM certifying a device, the root certifying a device, a leaf of the wrong role', () => {
    const byOem = certify({ issuer: h.oem, issuerRole: 'intermediary', role: 'device', subject: h.device });
    assert.throws(() => verify([byOem, h.oemCert], anchors), code('CERT_ROLE_FORBIDDEN'));
    const byRoot = certify({ issuer: h.root, issuerRole: 'intermediary', role: 'device', subject: h.device });
    assert.throws(() => verify([byRoot], anchors), code('CERT_ROLE_FORBIDDEN'));
    assert.throws(() => verify(chain, anchors, { leafRoles: ['user'] }), code('CERT_ROLE_FORBIDDEN'));
    assert.equal(verify(chain, anchors, { leafRoles: ['user', 'device'] }).role, 'device');
  });

  it('CERT_EXPIRED and CERT_NOT_YET_VALID', () => {
    assert.throws(() => verify(chain, anchors, { now: T0 + 366 * DAY }), code('CERT_EXPIRED'));
    assert.throws(() => verify(chain, anchors, { now: T0 - 1 }), code('CERT_NOT_YET_VALID'));
    const expired = certify({ issuer: h.intermediary, issuerRole: 'intermediary', role: 'device', subject: h.device, notBefore: T0, notAfter: NOW - 1 });
    assert.throws(() => verify([expired, h.intermediaryCert], anchors), (e: unknown) => {
      assert.ok(isTallyError(e, 'CERT_EXPIRED'));
      assert.equal(e.details.notAfter, String(NOW - 1));
      assert.equal(e.details.now, String(NOW));
      return true;
    });
    const early = certify({ issuer: h.intermediary, issuerRole: 'intermediary', role: 'device', subject: h.device, notBefore: NOW + 1, notAfter: NOW + DAY });
    assert.throws(() => verify([early, h.intermediaryCert], anchors), code('CERT_NOT_YET_VALID'));
    const lateIntermediary = certify({ issuer: h.root, issuerRole: 'root', role: 'intermediary', subject: h.intermediary, notBefore: NOW + 1, notAfter: NOW + DAY });
    assert.throws(() => verify([h.deviceCert, lateIntermediary], anchors), code('CERT_NOT_YET_VALID'));
  });

  it('CERT_SIGNATURE_INVALID: one bit of the signature flipped, in every suite and position', () => {
    for (const suite of SUITE_NAMES) {
      const s = hierarchy(suite, 'flip');
      const sig = s.deviceCert.signature;
      for (const index of [0, 31, sig.length - 1]) {
        for (const bit of [0, 7]) {
          const bad: Certificate = { body: s.deviceCert.body, signature: flipBit(sig, index, bit) };
          assert.throws(() => verify([bad, s.intermediaryCert], [s.rootCert]), code('CERT_SIGNATURE_INVALID'), `${suite} byte ${index} bit ${bit}`);
        }
      }
      const badIntermediary: Certificate = { body: s.intermediaryCert.body, signature: flipBit(s.intermediaryCert.signature, 5) };
      assert.throws(() => verify([s.deviceCert, badIntermediary], [s.rootCert]), code('CERT_SIGNATURE_INVALID'));
    }
  });

  it('CERT_SIGNATURE_INVALID: one bit of the body flipped', () => {
    const encoded = encodeCertificate(h.deviceCert);
    const at = indexOfBytes(encoded, h.deviceCert.body.serial);
    assert.ok(at > 0);
    const tampered = decodeCertificate(flipBit(encoded, at + 3));
    assert.throws(() => verify([tampered, h.intermediaryCert], anchors), code('CERT_SIGNATURE_INVALID'));
    const keyAt = indexOfBytes(encoded, h.deviceCert.body.subject.key);
    const otherKey = decodeCertificate(flipBit(encoded, keyAt + 10, 2));
    assert.throws(() => verify([otherKey, h.intermediaryCert], anchors), code('CERT_SIGNATURE_INVALID'));
    const longer: Certificate = { ...h.deviceCert, body: { ...h.deviceCert.body, notAfter: h.deviceCert.body.notAfter + 1 } };
    assert.throws(() => verify([longer, h.intermediaryCert], anchors), code('CERT_SIGNATURE_INVALID'));
    const richer: Certificate = { ...h.deviceCert, body: { ...h.deviceCert.body, extensions: { ...h.deviceCert.body.extensions, holdingLimit: 50_001n } } };
    assert.throws(() => verify([richer, h.intermediaryCert], anchors), code('CERT_SIGNATURE_INVALID'));
  });

  it('CERT_SIGNATURE_INVALID: a trust anchor whose self-signature is broken', () => {
    const broken: Certificate = { body: h.rootCert.body, signature: flipBit(h.rootCert.signature, 0) };
    assert.throws(() => verify(chain, [broken]), code('CERT_SIGNATURE_INVALID'));
  });

  it('CERT_UNKNOWN_ISSUER: a chain from another root', () => {
    const other = hierarchy('ed25519', 'counterfeit');
    assert.throws(() => verify([other.deviceCert, other.intermediaryCert], anchors), code('CERT_UNKNOWN_ISSUER'));
    assert.throws(() => verify([other.deviceCert, other.intermediaryCert, other.rootCert], anchors), code('CERT_UNKNOWN_ISSUER'));
    assert.throws(() => verify([h.deviceCert], anchors), code('CERT_UNKNOWN_ISSUER'), 'the intermediary is missing');
    assert.throws(() => verify(chain, []), code('CERT_UNKNOWN_ISSUER'));
  });

  it('CERT_CHAIN_INVALID: too long, empty, out of order, a root in the middle, a bad anchor', () => {
    const tooLong = Array.from({ length: CHAIN_LENGTH_MAX + 1 }, () => h.deviceCert);
    assert.throws(() => verify(tooLong, anchors), code('CERT_CHAIN_INVALID'));
    assert.throws(() => verify([], anchors), code('CERT_CHAIN_INVALID'));
    assert.throws(() => verify([h.deviceCert, h.oemCert], anchors), code('CERT_CHAIN_INVALID'));
    assert.throws(() => verify([h.deviceCert, h.rootCert, h.intermediaryCert], anchors), code('CERT_CHAIN_INVALID'));
    // A trust anchor must be a self-signed root.
    assert.throws(() => verify([h.deviceCert], [h.intermediaryCert]), code('CERT_CHAIN_INVALID'));
    const notSelfSigned: Certificate = { ...h.intermediaryCert, body: { ...h.intermediaryCert.body, role: 'root' } };
    assert.throws(() => verify([h.deviceCert], [notSelfSigned]), (e: unknown) => isTallyError(e, 'CERT_CHAIN_INVALID') && /not self-signed/.test(e.message));
  });

  it('CERT_SUITE_FORBIDDEN: a suite the verifier does not allow', () => {
    const p = hierarchy('p256');
    assert.throws(() => verify([p.deviceCert, p.intermediaryCert], [p.rootCert], { allowedSuites: ['ed25519'] }), code('CERT_SUITE_FORBIDDEN'));
    const device = signer('suite/device', 'secp256k1');
    const cert = certify({ issuer: h.intermediary, issuerRole: 'intermediary', role: 'device', subject: device });
    assert.throws(() => verify([cert, h.intermediaryCert], anchors, { allowedSuites: ['ed25519', 'p256'] }), code('CERT_SUITE_FORBIDDEN'));
  });

  it('CERT_MALFORMED: a subject key that is not on its curve', () => {
    const offCurve = { suite: 'p256' as const, key: new Uint8Array(33).fill(0xff) };
    offCurve.key[0] = 0x02;
    const cert = certify({ issuer: h.intermediary, issuerRole: 'intermediary', role: 'device', subject: { publicKey: offCurve, sign: () => new Uint8Array() } });
    assert.throws(() => verify([cert, h.intermediaryCert], anchors), code('CERT_MALFORMED'));
  });

  it('CERT_REVOKED: through a RevocationStore and through signed lists', () => {
    const store = new RevocationStore({ provider });
    const list = issueRevocationList({ issuer: h.intermediary, version: 1, issuedAt: NOW, revoked: [h.deviceCert.body.serial] });
    assert.equal(verify(chain, anchors, { revocations: store }).role, 'device');
    store.accept(list, h.intermediary.publicKey);
    assert.throws(() => verify(chain, anchors, { revocations: store }), code('CERT_REVOKED'));
    assert.throws(() => verify(chain, anchors, { revocations: [list] }), code('CERT_REVOKED'));
    // The user certificate of the same issuer is not on the list.
    assert.equal(verify([h.userCert, h.intermediaryCert], anchors, { revocations: [list] }).role, 'user');
    // The central bank revokes the whole intermediary.
    const rootList = issueRevocationList({ issuer: h.root, version: 1, issuedAt: NOW, revoked: [h.intermediaryCert.body.serial] });
    assert.throws(() => verify([h.userCert, h.intermediaryCert], anchors, { revocations: [rootList] }), code('CERT_REVOKED'));
  });

  it('ignores a list signed by a key that did not issue the certificate', () => {
    // The device's own key "revoking" its own serial changes nothing: it issued no certificate.
    const selfList = issueRevocationList({ issuer: h.device, version: 1, issuedAt: NOW, revoked: [h.deviceCert.body.serial] });
    assert.equal(verify(chain, anchors, { revocations: [selfList] }).role, 'device');
  });

  it('CRL_INVALID: a list of the intermediary whose signature is broken', () => {
    const list = issueRevocationList({ issuer: h.intermediary, version: 1, issuedAt: NOW, revoked: [] });
    const bad = { body: list.body, signature: flipBit(list.signature, 0) };
    assert.throws(() => verify(chain, anchors, { revocations: [bad] }), code('CRL_INVALID'));
  });

  it('CRL_ROLLBACK: an older list cannot un-revoke a device', () => {
    const store = new RevocationStore({ provider });
    const v1 = issueRevocationList({ issuer: h.intermediary, version: 1, issuedAt: NOW - DAY, revoked: [] });
    const v2 = issueRevocationList({ issuer: h.intermediary, version: 2, issuedAt: NOW, revoked: [h.deviceCert.body.serial] });
    store.accept(v2, h.intermediary.publicKey);
    assert.throws(() => store.accept(v1, h.intermediary.publicKey), code('CRL_ROLLBACK'));
    assert.throws(() => verify(chain, anchors, { revocations: store }), code('CERT_REVOKED'));
  });

  it('refuses a malformed `now` as misuse', () => {
    assert.throws(() => verify(chain, anchors, { now: 1.5 }), RangeError);
    assert.throws(() => verify(chain, anchors, { now: -1 }), RangeError);
  });
});

describe('verifyChain: the verifiedSignatures memo', () => {
  /** nobleProvider, counting verifications. */
  function counting() {
    let verifies = 0;
    const suites = Object.fromEntries(Object.entries(nobleProvider.suites).map(([name, s]) => [name, { ...s, verify: (k: Uint8Array, sig: Uint8Array, m: Uint8Array) => (verifies++, s.verify(k, sig, m)) }]));
    return { provider: { ...nobleProvider, suites } as typeof nobleProvider, count: () => verifies };
  }

  it('verifies each certificate signature once per memo; windows, roles and revocation are still checked every time', () => {
    const h = hierarchy('ed25519', 'memo');
    const { provider: metered, count } = counting();
    const memo = new Set<string>();
    const run = (extra: Partial<VerifyChainOptions> = {}) => verifyChain({ provider: metered, chain: [h.userCert, h.intermediaryCert], trustAnchors: [h.rootCert], now: NOW, verifiedSignatures: memo, ...extra });
    run();
    assert.equal(count(), 3, 'root, intermediary and user certificate');
    run();
    run({ leafRoles: ['user'] });
    assert.equal(count(), 3, 'nothing verified again');
    // A sibling under the same intermediary: only its own signature.
    verifyChain({ provider: metered, chain: [h.deviceCert, h.intermediaryCert], trustAnchors: [h.rootCert], now: NOW, verifiedSignatures: memo });
    assert.equal(count(), 4);
    // What the memo does not skip.
    assert.throws(() => run({ now: T0 + 10_000 * DAY }), code('CERT_EXPIRED'));
    assert.throws(() => run({ leafRoles: ['device'] }), code('CERT_ROLE_FORBIDDEN'));
    const list = issueRevocationList({ issuer: h.intermediary, version: 1, issuedAt: NOW, revoked: [h.userCert.body.serial] });
    assert.throws(() => run({ revocations: [list] }), code('CERT_REVOKED'));
    // A certificate altered after its signature was remembered is verified, and refused.
    const altered = decodeCertificate(encodeCertificate(h.userCert));
    const forged: Certificate = { ...altered, body: { ...altered.body, extensions: { name: 'mallory' } } };
    assert.throws(() => run({ chain: [forged, h.intermediaryCert] }), code('CERT_SIGNATURE_INVALID'));
  });

  it('checks each subject key once per memo, and a key that is no curve point every time', () => {
    const h = hierarchy('ed25519', 'memo-keys');
    let keyChecks = 0;
    const s = nobleProvider.suites.ed25519;
    const provider = { ...nobleProvider, suites: { ...nobleProvider.suites, ed25519: { ...s, isValidPublicKey: (k: Uint8Array) => (keyChecks++, s.isValidPublicKey(k)) } } } as typeof nobleProvider;
    const memo = new Set<string>();
    verifyChain({ provider, chain: [h.userCert, h.intermediaryCert], trustAnchors: [h.rootCert], now: NOW, verifiedSignatures: memo });
    assert.equal(keyChecks, 3);
    verifyChain({ provider, chain: [h.deviceCert, h.intermediaryCert], trustAnchors: [h.rootCert], now: NOW, verifiedSignatures: memo });
    assert.equal(keyChecks, 4, 'only the new leaf');
    // Signed by the intermediary, so only the key check refuses it; refused again with the same memo.
    const noPoint = { ...h.user, publicKey: { suite: 'ed25519' as const, key: new Uint8Array(32).fill(0xff) } };
    const bad = certify({ issuer: h.intermediary, issuerRole: 'intermediary', role: 'user', subject: noPoint });
    for (let k = 0; k < 2; k++) assert.throws(() => verifyChain({ provider, chain: [bad, h.intermediaryCert], trustAnchors: [h.rootCert], now: NOW, verifiedSignatures: memo }), code('CERT_MALFORMED'));
    assert.equal(keyChecks, 6);
  });
});
