/**
 * Fixtures for the PKI tests (not exported from index.ts): deterministic keys and a small
 * two-tier hierarchy, root → {intermediary, oem}, intermediary → {device, user, issuer-node}.
 */
import { utf8 } from '../core/bytes.ts';
import { hkdf } from '../core/crypto/hash.ts';
import { nobleProvider } from '../core/crypto/noble.ts';
import { signerFromSecret, type CryptoProvider, type Signer, type SuiteName } from '../core/crypto/suite.ts';
import { issueCertificate, type Certificate } from './certificate.ts';
import type { CertificateExtensions } from './extensions.ts';
import type { Role } from './roles.ts';

/** 2025-01-01T00:00:00Z. */
export const T0 = Date.UTC(2025, 0, 1);
/** One day in milliseconds. */
export const DAY = 86_400_000;
/** A time inside every fixture window. */
export const NOW = T0 + 10 * DAY;

/** A signer whose key is derived from a label, so runs are reproducible. */
export function signer(label: string, suite: SuiteName = 'ed25519', provider: CryptoProvider = nobleProvider): Signer {
  const s = provider.suites[suite];
  return signerFromSecret(s, s.secretKeyFromSeed(hkdf({ ikm: utf8(label), info: `tally/pki/test/${suite}`, length: 48 })));
}

/** A serial that counts, so each fixture certificate is distinct and reproducible. */
let serialCounter = 0;
function nextSerial(): Uint8Array {
  const serial = new Uint8Array(16);
  new DataView(serial.buffer).setUint32(12, ++serialCounter);
  return serial;
}

/** Issues a certificate with the fixture defaults (valid from T0 for a year). */
export function certify(options: {
  issuer: Signer;
  issuerRole: Role;
  role: Role;
  subject: Signer;
  notBefore?: number;
  notAfter?: number;
  extensions?: CertificateExtensions;
}): Certificate {
  return issueCertificate({
    issuer: options.issuer,
    issuerRole: options.issuerRole,
    role: options.role,
    subject: options.subject.publicKey,
    notBefore: options.notBefore ?? T0,
    notAfter: options.notAfter ?? T0 + 365 * DAY,
    extensions: options.extensions ?? {},
    serial: nextSerial(),
  });
}

/** A self-signed root certificate. */
export function rootCertificate(root: Signer, window?: { notBefore?: number; notAfter?: number }): Certificate {
  return certify({ issuer: root, issuerRole: 'root', role: 'root', subject: root, ...window });
}

/** A whole hierarchy, every key in one suite. */
export function hierarchy(suite: SuiteName = 'ed25519', label = 'bank') {
  const root = signer(`${label}/root`, suite);
  const intermediary = signer(`${label}/intermediary`, suite);
  const device = signer(`${label}/device`, suite);
  const user = signer(`${label}/user`, suite);
  const oem = signer(`${label}/oem`, suite);
  const rootCert = rootCertificate(root);
  const intermediaryCert = certify({ issuer: root, issuerRole: 'root', role: 'intermediary', subject: intermediary, extensions: { name: 'Bank A' } });
  const deviceCert = certify({
    issuer: intermediary,
    issuerRole: 'intermediary',
    role: 'device',
    subject: device,
    extensions: { scheme: 'ops', holdingLimit: 50_000n, currency: 'EUR', offlinePaymentsMax: 100 },
  });
  const userCert = certify({ issuer: intermediary, issuerRole: 'intermediary', role: 'user', subject: user });
  const oemCert = certify({ issuer: root, issuerRole: 'root', role: 'oem', subject: oem, extensions: { name: 'Phone Maker' } });
  return { root, intermediary, device, user, oem, rootCert, intermediaryCert, deviceCert, userCert, oemCert };
}
